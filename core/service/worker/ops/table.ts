/**
 * The ops spfs implements, one function each (the libfuse `lo_oper` habit): a newcomer finds
 * `unlink` here by its name. Ops decode arguments, pick one backend, reply; decisions live in
 * the backends (core/fs/backend.ts). Slots per library flavour come from ffi/fuse/abi.ts.
 */
import type { OpName } from "../../../../ffi/fuse/abi.ts";
import { CAP } from "../../../../ffi/fuse/lowlevel.ts";
import type { Op } from "../instrument.ts";
import { access, getattr, setattr, statfs } from "./attr.ts";
import { opendir, readdir, readdirplus, releasedir } from "./dir.ts";
import { forget, forget_multi, lookup } from "./entry.ts";
import { create, fallocate, fsync, open, read, release, write } from "./file.ts";
import { link, mkdir, mknod, readlink, rename, renamex, rmdir, symlink, unlink } from "./names.ts";
import { getxattr, listxattr, removexattr, setxattr } from "./xattr.ts";

/**
 * init: where the kernel sends no OPEN (abi.ts `noOpen`), it must not expect OPEN to truncate
 * either: without FUSE_CAP_ATOMIC_O_TRUNC an O_TRUNC open arrives as a setattr of size 0
 * (Linux fs/fuse/dir.c `fuse_setattr`, ATTR_OPEN). libfuse 3 turns the capability on by default.
 */
const init: Op<"init"> = (c, _userdata, conn) => {
  if (!c.abi.noOpen) return;
  const v = new DataView(Deno.UnsafePointerView.getArrayBuffer(conn!, c.abi.connWant + 4));
  v.setUint32(c.abi.connWant, (v.getUint32(c.abi.connWant, true) & ~CAP.ATOMIC_O_TRUNC) >>> 0, true);
};
/** destroy: nothing to tear down per session. */
const destroy: Op<"destroy"> = () => {};

/** Every op, by its `fuse_lowlevel_ops` name. */
export const OPS_TABLE: { [K in OpName]: Op<K> } = {
  init,
  destroy,
  lookup,
  forget,
  forget_multi,
  getattr,
  setattr,
  readlink,
  mknod,
  mkdir,
  unlink,
  rmdir,
  symlink,
  rename,
  renamex,
  link,
  open,
  read,
  write,
  release,
  fsync,
  opendir,
  readdir,
  readdirplus,
  releasedir,
  statfs,
  setxattr,
  getxattr,
  listxattr,
  removexattr,
  access,
  create,
  fallocate,
};
