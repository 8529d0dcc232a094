/**
 * `spfs check`: verifies every object's bytes against its digest, and that every reference
 * (manifest entries, layers, platforms, tags) points at an object that exists.
 */
import { decodeObject, type Digest, looksStructured } from "./objects.ts";
import { type ObjectStore, readSlice } from "./store.ts";
import type { TagDb } from "./tags.ts";
import { childrenOf } from "./walk.ts";

/** What `check` found. `missing` lists "referrer -> digest" pairs. */
export interface CheckReport {
  objects: number;
  bytes: number;
  corrupt: Digest[];
  missing: string[];
}

/** Checks the whole store. Reads every object once; progress gets (done, total) object counts. */
export async function checkStore(
  store: ObjectStore,
  tags: TagDb,
  progress?: (done: number, total: number) => void,
): Promise<CheckReport> {
  const all = [...store.all()];
  const have = new Set(all);
  const corrupt = new Set(await store.verifyAll((done) => progress?.(done, all.length)));
  const missing: string[] = [];
  let bytes = 0;
  const need = (from: string, d: string) => {
    if (d && !have.has(d)) missing.push(`${from} -> ${d}`);
  };
  for (const d of all) {
    const s = store.locate(d);
    if (!s) continue; // removed by a clean meanwhile
    bytes += s.size;
    if (corrupt.has(d)) continue;
    if (!looksStructured(readSlice({ ...s, size: Math.min(32, s.size) }))) continue;
    const obj = decodeObject(readSlice(s), d);
    for (const c of childrenOf(obj)) need(d, c);
  }
  for (const t of tags.list()) need(`tag ${t.name}`, t.digest);
  return { objects: all.length, bytes, corrupt: [...corrupt], missing };
}
