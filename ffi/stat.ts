/**
 * `struct stat` codecs. Offsets: reference/ffi-abi.md §4 (glibc, Debian bookworm headers; Darwin
 * xnu-11417 `__DARWIN_STRUCT_STAT64`). Times are `struct timespec` {tv_sec i64, tv_nsec i64}.
 */

/** Attributes spfs serves for an inode. `mode` includes the S_IFMT type bits. Sizes in bytes. */
export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** 512-byte blocks. */
  blocks: number;
  /** Device number of a block or character device (Linux encoding, makedev(3)); 0 otherwise. */
  rdev?: number;
  blksize: number;
  /** atime = mtime = ctime, seconds since the epoch (used when the *Ns fields are absent). */
  time: number;
  /** Exact times, ns since the epoch (editable runtimes serve real scratch times). */
  atimeNs?: bigint;
  mtimeNs?: bigint;
  ctimeNs?: bigint;
}

const NS = 1_000_000_000n;
function putTime(v: DataView, off: number, secs: number, ns: bigint | undefined): void {
  if (ns === undefined) {
    v.setBigInt64(off, BigInt(secs), true);
    return;
  }
  v.setBigInt64(off, ns / NS, true);
  v.setBigInt64(off + 8, ns % NS, true);
}
function getTime(v: DataView, off: number): bigint {
  return v.getBigInt64(off, true) * NS + v.getBigInt64(off + 8, true);
}

export type StatLayout = "linux-x86_64" | "linux-aarch64" | "darwin";

/** Byte size of `struct stat` per layout. */
export const STAT_SIZE: Record<StatLayout, number> = {
  "linux-x86_64": 144,
  "linux-aarch64": 128,
  darwin: 144,
};

/** Writes `a` as `struct stat` into `v` at byte offset `o` (the region must be zeroed). */
export function encodeStat(layout: StatLayout, a: Attr, v: DataView, o = 0): void {
  const le = true;
  const u64 = (off: number, n: number) => v.setBigUint64(o + off, BigInt(n), le);
  switch (layout) {
    case "linux-x86_64":
      u64(8, a.ino);
      u64(16, a.nlink);
      v.setUint32(o + 24, a.mode, le);
      v.setUint32(o + 28, a.uid, le);
      v.setUint32(o + 32, a.gid, le);
      u64(40, a.rdev ?? 0);
      u64(48, a.size);
      u64(56, a.blksize);
      u64(64, a.blocks);
      putTime(v, o + 72, a.time, a.atimeNs);
      putTime(v, o + 88, a.time, a.mtimeNs);
      putTime(v, o + 104, a.time, a.ctimeNs);
      return;
    case "linux-aarch64":
      u64(8, a.ino);
      v.setUint32(o + 16, a.mode, le);
      v.setUint32(o + 20, a.nlink, le);
      v.setUint32(o + 24, a.uid, le);
      v.setUint32(o + 28, a.gid, le);
      u64(32, a.rdev ?? 0);
      u64(48, a.size);
      v.setInt32(o + 56, a.blksize, le);
      u64(64, a.blocks);
      putTime(v, o + 72, a.time, a.atimeNs);
      putTime(v, o + 88, a.time, a.mtimeNs);
      putTime(v, o + 104, a.time, a.ctimeNs);
      return;
    case "darwin":
      v.setUint16(o + 4, a.mode, le);
      v.setUint16(o + 6, a.nlink, le);
      u64(8, a.ino);
      v.setUint32(o + 16, a.uid, le);
      v.setUint32(o + 20, a.gid, le);
      v.setInt32(o + 24, a.rdev ?? 0, le);
      putTime(v, o + 32, a.time, a.atimeNs);
      putTime(v, o + 48, a.time, a.mtimeNs);
      putTime(v, o + 64, a.time, a.ctimeNs);
      putTime(v, o + 80, a.time, a.ctimeNs);
      u64(96, a.size);
      u64(104, a.blocks);
      v.setInt32(o + 112, a.blksize, le);
      return;
  }
}

/** Reads the fields of `Attr` back from a `struct stat` (used by tests and by setattr decoding). */
export function decodeStat(layout: StatLayout, v: DataView, o = 0): Attr {
  const le = true;
  const u64 = (off: number) => Number(v.getBigUint64(o + off, le));
  switch (layout) {
    case "linux-x86_64":
      return {
        ino: u64(8),
        nlink: u64(16),
        mode: v.getUint32(o + 24, le),
        uid: v.getUint32(o + 28, le),
        gid: v.getUint32(o + 32, le),
        rdev: u64(40),
        size: u64(48),
        blksize: u64(56),
        blocks: u64(64),
        time: u64(88),
        atimeNs: getTime(v, o + 72),
        mtimeNs: getTime(v, o + 88),
        ctimeNs: getTime(v, o + 104),
      };
    case "linux-aarch64":
      return {
        ino: u64(8),
        mode: v.getUint32(o + 16, le),
        nlink: v.getUint32(o + 20, le),
        uid: v.getUint32(o + 24, le),
        gid: v.getUint32(o + 28, le),
        rdev: u64(32),
        size: u64(48),
        blksize: v.getInt32(o + 56, le),
        blocks: u64(64),
        time: u64(88),
        atimeNs: getTime(v, o + 72),
        mtimeNs: getTime(v, o + 88),
        ctimeNs: getTime(v, o + 104),
      };
    case "darwin":
      return {
        mode: v.getUint16(o + 4, le),
        nlink: v.getUint16(o + 6, le),
        ino: u64(8),
        uid: v.getUint32(o + 16, le),
        gid: v.getUint32(o + 20, le),
        rdev: v.getInt32(o + 24, le),
        time: u64(48),
        atimeNs: getTime(v, o + 32),
        mtimeNs: getTime(v, o + 48),
        ctimeNs: getTime(v, o + 64),
        size: u64(96),
        blocks: u64(104),
        blksize: v.getInt32(o + 112, le),
      };
  }
}

/** The Linux glibc layout for this CPU. */
export function linuxStatLayout(): StatLayout {
  return Deno.build.arch === "aarch64" ? "linux-aarch64" : "linux-x86_64";
}

/** The layout of the running process. */
export function hostStatLayout(): StatLayout {
  return Deno.build.os === "darwin" ? "darwin" : linuxStatLayout();
}
