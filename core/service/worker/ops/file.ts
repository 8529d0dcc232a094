/**
 * Files: open, create, read, write, fsync, release, fallocate (no flush: see OP_SIGNATURES). I/O is
 * by inode, through the worker's fd of each inode (files.ts), whatever `fh` the kernel sends.
 */
import { encodeFdBufvec } from "../../../../ffi/fuse/lowlevel.ts";
import { BUFVEC_SIZE } from "../../../../ffi/fuse/lowlevel.ts";
import { fsyncFd } from "../../../../ffi/fsops.ts";
import { E } from "../../../../ffi/errno.ts";
import { O_ACCMODE, O_RDONLY, O_RDWR, O_TRUNC } from "../../../../ffi/sys.ts";
import type { Caller, Errno, FsBackend } from "../../../fs/backend.ts";
import type { Attr } from "../../../../ffi/stat.ts";
import type { InodeFile } from "../files.ts";
import type { Ptr, WorkerContext } from "../context.ts";
import type { Op } from "../instrument.ts";
import type { Waiter } from "../copies.ts";

const bufvec = new Uint8Array(BUFVEC_SIZE);
const bufvecView = new DataView(bufvec.buffer);

/**
 * open. Linux: ENOSYS, once. The kernel then opens every file without asking (abi.ts `noOpen`) and
 * sends no RELEASE; I/O comes by inode and is served from `c.files`. macOS: the open is served
 * from the same table (a write-open copies a lower file up), with `fh` 0.
 */
export const open: Op<"open"> = (c, req, inoB, fi) => {
  if (c.abi.noOpen) return void c.S.fuse_reply_err(req, E.ENOSYS);
  const ino = Number(inoB);
  const flags = c.fi(fi).getInt32(c.abi.fi.flags, true);
  if ((flags & O_ACCMODE) === O_RDONLY && !(flags & O_TRUNC)) {
    const f = readable(c, ino);
    if (typeof f === "number") return void c.S.fuse_reply_err(req, f);
    const v = c.fi(fi);
    v.setBigUint64(c.abi.fi.fh, 0n, true);
    if (!f.b.writable) c.setFiBits(v, c.abi.fiBits.keep_cache);
    return void c.S.fuse_reply_open(req, fi);
  }
  // the reply may come after a copy-up, and libfuse's `fuse_file_info` lives on its stack
  const saved = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(fi!, c.abi.fi.size).slice(0));
  new DataView(saved.buffer).setBigUint64(c.abi.fi.fh, 0n, true);
  writable(
    c,
    req,
    ino,
    (flags & O_TRUNC) !== 0,
    () => c.S.fuse_reply_open(req, Deno.UnsafePointer.of(saved)),
  );
};

/** The inode's fd for reading: the one in use, or a new one from its owner; else an errno. */
function readable(c: WorkerContext, ino: number): InodeFile | Errno {
  return c.files.get(ino, "r") ?? c.files.open(c.byOwner(ino), ino, false);
}

/**
 * Runs `then` with the inode's fd for writing, opening it when needed. Opening a lower file for
 * writing copies it up; a big copy-up runs off the FUSE thread (copies.ts), and `then` runs when it
 * is done, while other requests, those needing this inode's copy excepted, are
 * served meanwhile (`deferred` is told). Errors are replied to `req`.
 */
function writable(
  c: WorkerContext,
  req: Ptr,
  ino: number,
  trunc: boolean,
  then: (f: InodeFile) => void,
  deferred: () => void = () => {},
): void {
  const have = trunc ? undefined : c.files.get(ino, "w");
  if (have) return then(have);
  const go: Waiter = {
    run: () => {
      const f = c.files.open(c.byOwner(ino), ino, true, trunc);
      if (typeof f === "number") c.S.fuse_reply_err(req, f);
      else then(f);
    },
    fail: (err) => void c.S.fuse_reply_err(req, err),
  };
  if (c.copies.size && c.copies.join(ino, go)) return deferred();
  const copy = trunc ? null : c.byOwner(ino).copyBeforeOpen?.(ino, O_RDWR) ?? null;
  if (copy === null) return go.run();
  if (typeof copy === "number") return void c.S.fuse_reply_err(req, copy);
  c.copies.start(ino, copy, go);
  deferred();
}

/**
 * create: O_CREAT of a new name, replied with its entry; the new fd serves the inode's I/O.
 * Linux: ENOSYS, once. The kernel then makes each new file with MKNOD and opens it without asking
 * (fs/fuse/dir.c `fuse_atomic_open` sets `fc->no_create`), so the file's close sends no RELEASE:
 * one round trip less per file created. `mknod` below keeps the new file's fd, as this does.
 */
