/** `spfs diff [REF [REF]] [--runtime ID|NAME] [--json]` */
import type { Config } from "../core/config.ts";
import { applyScratch, diffTrees, flattenStack } from "../core/runtime/diff.ts";
import { SpfsError } from "../core/errors.ts";
import { resolveSpec } from "../core/store/refs.ts";
import { openRepo } from "../core/store/repo.ts";
import { currentRuntime, findRuntime } from "../core/client/runtimes.ts";
import { printJson } from "./output.ts";

const MARK = { added: "A", changed: "M", removed: "D" } as const;

/**
 * Prints changes: a runtime's uncommitted changes (no refs), the runtime's current state against
 * REF (one ref), or REF B against REF A (two refs). Exit 0 either way; `--json` for scripts.
 */
export async function diff(
  cfg: Config,
  refs: string[],
  o: { runtime?: string; json?: boolean },
): Promise<number> {
  if (refs.length > 2) {
    throw new SpfsError("UsageError", "give at most two refs", { hint: "spfs diff [A [B]]" });
  }
  const { store, tags } = openRepo(cfg);
  const flat = (spec: string) => flattenStack(store, resolveSpec(spec, store, tags).layers);
  let changes;
  if (refs.length === 2) changes = diffTrees(flat(refs[0]), flat(refs[1]));
  else {
    const rt = await findRuntime(cfg, currentRuntime(o.runtime, "spfs diff"));
    const base = refs.length === 1 ? flat(refs[0]) : flattenStack(store, rt.layers);
    const current = flattenStack(store, rt.layers);
    if (rt.scratch) applyScratch(current, rt.scratch);
    changes = diffTrees(base, current);
  }
  if (o.json) printJson(changes);
  else for (const ch of changes) console.log(`${MARK[ch.op]} ${ch.path}${ch.kind === "dir" ? "/" : ""}`);
  return 0;
}
