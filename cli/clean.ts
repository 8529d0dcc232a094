/** `spfs clean [--dry-run] [--grace S] [--json]` */
import { connectAnswering, type RpcClient, withTimeout } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { RuntimeDb } from "../core/runtime/records.ts";
import { clean as cleanStore } from "../core/store/clean.ts";
import type { Digest } from "../core/store/objects.ts";
import { openRepo } from "../core/store/repo.ts";
import type { StatusResult } from "../proto/protocol.ts";
import { formatBytes, printJson, shortDigest } from "./output.ts";

/** Layers of the runtimes the service is running now; [] when no service runs. */
async function liveLayers(cfg: Config): Promise<Digest[]> {
  let c: RpcClient;
  try {
    c = (await connectAnswering(cfg)).client;
  } catch (e) {
    if (e instanceof SpfsError && e.code === "ServiceNotRunning") return [];
    throw e;
  }
  try {
    const s = await withTimeout(
      c.call<StatusResult>("status"),
      10_000,
      () =>
        new SpfsError("ServiceStuck", "the service did not answer `status` within 10 s", {
          hint: "clean will not guess which layers are in use: run `spfs doctor`",
        }),
    );
    return s.runtimes.flatMap((r) => r.layers);
  } finally {
    c.close();
  }
}

/** Removes objects no tag (with history), durable runtime or running runtime reaches. */
export async function clean(
  cfg: Config,
  o: { dryRun?: boolean; grace?: string; json?: boolean },
): Promise<number> {
  const graceS = Number(o.grace ?? 600);
  if (!Number.isFinite(graceS) || graceS < 0) {
    throw new SpfsError("UsageError", `--grace must be a number of seconds >= 0, not "${o.grace}"`, {
      hint: "e.g. --grace 600 (the default) keeps objects written in the last 10 minutes",
    });
  }
  const { store, tags } = openRepo(cfg);
  const durable = new RuntimeDb(cfg.storageRoot).all().flatMap((r) => r.layers);
  const roots = [...tags.allTargets(), ...durable, ...await liveLayers(cfg)];
  const r = await cleanStore(store, roots, () => liveLayers(cfg), {
    graceMs: graceS * 1000,
    dryRun: o.dryRun,
  });
  if (o.json) printJson(r);
  else {
    const verb = o.dryRun ? "would remove" : "removed";
    for (const l of r.removed.layers) console.log(`${verb} layer ${shortDigest(l)}`);
    for (const p of r.removed.platforms) console.log(`${verb} platform ${shortDigest(p)}`);
    console.error(
      `${verb} ${r.removed.objects} object(s), ${formatBytes(r.removed.bytes)}; kept ${r.kept.objects} ` +
        `(${formatBytes(r.kept.bytes)})${
          r.young ? `; ${r.young} unreferenced but newer than ${graceS} s` : ""
        }`,
    );
  }
  return 0;
}
