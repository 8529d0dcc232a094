/**
 * libfuse 3 low-level API (Linux, libfuse 3.14 … 3.18) through Deno.dlopen: the reply symbols, the
 * `fuse_lowlevel_ops` slot indices and the struct codecs the service uses. Offsets and sizes:
 * reference/ffi-abi.md §7 (libfuse3-dev 3.14.0 headers, checked against the 3.17.4/3.18.2 tags).
 */
import { type Attr, encodeStat, STAT_SIZE, type StatLayout } from "../stat.ts";
import type { StatVfs } from "../types.ts";

/**
 * Reply functions and request helpers: the same names and C signatures in libfuse 2.9, 3.14 … 3.18
 * and macFUSE's libfuse3 (vanilla mode). Session calls differ per flavour (fuseabi.ts).
 */
export const replySymbols = {
  fuse_req_ctx: { parameters: ["pointer"], result: "pointer" },
  fuse_reply_err: { parameters: ["pointer", "i32"], result: "i32" },
  fuse_reply_none: { parameters: ["pointer"], result: "void" },
  fuse_reply_entry: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_attr: { parameters: ["pointer", "buffer", "f64"], result: "i32" },
  fuse_reply_readlink: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_open: { parameters: ["pointer", "pointer"], result: "i32" },
  fuse_reply_buf: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  fuse_reply_data: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  fuse_reply_statfs: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_xattr: { parameters: ["pointer", "usize"], result: "i32" },
  fuse_reply_write: { parameters: ["pointer", "usize"], result: "i32" },
  fuse_reply_create: { parameters: ["pointer", "buffer", "pointer"], result: "i32" },
  fuse_add_direntry: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "i64"],
    result: "usize",
  },
  // fuse_lowlevel.h (3.0+; absent from libfuse 2.9, hence optional): name + fuse_entry_param
  fuse_add_direntry_plus: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "i64"],
    result: "usize",
    optional: true,
  },
} as const;

/** `struct fuse_lowlevel_ops` slot indices (8-byte slots); 44 slots = the 3.14 size, safe on newer. */
export const OPS = {
  init: 0,
  destroy: 1,
  lookup: 2,
  forget: 3,
  getattr: 4,
  setattr: 5,
  readlink: 6,
  mknod: 7,
  mkdir: 8,
  unlink: 9,
  rmdir: 10,
  symlink: 11,
  rename: 12,
  link: 13,
  open: 14,
  read: 15,
  write: 16,
  flush: 17,
  release: 18,
  fsync: 19,
  opendir: 20,
  readdir: 21,
  releasedir: 22,
  fsyncdir: 23,
  statfs: 24,
  setxattr: 25,
  getxattr: 26,
  listxattr: 27,
  removexattr: 28,
  access: 29,
  create: 30,
  getlk: 31,
  setlk: 32,
  bmap: 33,
  ioctl: 34,
  poll: 35,
  write_buf: 36,
  retrieve_reply: 37,
  forget_multi: 38,
  flock: 39,
  fallocate: 40,
  readdirplus: 41,
  copy_file_range: 42,
  lseek: 43,
} as const;
export const OPS_SLOTS = 44;

/**
 * Native callback signatures per op spfs implements (libfuse 3 `fuse_lowlevel.h`). `flush` is left
 * out on purpose: nothing is buffered, and an unset flush makes libfuse answer ENOSYS once, after
 * which the kernel sends no more FLUSH requests (Linux fs/fuse/file.c `fc->no_flush`), saving a
 * round trip on every close(2).
 */
