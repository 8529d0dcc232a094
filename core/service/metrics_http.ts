/** The optional Prometheus endpoint: GET /metrics on a loopback address only. */
import type { Logger } from "../log.ts";
import { toPrometheus } from "../metrics.ts";
import type { StatusResult } from "../../proto/protocol.ts";

/** Serves `/metrics` from `status()`; logs and returns undefined when the address cannot be bound. */
export function serveMetrics(
  addr: { hostname: string; port: number },
  status: () => StatusResult,
  log: Logger,
): Deno.HttpServer | undefined {
  try {
    const server = Deno.serve(
      { ...addr, onListen: () => {} },
      (req) =>
        new URL(req.url).pathname === "/metrics"
          ? new Response(toPrometheus(status()), { headers: { "content-type": "text/plain; version=0.0.4" } })
          : new Response("not found: try /metrics\n", { status: 404 }),
    );
    log.info("metrics on http://{host}:{port}/metrics", { host: addr.hostname, port: addr.port });
    return server;
  } catch (e) {
    log.error("cannot serve metrics on {host}:{port}: {error}", { ...addr, error: String(e) });
    return undefined;
  }
}
