/** `spfs status [--json]` */
import { checkProtocol, connectAnswering } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import type { StatusResult } from "../proto/protocol.ts";
import { formatBytes, printJson, shortDigest, table } from "./output.ts";
import { runtimeFlags } from "./output.ts";

export async function status(cfg: Config, o: { json?: boolean; prometheus?: boolean }): Promise<number> {
  const { client: c } = await connectAnswering(cfg);
  const s = await c.call<StatusResult>("status");
  c.close();
  checkProtocol(s);
  if (o.prometheus) {
    const { toPrometheus } = await import("../core/metrics.ts");
    await Deno.stdout.write(new TextEncoder().encode(toPrometheus(s)));
    return 0;
  }
  if (o.json) {
    printJson(s);
    return 0;
  }
  console.log(`spfs ${s.version} (protocol ${s.protocol})`);
  console.log(`service pid   ${s.pid}`);
  console.log(`uptime        ${s.uptime_s} s`);
  console.log(`mount point   ${s.mountpoint}`);
  console.log(`storage root  ${s.storage_root}`);
  console.log(`libfuse       ${s.libfuse}`);
  console.log(`requests      ${s.fuse.requests} (${s.fuse.errors} failed)`);
  const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
  console.log(
    `caches        ancestry ${pct(s.caches.ancestry.hit_rate)} hits, manifest ${
      pct(s.caches.manifest.hit_rate)
    } hits`,
  );
  console.log(`open handles  ${s.open_handles}`);
  console.log(
    `blobs         ${s.blobs.verified} verified, ${s.blobs.corrupt} corrupt, ${s.blobs.queued} waiting`,
  );
  printTables(s);
  return 0;
}

/** The per-op latency table, the backstore line and the runtimes table of the human status. */
function printTables(s: StatusResult): void {
  const ops = Object.entries(s.ops).sort((a, b) => b[1].count - a[1].count);
  if (ops.length) {
    console.log(
      table([
        ["OP", "COUNT", "P50 µs", "P95 µs", "P99 µs"],
        ...ops.map(([op, x]) => [op, String(x.count), String(x.p50_us), String(x.p95_us), String(x.p99_us)]),
      ]).replace(/^/gm, "  "),
    );
  }
  const b = s.backstore;
  console.log(
    `backstore     ${b.path} (${b.fs_type}, ${formatBytes(b.free_bytes)} free; copy-up by ${b.copy_up}${
      b.reflink ? "" : `, no reflink: ${b.reflink_error}`
    })`,
  );
  console.log(`runtimes      ${s.runtimes.length}`);
  if (s.runtimes.length) {
    console.log(
      table([
        ["ID", "NAME", "ROOT PID", "FLAGS", "ENV SPEC", "LAYERS", "STARTED"],
        ...s.runtimes.map((
          r,
        ) => [
          r.id,
          r.name ?? "-",
          String(r.root_pid),
          runtimeFlags(r),
          r.env_spec,
          r.layers.map(shortDigest).join("+"),
          new Date(r.started_ms).toISOString(),
        ]),
      ]).replace(/^/gm, "  "),
    );
  }
}
