/** Directory listings: opendir, readdir, releasedir. */
import { E } from "../../../../ffi/errno.ts";
import { cstr } from "../../../../ffi/sys.ts";
import { encodeStat } from "../../../../ffi/stat.ts";
import type { DirEntry } from "../../../fs/backend.ts";
import { ROOT_INO } from "../../../fs/vfs.ts";
import type { Op } from "../instrument.ts";

const S_IFDIR = 0o040000;

/**
 * The listing of dir `ino` with "." and "..", or an errno. Resolved per read, not kept from
 * opendir: the runtime may have ended since (its overlay disposed, lingering readers moved to a
 * read-only backend).
 */
function listing(c: Parameters<Op<"opendir">>[0], req: Deno.PointerValue, ino: number): DirEntry[] | number {
  const list = c.resolve(req, ino).list(ino);
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

/** readdir: entries from `off` that fit in `size` bytes; offset 0 (first read, rewinddir) lists afresh. */
export const readdir: Op<"readdir"> = (c, req, _ino, size, off, fi) => {
  const h = c.dirHandles.get(c.fh(fi));
  if (!h) return void c.S.fuse_reply_err(req, E.EIO);
  if (off === 0n) {
    const fresh = listing(c, req, h.ino);
    if (typeof fresh === "number") return void c.S.fuse_reply_err(req, fresh);
    h.entries = fresh;
  }
  const entries = h.entries;
  const max = Number(size);
  if (c.dirBuf.length < max) c.dirBuf = new Uint8Array(max);
  let pos = 0;
  for (let i = Number(off); i < entries.length; i++) {
    const e = entries[i];
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
    const rest = c.dirBuf.subarray(pos, max);
    const n = Number(
      c.S.fuse_add_direntry(req, rest, BigInt(rest.length), cstr(e.name), c.statBuf, BigInt(i + 1)),
    );
    if (n > rest.length) break;
    pos += n;
  }
  c.S.fuse_reply_buf(req, c.dirBuf, BigInt(pos));
};

/** releasedir: drops the handle and its listing. */
export const releasedir: Op<"releasedir"> = (c, req, _ino, fi) => {
  c.dirHandles.delete(c.fh(fi));
  c.S.fuse_reply_err(req, 0);
};
