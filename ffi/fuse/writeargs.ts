/**
 * Write-side arguments per FUSE flavour, decoded into the one form the backends take: setattr's
 * `to_set` bits and the `struct stat` they index, rename flags and setxattr flags (both as Linux
 * values: renameat2 RENAME_NOREPLACE 1 / RENAME_EXCHANGE 2, XATTR_CREATE 1 / XATTR_REPLACE 2).
 *
 * Sources: libfuse 3.14 `fuse_lowlevel.h` (FUSE_SET_ATTR_*); macFUSE 4.x `libfuse.2.dylib`
 * `fuse_lowlevel.h` (Apple bits CRTIME 28, CHGTIME 29, BKUPTIME 30, FLAGS 31; `do_setattr` masks
 * `to_set` to the eight portable bits unless `setattr_x` is set; `renamex` gets renamex_np(2)
 * flags); macFUSE 5 `libfuse3.4.dylib` `fuse_lowlevel.h` (BTIME 28, BKUPTIME 30, FLAGS 31; the
 * kernel's renamex_np flags reach `rename`); xnu-11417 bsd/sys/stat.h (`st_flags` u32 @116 of
 * the 144-byte stat). The renamex_np and setxattr flag values are DARWIN_FS's
 * (darwin/libsystem.ts), the Linux ones linux/libc.ts's.
 */
import { decodeStat, type StatLayout } from "../stat.ts";
import { DARWIN_FS } from "../darwin/libsystem.ts";
import { RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE, XATTR_REPLACE } from "../linux/libc.ts";

/** setattr changes in the backends' form: times in ns since the epoch, or "now". */
export interface SetattrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: bigint | "now";
  mtime?: bigint | "now";
}

/** `to_set` bits of one flavour; 0 where it has no such bit. */
export interface SetattrBits {
  MODE: number;
  UID: number;
  GID: number;
  SIZE: number;
  ATIME: number;
  MTIME: number;
  ATIME_NOW: number;
  MTIME_NOW: number;
  /** chflags(2): the new flags are `st_flags` of the Darwin stat. */
  FLAGS: number;
  /** Times spfs does not keep (creation, change, backup time): accepted and dropped. */
  IGNORED: number;
}

const PORTABLE = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
} as const;

/**
 * Per-flavour `to_set` bits. Linux 3.x: CTIME (1 << 10) comes with changes and is implied;
 * KILL_SUID/KILL_SGID (1 << 11, 12) only with HANDLE_KILLPRIV_V2, which spfs does not want.
 */
export const SETATTR_BITS: Record<"linux3" | "macfuse3" | "macfuse2", SetattrBits> = {
  linux3: { ...PORTABLE, FLAGS: 0, IGNORED: (1 << 10) | (1 << 11) | (1 << 12) },
  macfuse3: { ...PORTABLE, FLAGS: 2 ** 31, IGNORED: (1 << 28) | (1 << 30) },
  macfuse2: { ...PORTABLE, FLAGS: 2 ** 31, IGNORED: (1 << 28) | (1 << 29) | (1 << 30) },
};

const known = new WeakMap<SetattrBits, number>();
/** Every bit of `bits` (computed once per flavour: setattr is on the hot path of writes). */
function knownBits(bits: SetattrBits): number {
  const m = known.get(bits);
  if (m !== undefined) return m;
  const all = Object.values(bits).reduce((a: number, b: number) => (a | b) >>> 0, 0);
  known.set(bits, all);
  return all;
}

/** Byte offset of Darwin `st_flags` (u32). */
export const DARWIN_ST_FLAGS = 116;

const EINVAL = "EINVAL", ENOTSUP = "ENOTSUP";
/** Why an argument was refused; the op replies with the host's errno of that name. */
export type Refusal = typeof EINVAL | typeof ENOTSUP;

/**
 * Decodes setattr: `stat` is the `struct stat` libfuse passed (layout of the flavour), `toSet` its
 * bit mask. Refuses chflags(2) to non-zero flags (ENOTSUP: spfs keeps no BSD file flags) and
 * unknown bits (EINVAL) rather than answering success for a change it did not make.
 */
