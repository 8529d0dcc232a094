/**
 * The one place that turns an op into a native callback: counts the request, times it into the
 * op's latency histogram, logs slow requests, and converts an exception into an errno reply (EIO,
 * or the resource errno it carried) with the op and path in the log (the spk `err!` habit).
 */
import type { ALL_OP_SIGNATURES, FuseAbi, OpName } from "../../../ffi/fuse/abi.ts";
import { OPS as LINUX_SLOT } from "../../../ffi/fuse/lowlevel.ts";
import { E } from "../../../ffi/errno.ts";
import { errnoIn, errnoOfException } from "../../../ffi/sys.ts";
import { bucketOf, CTR, LAT_BUCKETS } from "../../metrics.ts";
import { ROOT_INO } from "../../fs/vfs.ts";
import type { OverlayBackend } from "../../fs/overlay/backend.ts";
import { NotUtf8, type WorkerContext } from "./context.ts";

/**
 * The arguments libfuse passes to op `K`, typed from its widest signature (Darwin's narrower
 * mode_t and dev_t decode to the same JS types). Trailing arguments a flavour lacks arrive as
 * undefined: libfuse 2.9's rename has no `flags`, only macFUSE libfuse2's xattr ops a `position`.
 */
export type OpArgs<K extends OpName> = Parameters<
  Deno.UnsafeCallbackFunction<(typeof ALL_OP_SIGNATURES)[K], "void">
>;
/** One FUSE op: the context, then libfuse's own arguments. */
export type Op<K extends OpName> = (c: WorkerContext, ...args: OpArgs<K>) => void;

const WITH_NAME = new Set(["lookup", "mknod", "mkdir", "unlink", "rmdir", "create", "rename", "renamex"]);

/** Log fields naming what a request was about: its inode, and a path where one is known. */
function describe(c: WorkerContext, op: string, args: unknown[]): Record<string, unknown> {
  if (op === "init" || op === "destroy" || op === "forget_multi") return {};
  const ino = typeof args[1] === "bigint" ? Number(args[1]) : undefined;
  const out: Record<string, unknown> = { ino };
  try {
    if (ino === undefined) return out;
    const ov = (c.vfs.owners.get(ino) as OverlayBackend | undefined)?.overlay;
    const dirPath = ino === ROOT_INO ? "" : ov?.node(ino)?.path ?? c.vfs.nodes.get(ino)?.path;
    if (WITH_NAME.has(op) && args[2]) {
      out.path = `${dirPath ?? `<ino ${ino}>`}/${c.name(args[2] as Deno.PointerValue)}`;
    } else if (dirPath !== undefined) out.path = dirPath || "/";
    else if (c.vfs.nodes.get(ino)?.digest) out.blob = c.vfs.nodes.get(ino)!.digest;
  } catch { /* best effort */ }
  return out;
}

class Unusable extends Error {}
/** A context any use of which throws: an op called with it stops at its first touch of `c`. */
const UNUSABLE = new Proxy({}, {
  get() {
    throw new Unusable();
  },
}) as WorkerContext;

/**
 * Has V8 compile `fn` now, before the mount is offered. V8 compiles a function at its first call,
 * and that first call of an op took 100–250 µs more than the next (measured with `--no-lazy` as
 * the control): Linux sends OPEN once per mount, so that cost was all `spfs status` ever showed
 * for `open`. Every op touches `c` before any side effect, so it throws there and does nothing.
 * @returns true when `fn` stopped at its first use of `c` (instrument_test checks every op)
 */
export function precompile(fn: Op<OpName>): boolean {
  try {
    (fn as (c: WorkerContext, ...a: unknown[]) => void)(UNUSABLE);
  } catch (e) {
    return e instanceof Unusable;
  }
  return false;
}

/**
 * Wraps `fn` as the native callback for `op` in `abi` (compiling `fn` first: `precompile`).
 * @param slowUs requests slower than this are logged with their duration (µs)
 */
export function instrument<K extends OpName>(
  c: WorkerContext,
  abi: FuseAbi,
  op: K,
  fn: Op<K>,
  latency: Int32Array,
  slowUs: number,
): Deno.UnsafeCallback {
  const hasReply = op !== "init" && op !== "destroy" && op !== "forget" && op !== "forget_multi";
  const parameters = abi.signature[op];
  if (!parameters) throw new Error(`the ${abi.flavour} FUSE ABI has no ${op} op`);
  const def = { parameters: parameters as Deno.NativeType[], result: "void" } as const;
  // histograms are indexed by the Linux slot so metrics read the same on every platform
  const hist = LINUX_SLOT[(op === "renamex" ? "rename" : op) as keyof typeof LINUX_SLOT] * LAT_BUCKETS;
  const counters = c.counters;
  precompile(fn as Op<OpName>);
  return new Deno.UnsafeCallback(def, (...args: unknown[]) => {
    counters[CTR.requests]++;
    const t0 = performance.now();
    try {
      (fn as (c: WorkerContext, ...a: unknown[]) => void)(c, ...args);
    } catch (e) {
      if (e instanceof NotUtf8) { // the caller's mistake, like ENOENT: no log, no error count
        if (hasReply) c.S.fuse_reply_err(args[0] as Deno.PointerValue, E.EILSEQ);
      } else {
        counters[CTR.errors]++;
        const err = errnoOfException(e);
        c.log(err === E.EIO ? "error" : "warning", `${op} failed: ${e instanceof Error ? e.stack : e}`, {
          op,
          errno: err,
          ...describe(c, op, args),
        });
        if (hasReply) c.S.fuse_reply_err(args[0] as Deno.PointerValue, err);
        if (errnoIn(e) === undefined) c.bug(op, e);
      }
    }
    const us = (performance.now() - t0) * 1000;
    latency[hist + bucketOf(us)]++;
    if (us > slowUs) {
      c.log("info", `slow ${op}`, { op, duration_us: Math.round(us), ...describe(c, op, args) });
    }
    counters[CTR.ancestryHits] = c.router.stats.hits;
    counters[CTR.ancestryMisses] = c.router.stats.misses;
    counters[CTR.listingHits] = c.vfs.stats.hits;
    counters[CTR.listingMisses] = c.vfs.stats.misses;
  });
}
