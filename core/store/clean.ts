/**
 * `spfs clean`: removes the objects nothing reaches. Roots are given by the caller: every tag
 * target with its history, durable runtimes' layers, and running runtimes' layers.
 *
 * Safe while commits, pulls and runs go on: an object written or reused in the last `graceMs` is
 * kept (writers set its mtime, and write children before parents, so an unfinished parent's
 * children are always fresh); `liveRoots` is asked again just before deleting; and deletion goes
 * parents first, so a crash mid-clean never leaves a parent whose children are gone.
 *
 * A pack (packs.ts) goes as a whole, after the loose objects, once none of its entries is reached.
 * One with a quarter or more of its bytes unreached is rewritten with only its reached entries
 * (each verified first), and then goes; one with less is kept whole. A pack file left without an
 * index goes after the grace.
 */
import { type Digest, digestBytes } from "./objects.ts";
import type { ObjectStore } from "./store.ts";
import type { PackEntry } from "./pack_index.ts";
import { type PackInfo, packSize } from "./packs.ts";
import { childrenOf, kindOrUndefined } from "./walk.ts";

/** What a clean removed (or, with dryRun, would remove). Bytes are file sizes. */
export interface CleanReport {
  dryRun: boolean;
  removed: { objects: number; bytes: number; layers: Digest[]; platforms: Digest[] };
  kept: { objects: number; bytes: number };
  /** Unreferenced objects left because they are younger than the grace period. */
  young: number;
}

/** Adds everything `root` reaches to `out`; missing objects are skipped (check reports those). */
export function markReachable(store: ObjectStore, root: Digest, out: Set<Digest>): void {
  const stack = [root];
  while (stack.length) {
    const d = stack.pop()!;
    if (out.has(d)) continue;
    const kind = kindOrUndefined(store, d);
    if (!kind) continue;
    out.add(d);
    if (kind !== "blob") stack.push(...childrenOf(store.readObject(d)));
  }
}

/**
 * Removes unreachable objects older than `graceMs`.
 * @param roots digests to keep with all they reach
 * @param liveRoots asked again right before deleting (runtimes started meanwhile)
 */
export async function clean(
  store: ObjectStore,
  roots: Digest[],
  liveRoots: () => Promise<Digest[]>,
  o: { graceMs: number; dryRun?: boolean },
): Promise<CleanReport> {
  const keep = new Set<Digest>();
  for (const r of roots) markReachable(store, r, keep);
  const now = Date.now();
  const report: CleanReport = {
    dryRun: !!o.dryRun,
    removed: { objects: 0, bytes: 0, layers: [], platforms: [] },
    kept: { objects: 0, bytes: 0 },
    young: 0,
  };
  const isYoung = (st: Deno.FileInfo) => now - (st.mtime?.getTime() ?? now) < o.graceMs;
  const doomed = new Map<Digest, number>();
  for (const d of store.loose()) {
    const st = statOf(store.path(d));
    if (!st) continue; // removed by another clean
    if (keep.has(d)) {
      report.kept.objects++;
      report.kept.bytes += st.size;
    } else if (isYoung(st)) {
      report.young++;
    } else {
      doomed.set(d, st.size);
    }
  }
  const { packs, orphans } = store.packs.list();
  const reached = (entries: PackEntry[]) => entries.some(([h]) => keep.has(`sha256:${h}`));
  const doomedPacks: (PackInfo & { size: number })[] = [];
  const partial: (PackInfo & { size: number })[] = [];
  for (const p of packs) {
    const st = statOf(p.tar);
    if (!st) continue;
    if (reached(p.entries)) {
      if (!isYoung(st) && mostlyUnreached(p.entries, keep)) {
        partial.push({ ...p, size: st.size });
        continue;
      }
      report.kept.objects += p.entries.length;
      report.kept.bytes += st.size;
    } else if (isYoung(st)) {
      report.young++;
    } else {
      doomedPacks.push({ ...p, size: st.size });
    }
  }
  for (const r of await liveRoots()) markReachable(store, r, keep);
  const order = parentsFirst(store, [...doomed.keys()].filter((d) => !keep.has(d)));
  for (const d of order) {
    const kind = kindOrUndefined(store, d);
    if (kind === "layer") report.removed.layers.push(d);
    if (kind === "platform") report.removed.platforms.push(d);
    if (!o.dryRun) {
      try {
        Deno.removeSync(store.path(d));
      } catch { /* already gone */ }
    }
    report.removed.objects++;
    report.removed.bytes += doomed.get(d)!;
  }
  for (const p of doomedPacks) {
    if (reached(p.entries)) { // a run started meanwhile reaches it
      report.kept.objects += p.entries.length;
      report.kept.bytes += p.size;
      continue;
    }
    if (!o.dryRun) store.packs.remove(p.hex);
    report.removed.objects += p.entries.length;
    report.removed.bytes += p.size;
  }
  for (const p of partial) {
    const live = p.entries.filter(([h]) => keep.has(`sha256:${h}`)); // runs started meanwhile count
    const size = o.dryRun ? packSize(live.map((e) => e[2])) : await repack(store, p, live, isYoung);
    if (size === undefined) { // kept whole
      report.kept.objects += p.entries.length;
      report.kept.bytes += p.size;
      continue;
    }
    report.kept.objects += live.length;
    report.kept.bytes += size;
    report.removed.objects += p.entries.length - live.length;
    report.removed.bytes += p.size - size;
  }
  for (const tar of orphans) {
    const st = statOf(tar);
    if (!st || isYoung(st)) continue;
    report.removed.bytes += st.size;
    if (!o.dryRun) {
      try {
        Deno.removeSync(tar);
      } catch { /* already gone */ }
    }
  }
  return report;
}

