/** `spfs runtime list|info|remove|prune` */
import { ensureService } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { fetchAll, findRuntime } from "../core/client/runtimes.ts";
import { printJson, runtimeFlags, shortDigest, table } from "./output.ts";

/** Prints every running runtime and every durable one. */
export async function list(cfg: Config, o: { json?: boolean }): Promise<number> {
  const all = await fetchAll(cfg);
  if (o.json) {
    printJson(all);
    return 0;
  }
  if (all.length === 0) {
    console.error("no runtimes (start one with `spfs run --edit SPEC -- CMD`)");
    return 0;
  }
  console.log(table([
    ["ID", "NAME", "STATE", "ROOT PID", "FLAGS", "ENV SPEC", "LAYERS"],
    ...all.map((r) => [
      r.id,
      r.name ?? "-",
      r.active ? "running" : "stopped",
      r.active ? String(r.root_pid) : "-",
      runtimeFlags(r),
      r.env_spec,
      String(r.layers.length),
    ]),
  ]));
  return 0;
}

/** Prints one runtime. */
export async function info(cfg: Config, ref: string, o: { json?: boolean }): Promise<number> {
  const r = await findRuntime(cfg, ref);
  if (o.json) {
    printJson(r);
    return 0;
  }
  console.log(`id         ${r.id}`);
  console.log(`name       ${r.name ?? "-"}`);
  console.log(`state      ${r.active ? `running (root pid ${r.root_pid})` : "stopped"}`);
  console.log(`flags      ${runtimeFlags(r)}`);
  console.log(`env spec   ${r.env_spec}`);
  console.log(`scratch    ${r.scratch ?? "-"}`);
  console.log(`layers     ${r.layers.map(shortDigest).join(" + ")}`);
  return 0;
}

/** Removes stopped durable runtimes by id or name. */
export async function remove(cfg: Config, refs: string[], o: { json?: boolean }): Promise<number> {
  const c = await ensureService(cfg);
  const removed: string[] = [];
  try {
    for (const ref of refs) {
      const r = await c.call<{ removed: string[] }>("runtime_remove", { runtime: ref });
      removed.push(...r.removed);
      if (!o.json) console.error(`removed runtime ${ref}`);
    }
  } finally {
    c.close();
  }
  if (o.json) printJson({ removed });
  return 0;
}

/** Removes every runtime whose root process is gone, after confirmation. */
export async function prune(
  cfg: Config,
  o: { dryRun?: boolean; yes?: boolean; json?: boolean },
): Promise<number> {
  const c = await ensureService(cfg);
  try {
    const plan = await c.call<{ removed: string[] }>("runtime_prune", { dry_run: true });
    if (plan.removed.length === 0 || o.dryRun) {
      if (o.json) printJson({ removed: [], would_remove: plan.removed, dry_run: !!o.dryRun });
      else if (plan.removed.length === 0) console.error("nothing to prune");
      else console.log(plan.removed.join("\n"));
      return 0;
    }
    if (!o.yes) {
      if (!Deno.stdin.isTerminal()) {
        throw new SpfsError(
          "UsageError",
          `prune would delete ${plan.removed.length} runtime(s) and their changes`,
          {
            hint: "pass --yes to confirm, or --dry-run to list them",
          },
        );
      }
      const answer = prompt(`delete ${plan.removed.length} stopped runtime(s) and their scratch dirs? [y/N]`);
      if (!/^y(es)?$/i.test(answer ?? "")) return 1;
    }
    const r = await c.call<{ removed: string[] }>("runtime_prune", {});
    if (o.json) printJson({ removed: r.removed });
    else console.error(`removed ${r.removed.length} runtime(s)`);
    return 0;
  } finally {
    c.close();
  }
}
