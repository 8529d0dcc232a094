/**
 * What every FUSE op needs: the reply functions and ABI of the loaded library, the backend
 * resolution rules, and reusable reply buffers (the worker serves one request at a time).
 *
 * Resolution (ARCHITECTURE.md "Routing and kernel caches"): the shared root inode resolves by the
 * caller's runtime (`byCaller`); every other inode by the runtime that owns it (`byOwner`), so a
 * dentry or an open handle keeps serving from its own runtime whoever asks.
 */
import { forcedCrash } from "../../report.ts";
import { encodeEntryParam, entryParamLayout } from "../../../ffi/fuse/lowlevel.ts";
import type { FuseAbi, FuseReplies } from "../../../ffi/fuse/abi.ts";
import { type Attr, encodeStat, STAT_SIZE } from "../../../ffi/stat.ts";
import { E } from "../../../ffi/errno.ts";
import type { Caller, DirEntry, FsBackend } from "../../fs/backend.ts";
import type { BlobOpener } from "../../fs/blobs.ts";
import type { OverlayBackend } from "../../fs/overlay/backend.ts";
import { ReadOnlyBackend } from "../../fs/readonly.ts";
import type { Router } from "../../fs/router.ts";
import { ROOT_INO, type Vfs, type View } from "../../fs/vfs.ts";
import type { LogLevel } from "./messages.ts";
import { OffThreadCopies } from "./copies.ts";
import { InodeFiles } from "./files.ts";

/**
 * Kernel entry timeouts in seconds. Root entries: 0, so every path walk asks again with the
 * caller's pid (the dentry cache is keyed by path, not process). Entries below the root live in
 * stack-bound directory inodes or in one runtime's inodes, so caching them cannot show one
 * environment's data to another. Attribute timeouts come from the backend.
 */
export const ROOT_ENTRY_TIMEOUT = 0, ENTRY_TIMEOUT = 60;

/** A name or link target in a request is not UTF-8; instrument.ts answers EILSEQ. */
export class NotUtf8 extends Error {}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The bytes of the symlink target at `p` (a copy), which must be UTF-8 like every path in a layer:
 * `spfs commit` could not keep any other.
 * @throws NotUtf8
 */
export function linkTarget(p: Ptr): Uint8Array {
  const v = new Deno.UnsafePointerView(p!);
  let n = 0;
  while (v.getUint8(n) !== 0) n++;
  const b = new Uint8Array(v.getArrayBuffer(n));
  try {
    strictUtf8.decode(b);
  } catch {
    throw new NotUtf8();
  }
  return b;
}

/** One registered runtime as the router holds it. */
export type MountRec = View & { id: string; backend: FsBackend; overlay?: OverlayBackend };

/** A pointer argument from libfuse. */
export type Ptr = Deno.PointerValue;

/** The worker's state and helpers, shared by every op. */
export class WorkerContext {
  /** The fd of each inode in use (files.ts): reads and writes go through it. */
  readonly files: InodeFiles;
  /**
   * Open dir handles: the listing taken by the last readdir at offset 0 (the first read, or a
   * rewinddir), so a listing shows the dir as it is when read, as on a local disk.
   */
  readonly dirHandles = new Map<number, { ino: number; entries: DirEntry[] }>();
  nextDirHandle = 1;
  /**
   * Root name → the inode of the last entry handed out for it. The kernel keeps that dentry (and
   * what it cached below) until a later lookup of the name returns another inode, so an ended
   * runtime's tree would stay in its caches until the next runtime walked that name, and that
   * runtime would pay for pruning it. `endedRootEntries` finds them when the runtime ends.
   */
  readonly rootEntries = new Map<string, number>();
  /** Serves inodes below the root that no editable runtime owns, and outsiders at the root. */
  readonly shared: ReadOnlyBackend;
  readonly entryBuf: Uint8Array;
  /**
   * A negative entry for `fuse_reply_entry`: ino 0 with an entry timeout, which the kernel keeps
   * as a negative dentry, so a second probe of a missing name costs no LOOKUP (FUSE protocol 7.4+,
   * Linux fs/fuse/dir.c `fuse_lookup_name`: "Zero nodeid is same as -ENOENT, but with valid
   * timeout"). Only below the root, for the same reason as positive entries (ENTRY_TIMEOUT).
   */
  readonly negativeEntry: Uint8Array;
  readonly statBuf: Uint8Array;
  readonly statView: DataView;
  dirBuf = new Uint8Array(64 * 1024);
  /** `SPFS_DEBUG_CRASH=fuse`: statfs throws, to check bug reports from the worker end to end. */
  readonly debugCrash = forcedCrash("fuse");

  constructor(
    readonly S: FuseReplies,
    readonly abi: FuseAbi,
    readonly vfs: Vfs,
    readonly router: Router<MountRec>,
    readonly blobs: BlobOpener,
    readonly counters: Int32Array,
    readonly log: (level: LogLevel, message: string, fields?: Record<string, unknown>) => void,
    /** Called when an op throws without an errno (a bug in spfs). */
    readonly bug: (op: string, e: unknown) => void = () => {},
    /** Copy-ups in flight on the main thread, and the opens waiting for them. */
    readonly copies: OffThreadCopies = new OffThreadCopies(() => {}),
  ) {
    this.shared = new ReadOnlyBackend(vfs, null, blobs);
    this.files = new InodeFiles(counters);
    this.entryBuf = encodeEntryParam(abi.statLayout, vfs.attr(ROOT_INO)!, 0, 0);
    this.negativeEntry = new Uint8Array(this.entryBuf.length);
    new DataView(this.negativeEntry.buffer).setFloat64(
      entryParamLayout(abi.statLayout).entryTimeout,
      ENTRY_TIMEOUT,
      true,
    );
    this.statBuf = new Uint8Array(STAT_SIZE[abi.statLayout]);
    this.statView = new DataView(this.statBuf.buffer);
  }

