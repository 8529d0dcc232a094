/** Directory listings: opendir, readdir, readdirplus, releasedir. */
import { E } from "../../../../ffi/errno.ts";
import { cstr } from "../../../../ffi/sys.ts";
import { encodeStat } from "../../../../ffi/stat.ts";
import type { DirEntry, FsBackend } from "../../../fs/backend.ts";
import { ROOT_INO } from "../../../fs/vfs.ts";
import type { Op } from "../instrument.ts";

const S_IFDIR = 0o040000;

/** The listing of dir `ino` in backend `b` with "." and "..", or an errno. */
function listing(b: FsBackend, ino: number): DirEntry[] | number {
  const list = b.list(ino);
  if (typeof list === "number") return list;
  return [{ name: ".", ino, type: S_IFDIR }, { name: "..", ino: ROOT_INO, type: S_IFDIR }, ...list];
}

/** opendir: a handle whose listing is taken at the first readdir; a read-only stack's may stay in the kernel. */
export const opendir: Op<"opendir"> = (c, req, inoB, fi) => {
  const ino = Number(inoB);
  const b = c.resolve(req, ino);
  const h = c.nextDirHandle++;
  c.dirHandles.set(h, { ino, entries: [] });
  const v = c.fi(fi);
  v.setBigUint64(c.abi.fi.fh, BigInt(h), true);
  if (ino !== ROOT_INO && b.cacheListings) {
    c.setFiBits(v, c.abi.fiBits.cache_readdir | c.abi.fiBits.keep_cache);
  }
  c.S.fuse_reply_open(req, fi);
};

/**
 * Fills a readdir reply with the entries from `off` that fit in `size` bytes; offset 0 (the first
 * read, or rewinddir) lists afresh. The backend is resolved once per read, not kept from opendir:
 * the runtime may have ended since (its overlay disposed, lingering readers moved to a read-only
 * backend). `add` encodes one entry of dir `ino` in backend `b` into `rest` and returns its length
 * (more than `rest.length` when it does not fit: nothing was written, and `add` undid its effects).
 */
function fillDir(
  c: Parameters<Op<"readdir">>[0],
  req: Deno.PointerValue,
  size: bigint,
  off: bigint,
  fi: Deno.PointerValue,
  add: (b: FsBackend, ino: number, e: DirEntry, rest: Uint8Array, next: bigint) => number,
): void {
  const h = c.dirHandles.get(c.fh(fi));
  if (!h) return void c.S.fuse_reply_err(req, E.EIO);
  const b = c.resolve(req, h.ino);
  if (off === 0n) {
    const fresh = listing(b, h.ino);
    if (typeof fresh === "number") return void c.S.fuse_reply_err(req, fresh);
    h.entries = fresh;
  }
  const entries = h.entries;
  const max = Number(size);
  if (c.dirBuf.length < max) c.dirBuf = new Uint8Array(max);
  let pos = 0;
  for (let i = Number(off); i < entries.length; i++) {
    const rest = c.dirBuf.subarray(pos, max);
    const n = add(b, h.ino, entries[i], rest, BigInt(i + 1));
    if (n > rest.length) break;
    pos += n;
  }
  c.S.fuse_reply_buf(req, c.dirBuf, BigInt(pos));
}

/** Encodes a bare `struct stat` (inode and type: all a dirent carries) into c.statBuf. */
function direntStat(c: Parameters<Op<"readdir">>[0], e: DirEntry): Uint8Array {
  c.statBuf.fill(0);
  encodeStat(c.abi.statLayout, {
    ino: e.ino,
    mode: e.type,
    nlink: 0,
    uid: 0,
    gid: 0,
    size: 0,
    blocks: 0,
    blksize: 0,
    time: 0,
  }, c.statView);
  return c.statBuf;
}

/** readdir: names, inodes and types. */
export const readdir: Op<"readdir"> = (c, req, _ino, size, off, fi) =>
  fillDir(
    c,
    req,
    size,
    off,
    fi,
    (_b, _dir, e, rest, next) =>
      Number(c.S.fuse_add_direntry(req, rest, BigInt(rest.length), cstr(e.name), direntStat(c, e), next)),
  );

/**
 * readdirplus: each entry with its attributes, so that `ls -l`, `find` and a later open need no
 * LOOKUP per name. The kernel links every entry whose `ino` is not 0, except "." and "..", as one
 * lookup reference (Linux fs/fuse/readdir.c `fuse_direntplus_link`, which FORGETs the ones it
 * cannot link): each is counted here exactly once, by `lookup`, and uncounted when it does not fit.
 * Entries of the root go out with ino 0 (not linked): nothing at the root is cached, because the
 * root is what differs between environments. Files of an editable runtime are linked too, though
 * each then holds a kernel inode: a `find` then `cat` of 10,000 lower files there took 0.8 s
 * instead of 1.3 s. An ended runtime's dentries are dropped at once (context.ts
 * `endedRootEntries`), so the next runtime that walks the same root name does not pay a FORGET
 * for each of them.
 */
export const readdirplus: Op<"readdirplus"> = (c, req, _ino, size, off, fi) =>
  fillDir(c, req, size, off, fi, (b, dir, e, rest, next) => {
    const linked = dir !== ROOT_INO && e.name !== "." && e.name !== "..";
    const a = linked ? b.lookup(dir, e.name) : E.ENOENT;
    // an entry gone since the listing (or not linked) still lists, with ino 0 in its entry
    const param = typeof a === "number" ? c.unlinkedEntry(direntStat(c, e)) : c.entry(b, a, dir);
    const n = Number(c.S.fuse_add_direntry_plus!(req, rest, BigInt(rest.length), cstr(e.name), param, next));
    if (n > rest.length && typeof a !== "number") b.forget(a.ino, 1);
    return n;
  });

/** releasedir: drops the handle and its listing. */
export const releasedir: Op<"releasedir"> = (c, req, _ino, fi) => {
  c.dirHandles.delete(c.fh(fi));
  c.S.fuse_reply_err(req, 0);
};
