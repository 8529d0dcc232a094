/**
 * Tree diffs: flatten a layer stack into path → entry, apply a runtime's scratch dir on top (the
 * same rules as the overlay: masks delete, opaque dirs hide lower entries, scratch wins), and
 * compare two flattened trees.
 */
import { type Digest, digestBytes, digestFileSync } from "../store/objects.ts";
import { parseScratchName, WH_PREFIX } from "../store/scratch.ts";
import type { ObjectStore } from "../store/store.ts";
import { Vfs } from "../fs/vfs.ts";

/** One path of a flattened tree. `digest` is the blob (files, symlinks); dirs have none. */
export interface FlatEntry {
  kind: "file" | "dir" | "symlink" | "other";
  mode: number;
  digest?: Digest;
}

/** One difference. Paths start with "/". */
export interface Change {
  op: "added" | "changed" | "removed";
  path: string;
  kind: FlatEntry["kind"];
}

/** Every path of a layer stack (bottom to top) as the merged view shows it. */
export function flattenStack(store: ObjectStore, layers: Digest[]): Map<string, FlatEntry> {
  const vfs = new Vfs(store, 0, 0);
  const out = new Map<string, FlatEntry>();
  const walk = (path: string, sources: Digest[]) => {
    for (const [name, c] of vfs.childrenOf(sources)) {
      const p = `${path}/${name}`;
      out.set(p, { kind: c.kind, mode: c.mode, digest: c.digest });
      if (c.kind === "dir") walk(p, c.sources!);
    }
  };
  walk("", vfs.view(layers).rootSources);
  return out;
}

/** Applies a scratch dir onto a flattened tree in place (hashing scratch files). */
export function applyScratch(tree: Map<string, FlatEntry>, scratch: string): Map<string, FlatEntry> {
  const dropBelow = (p: string) => {
    for (const k of [...tree.keys()]) if (k === p || k.startsWith(p + "/")) tree.delete(k);
  };
  const walk = (dir: string, path: string) => {
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    const parse = (name: string) => parseScratchName(name, () => Deno.readTextFileSync(`${dir}/${name}`));
    if (names.some((n) => parse(n).kind === "opaque")) {
      for (const k of [...tree.keys()]) if (k.startsWith(path + "/")) tree.delete(k);
    }
    for (const name of names) {
      const sn = parse(name);
      if (sn.kind === "mask") dropBelow(`${path}/${sn.name}`);
      else if (sn.kind === "meta") {
        const m = JSON.parse(Deno.readTextFileSync(`${dir}/${name}`));
        tree.set(`${path}/${sn.name}`, { kind: "file", mode: m.mode, digest: m.digest });
      }
    }
    for (const name of names) {
      if (name.startsWith(WH_PREFIX)) continue;
      const p = `${path}/${name}`, full = `${dir}/${name}`;
      const st = Deno.lstatSync(full);
      const mode = (st.mode ?? 0) & 0o7777;
      if (st.isDirectory) {
        if (tree.get(p)?.kind !== "dir") dropBelow(p);
        tree.set(p, { kind: "dir", mode });
        walk(full, p);
      } else {
        dropBelow(p);
        if (st.isFile) tree.set(p, { kind: "file", mode, digest: digestFileSync(full) });
        else if (st.isSymlink) {
          const target = new TextEncoder().encode(Deno.readLinkSync(full));
          tree.set(p, { kind: "symlink", mode: 0o777, digest: digestBytes(target) });
        } else tree.set(p, { kind: "other", mode });
      }
    }
  };
  walk(scratch, "");
  return tree;
}

/** Differences from `a` to `b`, sorted by path. A removed dir is listed once, without its children. */
export function diffTrees(a: Map<string, FlatEntry>, b: Map<string, FlatEntry>): Change[] {
  const out: Change[] = [];
  for (const [p, e] of b) {
    const old = a.get(p);
    if (!old) out.push({ op: "added", path: p, kind: e.kind });
    else if (old.kind !== e.kind || old.mode !== e.mode || old.digest !== e.digest) {
      out.push({ op: "changed", path: p, kind: e.kind });
    }
  }
  const removed = [...a.keys()].filter((p) => !b.has(p)).sort();
  let last = "";
  for (const p of removed) {
    if (last && p.startsWith(last + "/")) continue;
    out.push({ op: "removed", path: p, kind: a.get(p)!.kind });
    last = p;
  }
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}