export function decodeSetattr(
  bits: SetattrBits,
  layout: StatLayout,
  stat: DataView,
  toSet: number,
): SetattrChanges | Refusal {
  const t = toSet >>> 0;
  if (t & ~knownBits(bits)) return EINVAL;
  if (bits.FLAGS && t & bits.FLAGS && stat.getUint32(DARWIN_ST_FLAGS, true) !== 0) return ENOTSUP;
  const a = decodeStat(layout, stat);
  const set: SetattrChanges = {};
  if (t & bits.MODE) set.mode = a.mode;
  if (t & bits.UID) set.uid = a.uid;
  if (t & bits.GID) set.gid = a.gid;
  if (t & bits.SIZE) set.size = a.size;
  if (t & bits.ATIME) set.atime = t & bits.ATIME_NOW ? "now" : a.atimeNs;
  if (t & bits.MTIME) set.mtime = t & bits.MTIME_NOW ? "now" : a.mtimeNs;
  return set;
}

/** Linux renameat2(2) flags, the backends' form. */
const RENAME = { NOREPLACE: RENAME_NOREPLACE, EXCHANGE: RENAME_EXCHANGE } as const;
/** Darwin renamex_np(2) flags (values: darwin/libsystem.ts DARWIN_FS). */
export const DARWIN_RENAME = {
  SECLUDE: DARWIN_FS.RENAME_SECLUDE,
  SWAP: DARWIN_FS.RENAME_SWAP,
  EXCL: DARWIN_FS.RENAME_EXCL,
  NOFOLLOW_ANY: DARWIN_FS.RENAME_NOFOLLOW_ANY,
} as const;

/** Linux: renameat2 flags as they are; anything but NOREPLACE/EXCHANGE is EINVAL. */
export function renameFlagsLinux(raw: number): number | Refusal {
  return raw & ~(RENAME.NOREPLACE | RENAME.EXCHANGE) ? EINVAL : raw;
}

/**
 * macFUSE: renamex_np flags → renameat2's. SWAP is EXCHANGE, EXCL is NOREPLACE; NOFOLLOW_ANY
 * only concerns the caller's path walk, which the kernel did; SECLUDE and others are EINVAL.
 */
export function renameFlagsDarwin(raw: number): number | Refusal {
  if (raw & ~(DARWIN_RENAME.SWAP | DARWIN_RENAME.EXCL | DARWIN_RENAME.NOFOLLOW_ANY)) return EINVAL;
  if ((raw & DARWIN_RENAME.SWAP) && (raw & DARWIN_RENAME.EXCL)) return EINVAL;
  return (raw & DARWIN_RENAME.SWAP ? RENAME.EXCHANGE : 0) | (raw & DARWIN_RENAME.EXCL ? RENAME.NOREPLACE : 0);
}

/** Linux setxattr(2) flags, the backends' form. */
const XATTR = { CREATE: XATTR_CREATE, REPLACE: XATTR_REPLACE } as const;

/** Linux: XATTR_CREATE / XATTR_REPLACE as they are; other bits are EINVAL. */
export function xattrFlagsLinux(raw: number): number | Refusal {
  return raw & ~(XATTR.CREATE | XATTR.REPLACE) ? EINVAL : raw;
}

/**
 * macFUSE: setxattr options → Linux flags. CREATE and REPLACE map; NOFOLLOW (spfs never follows),
 * NOSECURITY, NODEFAULT and SHOWCOMPRESSION change nothing for a scratch file; others are EINVAL.
 */
export function xattrFlagsDarwin(raw: number): number | Refusal {
  const d = DARWIN_FS;
  const known = d.XATTR_NOFOLLOW | d.XATTR_CREATE | d.XATTR_REPLACE | d.XATTR_NOSECURITY | d.XATTR_NODEFAULT |
    d.XATTR_SHOWCOMPRESSION;
  if (raw & ~known) return EINVAL;
  return (raw & d.XATTR_CREATE ? XATTR.CREATE : 0) | (raw & d.XATTR_REPLACE ? XATTR.REPLACE : 0);
}
