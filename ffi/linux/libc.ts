/**
 * glibc symbols through Deno.dlopen (Linux x86_64, aarch64). Signatures: glibc 2.36 <fcntl.h>,
 * <unistd.h>, <sys/vfs.h>, <sys/stat.h>, <sys/xattr.h>, <poll.h>; man-pages 6.03. `open` and
 * `ioctl` are variadic in C; their fixed-arity bindings are valid on Linux x86_64/aarch64 only
 * (reference/ffi-abi.md §5), where variadic arguments travel in registers like fixed ones.
 */

import { lazySymbols } from "../types.ts";

export const linuxSymbols = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // variadic like open; called with its three fixed arguments only (never creates)
  openat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "i64"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // editable runtimes (glibc 2.36 <fcntl.h> <unistd.h> <stdio.h> <sys/stat.h> <sys/xattr.h>)
  pwrite: { parameters: ["i32", "pointer", "usize", "i64"], result: "isize" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  truncate: { parameters: ["buffer", "i64"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
  symlink: { parameters: ["buffer", "buffer"], result: "i32" },
  link: { parameters: ["buffer", "buffer"], result: "i32" },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  lstat: { parameters: ["buffer", "buffer"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "pointer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  lremovexattr: { parameters: ["buffer", "buffer"], result: "i32" },
  copy_file_range: {
    parameters: ["i32", "pointer", "i32", "pointer", "usize", "u32"],
    result: "isize",
  },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  // process-exit watch (pidfd_open(2) glibc 2.36, poll(2), eventfd(2)); poll blocks, so it runs off-thread
  pidfd_open: { parameters: ["i32", "u32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // a notice to /dev/fuse may wait on page locks held by readers the FUSE worker is serving
  write_off_thread: {
    name: "write",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // the FUSE worker's loop: poll(2) on its own thread over the session fd and a wake pipe(2)
  poll_here: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  pipe: { parameters: ["buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },
  // variadic in C; the fixed 3-int form is valid on Linux x86_64/aarch64 (reference/ffi-abi.md §5)
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // `spfs run` becomes its command (execvp(3), signal(2) with SIG_DFL = NULL: <signal.h>)
  execvp: { parameters: ["buffer", "buffer"], result: "i32" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
} as const;

/** The libc calls spfs makes, with their Linux signatures. */
export type Libc = Deno.DynamicLibrary<typeof linuxSymbols>["symbols"];
let syms: Libc | undefined;

/** glibc, each symbol bound on first use (once per thread: each Worker has its own handles). */
export function linuxLibc(): Libc {
  return syms ??= lazySymbols("libc.so.6", linuxSymbols);
}

/** errno of the last failed synchronous glibc call on this thread (`__errno_location()`). */
export function linuxErrno(): number {
  const p = linuxLibc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/** open(2) flags: Linux asm-generic/fcntl.h. */
export const LINUX_O_FLAGS = {
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_ACCMODE: 3,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NOCTTY: 0o400,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NOATIME: 0o1000000,
  O_CLOEXEC: 0o2000000,
  O_NOFOLLOW: 0o400000,
  O_NONBLOCK: 0o4000,
  O_DIRECTORY: 0o200000,
  O_PATH: 0o10000000,
} as const;
/** <linux/fs.h>: FICLONE = _IOW(0x94, 9, int); renameat2 flags; AT_FDCWD, AT_SYMLINK_NOFOLLOW. */
export const FICLONE = 0x40049409, RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
/**
 * <linux/fs.h>: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long) (the
 * kernel reads and writes an int: ioctl_iflags(2)); FS_TOPDIR_FL, chattr(1) attribute `T`.
 */
export const FS_IOC_GETFLAGS = 0x80086601, FS_IOC_SETFLAGS = 0x40086602, FS_TOPDIR_FL = 0x00020000;
/** <linux/xattr.h> setxattr(2) flags. */
export const XATTR_CREATE = 1, XATTR_REPLACE = 2;
export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
