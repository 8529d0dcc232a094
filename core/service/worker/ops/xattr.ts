/**
 * Extended attributes: getxattr, listxattr, setxattr, removexattr, all by the inode's owner.
 * macFUSE libfuse2 adds a `position` (a resource fork offset) to getxattr and setxattr.
 */
import { E } from "../../../../ffi/errno.ts";
import type { Op } from "../instrument.ts";

/** getxattr: the value, or its length when `size` is 0. */
export const getxattr: Op<"getxattr"> = (c, req, ino, name, size, position) => {
  const r = c.byOwner(Number(ino)).getxattr(Number(ino), c.name(name), Number(size), position ?? 0);
  c.replyBytes(req, Number(size), r);
};

/** listxattr: NUL-separated names, or their length when `size` is 0. */
export const listxattr: Op<"listxattr"> = (c, req, ino, size) => {
  c.replyBytes(req, Number(size), c.byOwner(Number(ino)).listxattr(Number(ino), Number(size)));
};

/** setxattr with the flavour's XATTR_CREATE / XATTR_REPLACE `flags`. */
export const setxattr: Op<"setxattr"> = (c, req, ino, name, value, size, rawFlags, position) => {
  const flags = c.abi.args.xattrFlags(rawFlags);
  if (typeof flags === "string") return void c.S.fuse_reply_err(req, E[flags]);
  const b = c.byOwner(Number(ino));
  c.S.fuse_reply_err(req, b.setxattr(Number(ino), c.name(name), value, Number(size), flags, position ?? 0));
};

/** removexattr. */
export const removexattr: Op<"removexattr"> = (c, req, ino, name) => {
  c.S.fuse_reply_err(req, c.byOwner(Number(ino)).removexattr(Number(ino), c.name(name)));
};