/** True when a quarter or more of a pack's object bytes are not in `keep`. */
function mostlyUnreached(entries: PackEntry[], keep: Set<Digest>): boolean {
  let all = 0, unreached = 0;
  for (const [h, , size] of entries) {
    all += size;
    if (!keep.has(`sha256:${h}`)) unreached += size;
  }
  return unreached > 0 && unreached * 4 >= all;
}

/**
 * Writes the `live` entries of pack `p` into a new pack (in their old order, each checked against
 * its digest), then removes `p`. Returns the new pack's size in bytes, or undefined when `p` is
 * kept whole: an entry does not match its digest (so `spfs check` still finds it), or `p` was used
 * meanwhile (`isYoung` of its stat now; the new pack then stays too, and the next clean sorts it out).
 * @throws SpfsError StorageError from writing the new pack; Deno errors from reading `p`.
 */
async function repack(
  store: ObjectStore,
  p: PackInfo,
  live: PackEntry[],
  isYoung: (st: Deno.FileInfo) => boolean,
): Promise<number | undefined> {
  if (live.length === p.entries.length) return undefined; // a run started meanwhile reaches it all
  let tar: Uint8Array;
  try {
    tar = Deno.readFileSync(p.tar);
  } catch {
    return undefined; // removed by another clean
  }
  const objects: { digest: Digest; bytes: Uint8Array }[] = [];
  for (const [h, offset, size] of live.toSorted((a, b) => a[1] - b[1])) {
    const digest: Digest = `sha256:${h}`;
    const bytes = tar.subarray(offset, offset + size);
    if (bytes.length !== size || digestBytes(bytes) !== digest) return undefined;
    objects.push({ digest, bytes });
  }
  const written = await store.putObjects(objects);
  const st = statOf(p.tar);
  if (!st || isYoung(st) || written === `sha256:${p.hex}`) return undefined;
  store.packs.remove(p.hex);
  return packSize(live.map((e) => e[2]));
}

/** A file's stat, or undefined when it is gone (removed by a concurrent clean). */
function statOf(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

/** Orders objects so each comes before anything it references (platform → layer → manifests → blobs). */
function parentsFirst(store: ObjectStore, digests: Digest[]): Digest[] {
  const set = new Set(digests);
  const children = new Map<Digest, Digest[]>();
  const refs = new Map<Digest, number>(digests.map((d) => [d, 0]));
  for (const d of digests) {
    const kind = kindOrUndefined(store, d);
    if (!kind || kind === "blob") continue;
    const inSet = [...new Set(childrenOf(store.readObject(d)))].filter((k) => set.has(k));
    children.set(d, inSet);
    for (const k of inSet) refs.set(k, refs.get(k)! + 1);
  }
  const out: Digest[] = [];
  const queue = digests.filter((d) => refs.get(d) === 0);
  while (queue.length) {
    const d = queue.pop()!;
    out.push(d);
    for (const k of children.get(d) ?? []) {
      const n = refs.get(k)! - 1;
      refs.set(k, n);
      if (n === 0) queue.push(k);
    }
  }
  return out;
}
