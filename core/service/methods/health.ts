/** `health`: is the service up, which version and protocol. */
import { VERSION } from "../../version.ts";
import { type HealthResult, PROTOCOL_VERSION } from "../../../proto/protocol.ts";
import type { Service } from "../state.ts";

export function health(s: Service): HealthResult {
  return {
    healthy: true,
    version: VERSION,
    protocol: PROTOCOL_VERSION,
    uptime_s: Math.round((performance.now() - s.started) / 100) / 10,
    pid: Deno.pid,
  };
}
