/** `spfs commit DIR [-t NAME] [--json]`, and `spfs commit [--runtime ID|NAME] -t NAME` for a runtime. */
import { ensureService } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import type { CommitResult } from "../proto/protocol.ts";
import { importDir } from "../core/store/importer.ts";
import { encodeLayer } from "../core/store/objects.ts";
import { openRepo } from "../core/store/repo.ts";
import { validateTagName } from "../core/store/tags.ts";
import { currentRuntime } from "../core/client/runtimes.ts";
import { formatBytes, printJson } from "./output.ts";

async function commitRuntime(
  cfg: Config,
  o: { tag?: string; runtime?: string; json?: boolean },
): Promise<number> {
  const runtime = currentRuntime(o.runtime, "spfs commit");
  if (o.tag) validateTagName(o.tag);
  const client = await ensureService(cfg);
  const r = await client.call<CommitResult>("commit", { runtime, ...(o.tag ? { tag: o.tag } : {}) });
  client.close();
  if (o.json) {
    printJson({ digest: r.layer, ...r });
    return 0;
  }
  if (r.unchanged) {
    console.error(
      `nothing new in runtime ${runtime}; tagged its stack as it is (${r.layers.length} layer(s)) as ${r.tag}`,
    );
    console.log(r.layer);
    return 0;
  }
  if (r.skipped.length) {
    console.error(
      `spfs: warning: skipped ${r.skipped.length} special file(s) (sockets, FIFOs), e.g. ${r.skipped[0]}`,
    );
  }
  console.error(
    `committed ${r.files} files, ${r.symlinks} symlinks, ${r.dirs} dirs (${
      formatBytes(r.bytes)
    }) from runtime ${runtime}${r.tag ? ` as ${r.tag}` : ""}; the runtime now has ${r.layers.length} layers`,
  );
  console.log(r.layer);
  return 0;
}

/**
 * Commits a directory (`dir`) or a runtime's scratch (no `dir`). Prints the layer digest.
 * @throws SpfsError for a bad dir, tag or runtime, or when there is nothing to commit.
 */
export async function commit(
  cfg: Config,
  dir: string | undefined,
  o: { tag?: string; runtime?: string; json?: boolean },
): Promise<number> {
  if (dir === undefined) return commitRuntime(cfg, o);
  if (o.runtime) {
    throw new SpfsError("UsageError", "give either DIR or --runtime, not both", {
      hint: "spfs commit DIR -t NAME, or spfs commit --runtime ID -t NAME",
    });
  }
  if (o.tag) validateTagName(o.tag);
  const { store, tags } = openRepo(cfg);
  const { default: $ } = await import("dax");
  let bar: ReturnType<typeof $.progress> | undefined;
  const showProgress = !o.json && Deno.stderr.isTerminal();
  const result = await importDir(dir, store, {
    scanned: (files, bytes) => {
      if (showProgress && files > 200) {
        bar = $.progress(`Importing ${files} files`, { length: bytes }).kind("bytes");
      }
    },
    advanced: (_f, bytes) => bar?.increment(bytes),
  });
  bar?.finish();
  const layer = store.putBytes(encodeLayer(result.manifest));
  store.syncDirs();
  if (o.tag) tags.set(o.tag, layer);
  if (o.json) {
    printJson({
      digest: layer,
      manifest: result.manifest,
      files: result.files,
      dirs: result.dirs,
      symlinks: result.symlinks,
      bytes: result.bytes,
      tag: o.tag ?? null,
      skipped: result.skipped,
    });
  } else {
    if (result.skipped.length) {
      console.error(
        `spfs: warning: skipped ${result.skipped.length} special file(s) (sockets, FIFOs, devices), e.g. ${
          result.skipped[0]
        }`,
      );
    }
    console.error(
      `committed ${result.files} files, ${result.symlinks} symlinks, ${result.dirs} dirs (${
        formatBytes(result.bytes)
      })${o.tag ? ` as ${o.tag}` : ""}`,
    );
    console.log(layer);
  }
  return 0;
}
