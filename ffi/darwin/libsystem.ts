/**
 * macOS native facts through Deno.dlopen: libSystem symbols (proc_pidinfo, clonefile, statfs) and
 * the struct codecs spfs needs. Offsets: reference/ffi-abi.md §1–3, from xnu-11417.101.15 headers
 * (`bsd/sys/proc_info.h`, `bsd/sys/mount.h`, `bsd/sys/clonefile.h`). Darwin arm64 and x86_64 are both
 * LP64, so the layouts are the same; only symbol names differ (`statfs$INODE64` on x86_64).
 * Variadic libc functions pass their variadic args on the stack on Apple arm64, which Deno FFI
 * cannot do: fcntl and ioctl are never bound, and `open` is bound with its two fixed args only, so
 * it must never be given O_CREAT (which would make it read a mode from the stack).
 */
import { lazySymbols, type StatVfs } from "../types.ts";

/** `PROC_PIDTBSDINFO` flavor and `sizeof(struct proc_bsdinfo)`. */
export const PROC_PIDTBSDINFO = 3, PROC_BSDINFO_SIZE = 136;
/** `sizeof(struct statfs)` with 64-bit inodes. */
export const DARWIN_STATFS_SIZE = 2168;
/** clonefile(2) flags. */
export const CLONE_NOFOLLOW = 0x1, CLONE_NOOWNERCOPY = 0x2;

