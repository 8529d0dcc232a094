/** `spfs commit DIR [-t NAME] [--json]` */
import type { Config } from "../core/config.ts";
import { importDir } from "../core/importer.ts";
import { encodeLayer } from "../core/objects.ts";
import { openRepo } from "../core/repo.ts";
import { validateTagName } from "../core/tags.ts";
import { formatBytes, printJson } from "./output.ts";

export async function commit(cfg: Config, dir: string, o: { tag?: string; json?: boolean }): Promise<number> {
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