  /** The runtime of the process tree `req` came from, or null for an outsider. */
  mountOf(req: Ptr): MountRec | null {
    const tid = new Deno.UnsafePointerView(this.S.fuse_req_ctx(req)!).getInt32(this.abi.ctx.pid);
    return this.router.resolve(tid)?.mount ?? null;
  }
  /** The backend the caller of `req` sees at the root. */
  byCaller(req: Ptr): FsBackend {
    return this.mountOf(req)?.backend ?? this.shared;
  }
  /** The backend that owns `ino` (never the shared root). */
  byOwner(ino: number): FsBackend {
    return (this.vfs.owners.get(ino) as FsBackend | undefined) ?? this.shared;
  }
  /** The root through the caller, every other inode by its owner. */
  resolve(req: Ptr, ino: number): FsBackend {
    return ino === ROOT_INO ? this.byCaller(req) : this.byOwner(ino);
  }
  /** uid and gid of the caller. */
  caller(req: Ptr): Caller {
    const v = new Deno.UnsafePointerView(this.S.fuse_req_ctx(req)!);
    return { uid: v.getUint32(this.abi.ctx.uid), gid: v.getUint32(this.abi.ctx.gid) };
  }
  /**
   * A name from a request. Names in spfs are UTF-8 (a layer's are), and a lossy decode turns each
   * bad byte into U+FFFD, which would give two names one file. So a name with U+FFFD is refused
   * with EILSEQ, as APFS refuses a bad name: `spfs commit`, which reads names that same lossy way,
   * could not tell a real U+FFFD from a bad byte either, so what a runtime accepts it can commit.
   * @throws NotUtf8
   */
  name(p: Ptr): string {
    const s = Deno.UnsafePointerView.getCString(p!);
    if (s.includes("\uFFFD")) throw new NotUtf8();
    return s;
  }
  /** A view of a `fuse_file_info`. */
  fi(fi: Ptr): DataView {
    return new DataView(Deno.UnsafePointerView.getArrayBuffer(fi!, this.abi.fi.size));
  }
  /** The handle (`fh`) of a `fuse_file_info`. */
  fh(fi: Ptr): number {
    return Number(this.fi(fi).getBigUint64(this.abi.fi.fh, true));
  }
  /** Sets bits of the `fuse_file_info` bit word (keep_cache, cache_readdir). */
  setFiBits(v: DataView, bits: number): void {
    v.setUint32(this.abi.fi.bits, (v.getUint32(this.abi.fi.bits, true) | bits) >>> 0, true);
  }

  /** Encodes an entry for `fuse_reply_entry`/`fuse_reply_create` into the shared buffer. */
  entry(b: FsBackend, a: Attr, parent: number): Uint8Array {
    const entryTimeout = parent === ROOT_INO ? ROOT_ENTRY_TIMEOUT : ENTRY_TIMEOUT;
    return encodeEntryParam(this.abi.statLayout, a, b.attrTimeout, entryTimeout, this.entryBuf);
  }
  /**
   * An entry for `fuse_add_direntry_plus` that lists a name without linking it: ino 0, and `stat`
   * (a dirent's inode and type) as its attributes.
   */
  unlinkedEntry(stat: Uint8Array): Uint8Array {
    this.entryBuf.fill(0);
    this.entryBuf.set(stat, 16);
    return this.entryBuf;
  }
  /** Replies to a request that creates or finds `name` in `parent`: the entry, or the errno. */
  replyEntry(req: Ptr, b: FsBackend, a: Attr | number, parent: number, name: string): void {
    if (typeof a === "number") return void this.S.fuse_reply_err(req, a);
    if (parent === ROOT_INO) this.rootEntries.set(name, a.ino);
    this.S.fuse_reply_entry(req, this.entry(b, a, parent));
  }
  /**
   * The root entries last handed out into runtime `b` (forgotten here): the dentries the kernel
   * may still hold into it, as (root inode, name) for an invalidation notice.
   */
  endedRootEntries(b: FsBackend): [number, string][] {
    const out: [number, string][] = [];
    for (const [name, ino] of this.rootEntries) {
      if (this.vfs.owners.get(ino) !== b) continue;
      this.rootEntries.delete(name);
      out.push([ROOT_INO, name]);
    }
    return out;
  }
  /** Replies with attributes, or the errno. */
  replyAttr(req: Ptr, a: Attr | number, timeout: number): void {
    if (typeof a === "number") return void this.S.fuse_reply_err(req, a);
    this.statBuf.fill(0);
    encodeStat(this.abi.statLayout, a, this.statView);
    this.S.fuse_reply_attr(req, this.statBuf, timeout);
  }
  /** Replies to getxattr/listxattr: the length when `size` is 0, ERANGE when it is too small. */
  replyBytes(req: Ptr, size: number, r: Uint8Array | number): void {
    if (typeof r === "number") return void this.S.fuse_reply_err(req, r);
    if (size === 0) return void this.S.fuse_reply_xattr(req, BigInt(r.length));
    if (r.length > size) return void this.S.fuse_reply_err(req, E.ERANGE);
    this.S.fuse_reply_buf(req, r, BigInt(r.length));
  }
}
