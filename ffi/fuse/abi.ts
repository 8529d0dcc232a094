/**
 * The FUSE ABI the worker serves through, one per library flavour, chosen once from the library
 * that loaded: Linux libfuse 3.14+ (`linux3`), macFUSE 5 `libfuse3.4.dylib` (`macfuse3`, vanilla
 * mode: darwin extensions off) and macFUSE 4 `libfuse.2.dylib` (`macfuse2`). Each flavour gives the
 * ops-table slots, the callback signatures, the `fuse_file_info`/`fuse_ctx` offsets, the stat and
 * statvfs codecs, the mount options and the session calls. Facts: reference/ffi-abi.md §6–7.
 */
import {
  CONN_WANT,
  CTX,
  encodeStatvfs,
  FI,
  FI_BITS,
  OP_SIGNATURES,
  OPS,
  OPS_SLOTS,
  replySymbols,
  type StatVfs,
} from "./lowlevel.ts";
import {
  CONN_MAC2,
  CONN_MAC3,
  CTX_MAC,
  FI_MAC2,
  FI_MAC2_BITS,
  MAC_FUSE_LIBS,
  MACFUSE2_OPS,
  MACFUSE2_OPS_SIZE,
  MACFUSE2_RENAMEX_SIGNATURE,
  MACFUSE2_XATTR_SIGNATURES,
  MACFUSE3_OPS,
  MACFUSE3_OPS_SIZE,
} from "./macfuse.ts";
import { encodeStatvfsDarwin } from "../darwin/libsystem.ts";
import {
  type Refusal,
  renameFlagsDarwin,
  renameFlagsLinux,
  SETATTR_BITS,
  type SetattrBits,
  xattrFlagsDarwin,
  xattrFlagsLinux,
} from "./writeargs.ts";
import { linuxStatLayout, type StatLayout } from "../stat.ts";
import { cStringArray } from "../types.ts";
import { type Os, os as hostOs } from "../os.ts";

export type FuseFlavour = "linux3" | "macfuse3" | "macfuse2";
/**
 * Every op's callback signature in its widest form: libfuse 3's, plus macFUSE libfuse2's
 * `renamex` (renamex_np flags) and the trailing `uint32_t position` of its xattr ops.
 */
export const ALL_OP_SIGNATURES = {
  ...OP_SIGNATURES,
  ...MACFUSE2_XATTR_SIGNATURES,
  renamex: MACFUSE2_RENAMEX_SIGNATURE,
} as const;
/** The ops spfs implements; a flavour may lack some (only macfuse2 has `renamex`). */
export type OpName = keyof typeof ALL_OP_SIGNATURES;

export interface FuseAbi {
  flavour: FuseFlavour;
  /** Slot index (8-byte slots) of each op spfs implements in this flavour. */
  slot: Partial<Record<OpName, number>>;
  /** Length of `struct fuse_lowlevel_ops` in slots (its byte size / 8). */
  slots: number;
  /** Callback parameter types per op (`mode_t` is u16 and `dev_t` i32 on Darwin). */
  signature: Partial<Record<OpName, readonly Deno.NativeType[]>>;
  /** The write-side arguments of this flavour (writeargs.ts). */
  args: {
    /** setattr `to_set` bits. */
    setattr: SetattrBits;
    /** rename/renamex flags → renameat2's, or why they are refused. */
    renameFlags(raw: number): number | Refusal;
    /** setxattr flags → Linux XATTR_CREATE/XATTR_REPLACE, or why they are refused. */
    xattrFlags(raw: number): number | Refusal;
  };
  /** `fuse_file_info` byte offsets. */
  fi: { flags: number; bits: number; fh: number; size: number };
  /** Bits of the `fuse_file_info` bit word; 0 where the flavour lacks the flag. */
  fiBits: { keep_cache: number; cache_readdir: number };
  /** `fuse_ctx` offsets. On Linux `pid` is the caller's thread id; on macOS its process id. */
  ctx: { uid: number; gid: number; pid: number };
  statLayout: StatLayout;
  /** The `struct statvfs` that `fuse_reply_statfs` takes (Linux glibc or Darwin). */
  encodeStatvfs(s: StatVfs): Uint8Array;
  /** `-o` mount options (macFUSE has volname and noappledouble, no subtype). */
  mountOptions: string;
  /** libfuse3 `fuse_session_new`, its 3.17 `_versioned` form (macFUSE 5), or libfuse2 channels. */
  session: "fuse3" | "fuse3-versioned" | "fuse2";
  /**
   * Whether the kernel takes ENOSYS from OPEN as "never send OPEN or RELEASE again" (Linux
   * fs/fuse/file.c `fuse_file_open` sets `fc->no_open`; Linux 3.14 commit 7678ac50615d, FUSE_NO_OPEN_SUPPORT).
   * Then files are served by inode and their pages stay cached across opens. macFUSE has no such mode.
   */
  noOpen: boolean;
  /** `fuse_conn_info.want` offset, for the `init` op (lowlevel.ts CONN_WANT; macfuse.ts layouts). */
  connWant: number;
}

