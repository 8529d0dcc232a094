/** The multi-pack index (core/store/pack_index.ts) and how Packs answers from it. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildTar } from "../../../../core/remote/oci/mapping.ts";
import { type Digest, digestBytes } from "../../../../core/store/objects.ts";
import { MultiPackIndex, type PackEntry } from "../../../../core/store/pack_index.ts";
import { ObjectStore } from "../../../../core/store/store.ts";

const enc = new TextEncoder();
const hexOf = (s: string) => digestBytes(enc.encode(s)).slice(7);

Deno.test("multi-pack index: built, merged and read back; duplicates and dropped packs", () => {
  const [p1, p2, p3] = ["pack-1", "pack-2", "pack-3"].map(hexOf);
  const objs = Array.from({ length: 600 }, (_, i) => hexOf(`object ${i}`));
  const dup = objs[0];
  const first = new Map<string, PackEntry[]>([
    [p1, objs.slice(0, 300).map((h, i) => [h, 512 * (i + 1), i])],
    [p2, [[dup, 5_000_000_000, 7], ...objs.slice(300, 400).map((h, i): PackEntry => [h, 1024 * i, 1 << 19])]],
  ]);
  const m1 = MultiPackIndex.decode(MultiPackIndex.build(undefined, new Set(), first))!;
  assert.ok(m1);
  assert.deepEqual(m1.packs, [p1, p2].sort());
  assert.equal(m1.length, 401);
  const all = () => true;
  const packNo = (h: string) => m1.packs.indexOf(h);
  for (const [pack, entries] of first) {
    for (const [h, off, size] of entries) {
      if (h === dup) continue;
      assert.deepEqual(m1.find(h, all), [packNo(pack), off, size]);
    }
  }
  // an object in two packs: found in whichever pack is still usable
  const inP2 = m1.find(dup, (n) => n === packNo(p2));
  assert.deepEqual(inP2, [packNo(p2), 5_000_000_000, 7], "offsets past 4 GiB survive");
  assert.deepEqual(m1.find(dup, (n) => n === packNo(p1))?.[1], 512);
  assert.equal(m1.find(dup, () => false), undefined);
  assert.equal(m1.find(objs[500], all), undefined);
  assert.equal(m1.find("not hex", all), undefined);
  const ranged = Array.from({ length: 256 }, (_, b) => m1.range(b)).reduce((a, [f, t]) => a + t - f, 0);
  assert.equal(ranged, 401);

  // merge: drop p1, keep p2, add p3 (and a pack with no entries, which is still listed)
  const p4 = hexOf("pack-4");
  const m2 = MultiPackIndex.decode(
    MultiPackIndex.build(
      m1,
      new Set([p2]),
      new Map<string, PackEntry[]>([[p3, objs.slice(400).map((h, i) => [h, i, i])], [p4, []]]),
    ),
  )!;
  assert.deepEqual(m2.packs, [p2, p3, p4].sort());
  assert.equal(m2.length, 301);
  assert.equal(m2.find(objs[1], all), undefined, "p1's objects are gone");
  assert.deepEqual(m2.find(dup, all), [m2.packs.indexOf(p2), 5_000_000_000, 7]);
  assert.deepEqual(m2.find(objs[350], all), [m2.packs.indexOf(p2), 1024 * 50, 1 << 19]);
  assert.deepEqual(m2.find(objs[599], all), [m2.packs.indexOf(p3), 199, 199]);
  const order = Array.from({ length: m2.length }, (_, i) => m2.hexAt(i));
  assert.deepEqual(order, order.toSorted(), "entries stay sorted after a merge");

  // damaged bytes are refused, not misread
  const bytes = MultiPackIndex.build(undefined, new Set(), first);
  assert.equal(MultiPackIndex.decode(bytes.subarray(0, bytes.length - 8)), undefined);
  assert.equal(MultiPackIndex.decode(new Uint8Array(bytes.length)), undefined);
  const badPack = bytes.slice();
  badPack[badPack.length - 1] = 0xff; // last entry's pack number
  assert.equal(MultiPackIndex.decode(badPack), undefined);
});

async function putPacks(store: ObjectStore, blobsPerPack: Uint8Array[][]): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const blobs of blobsPerPack) {
    const tar = await buildTar(blobs.map((b) => ({ name: digestBytes(b).slice(7), bytes: b })));
    const d = digestBytes(tar);
    await store.putPack(tar, d, "test");
    out.push(d);
  }
  return out;
}

Deno.test("packs: past 16 packs one multi-pack index answers; packs added and removed stay right", async () => {
  const root = await Deno.makeTempDir({ prefix: "spfs-midx-" });
  try {
    const store = ObjectStore.open(root);
    const before = ObjectStore.open(root); // another process, which loaded the packs before
    before.has(digestBytes(enc.encode("warm up")));
    const shared = enc.encode("in two packs\n");
    const blobsPerPack = Array.from({ length: 20 }, (_, p) => [
      ...Array.from({ length: 5 }, (_, i) => enc.encode(`pack ${p} blob ${i}\n`)),
      ...(p === 0 || p === 19 ? [shared] : []),
    ]);
    const packs = await putPacks(store, blobsPerPack);
    const digests = [...new Set(blobsPerPack.flat().map(digestBytes))];
    const midx = join(root, "packs", "index.midx");

    // the first look after the 16th unindexed pack writes the multi-pack index
    for (const s of [store, before]) {
      for (const d of digests) assert.ok(s.has(d), `${d} found`);
    }
    const m = MultiPackIndex.decode(Deno.readFileSync(midx))!;
    assert.deepEqual(m.packs, packs.map((d) => d.slice(7)).sort());
    assert.equal(m.length, 102, "the object in two packs is listed twice");

    // a new process answers from it without parsing the packs' own indexes
    for (const d of packs.slice(0, 10)) {
      const idx = join(root, "packs", `${d.slice(7)}.idx`);
      Deno.chmodSync(idx, 0o644);
      Deno.writeTextFileSync(idx, "not json");
    }
    const fresh = ObjectStore.open(root);
    for (const [p, blobs] of blobsPerPack.entries()) {
      for (const b of blobs) {
        assert.deepEqual(fresh.readVerified(digestBytes(b)), b);
        if (b !== shared) {
          assert.equal(fresh.locate(digestBytes(b))!.path, join(root, "packs", `${packs[p].slice(7)}.tar`));
        }
      }
    }
    assert.deepEqual([...fresh.all()].sort(), digests.toSorted(), "each object once");
    const one = digestBytes(blobsPerPack[3][2]);
    assert.deepEqual(fresh.findByPrefix(one.slice(7, 12)), [one]);

    // pack 0 removed (as clean does): the shared object is still found in pack 19, pack 0's own
    // objects are gone, for a new process and for the one that loaded the index before
    store.packs.remove(packs[0].slice(7));
    for (const s of [ObjectStore.open(root), before]) {
      assert.deepEqual(s.readVerified(digestBytes(shared)), shared);
      assert.equal(s.locate(digestBytes(shared))!.path, join(root, "packs", `${packs[19].slice(7)}.tar`));
      assert.equal(s.has(digestBytes(blobsPerPack[0][0])), false);
      assert.equal([...s.all()].length, digests.length - 5);
    }
    assert.deepEqual(
      MultiPackIndex.decode(Deno.readFileSync(midx))!.packs,
      packs.slice(1).map((d) => d.slice(7)).sort(),
      "the index was rewritten without the removed pack",
    );

    // a pack that came after the index is read from its own .idx, by an old view too
    const [late] = await putPacks(store, [[enc.encode("late\n")]]);
    assert.ok(before.has(digestBytes(enc.encode("late\n"))));
    assert.ok(!MultiPackIndex.decode(Deno.readFileSync(midx))!.packs.includes(late.slice(7)));

    // a damaged index is ignored and rewritten
    Deno.chmodSync(midx, 0o644);
    Deno.writeFileSync(midx, new Uint8Array(4096));
    for (const p of packs.slice(1, 10)) { // restore the .idx files, the truth again
      const i = packs.indexOf(p);
      const tar = await buildTar(blobsPerPack[i].map((b) => ({ name: digestBytes(b).slice(7), bytes: b })));
      Deno.removeSync(join(root, "packs", `${p.slice(7)}.idx`));
      Deno.removeSync(join(root, "packs", `${p.slice(7)}.tar`));
      await store.putPack(tar, p, "test");
    }
    const again = ObjectStore.open(root);
    for (const b of blobsPerPack.slice(1).flat()) assert.deepEqual(again.readVerified(digestBytes(b)), b);
    assert.equal(MultiPackIndex.decode(Deno.readFileSync(midx))!.packs.length, 20);
    assert.deepEqual(Deno.readDirSync(join(root, "tmp")).toArray(), [], "no tmp file left");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
