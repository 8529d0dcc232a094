/**
 * macFUSE ABI facts for the two library flavours, and the choice between them. Sources:
 * reference/ffi-abi.md §6 — macFUSE 4.x `libfuse.2.dylib` (libfuse 2.9 low-level API, 49-slot ops
 * table with Apple slots 41–48, xattr `position` args) and macFUSE 5.x `libfuse3.4.dylib` (3.17.4
 * slot order, then `setvolname`@360 and `monitor`@368 under __APPLE__). FUSE-T reports caller pid 0
 * and is refused.
 */
import { OPS } from "./lowlevel.ts";
import { MAC_FUSE_LIBS, type MacFuseFlavour } from "./libnames.ts";

export { MAC_FUSE_LIBS, type MacFuseFlavour } from "./libnames.ts";

/**
 * Picks the library: macFUSE 5's libfuse3 when present, else macFUSE 4's libfuse2. FUSE-T alone
 * gives no caller pid, so it is reported rather than chosen. `present` tests a path (injected in tests).
 */
export function chooseMacFuse(
  present: (path: string) => boolean,
): { flavour: MacFuseFlavour; path: string } | {
  flavour: null;
  fuseTOnly: boolean;
  reason: string;
} {
  for (const f of ["macfuse3", "macfuse2"] as const) {
    if (present(MAC_FUSE_LIBS[f])) return { flavour: f, path: MAC_FUSE_LIBS[f] };
  }
  if (present(MAC_FUSE_LIBS["fuse-t"])) {
    return {
      flavour: null,
      fuseTOnly: true,
      reason:
        "only FUSE-T is installed: it reports caller pid 0 on every request, so spfs cannot give each process tree its own /spfs; install macFUSE (brew install --cask macfuse)",
    };
  }
  return {
    flavour: null,
    fuseTOnly: false,
    reason: "macFUSE is not installed (brew install --cask macfuse)",
  };
}

/** Linux slots up to `fallocate` (40): libfuse 2.9.9 and 3.x agree on them. */
const SHARED_OPS = Object.fromEntries(
  Object.entries(OPS).filter(([, slot]) => slot <= OPS.fallocate),
) as Omit<
  typeof OPS,
  "readdirplus" | "copy_file_range" | "lseek"
>;

/** macFUSE libfuse2 `fuse_lowlevel_ops`: slots 0–40 as Linux libfuse 2.9.9, then Apple's 41–48. */
export const MACFUSE2_OPS = {
  ...SHARED_OPS,
  reserved00: 41,
  reserved01: 42,
  reserved02: 43,
  renamex: 44,
  setvolname: 45,
  exchange: 46,
  getxtimes: 47,
  setattr_x: 48,
} as const;
/** 49 slots × 8 bytes. */
export const MACFUSE2_OPS_SIZE = 392;

/** macFUSE 5 libfuse3: the upstream 3.17 slots (tmpfile last, 45 slots), then the Apple ones. */
export const MACFUSE3_OPS = { ...OPS, tmpfile: 44, setvolname: 45, monitor: 46 } as const;
/** 47 slots × 8 bytes (3.17.4-based header). */
export const MACFUSE3_OPS_SIZE = 376;

/**
 * xattr callbacks on macFUSE libfuse2 take a trailing `uint32_t position` (resource forks); the
 * rest of the signature is libfuse 2.9's.
 */
export const MACFUSE2_XATTR_SIGNATURES = {
  setxattr: ["pointer", "u64", "pointer", "pointer", "usize", "i32", "u32"],
  getxattr: ["pointer", "u64", "pointer", "usize", "u32"],
} as const;

/** `renamex(req, parent, name, newparent, newname, unsigned flags)`: renamex_np(2) flags. */
export const MACFUSE2_RENAMEX_SIGNATURE = ["pointer", "u64", "pointer", "u64", "pointer", "u32"] as const;

/** macFUSE libfuse2 `struct fuse_file_info` (40 bytes). */
export const FI_MAC2 = {
  flags: 0,
  fh_old: 8,
  writepage: 16,
  bits: 20,
  fh: 24,
  lock_owner: 32,
  size: 40,
} as const;
/** Bits of FI_MAC2.bits (bitfield order of fuse_common.h; purge_* are macFUSE's own). */
export const FI_MAC2_BITS = {
  direct_io: 1 << 0,
  keep_cache: 1 << 1,
  flush: 1 << 2,
  nonseekable: 1 << 3,
  flock_release: 1 << 4,
  purge_attr: 1 << 30,
  purge_ubc: 2 ** 31,
} as const;

