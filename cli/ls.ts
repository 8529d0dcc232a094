/** `spfs ls SPEC [PATH] [--json]`: the merged listing, read from the store (no service needed). */
import type { Config } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { resolveSpec } from "../core/store/refs.ts";
import { openRepo } from "../core/store/repo.ts";
import { type Child, Vfs } from "../core/fs/vfs.ts";
import { printJson, table } from "./output.ts";

function modeString(c: Child): string {
  const t = c.kind === "dir" ? "d" : c.kind === "symlink" ? "l" : "-";
  const bits = "rwxrwxrwx";
  return t + [...bits].map((ch, i) => (c.mode & (1 << (8 - i)) ? ch : "-")).join("");
}

export function ls(cfg: Config, spec: string, path: string, o: { json?: boolean }): Promise<number> {
  const { store, tags } = openRepo(cfg);
  const resolved = resolveSpec(spec, store, tags);
  const vfs = new Vfs(store, 0, 0);
  const view = vfs.view(resolved.layers);
  let cur = { path: "", sources: view.rootSources };
  const stack = view.stackKey;
  const parts = path.split("/").filter((p) => p && p !== ".");
  let entries: [string, Child][] | undefined;
  for (const [i, part] of parts.entries()) {
    const c = vfs.children(stack, cur.path, cur.sources).get(part);
    if (!c) {
      const parent = parts.slice(0, i).join("/") || "/";
      throw new SpfsError("PathNotFound", `${path} does not exist in ${spec}`, {
        hint: `list its parent: spfs ls ${spec} ${parent}`,
      });
    }
    if (c.kind !== "dir") {
      if (i < parts.length - 1) {
        throw new SpfsError(
          "NotADirectory",
          `${parts.slice(0, i + 1).join("/")} is a ${c.kind} in ${spec}, not a directory`,
        );
      }
      entries = [[part, c]]; // like ls(1) of a file: that one entry
      break;
    }
    cur = { path: `${cur.path}/${part}`, sources: c.sources! };
  }
  entries ??= [...vfs.children(stack, cur.path, cur.sources)].sort((
    [a],
    [b],
  ) => (a < b ? -1 : a > b ? 1 : 0));
  if (o.json) {
    printJson(
      entries.map(([name, c]) => ({
        name,
        kind: c.kind,
        mode: c.mode,
        size: c.size,
        digest: c.digest ?? c.sources?.at(-1),
      })),
    );
  } else if (entries.length) {
    console.log(
      table(
        entries.map((
          [name, c],
        ) => [modeString(c), String(c.size).padStart(10), name + (c.kind === "dir" ? "/" : "")]),
      ),
    );
  }
  return Promise.resolve(0);
}