const LINUX_OPTIONS = "fsname=spfs,subtype=spfs,default_permissions";
const MAC_OPTIONS = "fsname=spfs,volname=spfs,default_permissions,noappledouble";

/** Darwin C types in the callbacks that take them (sys/_types: mode_t u16, dev_t i32). */
const DARWIN_MODE_SIGNATURES = {
  mknod: ["pointer", "u64", "pointer", "u16", "i32"],
  mkdir: ["pointer", "u64", "pointer", "u16"],
  create: ["pointer", "u64", "pointer", "u16", "pointer"],
} as const;

/** The slots of the ops spfs implements that `table` has. */
const pick = (table: Record<string, number>): Partial<Record<OpName, number>> =>
  Object.fromEntries(
    (Object.keys(ALL_OP_SIGNATURES) as OpName[]).filter((op) => op in table).map((op) => [op, table[op]]),
  );

export const FUSE_ABIS: Record<FuseFlavour, FuseAbi> = {
  linux3: {
    flavour: "linux3",
    slot: pick(OPS),
    slots: OPS_SLOTS,
    signature: OP_SIGNATURES,
    args: { setattr: SETATTR_BITS.linux3, renameFlags: renameFlagsLinux, xattrFlags: xattrFlagsLinux },
    fi: FI,
    fiBits: { keep_cache: FI_BITS.keep_cache, cache_readdir: FI_BITS.cache_readdir },
    ctx: CTX,
    statLayout: linuxStatLayout(),
    encodeStatvfs,
    mountOptions: LINUX_OPTIONS,
    session: "fuse3",
    noOpen: true,
    connWant: CONN_WANT,
  },
  macfuse3: {
    flavour: "macfuse3",
    slot: pick(MACFUSE3_OPS),
    slots: MACFUSE3_OPS_SIZE / 8,
    // vanilla mode (darwin_extensions_enabled 0): struct stat setattr, no xattr position
    signature: { ...OP_SIGNATURES, ...DARWIN_MODE_SIGNATURES },
    args: { setattr: SETATTR_BITS.macfuse3, renameFlags: renameFlagsDarwin, xattrFlags: xattrFlagsDarwin },
    // 3.17 `fuse_file_info` keeps the 3.14 prefix: flags@0, bit word@4, fh@16
    fi: FI,
    fiBits: { keep_cache: FI_BITS.keep_cache, cache_readdir: FI_BITS.cache_readdir },
    ctx: CTX_MAC,
    statLayout: "darwin",
    encodeStatvfs: encodeStatvfsDarwin,
    mountOptions: MAC_OPTIONS,
    session: "fuse3-versioned",
    noOpen: false,
    connWant: CONN_MAC3.want,
  },
  macfuse2: {
    flavour: "macfuse2",
    slot: pick(MACFUSE2_OPS),
    slots: MACFUSE2_OPS_SIZE / 8,
    signature: {
      ...OP_SIGNATURES,
      ...DARWIN_MODE_SIGNATURES,
      ...MACFUSE2_XATTR_SIGNATURES,
      // libfuse 2.9 rename has no flags argument; flagged renames come to `renamex`
      rename: ["pointer", "u64", "pointer", "u64", "pointer"],
      renamex: MACFUSE2_RENAMEX_SIGNATURE,
    },
    // setattr_x (slot 48) stays unset, so libfuse2 calls setattr with a struct stat and the eight
    // portable bits; renamex being set makes it want RENAME_SWAP | RENAME_EXCL
    args: { setattr: SETATTR_BITS.macfuse2, renameFlags: renameFlagsDarwin, xattrFlags: xattrFlagsDarwin },
    fi: FI_MAC2,
    fiBits: { keep_cache: FI_MAC2_BITS.keep_cache, cache_readdir: 0 },
    ctx: CTX_MAC,
    statLayout: "darwin",
    encodeStatvfs: encodeStatvfsDarwin,
    mountOptions: MAC_OPTIONS,
    session: "fuse2",
    noOpen: false,
    connWant: CONN_MAC2.want,
  },
};

