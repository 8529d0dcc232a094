/**
 * Service metrics: per-op latency histograms shared with the FUSE worker, their quantiles, and the
 * Prometheus text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
import type { StatusResult } from "../proto/protocol.ts";

/** Slots of the Int32 counter array the FUSE worker shares with the service's main thread. */
export const CTR = {
  requests: 0,
  errors: 1,
  opens: 2,
  lookups: 3,
  copyUps: 4,
  reflinks: 5,
  ancestryHits: 6,
  ancestryMisses: 7,
  listingHits: 8,
  listingMisses: 9,
  openHandles: 10,
} as const;
/** Bytes of the shared counter array. */
export const CTR_BYTES = 4 * Object.keys(CTR).length;

/** Histogram buckets per op: bucket b holds latencies up to 2^(b/4) µs (b = 0: under 1 µs). */
export const LAT_BUCKETS = 96;

/** The bucket of a latency in µs. */
export function bucketOf(us: number): number {
  return us < 1 ? 0 : Math.min(LAT_BUCKETS - 1, Math.ceil(Math.log2(us) * 4));
}

/** Upper bound in µs of bucket `b`. */
export function bucketUpperUs(b: number): number {
  return Math.round(2 ** (b / 4) * 10) / 10;
}

/** Count and p50/p95/p99 (µs, bucket upper bounds, so within 19%) of one op's histogram. */
export function summarize(
  hist: Int32Array,
  slot: number,
): { count: number; p50_us: number; p95_us: number; p99_us: number } {
  const base = slot * LAT_BUCKETS;
  let count = 0;
  for (let b = 0; b < LAT_BUCKETS; b++) count += Atomics.load(hist, base + b);
  const q = (p: number) => {
    const want = Math.ceil(count * p);
    let seen = 0;
    for (let b = 0; b < LAT_BUCKETS; b++) {
      seen += Atomics.load(hist, base + b);
      if (seen >= want) return bucketUpperUs(b);
    }
    return 0;
  };
  return { count, p50_us: q(0.5), p95_us: q(0.95), p99_us: q(0.99) };
}

/** The status as Prometheus text. */
export function toPrometheus(s: StatusResult): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${name}${labels} ${v}`);
  };
  const esc = (v: string) => v.replaceAll("\\", "\\\\").replaceAll('"', '\\"');
  metric("spfs_up", "gauge", "1 while the service answers.", [["", s.healthy ? 1 : 0]]);
  metric("spfs_uptime_seconds", "gauge", "Seconds since the service started.", [["", s.uptime_s]]);
  metric("spfs_runtimes", "gauge", "Registered runtimes.", [["", s.runtimes.length]]);
  metric("spfs_open_handles", "gauge", "Open FUSE file handles.", [["", s.open_handles]]);
  metric("spfs_blobs_verified_total", "counter", "Blobs hashed in the background and found intact.", [[
    "",
    s.blobs.verified,
  ]]);
  metric("spfs_blobs_corrupt_total", "counter", "Blobs that did not match their digest (now refused).", [[
    "",
    s.blobs.corrupt,
  ]]);
  metric("spfs_fuse_requests_total", "counter", "FUSE requests answered.", [["", s.fuse.requests]]);
  metric("spfs_fuse_errors_total", "counter", "FUSE callbacks that failed with an exception (EIO).", [[
    "",
    s.fuse.errors,
  ]]);
  metric("spfs_copy_ups_total", "counter", "Files copied up into scratch.", [["", s.fuse.copy_ups]]);
  metric(
    "spfs_op_requests_total",
    "counter",
    "FUSE requests per op.",
    Object.entries(s.ops).map(([op, o]) => [
      `{op="${esc(op)}"}`,
      o.count,
    ]),
  );
  const q: [string, number][] = [];
  for (const [op, o] of Object.entries(s.ops)) {
    q.push([`{op="${esc(op)}",quantile="0.5"}`, o.p50_us / 1e6]);
    q.push([`{op="${esc(op)}",quantile="0.95"}`, o.p95_us / 1e6]);
    q.push([`{op="${esc(op)}",quantile="0.99"}`, o.p99_us / 1e6]);
  }
  metric("spfs_op_latency_seconds", "summary", "FUSE op latency in the worker.", q);
  const c: [string, number][] = [];
  for (const [name, v] of Object.entries(s.caches)) {
    c.push([`{cache="${name}",result="hit"}`, v.hits], [`{cache="${name}",result="miss"}`, v.misses]);
  }
  metric("spfs_cache_lookups_total", "counter", "Ancestry and manifest cache lookups.", c);
  metric("spfs_backstore_free_bytes", "gauge", "Free bytes where scratch lives.", [[
    `{fs_type="${esc(s.backstore.fs_type)}"}`,
    s.backstore.free_bytes,
  ]]);
  return out.join("\n") + "\n";
}

/**
 * Parses a loopback `host:port` for the metrics endpoint.
 * @throws Error with a user-facing message for other hosts or bad ports.
 */
export function parseLoopback(addr: string): { hostname: string; port: number } {
  const m = /^(\[::1\]|127(?:\.\d{1,3}){3}|localhost):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[2]) > 65535) {
    throw new Error(`--metrics-listen must be a loopback host:port such as 127.0.0.1:9464, not "${addr}"`);
  }
  return { hostname: m[1] === "[::1]" ? "::1" : m[1], port: Number(m[2]) };
}
