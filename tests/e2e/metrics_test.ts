/** Metrics: status quantiles and cache rates, the Prometheus text, and the loopback-only endpoint. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";
import { bucketOf, bucketUpperUs, parseLoopback } from "../../core/metrics.ts";

Deno.test("metrics: latency buckets bound their values within 19%; only loopback addresses are served", () => {
  for (const us of [0.5, 1, 3, 45, 1000, 123456]) {
    const b = bucketOf(us);
    assert.ok(
      bucketUpperUs(b) >= us && bucketUpperUs(b) <= Math.max(1, us * 1.19),
      `${us} µs → ${bucketUpperUs(b)}`,
    );
  }
  assert.deepEqual(parseLoopback("127.0.0.1:9464"), { hostname: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseLoopback("[::1]:80"), { hostname: "::1", port: 80 });
  for (const bad of ["0.0.0.0:9464", "10.0.0.1:1", "127.0.0.1", "example.com:80", "127.0.0.1:70000"]) {
    assert.throws(() => parseLoopback(bad), /loopback host:port/);
  }
});

fuseTest(
  "metrics: status has per-op p50/p95/p99 and cache hit rates; --prometheus and /metrics serve them",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "a/b": "x\n", "c": "y\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "m"]);
      const port = 20000 + Math.floor(Math.random() * 20000);
      const bad = await sb.spfs(["service", "--foreground", "--metrics-listen", "0.0.0.0:9464"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /must be a loopback host:port/);
      await sb.ok(["service", "--metrics-listen", `127.0.0.1:${port}`]);
      await sb.ok([
        "run",
        "m",
        "--",
        "sh",
        "-c",
        `for i in 1 2 3; do cat ${sb.mountpoint}/a/b ${sb.mountpoint}/c; done`,
      ]);
      const s = JSON.parse(await sb.ok(["status", "--json"]));
      assert.ok(
        s.ops.lookup.count > 0 && s.ops.read.count > 0,
        JSON.stringify(s.ops),
      );
      assert.ok(s.ops.lookup.p50_us <= s.ops.lookup.p95_us && s.ops.lookup.p95_us <= s.ops.lookup.p99_us);
      assert.ok(s.caches.ancestry.hits + s.caches.ancestry.misses > 0);
      assert.ok(s.caches.manifest.hit_rate > 0 && s.caches.manifest.hit_rate <= 1);
      // fds the service keeps for inodes in use (no OPEN or RELEASE comes: worker/files.ts)
      assert.ok(s.open_handles >= 0 && s.open_handles <= 2, `${s.open_handles}`);
      const prom = await sb.ok(["status", "--prometheus"]);
      assert.match(prom, /^# TYPE spfs_op_latency_seconds summary$/m);
      assert.match(prom, /^spfs_op_requests_total\{op="lookup"\} \d+$/m);
      assert.match(prom, /^spfs_op_latency_seconds\{op="read",quantile="0.99"\} [\d.e-]+$/m);
      assert.match(prom, /^spfs_cache_lookups_total\{cache="ancestry",result="hit"\} \d+$/m);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^spfs_up 1$/m);
      const missing = await fetch(`http://127.0.0.1:${port}/other`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    } finally {
      await sb.dispose();
    }
  },
);
