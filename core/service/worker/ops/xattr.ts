/** Extended attributes: getxattr, listxattr, setxattr, removexattr, all by the inode's owner. */
import type { Op } from "../instrument.ts";

/** getxattr: the value, or its length when `size` is 0. */
export const getxattr: Op<"getxattr"> = (c, req, ino, name, size) => {
  c.replyBytes(req, Number(size), c.byOwner(Number(ino)).getxattr(Number(ino), c.name(name), Number(size)));
};

/** listxattr: NUL-separated names, or their length when `size` is 0. */
export const listxattr: Op<"listxattr"> = (c, req, ino, size) => {
  c.replyBytes(req, Number(size), c.byOwner(Number(ino)).listxattr(Number(ino), Number(size)));
};

/** setxattr with XATTR_CREATE / XATTR_REPLACE `flags`. */
export const setxattr: Op<"setxattr"> = (c, req, ino, name, value, size, flags) => {
  c.S.fuse_reply_err(
    req,
    c.byOwner(Number(ino)).setxattr(Number(ino), c.name(name), value, Number(size), flags),
  );
};

/** removexattr. */
export const removexattr: Op<"removexattr"> = (c, req, ino, name) => {
  c.S.fuse_reply_err(req, c.byOwner(Number(ino)).removexattr(Number(ino), c.name(name)));
};