export const OP_SIGNATURES = {
  init: ["pointer", "pointer"],
  destroy: ["pointer"],
  lookup: ["pointer", "u64", "pointer"],
  forget: ["pointer", "u64", "u64"],
  getattr: ["pointer", "u64", "pointer"],
  setattr: ["pointer", "u64", "pointer", "i32", "pointer"],
  readlink: ["pointer", "u64"],
  mknod: ["pointer", "u64", "pointer", "u32", "u64"],
  mkdir: ["pointer", "u64", "pointer", "u32"],
  unlink: ["pointer", "u64", "pointer"],
  rmdir: ["pointer", "u64", "pointer"],
  symlink: ["pointer", "pointer", "u64", "pointer"],
  rename: ["pointer", "u64", "pointer", "u64", "pointer", "u32"],
  link: ["pointer", "u64", "u64", "pointer"],
  open: ["pointer", "u64", "pointer"],
  read: ["pointer", "u64", "usize", "i64", "pointer"],
  write: ["pointer", "u64", "pointer", "usize", "i64", "pointer"],
  release: ["pointer", "u64", "pointer"],
  fsync: ["pointer", "u64", "i32", "pointer"],
  opendir: ["pointer", "u64", "pointer"],
  readdir: ["pointer", "u64", "usize", "i64", "pointer"],
  readdirplus: ["pointer", "u64", "usize", "i64", "pointer"],
  releasedir: ["pointer", "u64", "pointer"],
  statfs: ["pointer", "u64"],
  setxattr: ["pointer", "u64", "pointer", "pointer", "usize", "i32"],
  getxattr: ["pointer", "u64", "pointer", "usize"],
  listxattr: ["pointer", "u64", "usize"],
  removexattr: ["pointer", "u64", "pointer"],
  access: ["pointer", "u64", "i32"],
  create: ["pointer", "u64", "pointer", "u32", "pointer"],
  forget_multi: ["pointer", "usize", "pointer"],
  fallocate: ["pointer", "u64", "i32", "i64", "i64", "pointer"],
} as const satisfies Partial<Record<keyof typeof OPS, readonly Deno.NativeType[]>>;

/**
 * A FUSE_NOTIFY_INVAL_INODE notice, written to the session fd as is: `fuse_out_header` {len u32,
 * error i32 = notify code 2, unique u64 = 0} + `fuse_notify_inval_inode_out` {ino u64, off i64 = 0,
 * len i64 = 0: every page}; 40 bytes (Linux include/uapi/linux/fuse.h, libfuse fuse_lowlevel.c
 * `fuse_lowlevel_notify_inval_inode`). The kernel drops the inode's cached pages and attributes;
 * with `attrsOnly`, off = -1 and it keeps the pages (Linux fs/fuse/inode.c
 * `fuse_reverse_inval_inode`: pages only when offset >= 0).
 */
export function invalInodeNotice(ino: number, attrsOnly = false): Uint8Array {
  const b = new Uint8Array(40), v = new DataView(b.buffer);
  v.setUint32(0, 40, true);
  v.setInt32(4, 2, true);
  v.setBigUint64(16, BigInt(ino), true);
  if (attrsOnly) v.setBigInt64(24, -1n, true);
  return b;
}

/**
 * A FUSE_NOTIFY_INVAL_ENTRY notice: `fuse_out_header` {len, error = notify code 3, unique = 0} +
 * `fuse_notify_inval_entry_out` {parent u64, namelen u32, flags u32 = 0} + the name and its NUL
 * (the kernel copies namelen + 1 bytes: Linux fs/fuse/dev.c `fuse_notify_inval_entry`; libfuse
 * `fuse_lowlevel_notify_inval_entry`). The kernel drops its dentry `name` in dir `parent`.
 */
export function invalEntryNotice(parent: number, name: Uint8Array): Uint8Array {
  const len = 32 + name.length + 1;
  const b = new Uint8Array(len), v = new DataView(b.buffer);
  v.setUint32(0, len, true);
  v.setInt32(4, 3, true);
  v.setBigUint64(16, BigInt(parent), true);
  v.setUint32(24, name.length, true);
  b.set(name, 32);
  return b;
}

/** Capability bits for `fuse_conn_info.want` (fuse_common.h). */
export const CAP = {
  ASYNC_READ: 0x1,
  ATOMIC_O_TRUNC: 0x8,
  SPLICE_WRITE: 0x80,
  SPLICE_MOVE: 0x100,
  AUTO_INVAL_DATA: 0x1000,
  READDIRPLUS: 0x2000,
  PARALLEL_DIROPS: 0x40000,
} as const;

