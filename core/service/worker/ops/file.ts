/** Open files: open, create, read, write, fsync, release, fallocate (no flush: see OP_SIGNATURES). */
import { encodeFdBufvec } from "../../../../ffi/fuse/lowlevel.ts";
import { BUFVEC_SIZE } from "../../../../ffi/fuse/lowlevel.ts";
import { fsyncFd } from "../../../../ffi/fsops.ts";
import { E } from "../../../../ffi/errno.ts";
import { libc } from "../../../../ffi/sys.ts";
import type { FsBackend, Opened } from "../../../fs/backend.ts";
import { CTR } from "../../../metrics.ts";
import type { Ptr, WorkerContext } from "../context.ts";
import type { Op } from "../instrument.ts";
import type { Waiter } from "../copies.ts";

const bufvec = new Uint8Array(BUFVEC_SIZE);
const bufvecView = new DataView(bufvec.buffer);

/** Records a new handle and writes it into the `fuse_file_info`. */
function opened(c: WorkerContext, b: FsBackend, o: Opened, fi: Ptr): void {
  c.handles.set(o.fh, b);
  c.counters[CTR.openHandles]++;
  const v = c.fi(fi);
  v.setBigUint64(c.abi.fi.fh, BigInt(o.fh), true);
  if (o.keepCache) c.setFiBits(v, c.abi.fiBits.keep_cache);
}

/**
 * open: by the inode's owner; a write-open of a lower file copies it up there. A big copy-up runs
 * off the FUSE thread (copies.ts): this open replies when it is done, and other requests, opens of
 * the same inode excepted, are served meanwhile.
 */
export const open: Op<"open"> = (c, req, inoB, fi) => {
  c.counters[CTR.opens]++;
  const ino = Number(inoB);
  const flags = c.fi(fi).getInt32(c.abi.fi.flags, true);
  if (c.copies.size && c.copies.join(ino, later(c, req, ino, flags, fi))) return;
  const copy = c.byOwner(ino).copyBeforeOpen?.(ino, flags) ?? null;
  if (copy === null) return openNow(c, req, ino, flags, fi);
  if (typeof copy === "number") return void c.S.fuse_reply_err(req, copy);
  c.copies.start(ino, copy, later(c, req, ino, flags, fi));
};

/** Opens and replies; a handle whose opener was killed meanwhile (the reply finds no request) is closed. */
function openNow(c: WorkerContext, req: Ptr, ino: number, flags: number, fi: Ptr): void {
  const b = c.byOwner(ino);
  const r = b.open(ino, flags);
  if (typeof r === "number") return void c.S.fuse_reply_err(req, r);
  opened(c, b, r, fi);
  if (c.S.fuse_reply_open(req, fi) === -E.ENOENT) {
    c.handles.delete(r.fh);
    b.release(r.fh);
    c.counters[CTR.openHandles]--;
  }
}

/** An open that proceeds after a copy: libfuse's `fuse_file_info` lives on its stack, so keep a copy. */
function later(c: WorkerContext, req: Ptr, ino: number, flags: number, fi: Ptr): Waiter {
  const saved = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(fi!, c.abi.fi.size).slice(0));
  return {
    run: () => openNow(c, req, ino, flags, Deno.UnsafePointer.of(saved)),
    fail: (err) => void c.S.fuse_reply_err(req, err),
  };
}

/** create: O_CREAT of a new name, replied with its entry and its open handle. */
export const create: Op<"create"> = (c, req, parentB, name, mode, fi) => {
  const parent = Number(parentB);
  const b = c.resolve(req, parent);
  const flags = c.fi(fi).getInt32(c.abi.fi.flags, true);
  const r = b.create(parent, c.name(name), Number(mode), flags, c.caller(req));
  if (typeof r === "number") return void c.S.fuse_reply_err(req, r);
  opened(c, b, r[1], fi);
  c.S.fuse_reply_create(req, c.entry(b, r[0], parent), fi);
};

/**
 * read: the kernel reads straight from the handle's fd (an fd-backed fuse_bufvec, no copy here). A
 * blob in a pack reads from its range of the pack, cut at the blob's end.
 */
export const read: Op<"read"> = (c, req, _ino, size, off, fi) => {
  const fh = c.fh(fi);
  let n = Number(size), pos = Number(off);
  const slice = c.blobs.slices.size ? c.blobs.slices.get(fh) : undefined;
  if (slice) {
    n = Math.max(0, Math.min(n, slice[1] - pos));
    pos += slice[0];
  }
  encodeFdBufvec(bufvecView, fh, n, pos);
  c.S.fuse_reply_data(req, bufvec, 0);
};

/** write: through the backend that opened the handle. */
export const write: Op<"write"> = (c, req, _ino, buf, size, off, fi) => {
  const fh = c.fh(fi);
  const r = c.handles.get(fh)?.write(fh, buf, size, off) ?? E.EBADF;
  if (typeof r === "number") return void c.S.fuse_reply_err(req, r);
  c.S.fuse_reply_write(req, r);
};

/** fsync / fdatasync of the handle's fd. */
export const fsync: Op<"fsync"> = (c, req, _ino, datasync, fi) => {
  const fd = c.fh(fi);
  c.S.fuse_reply_err(req, fsyncFd(fd, datasync !== 0));
};

/** release: the last close of a handle. */
export const release: Op<"release"> = (c, req, _ino, fi) => {
  const fh = c.fh(fi);
  const b = c.handles.get(fh);
  c.handles.delete(fh);
  if (b) b.release(fh);
  else {
    c.blobs.closed(fh);
    libc().close(fh);
  }
  c.counters[CTR.openHandles]--;
  c.S.fuse_reply_err(req, 0);
};

/** fallocate: by the inode's owner. */
export const fallocate: Op<"fallocate"> = (c, req, ino, mode, off, len, fi) => {
  c.S.fuse_reply_err(
    req,
    c.byOwner(Number(ino)).fallocate(Number(ino), fi ? c.fh(fi) : undefined, mode, off, len),
  );
};
