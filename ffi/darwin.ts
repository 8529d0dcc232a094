/**
 * macOS native facts through Deno.dlopen: libSystem symbols (proc_pidinfo, clonefile, statfs) and
 * the struct codecs spfs needs. Offsets: reference/ffi-abi.md §1–3, from xnu-11417.101.15 headers
 * (`bsd/sys/proc_info.h`, `bsd/sys/mount.h`, `bsd/sys/clonefile.h`). Darwin arm64 and x86_64 are both
 * LP64, so the layouts are the same; only symbol names differ (`statfs$INODE64` on x86_64).
 * Variadic libc functions (open, fcntl, ioctl) are never bound: Apple arm64 passes variadic args on
 * the stack, which Deno FFI cannot do.
 */

/** `PROC_PIDTBSDINFO` flavor and `sizeof(struct proc_bsdinfo)`. */
export const PROC_PIDTBSDINFO = 3, PROC_BSDINFO_SIZE = 136;
/** `sizeof(struct statfs)` with 64-bit inodes. */
export const DARWIN_STATFS_SIZE = 2168;
/** clonefile(2) flags. */
export const CLONE_NOFOLLOW = 0x1, CLONE_NOOWNERCOPY = 0x2;
/** errno values that mean "this volume cannot clone" (bsd/sys/errno.h: ENOTSUP 45, EXDEV 18). */
export const ENOTSUP_DARWIN = 45, EXDEV = 18;

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
  bavail: number;
  flags: number;
  fstypename: string;
  mntonname: string;
  mntfromname: string;
}

/** Decodes Darwin `struct statfs` (2168 bytes): bsize u32@0, blocks@8, bavail@24, flags@64, names @72/@88/@1112. */
export function decodeDarwinStatfs(b: Uint8Array): DarwinStatfs {
  if (b.length < DARWIN_STATFS_SIZE) throw new RangeError(`statfs needs ${DARWIN_STATFS_SIZE} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    bsize: v.getUint32(0, true),
    blocks: Number(v.getBigUint64(8, true)),
    bavail: Number(v.getBigUint64(24, true)),
    flags: v.getUint32(64, true),
    fstypename: cString(b.subarray(72, 88)),
    mntonname: cString(b.subarray(88, 1112)),
    mntfromname: cString(b.subarray(1112, 2136)),
  };
}

type LibSystem = Deno.DynamicLibrary<ReturnType<typeof libSystemSymbols>>;
let lib: LibSystem | undefined;
/** libSystem, loaded on first use (dyld serves it from the shared cache; the file is not on disk). */
export function libSystem(): LibSystem["symbols"] {
  lib ??= Deno.dlopen(
    "/usr/lib/libSystem.B.dylib",
    libSystemSymbols(Deno.build.arch === "x86_64" ? "x86_64" : "aarch64"),
  );
  return lib.symbols;
}

function errnoDarwin(): number {
  const p = libSystem().__error();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/**
 * ppid and start time (µs) of `pid` via proc_pidinfo(PROC_PIDTBSDINFO), or null when it is gone.
 * Other users' processes fail with EPERM (kernel proc_info.c) and are reported as gone.
 */
export function procInfoDarwin(pid: number): { ppid: number; startTime: number } | null {
  const b = new Uint8Array(PROC_BSDINFO_SIZE);
  if (libSystem().proc_pidinfo(pid, PROC_PIDTBSDINFO, 0n, b, b.length) !== PROC_BSDINFO_SIZE) return null;
  const i = decodeProcBsdInfo(b);
  return { ppid: i.ppid, startTime: Number(i.startUs) };
}

/** clonefile(2) `src` to the new path `dst`: 0, or an errno (ENOTSUP 45 when the volume cannot clone). */
export function clonefileDarwin(src: string, dst: string): number {
  const enc = new TextEncoder();
  const rc = libSystem().clonefile(enc.encode(src + "\0"), enc.encode(dst + "\0"), CLONE_NOFOLLOW);
  return rc === 0 ? 0 : errnoDarwin();
}

/** statfs(2) of `path` (f_fstypename tells apfs/hfs/macfuse apart), or an errno. */
export function statfsDarwin(path: string): DarwinStatfs | number {
  const b = new Uint8Array(DARWIN_STATFS_SIZE);
  if (libSystem().statfs(new TextEncoder().encode(path + "\0"), b) !== 0) return errnoDarwin();
  return decodeDarwinStatfs(b);
}