/** `fuse_conn_info` offsets (all 3.x): capable@20, want@24. */
export const CONN_CAPABLE = 20, CONN_WANT = 24;

/** `fuse_file_info` (3.14 layout, prefix of 3.17's): flags@0, bit word@4, fh@16. */
export const FI = { flags: 0, bits: 4, fh: 16, size: 40 } as const;
export const FI_BITS = { direct_io: 0x2, keep_cache: 0x4, nonseekable: 0x10, cache_readdir: 0x40 } as const;

/** `fuse_ctx`: uid@0 gid@4 pid@8 (a thread id on Linux) umask@12. */
export const CTX = { uid: 0, gid: 4, pid: 8, umask: 12 } as const;

/** Sizes of `fuse_entry_param` and its timeout offsets per stat layout. */
export function entryParamLayout(
  layout: StatLayout,
): { size: number; attrTimeout: number; entryTimeout: number } {
  const statSize = STAT_SIZE[layout];
  return { size: 16 + statSize + 16, attrTimeout: 16 + statSize, entryTimeout: 24 + statSize };
}

/** Encodes `fuse_entry_param` {ino, generation, attr, attr_timeout, entry_timeout} (timeouts in s). */
export function encodeEntryParam(
  layout: StatLayout,
  attr: Attr,
  attrTimeout: number,
  entryTimeout: number,
  out?: Uint8Array,
): Uint8Array {
  const l = entryParamLayout(layout);
  const b = out ?? new Uint8Array(l.size);
  b.fill(0);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setBigUint64(0, BigInt(attr.ino), true);
  v.setBigUint64(8, 1n, true);
  encodeStat(layout, attr, v, 16);
  v.setFloat64(l.attrTimeout, attrTimeout, true);
  v.setFloat64(l.entryTimeout, entryTimeout, true);
  return b;
}

/**
 * `fuse_bufvec` with one fd-backed `fuse_buf` for `fuse_reply_data`: count@0 idx@8 off@16,
 * buf[0] = size@24 flags@32 mem@40 fd@48 pos@56. 72 bytes covers 3.17's extra `mem_size`.
 */
export const BUF_IS_FD = 0x2, BUF_FD_SEEK = 0x4, BUF_FD_RETRY = 0x8;
export const BUFVEC_SIZE = 72;
export function encodeFdBufvec(v: DataView, fd: number, size: number, pos: number): void {
  v.setBigUint64(0, 1n, true);
  v.setBigUint64(8, 0n, true);
  v.setBigUint64(16, 0n, true);
  v.setBigUint64(24, BigInt(size), true);
  v.setInt32(32, BUF_IS_FD | BUF_FD_SEEK, true);
  v.setBigUint64(40, 0n, true);
  v.setInt32(48, fd, true);
  v.setBigInt64(56, BigInt(pos), true);
}

/**
 * Linux `struct statvfs` (glibc LP64, 112 bytes): bsize@0 frsize@8 blocks@16 bfree@24 bavail@32
 * files@40 ffree@48 favail@56 fsid@64 flag@72 namemax@80.
 */
export const STATVFS_SIZE = 112;
export type { StatVfs };
export function encodeStatvfs(s: StatVfs): Uint8Array {
  const b = new Uint8Array(STATVFS_SIZE), v = new DataView(b.buffer);
  const u = (o: number, n: number) => v.setBigUint64(o, BigInt(n), true);
  u(0, s.bsize);
  u(8, s.bsize);
  u(16, s.blocks);
  u(24, s.bfree);
  u(32, s.bavail);
  u(40, s.files);
  u(48, s.ffree);
  u(56, s.ffree);
  u(72, s.readonly ? 1 : 0); // ST_RDONLY
  u(80, s.namemax);
  return b;
}
