/** Attributes and permissions: getattr, setattr, access, statfs. */
import { E } from "../../../../ffi/errno.ts";
import { decodeSetattr } from "../../../../ffi/fuse/writeargs.ts";
import { STAT_SIZE } from "../../../../ffi/stat.ts";
import type { Op } from "../instrument.ts";

/** getattr: by the inode's owner; the inode's fd answers for an unlinked file. */
export const getattr: Op<"getattr"> = (c, req, inoB) => {
  const ino = Number(inoB), b = c.byOwner(ino);
  c.replyAttr(req, b.getattr(ino, c.files.peek(ino)?.fh), b.attrTimeout);
};

/**
 * setattr: the flavour's `to_set` bits and `struct stat` decoded into the changes the backend
 * makes; a truncate goes through the inode's fd for writing when it has one (an unlinked file).
 */
export const setattr: Op<"setattr"> = (c, req, inoB, attrPtr, toSet) => {
  const ino = Number(inoB);
  const b = c.resolve(req, ino);
  const layout = c.abi.statLayout;
  const stat = new DataView(Deno.UnsafePointerView.getArrayBuffer(attrPtr!, STAT_SIZE[layout]));
  const set = decodeSetattr(c.abi.args.setattr, layout, stat, toSet);
  if (typeof set === "string") return void c.S.fuse_reply_err(req, E[set]);
  const f = c.files.peek(ino);
  const r = b.setattr(ino, set, f?.write ? f.fh : undefined);
  // a file copied up by a truncate: its fd may still be the lower blob's
  if (set.size !== undefined && f && !f.write) c.files.drop(ino);
  c.replyAttr(req, r, b.attrTimeout);
};

/** access: the kernel checks mode bits (default_permissions); the backend adds EROFS. */
export const access: Op<"access"> = (c, req, ino, mask) => {
  c.S.fuse_reply_err(req, c.resolve(req, Number(ino)).access(Number(ino), mask));
};

/** statfs: read-only stacks report an empty read-only fs; editable ones their scratch's. */
export const statfs: Op<"statfs"> = (c, req, ino) => {
  if (c.debugCrash) throw new Error("forced internal error (SPFS_DEBUG_CRASH=fuse) in statfs");
  const st = c.resolve(req, Number(ino)).statfs();
  if (typeof st === "number") return void c.S.fuse_reply_err(req, st);
  c.S.fuse_reply_statfs(req, c.abi.encodeStatvfs(st));
};
