/** The namespace: readlink, mknod, mkdir, symlink, link, unlink, rmdir, rename. */
import { E } from "../../../../ffi/errno.ts";
import { RENAME_EXCHANGE } from "../../../../ffi/sys.ts";
import { ROOT_INO } from "../../../fs/vfs.ts";
import type { Op } from "../instrument.ts";
import { S_IFMT, S_IFREG } from "../../../fs/overlay/nodes.ts";
import { createFile } from "./file.ts";
import { linkTarget } from "../context.ts";

/** readlink: by the inode's owner; libfuse wants a NUL-terminated target. */
export const readlink: Op<"readlink"> = (c, req, ino) => {
  const target = c.byOwner(Number(ino)).readlink(Number(ino));
  if (typeof target === "number") return void c.S.fuse_reply_err(req, target);
  const z = new Uint8Array(target.length + 1);
  z.set(target);
  c.S.fuse_reply_readlink(req, z);
};

/**
 * mknod: regular files, FIFOs, sockets and devices. On Linux every open(O_CREAT) of a new name
 * comes here (see `create`): a regular file is made with an fd kept as the inode's.
 */
export const mknod: Op<"mknod"> = (c, req, parent, name, mode, rdev) => {
  const p = Number(parent), m = Number(mode), n = c.name(name);
  const b = c.resolve(req, p);
  const a = c.abi.noOpen && (m & S_IFMT) === S_IFREG
    ? createFile(c, b, p, n, m, c.caller(req))
    : b.mknod(p, n, m, BigInt(rdev), c.caller(req));
  c.replyEntry(req, b, a, p, n);
};

/** mkdir. */
export const mkdir: Op<"mkdir"> = (c, req, parent, name, mode) => {
  const p = Number(parent), n = c.name(name);
  const b = c.resolve(req, p);
  c.replyEntry(req, b, b.mkdir(p, n, Number(mode), c.caller(req)), p, n);
};

/** symlink: `link` is the target, kept byte for byte; it must be UTF-8 (EILSEQ otherwise). */
export const symlink: Op<"symlink"> = (c, req, link, parent, name) => {
  const p = Number(parent), n = c.name(name);
  const b = c.resolve(req, p);
  const target = linkTarget(link);
  c.replyEntry(req, b, b.symlink(p, n, target, c.caller(req)), p, n);
};

/** link: both names must belong to one runtime (EXDEV otherwise). */
export const link: Op<"link"> = (c, req, ino, parent, name) => {
  const p = Number(parent), n = c.name(name);
  const b = c.resolve(req, p);
  if (b.writable && c.byOwner(Number(ino)) !== b) return void c.S.fuse_reply_err(req, E.EXDEV);
  c.replyEntry(req, b, b.link(Number(ino), p, n), p, n);
};

/** unlink. */
export const unlink: Op<"unlink"> = (c, req, parent, name) => {
  c.S.fuse_reply_err(req, c.resolve(req, Number(parent)).unlink(Number(parent), c.name(name)));
};

/** rmdir. */
export const rmdir: Op<"rmdir"> = (c, req, parent, name) => {
  c.S.fuse_reply_err(req, c.resolve(req, Number(parent)).rmdir(Number(parent), c.name(name)));
};

/**
 * rename with the flavour's flags (renameat2's on Linux, renamex_np's on macFUSE; libfuse 2.9
 * passes none here): both dirs must belong to one runtime.
 */
export const rename: Op<"rename"> = (c, req, parent, name, newParent, newName, rawFlags) => {
  const flags = c.abi.args.renameFlags(rawFlags ?? 0);
  if (typeof flags === "string") return void c.S.fuse_reply_err(req, E[flags]);
  const b = c.resolve(req, Number(parent));
  if (b.writable && c.resolve(req, Number(newParent)) !== b) return void c.S.fuse_reply_err(req, E.EXDEV);
  const from = Number(parent), to = Number(newParent);
  // The kernel moves the dentry with its timeout: one from below the root would keep its 60 s in
  // the root, which every runtime shares, and other runtimes would find it there without a LOOKUP.
  // A notice to drop it could only follow the rename's unlock, after which a path walk may already
  // have used it. So a move from below into the root (an exchange moves both ways) is refused, as
  // overlayfs refuses some dir renames: `mv` then copies, and renames within the root work.
  if ((to === ROOT_INO) !== (from === ROOT_INO) && (to === ROOT_INO || flags & RENAME_EXCHANGE)) {
    return void c.S.fuse_reply_err(req, E.EXDEV);
  }
  c.S.fuse_reply_err(req, b.rename(from, c.name(name), to, c.name(newName), flags));
};

/** renamex (macFUSE libfuse2 only): a rename with renamex_np(2) flags (RENAME_SWAP, RENAME_EXCL). */
export const renamex: Op<"renamex"> = (c, req, parent, name, newParent, newName, flags) =>
  rename(c, req, parent, name, newParent, newName, flags);