export { LIBFUSE_CANDIDATES } from "./libnames.ts";

/** The flavour of a FUSE library by the name it was opened as (LIBFUSE_CANDIDATES). */
export function flavourOf(libName: string, os: Os = hostOs): FuseFlavour {
  if (os === "linux") return "linux3";
  return libName === MAC_FUSE_LIBS.macfuse2 || /libfuse\.2\.dylib$/.test(libName) ? "macfuse2" : "macfuse3";
}

/** libfuse 3 session calls (Linux 3.14+). */
export const fuse3Session = {
  fuse_session_new: { parameters: ["buffer", "buffer", "usize", "pointer"], result: "pointer" },
  fuse_session_mount: { parameters: ["pointer", "buffer"], result: "i32" },
  // the worker's own loop (fuse_lowlevel.h): poll the fd, then receive and process one request
  fuse_session_fd: { parameters: ["pointer"], result: "i32" },
  fuse_session_receive_buf: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_session_process_buf: { parameters: ["pointer", "buffer"], result: "void" },
  fuse_session_exited: { parameters: ["pointer"], result: "i32" },
  fuse_session_unmount: { parameters: ["pointer"], result: "void" },
  fuse_session_destroy: { parameters: ["pointer"], result: "void" },
  fuse_pkgversion: { parameters: [], result: "pointer" },
} as const;
/** libfuse 3.17 (macFUSE 5): `fuse_session_new` is a header macro over this symbol. */
const fuse3VersionedSession = {
  ...fuse3Session,
  fuse_session_new: {
    name: "fuse_session_new_versioned",
    parameters: ["buffer", "buffer", "usize", "buffer", "pointer"],
    result: "pointer",
  },
} as const;
/** libfuse 2.9 (macFUSE 4): a channel from fuse_mount, a session from fuse_lowlevel_new. */
const fuse2Session = {
  fuse_mount: { parameters: ["buffer", "buffer"], result: "pointer" },
  fuse_lowlevel_new: { parameters: ["buffer", "buffer", "usize", "pointer"], result: "pointer" },
  fuse_session_add_chan: { parameters: ["pointer", "pointer"], result: "void" },
  fuse_session_remove_chan: { parameters: ["pointer"], result: "void" },
  // the worker's own loop (libfuse 2.9 fuse_lowlevel.h): the caller owns the receive buffer
  fuse_chan_fd: { parameters: ["pointer"], result: "i32" },
  fuse_chan_bufsize: { parameters: ["pointer"], result: "usize" },
  fuse_session_receive_buf: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  fuse_session_process_buf: { parameters: ["pointer", "buffer", "pointer"], result: "void" },
  fuse_session_exited: { parameters: ["pointer"], result: "i32" },
  fuse_session_destroy: { parameters: ["pointer"], result: "void" },
  fuse_unmount: { parameters: ["buffer", "pointer"], result: "void" },
  fuse_version: { parameters: [], result: "i32" },
} as const;

/**
 * `struct fuse_buf` (fuse_common.h): size@0 flags@8 mem@16 fd@24 pos@32, plus 3.17's mem_size@40;
 * 48 bytes covers every flavour (reference/ffi-abi.md §7).
 */
export const FUSE_BUF_SIZE = 48;
/** `enum fuse_buf_flags` FUSE_BUF_IS_FD: the data is in `fd`, not `mem` (fuse_common.h). */
const FUSE_BUF_IS_FD = 1 << 1;

/**
 * Fills `buf` as a `struct fuse_buf` {size u64 @0, flags @8, mem ptr @16, …} over the first `size`
 * bytes of `mem` (libfuse reads or writes the request there), and returns it. `mem` must stay
 * alive, and unmoved, during the call `buf` is passed to.
 */
