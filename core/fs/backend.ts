/**
 * The filesystem contract every FUSE op goes through (the go-fuse `fs/api.go` habit): one method
 * per POSIX operation, inode numbers in, attributes or bytes out, and a positive errno as the only
 * failure channel (`T | Errno`). Two backends implement it: `ReadOnlyBackend` (a layer stack,
 * core/fs/readonly.ts) and `OverlayBackend` (an editable runtime, core/fs/overlay/backend.ts).
 *
 * The worker picks the backend per request: at the shared root inode by the caller's runtime, and
 * below it by the inode's owner (ARCHITECTURE.md "Routing and kernel caches"). Once a file handle
 * is open, its backend serves it whoever calls.
 */
import type { Attr } from "../../ffi/stat.ts";
import type { StatVfs } from "../../ffi/types.ts";
import type { SetattrChanges } from "../../ffi/fuse/writeargs.ts";

/** A positive errno value (the host's numbers, ffi/errno.ts). */
export type Errno = number;

/** The longest name a directory entry may have, in bytes (limits.h NAME_MAX, as on ext4). */
export const NAME_MAX = 255;
const enc = new TextEncoder();
/** True when `name` is longer than NAME_MAX bytes of UTF-8 (a local disk answers ENAMETOOLONG). */
export function nameTooLong(name: string): boolean {
  return name.length * 3 > NAME_MAX && enc.encode(name).length > NAME_MAX;
}

/**
 * The times a layer's entries show: 1980-01-01T00:00:00Z (s since the epoch). Layers are content
 * addressed and keep no times; zip and wheel tools refuse anything earlier (Python's zipfile).
 */
export const LAYER_TIME_S = 315532800;

/** Who asks: from `fuse_ctx`. New entries are owned by the caller when the service is root. */
export interface Caller {
  uid: number;
  gid: number;
}

/** One directory entry for readdir: name, inode and the S_IFMT type bits. */
export interface DirEntry {
  name: string;
  ino: number;
  type: number;
}

/** What setattr changes; times in ns since the epoch, or "now" (decoded per FUSE flavour in ffi). */
export type SetAttr = SetattrChanges;

/** An opened file: its handle, an fd the read path hands to the kernel. */
export interface Opened {
  fh: number;
}

/**
 * A copy-up whose bytes are copied off the FUSE thread before an open proceeds: whoever runs it
 * copies `src` (a blob) into the new file `dst`, then calls `finish`.
 */
export interface DeferredCopy {
  src: string;
  dst: string;
  /** Size of `src` in bytes. */
  size: number;
  /**
   * Publishes the copy (`err` 0) or gives it up (`err` the copy's errno); `how` is the method the
   * copier used. Returns 0 or an errno. Call exactly once.
   */
  finish(err: Errno, how: "reflink" | "copy_file_range" | "copy"): Errno;
}

/** The contract. Each method names the call it implements; read-only backends answer EROFS. */
export interface FsBackend {
  /** Seconds the kernel may cache attributes of this backend's inodes. */
  readonly attrTimeout: number;
  /** Whether a directory listing below the root may stay in the kernel's readdir cache. */
  readonly cacheListings: boolean;
  /** Whether writes can succeed here (decides EROFS vs EXDEV for cross-backend link/rename). */
  readonly writable: boolean;
  /** lookup: the child `name` of dir `parent`, counting one kernel reference. */
  lookup(parent: number, name: string): Attr | Errno;
  /** forget: drops `n` kernel references of `ino`; true when the kernel holds none now. */
  forget(ino: number, n: number): boolean;
  /** getattr / fstat: `fh` is the open handle when the kernel passed one. */
  getattr(ino: number, fh?: number): Attr | Errno;
  /** setattr: chmod, chown, truncate, utimensat. */
  setattr(ino: number, set: SetAttr, fh?: number): Attr | Errno;
  /** readlink: the target bytes. */
  readlink(ino: number): Uint8Array | Errno;
  /**
   * open: an fd of the inode for `flags` (O_RDONLY, O_RDWR or O_WRONLY, maybe O_TRUNC), kept by
   * the worker for the inode's I/O (core/service/worker/files.ts) until `release`. Opening a lower
   * file for writing copies it up.
   */
  open(ino: number, flags: number): Opened | Errno;
  /**
   * Optional: the copy-up `open(ino, flags)` would make, when it is big enough to copy off the FUSE
   * thread first; null when the open should run at once.
   */
  copyBeforeOpen?(ino: number, flags: number): DeferredCopy | Errno | null;
  /** create: O_CREAT of a new file, with a read-write fd of it (whatever the caller's flags: the fd serves every later I/O). */
  create(parent: number, name: string, mode: number, who: Caller): [Attr, Opened] | Errno;
  /** pwrite through an open handle: the bytes written. */
  write(fh: number, buf: Deno.PointerValue, size: bigint, off: bigint): bigint | Errno;
  /** release: closes a handle `open` or `create` returned. */
  release(fh: number): void;
  /** opendir + readdir: the merged listing, without "." and "..". */
  list(ino: number): DirEntry[] | Errno;
  /** statfs of the filesystem holding `ino`. */
  statfs(): StatVfs | Errno;
  /** access(2) beyond the kernel's own mode check (`default_permissions`): EROFS for W_OK. */
  access(ino: number, mask: number): Errno;
  /**
   * getxattr: the value, or only its length as an empty array of that size when `size` is 0.
   * `position` is a byte offset into a macOS resource fork (0 everywhere else).
   */
  getxattr(ino: number, name: string, size: number, position?: number): Uint8Array | Errno;
  /** listxattr: NUL-separated names, or only the length when `size` is 0. */
  listxattr(ino: number, size: number): Uint8Array | Errno;
  /** setxattr: `flags` XATTR_CREATE 1 / XATTR_REPLACE 2 (Linux values on every OS); `position` as for getxattr. */
  setxattr(
    ino: number,
    name: string,
    value: Deno.PointerValue,
    size: number,
    flags: number,
    position?: number,
  ): Errno;
  removexattr(ino: number, name: string): Errno;
  mknod(parent: number, name: string, mode: number, rdev: bigint, who: Caller): Attr | Errno;
  mkdir(parent: number, name: string, mode: number, who: Caller): Attr | Errno;
  symlink(parent: number, name: string, target: Uint8Array, who: Caller): Attr | Errno;
  /** link: a new name for `ino` (the caller checked both are this backend's). */
  link(ino: number, parent: number, name: string): Attr | Errno;
  unlink(parent: number, name: string): Errno;
  rmdir(parent: number, name: string): Errno;
  /** rename and renameat2 flags (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2). */
  rename(parent: number, name: string, newParent: number, newName: string, flags: number): Errno;
  /** fallocate(2) through the open handle `fh` (mode 0, FALLOC_FL_KEEP_SIZE, …). */
  fallocate(ino: number, fh: number | undefined, mode: number, off: bigint, len: bigint): Errno;
}
