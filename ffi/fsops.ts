/**
 * Path-level filesystem calls for editable runtimes, returning errno instead of throwing so the
 * FUSE adapter can pass the exact POSIX error on (the POSIX suite compares errno values with a
 * local directory). Linux glibc 2.36; signatures from man-pages 6.03 sections 2 and 3.
 */
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  cstr,
  errno,
  FICLONE,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_WRONLY,
} from "./sys.ts";
import { type Attr, decodeStat, hostStatLayout, STAT_SIZE } from "./stat.ts";
import { E } from "./errno.ts";
import type { FsStats } from "./types.ts";

const layout = hostStatLayout();
const statBuf = new Uint8Array(STAT_SIZE[layout]);
const statView = new DataView(statBuf.buffer);

/** lstat(2) of `path`: its attributes (real st_ino in `ino`), or an errno. */
export function lstat(path: string): Attr | number {
  return libc().lstat(cstr(path), statBuf) === 0 ? decodeStat(layout, statView) : errno();
}

/** fstat(2) of an open fd: its attributes, or an errno. */
export function fstat(fd: number): Attr | number {
  statBuf.fill(0);
  return libc().fstat(fd, statBuf) === 0 ? decodeStat(layout, statView) : errno();
}

/** True when `path` exists, of any type (a dangling symlink counts). Portable: no libc call. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a libc call that returns 0 or -1, mapping -1 to errno. */
export function check(rc: number | bigint): number {
  return Number(rc) < 0 ? errno() : 0;
}

/** Creates `path` as an empty file (mode 0600) if it does not exist. Returns 0 or an errno. */
export function touch(path: string): number {
  const fd = libc().open3(cstr(path), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600);
  if (fd < 0) return errno();
  libc().close(fd);
  return 0;
}

/** renameat2(2) of two paths (`flags`: RENAME_NOREPLACE / RENAME_EXCHANGE). Returns 0 or an errno. */
export function rename(from: string, to: string, flags = 0): number {
  return check(libc().renameat2(AT_FDCWD, cstr(from), AT_FDCWD, cstr(to), flags));
}

export type { FsStats };

/** statfs(2) of `path`, or an errno. */
export function statfs(path: string): FsStats | number {
  const b = new Uint8Array(120);
  if (libc().statfs(cstr(path), b) !== 0) return errno();
  const v = new DataView(b.buffer);
  const n = (o: number) => Number(v.getBigUint64(o, true));
  return {
    type: n(0),
    bsize: n(8),
    blocks: n(16),
    bfree: n(24),
    bavail: n(32),
    files: n(40),
    ffree: n(48),
    namemax: n(64),
  };
}

/** f_type magic numbers (linux/magic.h) of the filesystems a backstore is likely on. */
const FS_NAMES: Record<number, string> = {
  0xEF53: "ext4",
  0x01021994: "tmpfs",
  0x9123683E: "btrfs",
  0x58465342: "xfs",
  0x794c7630: "overlay",
  0x2fc12fc1: "zfs",
  0x65735546: "fuse",
  0x6969: "nfs",
  0xF2F52010: "f2fs",
};

/** A readable filesystem name for a statfs f_type. */
export function fsTypeName(type: number): string {
  return FS_NAMES[type] ?? `0x${type.toString(16)}`;
}

/** Opens `src` for reading and creates `dst` (0600, must not exist): [in, out] fds or an errno. */
function openPair(src: string, dst: string): [number, number] | number {
  const C = libc();
  const fin = C.open(cstr(src), O_RDONLY | O_CLOEXEC);
  if (fin < 0) return errno();
  const fout = C.open3(cstr(dst), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
  if (fout < 0) {
    const e = errno();
    C.close(fin);
    return e;
  }
  return [fin, fout];
}

/**
 * Clones `src` into the new file `dst` (created 0600). Tries ioctl(FICLONE) when `reflink`, then
 * copy_file_range(2), then a plain read/write copy. Returns the method used, or an errno.
 */
export function cloneFile(
  src: string,
  dst: string,
  reflink: boolean,
): "reflink" | "copy_file_range" | "copy" | number {
  const C = libc();
  const fds = openPair(src, dst);
  if (typeof fds === "number") return fds;
  const [fin, fout] = fds;
  try {
    if (reflink && C.ioctl(fout, BigInt(FICLONE), BigInt(fin)) === 0) return "reflink";
    let method: "copy_file_range" | "copy" = "copy_file_range";
    for (;;) {
      const n = Number(C.copy_file_range(fin, null, fout, null, 1n << 30n, 0));
      if (n === 0) return method;
      if (n > 0) continue;
      const e = errno();
      if (
        e === E.EXDEV || e === E.ENOSYS || e === E.EINVAL || e === E.ENOTSUP
      ) {
        method = "copy";
        break;
      }
      return e;
    }
    const buf = new Uint8Array(1 << 20);
    let off = 0n;
    for (;;) {
      const n = Number(C.pread(fin, buf, BigInt(buf.length), off));
      if (n < 0) return errno();
      if (n === 0) return method;
      let done = 0;
      while (done < n) {
        const w = Number(C.pwrite(fout, Deno.UnsafePointer.of(buf.subarray(done)), BigInt(n - done), off));
        if (w < 0) return errno();
        done += w;
        off += BigInt(w);
      }
    }
  } finally {
    C.close(fin);
    C.close(fout);
  }
}

/** Sets times on `path` without following symlinks; ns since the epoch, or "now", or undefined to keep. */
export function utimens(
  path: string,
  atime: bigint | "now" | undefined,
  mtime: bigint | "now" | undefined,
): number {
  const UTIME_NOW = (1n << 30n) - 1n, UTIME_OMIT = (1n << 30n) - 2n;
  const ts = new BigInt64Array(4);
  const put = (i: number, t: bigint | "now" | undefined) => {
    if (t === undefined) ts[i + 1] = UTIME_OMIT;
    else if (t === "now") ts[i + 1] = UTIME_NOW;
    else {
      ts[i] = t / 1_000_000_000n;
      ts[i + 1] = t % 1_000_000_000n;
    }
  };
  put(0, atime);
  put(2, mtime);
  return check(libc().utimensat(AT_FDCWD, cstr(path), new Uint8Array(ts.buffer), AT_SYMLINK_NOFOLLOW));
}

/** readlink(2): the target bytes, or an errno. */
export function readlinkBytes(path: string): Uint8Array | number {
  const b = new Uint8Array(4096);
  const n = Number(libc().readlink(cstr(path), b, BigInt(b.length)));
  return n < 0 ? errno() : b.slice(0, n);
}

/**
 * Probes whether `dir`'s filesystem supports reflinks: clones a small file with FICLONE.
 * Returns true, or the errno that refused it (EOPNOTSUPP, EXDEV, EINVAL…).
 */
export function probeReflink(srcDir: string, dstDir: string): true | number {
  const tag = `.spfs-probe-${Deno.pid}-${Date.now()}`;
  const a = `${srcDir}/${tag}`, b = `${dstDir}/${tag}`;
  try {
    Deno.writeFileSync(a, new Uint8Array(4096).fill(7));
    const fds = openPair(a, b);
    if (typeof fds === "number") return fds;
    const C = libc();
    const e = C.ioctl(fds[1], BigInt(FICLONE), BigInt(fds[0])) === 0 ? 0 : errno();
    C.close(fds[0]);
    C.close(fds[1]);
    return e === 0 ? true : e;
  } finally {
    for (const p of [a, b]) {
      try {
        Deno.removeSync(p);
      } catch { /* not created */ }
    }
  }
}