export const create: Op<"create"> = (c, req, parentB, name, mode, fi) => {
  if (c.abi.noOpen) return void c.S.fuse_reply_err(req, E.ENOSYS);
  const parent = Number(parentB);
  const b = c.resolve(req, parent);
  const r = createFile(c, b, parent, c.name(name), Number(mode), c.caller(req));
  if (typeof r === "number") return void c.S.fuse_reply_err(req, r);
  c.fi(fi).setBigUint64(c.abi.fi.fh, 0n, true);
  c.S.fuse_reply_create(req, c.entry(b, r, parent), fi);
};

/**
 * Makes a regular file and keeps its fd as the inode's: read-write whatever the caller asked
 * (overlay/names.ts create), so a file created with mode 0444 is still written through the open
 * that created it, as on a local disk. @returns its attributes, or the errno
 */
export function createFile(
  c: WorkerContext,
  b: FsBackend,
  parent: number,
  name: string,
  mode: number,
  who: Caller,
): Attr | Errno {
  const r = b.create(parent, name, mode, who);
  if (typeof r === "number") return r;
  c.files.adopt(r[0].ino, { fh: r[1].fh, b, read: true, write: true });
  return r[0];
}

/**
 * read: the kernel reads straight from the inode's fd (an fd-backed fuse_bufvec, no copy here). A
 * blob in a pack reads from its range of the pack, cut at the blob's end.
 * A read that waits for the disk waits here. Handing cold reads (openat2 RESOLVE_CACHED, preadv2
 * RWF_NOWAIT) to reader threads was tried: on a 2-vCPU VM two cold 10,000-file tree reads at
 * once took 5.0–5.2 s against 4.1–4.5 s inline, and one alone 3.4 s against 1.8 s, since waking
 * a thread on another CPU costs more than the disk read it saves.
 */
export const read: Op<"read"> = (c, req, inoB, size, off) => {
  const f = readable(c, Number(inoB));
  if (typeof f === "number") return void c.S.fuse_reply_err(req, f);
  let n = Number(size), pos = Number(off);
  const slice = c.blobs.slices.size ? c.blobs.slices.get(f.fh) : undefined;
  if (slice) {
    n = Math.max(0, Math.min(n, slice[1] - pos));
    pos += slice[0];
  }
  encodeFdBufvec(bufvecView, f.fh, n, pos);
  c.S.fuse_reply_data(req, bufvec, 0);
};

/**
 * write: through the inode's fd for writing. When that needs a big copy-up first, the bytes are
 * kept (libfuse reuses its buffer for the next request) and written once the copy is done.
 */
export const write: Op<"write"> = (c, req, inoB, buf, size, off) => {
  const ino = Number(inoB);
  const now = c.files.get(ino, "w"); // the common case, without writable()'s closures
  if (now) return replyWrite(c, req, now, buf, size, off);
  let kept: Uint8Array | null = null;
  writable(
    c,
    req,
    ino,
    false,
    (f) => replyWrite(c, req, f, kept ? Deno.UnsafePointer.of(kept) : buf, size, off),
    () => kept = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf!, Number(size)).slice(0)),
  );
};

function replyWrite(c: WorkerContext, req: Ptr, f: InodeFile, buf: Ptr, size: bigint, off: bigint): void {
  const r = f.b.write(f.fh, buf, size, off);
  if (typeof r === "number") return void c.S.fuse_reply_err(req, r);
  c.S.fuse_reply_write(req, r);
}

/** fsync / fdatasync of the inode's file (any fd of it syncs its data). */
export const fsync: Op<"fsync"> = (c, req, inoB, datasync) => {
  const f = c.files.peek(Number(inoB)) ?? readable(c, Number(inoB));
  if (typeof f === "number") return void c.S.fuse_reply_err(req, f);
  c.S.fuse_reply_err(req, fsyncFd(f.fh, datasync !== 0));
};

/** release: the kernel's last close; fds stay in `c.files` until the inode is forgotten. */
export const release: Op<"release"> = (c, req) => {
  c.S.fuse_reply_err(req, 0);
};

/** fallocate: through the inode's fd for writing. */
export const fallocate: Op<"fallocate"> = (c, req, inoB, mode, off, len) => {
  const ino = Number(inoB);
  writable(c, req, ino, false, (f) => c.S.fuse_reply_err(req, f.b.fallocate(ino, f.fh, mode, off, len)));
};
