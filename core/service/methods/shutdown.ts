/** `shutdown`: replies first, then stops the service. */
import type { Service } from "../state.ts";

export function shutdown(s: Service): { stopping: true } {
  queueMicrotask(() => void s.stop("rpc shutdown"));
  return { stopping: true };
}