function memBuf(mem: Uint8Array, size = mem.length, buf = new Uint8Array(FUSE_BUF_SIZE)): Uint8Array {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf.fill(0);
  v.setBigUint64(0, BigInt(size), true);
  v.setBigUint64(16, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(mem))), true);
  return buf;
}

/** The reply functions, the same names and C signatures in every flavour. */
export type FuseReplies = Deno.DynamicLibrary<typeof replySymbols>["symbols"];

/** A mounted FUSE session. */
export interface FuseSession {
  abi: FuseAbi;
  /** The library name it was opened as, and libfuse's version string ("3.14.0", "2.9"). */
  name: string;
  version: string;
  reply: FuseReplies;
  /** The fd to poll(2) for requests (`/dev/fuse` or macFUSE's device). */
  fd: number;
  /**
   * Reads one request (blocks unless `fd` polled readable): > 0 when one is ready to process,
   * -EINTR to retry (an interrupted or aborted request), 0 or another negative errno when the
   * session ended (unmounted).
   */
  receive(): number;
  /** Runs the op callbacks for the request `receive` read, on this thread. */
  process(): void;
  /**
   * The bytes of the request `receive` read: a view of libfuse's buffer, valid until the next
   * `receive`. Null when libfuse spliced it to a pipe instead (FUSE_BUF_IS_FD).
   */
  current(): Uint8Array | null;
  /** Runs the op callbacks for a request read earlier (a copy of what `current` gave), now. */
  processBytes(bytes: Uint8Array): void;
  /** True once libfuse has ended the session (unmount, fuse_session_exit). */
  exited(): boolean;
  /** Unmounts (when still mounted) and frees the session. */
  close(): void;
}

/**
 * `struct libfuse_version` {major, minor, hotfix, padding} for `fuse_session_new_versioned`; bit 0
 * of the 4th u32 is macFUSE's `darwin_extensions_enabled`, left 0 so the vanilla structs apply.
 */
export function encodeLibfuseVersion(
  major: number,
  minor: number,
  hotfix: number,
  darwinExt = false,
): Uint8Array {
  return new Uint8Array(new Uint32Array([major, minor, hotfix, darwinExt ? 1 : 0]).buffer);
}

/** `struct fuse_args` {argc@0, argv@8, allocated@16} = 24 bytes; keeps its C strings alive. */
export function encodeFuseArgs(argv: string[]): { args: Uint8Array; keep: unknown[] } {
  const { ptrs, keep: strs } = cStringArray(argv);
  const args = new Uint8Array(24), v = new DataView(args.buffer);
  v.setInt32(0, argv.length, true);
  v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(ptrs))), true);
  return { args, keep: [strs, ptrs] };
}

function dlopenFirst<S extends Deno.ForeignLibraryInterface>(
  candidates: string[],
  symbols: (name: string) => S,
): { lib: Deno.DynamicLibrary<S>; name: string } {
  let last: unknown;
  for (const name of candidates) {
    try {
      return { lib: Deno.dlopen(name, symbols(name)), name };
    } catch (e) {
      last = e;
    }
  }
  throw last ?? new Error("no libfuse candidates");
}

/**
 * Loads the first FUSE library of `candidates` that opens, creates a session over the ops table
 * that `buildOps` returns for its ABI (`abi.slots` function pointers) and mounts it on `mountpoint`
 * with the flavour's options plus `extraOptions`.
 * @throws Error naming the step that failed (load, session creation, mount); libfuse prints its
 *   own reason to stderr.
 */
