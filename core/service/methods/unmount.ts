/** `unmount`: ends the runtimes of a root pid or an id. */
import type { UnmountParams } from "../../../proto/protocol.ts";
import type { Service } from "../state.ts";

export function unmount(s: Service, p: UnmountParams): { removed: number } {
  let removed = 0;
  for (const rt of [...s.runtimes.live.values()]) {
    if ((p.id && rt.id === p.id) || (p.pid && rt.root_pid === p.pid)) {
      s.runtimes.remove(rt, "unmount");
      removed++;
    }
  }
  return { removed };
}
