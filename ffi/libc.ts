/**
 * libc symbols through Deno.dlopen, opened lazily once per thread. Linux glibc (x86_64, aarch64);
 * the Darwin table binds libSystem. Signatures: glibc 2.36 <fcntl.h>, <unistd.h>, <sys/vfs.h>.
 * `open` and `ioctl` are variadic in C; fixed-arity bindings are valid on Linux x86_64/aarch64
 * only (see reference/ffi-abi.md §5), so Darwin code must not call them.
 */
import { darwinFfi as darwin, platform } from "./platform.ts";
import { E, RESOURCE_ERRNOS } from "./errno.ts";

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

/** The libc calls spfs makes, with their Linux signatures. */
export type Libc = Deno.DynamicLibrary<typeof linuxSymbols>["symbols"];
let syms: Libc | undefined;

/**
 * The libc symbol table. On macOS, the calls libSystem binds (ffi/darwin.ts: the read-only serving
 * path) are those; every other one throws "not available on macOS" when called, because editable
 * runtimes have no macOS port yet (the service refuses them before any such call).
 */
export function libc(): Libc {
  if (syms) return syms;
  if (!darwin) return syms = Deno.dlopen("libc.so.6", linuxSymbols).symbols;
  const mac = darwin.libSystem() as unknown as Record<string, unknown>;
  return syms = Object.fromEntries(
    Object.keys(linuxSymbols).map((k) => [
      k,
      mac[k] ?? (() => {
        throw new Error(`libc ${k}() is not available on macOS in this version of spfs`);
      }),
    ]),
  ) as unknown as Libc;
}

/** errno of the last failed synchronous libc call on this thread. */
export function errno(): number {
  if (darwin) return darwin.errnoDarwin();
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/** A failed libc call whose errno should reach the FUSE caller as is (EMFILE, ENOMEM…). */
export class ErrnoError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: errno ${errno}`);
  }
}

/** The errno to answer a FUSE request that threw `e`: a resource errno when it was one, else EIO. */
export function errnoOfException(e: unknown): number {
  const n = e instanceof ErrnoError
    ? e.errno
    : Number(/\(os error (\d+)\)/.exec(e instanceof Error ? e.message : String(e))?.[1]);
  return RESOURCE_ERRNOS.has(n) ? n : E.EIO;
}

/** open(2) flags: Linux asm-generic/fcntl.h; Darwin xnu bsd/sys/fcntl.h (no O_NOATIME: 0). */
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
} as const;
export const DARWIN_O_FLAGS: Record<keyof typeof LINUX_O_FLAGS, number> = {
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_ACCMODE: 3,
  O_CREAT: 0x200,
  O_EXCL: 0x800,
  O_NOCTTY: 0x20000,
  O_TRUNC: 0x400,
  O_APPEND: 0x8,
  O_NOATIME: 0,
  O_CLOEXEC: 0x1000000,
  O_NOFOLLOW: 0x100,
};
/** The host's open(2) flags; the FUSE kernel module hands the caller's flags over in these too. */
export const {
  O_RDONLY,
  O_WRONLY,
  O_RDWR,
  O_ACCMODE,
  O_CREAT,
  O_EXCL,
  O_NOCTTY,
  O_TRUNC,
  O_APPEND,
  O_NOATIME,
  O_CLOEXEC,
  O_NOFOLLOW,
}: Record<keyof typeof LINUX_O_FLAGS, number> = platform.os === "darwin" ? DARWIN_O_FLAGS : LINUX_O_FLAGS;
/** <linux/fs.h>: FICLONE = _IOW(0x94, 9, int); renameat2 flags; AT_FDCWD, AT_SYMLINK_NOFOLLOW. */
export const FICLONE = 0x40049409, RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;

const enc = new TextEncoder();
/** NUL-terminated UTF-8 bytes for a C string argument. */
export function cstr(s: string): Uint8Array {
  return enc.encode(s + "\0");
}

/** Flags from <sys/file.h>. */
export const LOCK_EX = 2, LOCK_NB = 4;

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
