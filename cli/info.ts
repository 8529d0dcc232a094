/** `spfs info REF [--json]` */
import type { Config } from "../core/config.ts";
import { resolveRef } from "../core/store/refs.ts";
import { openRepo } from "../core/store/repo.ts";
import { formatBytes, printJson } from "./output.ts";

export function info(cfg: Config, ref: string, o: { json?: boolean }): Promise<number> {
  const { store, tags } = openRepo(cfg);
  const digest = resolveRef(ref, store, tags);
  const kind = store.kindOf(digest);
  const out: Record<string, unknown> = { ref, digest, kind, size: store.size(digest) };
  if (kind !== "blob") {
    const obj = store.readObject(digest);
    if (obj.type === "spfs/layer@1") {
      out.manifest = obj.manifest;
      out.annotations = obj.annotations;
      let files = 0, bytes = 0, dirs = 0;
      const walk = (d: string) => {
        const m = store.readObject(d);
        if (m.type !== "spfs/manifest@1") return;
        for (const e of m.entries) {
          if (e.kind === "dir") {
            dirs++;
            walk(e.digest);
          } else if (e.kind === "file") {
            files++;
            bytes += e.size;
          }
        }
      };
      walk(obj.manifest);
      Object.assign(out, { files, dirs, bytes });
    } else if (obj.type === "spfs/platform@1") {
      out.layers = obj.layers;
    } else {
      out.entries = obj.entries.length;
    }
  }
  const tagged = tags.list().filter((t) => t.digest === digest).map((t) => t.name);
  out.tags = tagged;
  if (o.json) printJson(out);
  else {
    for (const [k, v] of Object.entries(out)) {
      const val = k === "bytes" || k === "size"
        ? `${v} (${formatBytes(v as number)})`
        : Array.isArray(v)
        ? v.join(", ") || "-"
        : typeof v === "object"
        ? JSON.stringify(v)
        : String(v);
      console.log(`${k.padEnd(12)} ${val}`);
    }
  }
  return Promise.resolve(0);
}