/** A decoded `fuse_file_info`, whichever flavour. */
export interface FileInfo {
  flags: number;
  fh: bigint;
  direct_io: boolean;
  keep_cache: boolean;
}

/** Decodes macFUSE libfuse2 `fuse_file_info`. */
export function decodeFileInfoMac2(v: DataView): FileInfo {
  const bits = v.getUint32(FI_MAC2.bits, true);
  return {
    flags: v.getInt32(FI_MAC2.flags, true),
    fh: v.getBigUint64(FI_MAC2.fh, true),
    direct_io: !!(bits & FI_MAC2_BITS.direct_io),
    keep_cache: !!(bits & FI_MAC2_BITS.keep_cache),
  };
}

/** Sets fh and the open flags spfs uses in a macFUSE libfuse2 `fuse_file_info`. */
export function encodeFileInfoMac2(
  v: DataView,
  fh: bigint,
  o: { direct_io?: boolean; keep_cache?: boolean },
): void {
  v.setBigUint64(FI_MAC2.fh, fh, true);
  let bits = v.getUint32(FI_MAC2.bits, true) & ~(FI_MAC2_BITS.direct_io | FI_MAC2_BITS.keep_cache);
  if (o.direct_io) bits |= FI_MAC2_BITS.direct_io;
  if (o.keep_cache) bits |= FI_MAC2_BITS.keep_cache;
  v.setUint32(FI_MAC2.bits, bits >>> 0, true);
}

/**
 * `struct fuse_conn_info` offsets. macFUSE libfuse2 (128 B) has an `enable` bitfield at 20 that
 * Linux 2.9 lacks, so capable/want move to 24/28. macFUSE libfuse3 (144 B) adds
 * capable_darwin@64 and want_darwin@72 (u64) before reserved[16]@80.
 */
export const CONN_MAC2 = {
  proto_major: 0,
  proto_minor: 4,
  async_read: 8,
  max_write: 12,
  max_readahead: 16,
  enable: 20,
  capable: 24,
  want: 28,
  max_background: 32,
  congestion_threshold: 36,
  size: 128,
} as const;
export const CONN_MAC2_ENABLE = { case_insensitive: 1 << 0, setvolname: 1 << 1, xtimes: 1 << 2 } as const;
export const CONN_MAC3 = {
  proto_major: 0,
  proto_minor: 4,
  max_write: 8,
  max_read: 12,
  max_readahead: 16,
  capable: 20,
  want: 24,
  capable_darwin: 64,
  want_darwin: 72,
  size: 144,
} as const;

/** A decoded `fuse_conn_info` (the fields spfs reads). */
export interface ConnInfo {
  proto_major: number;
  proto_minor: number;
  max_write: number;
  capable: number;
  want: number;
}

/** Decodes `fuse_conn_info` for a macFUSE flavour. */
export function decodeConnInfoMac(flavour: "macfuse2" | "macfuse3", v: DataView): ConnInfo {
  const l = flavour === "macfuse2" ? CONN_MAC2 : CONN_MAC3;
  return {
    proto_major: v.getUint32(l.proto_major, true),
    proto_minor: v.getUint32(l.proto_minor, true),
    max_write: v.getUint32(l.max_write, true),
    capable: v.getUint32(l.capable, true),
    want: v.getUint32(l.want, true),
  };
}

/** `struct fuse_ctx` on macOS: uid@0 gid@4 pid@8 (the process pid) and a u16 `mode_t` umask@12. */
export const CTX_MAC = { uid: 0, gid: 4, pid: 8, umask: 12, size: 16 } as const;

/** Decodes a macOS `fuse_ctx`. pid 0 means a kernel-originated request (or FUSE-T). */
export function decodeCtxMac(v: DataView): { uid: number; gid: number; pid: number; umask: number } {
  return {
    uid: v.getUint32(CTX_MAC.uid, true),
    gid: v.getUint32(CTX_MAC.gid, true),
    pid: v.getInt32(CTX_MAC.pid, true),
    umask: v.getUint16(CTX_MAC.umask, true),
  };
}
