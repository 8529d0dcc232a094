/** `spfs remote list|add|remove`, `spfs push` and `spfs pull`. */
import type { Config } from "../core/config.ts";
import { writeRemote } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { parseRemote } from "../core/remote/address.ts";
import { Progress } from "../core/remote/remote.ts";
import { pull as pullRefs, push as pushRefs, remoteFor, type SyncSummary } from "../core/remote/sync.ts";
import { openRepo } from "../core/store/repo.ts";
import { formatBytes, printJson, table } from "./output.ts";

/** `spfs remote list`: name, address, and where the config lives. */
export function list(cfg: Config, o: { json?: boolean }): Promise<number> {
  const rows = Object.entries(cfg.remotes).map(([name, r]) => ({ name, ...r }));
  if (o.json) printJson({ configFile: cfg.configFile, remotes: rows });
  else if (!rows.length) {
    console.error(`no remotes in ${cfg.configFile}; add one with \`spfs remote add origin oci://HOST/REPO\``);
  } else {
    console.log(
      table([
        ["NAME", "ADDRESS"],
        ...rows.map((r) => [r.name, r.address + (r.insecure ? " (insecure)" : "")]),
      ]),
    );
  }
  return Promise.resolve(0);
}

/** `spfs remote add NAME ADDRESS [--insecure]`: checks the address, then writes the config file. */
export async function add(
  cfg: Config,
  name: string,
  address: string,
  o: { insecure?: boolean; json?: boolean },
): Promise<number> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new SpfsError("UsageError", `invalid remote name "${name}"`, {
      hint: "use letters, digits, . _ -",
    });
  }
  const r = { address, ...(o.insecure ? { insecure: true } : {}) };
  const parsed = parseRemote(name, r);
  await writeRemote(cfg.configFile, name, r);
  if (o.json) printJson({ name, ...r, kind: parsed.kind, configFile: cfg.configFile });
  else console.log(`remote ${name} -> ${address} (in ${cfg.configFile})`);
  return 0;
}

/** `spfs remote remove NAME`. */
export async function remove(cfg: Config, name: string, o: { json?: boolean }): Promise<number> {
  if (!cfg.remotes[name]) {
    throw new SpfsError("UsageError", `no remote named "${name}" in ${cfg.configFile}`, {
      hint: "list them with `spfs remote list`",
    });
  }
  await writeRemote(cfg.configFile, name, undefined);
  if (o.json) printJson({ removed: name });
  else console.log(`removed remote ${name}`);
  return 0;
}

/** Options of push and pull. */
export interface SyncOpts {
  json?: boolean;
  to?: string;
  from?: string;
}

/** `spfs push REF… [--to R]`. */
export function push(cfg: Config, refs: string[], o: SyncOpts): Promise<number> {
  return transfer(cfg, refs, o, "push", o.to);
}

/** `spfs pull REF… [--from R]`. */
export function pull(cfg: Config, refs: string[], o: SyncOpts): Promise<number> {
  return transfer(cfg, refs, o, "pull", o.from);
}

async function transfer(
  cfg: Config,
  refs: string[],
  o: SyncOpts,
  verb: "push" | "pull",
  remoteName?: string,
): Promise<number> {
  const remote = await remoteFor(cfg, remoteName);
  const bar = progressBar(verb, o.json);
  const move = verb === "push" ? pushRefs : pullRefs;
  const s = await move(openRepo(cfg), remote, refs, bar.progress).finally(bar.done);
  report(`${verb}ed`, s, o.json);
  return 0;
}

function report(verb: string, s: SyncSummary, json?: boolean): void {
  if (json) return printJson(s);
  for (const r of s.refs) console.log(`${r.ref} -> ${r.digest} (${r.kind})`);
  console.error(
    `${verb} ${s.layers.moved} layer(s), ${s.objects.moved} object(s), ${formatBytes(s.bytes)} ` +
      `in ${(s.ms / 1000).toFixed(1)} s; ${s.layers.skipped} layer(s) already at ${
        verb === "pushed" ? `remote ${s.remote}` : "this store"
      }`,
  );
}

/** A progress line on stderr when it is a terminal (layers, objects, bytes); silent otherwise. */
function progressBar(verb: string, json?: boolean): { progress: Progress; done: () => void } {
  const progress = new Progress();
  if (json || !Deno.stderr.isTerminal()) return { progress, done: () => {} };
  const enc = new TextEncoder();
  let last = 0;
  const draw = () => {
    const p = progress;
    const pct = p.bytesTotal ? ` ${Math.min(100, Math.floor((100 * p.bytes) / p.bytesTotal))}%` : "";
    Deno.stderr.writeSync(enc.encode(
      `\r\x1b[K${verb}: layers ${p.layersDone}/${p.layers}  objects ${p.objects}  ` +
        `${formatBytes(p.bytes)}${p.bytesTotal ? ` of ${formatBytes(p.bytesTotal)}` : ""}${pct}`,
    ));
  };
  progress.onChange = () => {
    const now = performance.now();
    if (now - last > 100) {
      last = now;
      draw();
    }
  };
  return { progress, done: () => Deno.stderr.writeSync(enc.encode("\r\x1b[K")) };
}
