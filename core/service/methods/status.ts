/** `status`: health plus runtimes, backstore, request counters, per-op latency and cache rates. */
import { OPS } from "../../../ffi/fuse/lowlevel.ts";
import { CTR, summarize } from "../../metrics.ts";
import type { StatusResult } from "../../../proto/protocol.ts";
import { freeBytes } from "../backstore.ts";
import type { Service } from "../state.ts";
import { health } from "./health.ts";

const rate = (hits: number, misses: number) => ({
  hits,
  misses,
  hit_rate: hits + misses ? Math.round((hits / (hits + misses)) * 1000) / 1000 : 0,
});

export function status(s: Service): StatusResult {
  const c = (i: number) => Atomics.load(s.counters, i);
  return {
    ...health(s),
    mountpoint: s.cfg.mountpoint,
    storage_root: s.cfg.storageRoot,
    libfuse: s.worker.libfuse,
    runtimes: [...s.runtimes.live.values()].map((r) => s.runtimes.info(r)),
    backstore: { ...s.backstore, free_bytes: freeBytes(s.backstore.path) },
    fuse: {
      requests: c(CTR.requests),
      errors: c(CTR.errors),
      opens: c(CTR.opens),
      lookups: c(CTR.lookups),
      copy_ups: c(CTR.copyUps),
      reflink_copy_ups: c(CTR.reflinks),
    },
    ops: Object.fromEntries(
      Object.entries(OPS).map(([op, slot]) => [op, summarize(s.latency, slot)]).filter(([, q]) =>
        (q as { count: number }).count > 0
      ),
    ),
    caches: {
      ancestry: rate(c(CTR.ancestryHits), c(CTR.ancestryMisses)),
      manifest: rate(c(CTR.listingHits), c(CTR.listingMisses)),
    },
    open_handles: c(CTR.openHandles),
    blobs: {
      verified: s.worker.verifier.verified,
      corrupt: s.worker.verifier.corrupt,
      queued: s.worker.verifier.queued,
    },
  };
}
