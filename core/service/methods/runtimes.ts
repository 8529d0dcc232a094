/** `runtimes`, `runtime_remove`, `runtime_prune`: the runtime list and the clean-up of stopped ones. */
import { SpfsError } from "../../errors.ts";
import type { RuntimeInfo } from "../../../proto/protocol.ts";
import type { Service } from "../state.ts";

/** Running runtimes, then durable ones that are not running. */
export function runtimes(s: Service): { runtimes: RuntimeInfo[] } {
  return {
    runtimes: [...[...s.runtimes.live.values()].map((r) => s.runtimes.info(r)), ...s.runtimes.inactive()],
  };
}

/** Removes a stopped durable runtime and its scratch. */
export async function runtime_remove(
  s: Service,
  p: { runtime: string; force?: boolean },
): Promise<{ removed: string[] }> {
  const live = s.runtimes.find(p.runtime);
  if (live) {
    throw new SpfsError("RuntimeInUse", `runtime ${p.runtime} is running (root pid ${live.root_pid})`, {
      hint: `let it exit first (kill ${live.root_pid}), then remove it`,
    });
  }
  const rec = s.rdb.find(p.runtime);
  if (!rec) throw s.runtimes.notFound(p.runtime);
  s.rdb.delete(rec.id);
  await s.rdb.removeDirs(rec.id);
  s.log.info("removed runtime {runtime}", { runtime: rec.id });
  return { removed: [rec.id] };
}

/** Removes every stopped durable runtime and any runtime dir nobody knows. */
export async function runtime_prune(
  s: Service,
  p?: { dry_run?: boolean },
): Promise<{ removed: string[]; dry_run: boolean }> {
  const gone = s.runtimes.inactive();
  const known = new Set([...s.runtimes.live.keys(), ...s.rdb.all().map((r) => r.id)]);
  const stray = s.rdb.dirIds().filter((id) => !known.has(id));
  if (!p?.dry_run) {
    for (const r of gone) {
      s.rdb.delete(r.id);
      await s.rdb.removeDirs(r.id);
    }
    for (const id of stray) await s.rdb.removeDirs(id);
  }
  return { removed: [...gone.map((r) => r.id), ...stray], dry_run: !!p?.dry_run };
}
