/**
 * libc symbols through Deno.dlopen, opened lazily once per thread. Linux glibc (x86_64, aarch64);
 * the Darwin table binds libSystem. Signatures: glibc 2.36 <fcntl.h>, <unistd.h>, <sys/vfs.h>.
 * `open` and `ioctl` are variadic in C; fixed-arity bindings are valid on Linux x86_64/aarch64
 * only (see reference/ffi-abi.md §5), so Darwin code must not call them.
 */
import { platform } from "./platform.ts";

const linuxSymbols = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "i64"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // editable runtimes (glibc 2.36 <fcntl.h> <unistd.h> <stdio.h> <sys/stat.h> <sys/xattr.h>)
  open3: { name: "open", parameters: ["buffer", "i32", "u32"], result: "i32" },
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
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
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
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const;

let lib: Deno.DynamicLibrary<typeof linuxSymbols> | undefined;

/** The libc symbol table (Linux). Throws on other platforms. */
export function libc(): Deno.DynamicLibrary<typeof linuxSymbols>["symbols"] {
  if (!lib) {
    if (platform.os !== "linux") throw new Error("ffi/libc.ts: Linux symbol table used on " + platform.os);
    lib = Deno.dlopen("libc.so.6", linuxSymbols);
  }
  return lib.symbols;
}

/** errno of the last failed synchronous libc call on this thread. */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/** A failed libc call whose errno should reach the FUSE caller as is (EMFILE, ENOMEM…). */
export class ErrnoError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: errno ${errno}`);
  }
}

/**
 * errnos (asm-generic/errno-base.h) of resource exhaustion: a request that meets one gets that errno
 * back rather than EIO, so the caller can tell "out of fds/space/memory" from damage.
 */
export const RESOURCE_ERRNOS = new Set([
  12, /* ENOMEM */
  23, /* ENFILE */
  24, /* EMFILE */
  28, /* ENOSPC */
  122, /* EDQUOT */
]);

/** The errno to answer a FUSE request that threw `e`: a resource errno when it was one, else EIO. */
export function errnoOfException(e: unknown): number {
  const n = e instanceof ErrnoError
    ? e.errno
    : Number(/\(os error (\d+)\)/.exec(e instanceof Error ? e.message : String(e))?.[1]);
  return RESOURCE_ERRNOS.has(n) ? n : 5 /* EIO */;
}

/** Flags from <fcntl.h> (Linux asm-generic). */
export const O_RDONLY = 0, O_WRONLY = 1, O_CLOEXEC = 0o2000000, O_NOATIME = 0o1000000;
export const O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_NOFOLLOW = 0o400000;
/** <linux/fs.h>: FICLONE = _IOW(0x94, 9, int); renameat2 flags; AT_FDCWD, AT_SYMLINK_NOFOLLOW. */
export const FICLONE = 0x40049409, RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;

const enc = new TextEncoder();
/** NUL-terminated UTF-8 bytes for a C string argument. */
export function cstr(s: string): Uint8Array {
  return enc.encode(s + "\0");
}

/** Flags from <sys/file.h>. */
export const LOCK_EX = 2, LOCK_NB = 4, O_RDWR = 2;

/**
 * Takes an exclusive, non-blocking flock(2) on `path` (created if missing). Returns the fd that
 * holds it (keep it open for as long as the lock must hold), or null when another process has it.
 */
export function tryFlock(path: string): number | null {
  Deno.writeFileSync(path, new Uint8Array(), { append: true, mode: 0o600 });
  const S = libc();
  const fd = S.open(cstr(path), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw new Error(`cannot open ${path}: errno ${errno()}`);
  if (S.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    S.close(fd);
    return null;
  }
  return fd;
}