export function mountSession(
  candidates: string[],
  buildOps: (abi: FuseAbi, reply: FuseReplies) => Uint8Array,
  mountpoint: string,
  /** Extra `-o` options, e.g. "allow_other" (fuse(8)). */
  extraOptions: string[] = [],
): FuseSession {
  const enc = (s: string) => new TextEncoder().encode(s + "\0");
  const mp = enc(mountpoint);
  const { lib: replies, name } = dlopenFirst(candidates, () => replySymbols);
  const abi = FUSE_ABIS[flavourOf(name)];
  const ops = buildOps(abi, replies.symbols);
  const argv = encodeFuseArgs(["spfs", "-o", [abi.mountOptions, ...extraOptions].join(",")]);
  if (abi.session === "fuse2") {
    const S = Deno.dlopen(name, fuse2Session).symbols;
    const ch = S.fuse_mount(mp, argv.args);
    if (!ch) throw new Error(`fuse_mount on ${mountpoint} failed`);
    const se = S.fuse_lowlevel_new(argv.args, ops, BigInt(ops.byteLength), null);
    if (!se) {
      S.fuse_unmount(mp, ch);
      throw new Error("fuse_lowlevel_new failed");
    }
    S.fuse_session_add_chan(se, ch);
    const v = S.fuse_version();
    let closed = false;
    // libfuse 2.9's fuse_session_loop: a caller-owned buffer of fuse_chan_bufsize, reset per read
    const size = S.fuse_chan_bufsize(ch);
    const mem = new Uint8Array(Number(size));
    const fbuf = new Uint8Array(FUSE_BUF_SIZE);
    const chp = new BigUint64Array(1);
    let received = 0;
    return {
      abi,
      name,
      version: `${Math.floor(v / 10)}.${v % 10}`,
      reply: replies.symbols,
      fd: S.fuse_chan_fd(ch),
      receive: () => {
        memBuf(mem, Number(size), fbuf);
        chp[0] = BigInt(Deno.UnsafePointer.value(ch));
        return received = S.fuse_session_receive_buf(se, fbuf, new Uint8Array(chp.buffer));
      },
      process: () => S.fuse_session_process_buf(se, fbuf, Deno.UnsafePointer.create(chp[0])),
      current: () => (received > 0 ? mem.subarray(0, received) : null),
      processBytes: (bytes) => S.fuse_session_process_buf(se, memBuf(bytes), ch),
      exited: () => S.fuse_session_exited(se) !== 0,
      close: () => {
        if (closed) return;
        closed = true;
        S.fuse_session_remove_chan(ch);
        S.fuse_session_destroy(se);
        S.fuse_unmount(mp, ch);
        void argv.keep;
      },
    };
  }
  const S = Deno.dlopen(name, abi.session === "fuse3" ? fuse3Session : fuse3VersionedSession)
    .symbols as Deno.DynamicLibrary<typeof fuse3Session>["symbols"] & {
      fuse_session_new: (...a: unknown[]) => Deno.PointerValue;
    };
  const se = abi.session === "fuse3"
    ? S.fuse_session_new(argv.args, ops, BigInt(ops.byteLength), null)
    : S.fuse_session_new(argv.args, ops, BigInt(ops.byteLength), encodeLibfuseVersion(3, 17, 4), null);
  if (!se) throw new Error("fuse_session_new failed (libfuse printed why to the service's stderr)");
  if (S.fuse_session_mount(se, mp) !== 0) {
    S.fuse_session_destroy(se);
    throw new Error(`fuse_session_mount on ${mountpoint} failed`);
  }
  let closed = false;
  // fuse_session_loop's own shape: one zeroed fuse_buf, its `mem` allocated by libfuse and reused
  const fbuf = new Uint8Array(FUSE_BUF_SIZE);
  return {
    abi,
    name,
    version: Deno.UnsafePointerView.getCString(S.fuse_pkgversion()!),
    reply: replies.symbols,
    fd: S.fuse_session_fd(se),
    receive: () => S.fuse_session_receive_buf(se, fbuf),
    process: () => S.fuse_session_process_buf(se, fbuf),
    current: () => {
      const v = new DataView(fbuf.buffer);
      const mem = Deno.UnsafePointer.create(v.getBigUint64(16, true));
      if (v.getUint32(8, true) & FUSE_BUF_IS_FD || !mem) return null;
      // the request's own length (fuse_in_header.len @0), whatever libfuse left in `size`
      return new Uint8Array(
        Deno.UnsafePointerView.getArrayBuffer(mem, new Deno.UnsafePointerView(mem).getUint32(0)),
      );
    },
    processBytes: (bytes) => S.fuse_session_process_buf(se, memBuf(bytes)),
    exited: () => S.fuse_session_exited(se) !== 0,
    close: () => {
      if (closed) return;
      closed = true;
      S.fuse_session_unmount(se);
      S.fuse_session_destroy(se);
      void argv.keep;
    },
  };
}