/** libSystem symbols for `arch`; x86_64 needs the `$INODE64` statfs (bsd/sys/cdefs.h). */
export function libSystemSymbols(arch: "x86_64" | "aarch64") {
  return {
    proc_pidinfo: { parameters: ["i32", "i32", "u64", "buffer", "i32"], result: "i32" },
    clonefile: { parameters: ["buffer", "buffer", "u32"], result: "i32" },
    statfs: {
      name: arch === "x86_64" ? "statfs$INODE64" : "statfs",
      parameters: ["buffer", "buffer"],
      result: "i32",
    },
    __error: { parameters: [], result: "pointer" },
    // the read-only serving path of the FUSE worker (sys/fcntl.h, unistd.h, sys/stat.h, sys/file.h)
    open: { parameters: ["buffer", "i32"], result: "i32" },
    openat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
    dup: { parameters: ["i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
    pwrite: { parameters: ["i32", "pointer", "usize", "i64"], result: "isize" },
    fstat: {
      name: arch === "x86_64" ? "fstat$INODE64" : "fstat",
      parameters: ["i32", "buffer"],
      result: "i32",
    },
    fsync: { parameters: ["i32"], result: "i32" },
    flock: { parameters: ["i32", "i32"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    write_off_thread: {
      name: "write",
      parameters: ["i32", "buffer", "usize"],
      result: "isize",
      nonblocking: true,
    },
    // editable runtimes: the overlay's path calls (xnu bsd/sys/stat.h, unistd.h, stdio.h,
    // sys/xattr.h, sys/clonefile.h). mode_t is __uint16_t, dev_t __int32_t, uid_t/gid_t __uint32_t,
    // off_t __int64_t (sys/_types.h). None is variadic: files are created by Deno.openSync (open's
    // mode is a variadic argument), then opened here with the two fixed arguments only.
    lstat: {
      name: arch === "x86_64" ? "lstat$INODE64" : "lstat",
      parameters: ["buffer", "buffer"],
      result: "i32",
    },
    mkdir: { parameters: ["buffer", "u16"], result: "i32" },
    rmdir: { parameters: ["buffer"], result: "i32" },
    unlink: { parameters: ["buffer"], result: "i32" },
    symlink: { parameters: ["buffer", "buffer"], result: "i32" },
    link: { parameters: ["buffer", "buffer"], result: "i32" },
    readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
    mknod: { parameters: ["buffer", "u16", "i32"], result: "i32" },
    chmod: { parameters: ["buffer", "u16"], result: "i32" },
    fchmod: { parameters: ["i32", "u16"], result: "i32" },
    lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
    fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
    truncate: { parameters: ["buffer", "i64"], result: "i32" },
    ftruncate: { parameters: ["i32", "i64"], result: "i32" },
    utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
    futimens: { parameters: ["i32", "buffer"], result: "i32" },
    renameatx_np: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
    getxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "u32", "i32"], result: "isize" },
    setxattr: { parameters: ["buffer", "buffer", "pointer", "usize", "u32", "i32"], result: "i32" },
    listxattr: { parameters: ["buffer", "buffer", "usize", "i32"], result: "isize" },
    removexattr: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
    // the FUSE worker's loop (poll.h, unistd.h): neither is variadic
    poll_here: { name: "poll", parameters: ["buffer", "u32", "i32"], result: "i32" },
    pipe: { parameters: ["buffer"], result: "i32" },
    // process-exit watch (sys/event.h); the waiting call blocks, so it runs off-thread
    kqueue: { parameters: [], result: "i32" },
    kevent: { parameters: ["i32", "buffer", "i32", "buffer", "i32", "buffer"], result: "i32" },
    kevent_wait: {
      name: "kevent",
      parameters: ["i32", "buffer", "i32", "buffer", "i32", "buffer"],
      result: "i32",
      nonblocking: true,
    },
    // `spfs run` becomes its command (unistd.h execvp, sys/signal.h signal; SIG_DFL is NULL)
    execvp: { parameters: ["buffer", "buffer"], result: "i32" },
    signal: { parameters: ["i32", "pointer"], result: "pointer" },
  } as const;
}

/** The fields of `struct proc_bsdinfo` spfs uses. `startUs` is the start time in µs since the epoch. */
export interface ProcBsdInfo {
  pid: number;
  ppid: number;
  uid: number;
  status: number;
  comm: string;
  startUs: bigint;
}

const cString = (b: Uint8Array) => {
  const end = b.indexOf(0);
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
};

/** Decodes `struct proc_bsdinfo` (136 bytes): status@4 pid@12 ppid@16 uid@20 comm@48 start@120/@128. */
export function decodeProcBsdInfo(b: Uint8Array): ProcBsdInfo {
  if (b.length < PROC_BSDINFO_SIZE) throw new RangeError(`proc_bsdinfo needs ${PROC_BSDINFO_SIZE} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    status: v.getUint32(4, true),
    pid: v.getUint32(12, true),
    ppid: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    comm: cString(b.subarray(48, 64)),
    startUs: v.getBigUint64(120, true) * 1_000_000n + v.getBigUint64(128, true),
  };
}

/** The fields of Darwin `struct statfs` spfs uses; sizes in bytes. */
export interface DarwinStatfs {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  flags: number;
  fstypename: string;
  mntonname: string;
  mntfromname: string;
}

/**
 * Decodes Darwin `struct statfs` (2168 bytes): bsize u32@0, blocks@8, bfree@16, bavail@24,
 * files@32, ffree@40 (u64), flags@64, names @72/@88/@1112.
 */
export function decodeDarwinStatfs(b: Uint8Array): DarwinStatfs {
  if (b.length < DARWIN_STATFS_SIZE) throw new RangeError(`statfs needs ${DARWIN_STATFS_SIZE} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    bsize: v.getUint32(0, true),
    blocks: Number(v.getBigUint64(8, true)),
    bfree: Number(v.getBigUint64(16, true)),
    bavail: Number(v.getBigUint64(24, true)),
    files: Number(v.getBigUint64(32, true)),
    ffree: Number(v.getBigUint64(40, true)),
    flags: v.getUint32(64, true),
    fstypename: cString(b.subarray(72, 88)),
    mntonname: cString(b.subarray(88, 1112)),
    mntfromname: cString(b.subarray(1112, 2136)),
  };
}

type LibSystem = Deno.DynamicLibrary<ReturnType<typeof libSystemSymbols>>;
let lib: LibSystem["symbols"] | undefined;
/**
 * libSystem, each symbol bound on first use (dyld serves it from the shared cache; the file is not
 * on disk).
 */
export function libSystem(): LibSystem["symbols"] {
  return lib ??= lazySymbols(
    "/usr/lib/libSystem.B.dylib",
    libSystemSymbols(Deno.build.arch === "x86_64" ? "x86_64" : "aarch64"),
  );
}

/** errno of the last failed libSystem call on this thread (via `__error()`). */
export function errnoDarwin(): number {
  const p = libSystem().__error();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/**
 * ppid and start time (µs) of `pid` via proc_pidinfo(PROC_PIDTBSDINFO), or null when it is gone.
 * Other users' processes fail with EPERM (kernel proc_info.c) and are reported as gone.
 */
export function procInfoDarwin(
  pid: number,
): { ppid: number; startTime: number; zombie: boolean } | null {
  const b = new Uint8Array(PROC_BSDINFO_SIZE);
  if (libSystem().proc_pidinfo(pid, PROC_PIDTBSDINFO, 0n, b, b.length) !== PROC_BSDINFO_SIZE) return null;
  const i = decodeProcBsdInfo(b);
  return { ppid: i.ppid, startTime: Number(i.startUs), zombie: i.status === SZOMB };
}

/** `pbi_status` of an exited process not yet reaped (xnu bsd/sys/proc.h SZOMB). */
export const SZOMB = 5;

/** statfs(2) of `path` (f_fstypename tells apfs/hfs/macfuse apart), or an errno. */
export function statfsDarwin(path: string): DarwinStatfs | number {
  const b = new Uint8Array(DARWIN_STATFS_SIZE);
  if (libSystem().statfs(new TextEncoder().encode(path + "\0"), b) !== 0) return errnoDarwin();
  return decodeDarwinStatfs(b);
}

/** Darwin `struct statvfs` size (sys/statvfs.h): 64 bytes, block and file counts are u32. */
export const DARWIN_STATVFS_SIZE = 64;

/**
 * Encodes Darwin `struct statvfs` (xnu bsd/sys/statvfs.h): bsize@0 frsize@8 (ulong), blocks@16
 * bfree@20 bavail@24 files@28 ffree@32 favail@36 (u32), fsid@40 flag@48 namemax@56 (ulong).
 * Counts beyond u32 are expressed in larger fragments (frsize × k) so free-space ratios hold.
 */
export function encodeStatvfsDarwin(s: StatVfs): Uint8Array {
  const b = new Uint8Array(DARWIN_STATVFS_SIZE), v = new DataView(b.buffer);
  const U32 = 0xffff_ffff;
  const k = Math.max(1, Math.ceil(s.blocks / U32));
  const c = (n: number) => Math.min(U32, Math.floor(n));
  v.setBigUint64(0, BigInt(s.bsize), true);
  v.setBigUint64(8, BigInt(s.bsize * k), true);
  v.setUint32(16, c(s.blocks / k), true);
  v.setUint32(20, c(s.bfree / k), true);
  v.setUint32(24, c(s.bavail / k), true);
  v.setUint32(28, c(s.files), true);
  v.setUint32(32, c(s.ffree), true);
  v.setUint32(36, c(s.ffree), true);
  v.setBigUint64(48, s.readonly ? 1n : 0n, true); // ST_RDONLY
  v.setBigUint64(56, BigInt(s.namemax), true);
  return b;
}

/** kqueue facts (xnu bsd/sys/event.h): filters, flags and notes spfs uses. */
export const KQ = {
  EVFILT_PROC: -5,
  EVFILT_USER: -10,
  EV_ADD: 0x1,
  EV_DELETE: 0x2,
  EV_ONESHOT: 0x10,
  EV_CLEAR: 0x20,
  EV_ERROR: 0x4000,
  NOTE_EXIT: 0x80000000,
  NOTE_TRIGGER: 0x01000000,
} as const;
/** `sizeof(struct kevent)` on LP64: ident u64@0, filter i16@8, flags u16@10, fflags u32@12, data i64@16, udata@24. */
export const KEVENT_SIZE = 32;

/** One `struct kevent`; `udata` is an opaque 64-bit token. */
export interface Kevent {
  ident: number;
  filter: number;
  flags: number;
  fflags: number;
  data: bigint;
  udata: bigint;
}

/** Writes `e` as `struct kevent` at byte offset `o` of `v`. */
export function encodeKevent(v: DataView, o: number, e: Kevent): void {
  v.setBigUint64(o, BigInt(e.ident), true);
  v.setInt16(o + 8, e.filter, true);
  v.setUint16(o + 10, e.flags, true);
  v.setUint32(o + 12, e.fflags >>> 0, true);
  v.setBigInt64(o + 16, e.data, true);
  v.setBigUint64(o + 24, e.udata, true);
}

/** Reads the `struct kevent` at byte offset `o` of `v`. */
export function decodeKevent(v: DataView, o: number): Kevent {
  return {
    ident: Number(v.getBigUint64(o, true)),
    filter: v.getInt16(o + 8, true),
    flags: v.getUint16(o + 10, true),
    fflags: v.getUint32(o + 12, true),
    data: v.getBigInt64(o + 16, true),
    udata: v.getBigUint64(o + 24, true),
  };
}

/**
 * Constants of the overlay's path calls: xnu bsd/sys/fcntl.h (AT_*), sys/stdio.h (RENAME_*),
 * sys/xattr.h (XATTR_*), sys/stat.h (UTIME_*).
 */
export const DARWIN_FS = {
  AT_FDCWD: -2,
  AT_SYMLINK_NOFOLLOW: 0x20,
  RENAME_SECLUDE: 0x1,
  RENAME_SWAP: 0x2,
  RENAME_EXCL: 0x4,
  RENAME_NOFOLLOW_ANY: 0x10,
  XATTR_NOFOLLOW: 0x1,
  XATTR_CREATE: 0x2,
  XATTR_REPLACE: 0x4,
  XATTR_NOSECURITY: 0x8,
  XATTR_NODEFAULT: 0x10,
  XATTR_SHOWCOMPRESSION: 0x20,
  UTIME_NOW: -1n,
  UTIME_OMIT: -2n,
  CLONE_NOFOLLOW,
  CLONE_NOOWNERCOPY,
} as const;

/** open(2) flags: xnu bsd/sys/fcntl.h (no O_NOATIME: 0). */
export const DARWIN_O_FLAGS: Record<string, number> = {
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
  O_NONBLOCK: 0x4,
  O_DIRECTORY: 0x100000,
  /** Darwin has no O_PATH; O_RDONLY|O_DIRECTORY serves the same purpose for directories. */
  O_PATH: 0,
};
