/** Packs kept whole in the store (core/store/packs.ts): reading in place, freshness, clean, check. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildTar } from "../../../../core/remote/oci/mapping.ts";
import { clean } from "../../../../core/store/clean.ts";
import { checkStore } from "../../../../core/store/check.ts";
import { importDir } from "../../../../core/store/importer.ts";
import { type Digest, digestBytes, encodeLayer } from "../../../../core/store/objects.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { tarEntries, TarScanner } from "../../../../core/store/packs.ts";
import { TagDb } from "../../../../core/store/tags.ts";
import { SpfsError } from "../../../../core/errors.ts";
import { packLoose } from "../../../support/packs.ts";

const enc = new TextEncoder();

async function tarOf(blobs: Uint8Array[]): Promise<{ tar: Uint8Array; digest: Digest; digests: Digest[] }> {
  const digests = blobs.map(digestBytes);
  const tar = await buildTar(blobs.map((b, i) => ({ name: digests[i].slice(7), bytes: b })));
  return { tar, digest: digestBytes(tar), digests };
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "spfs-packs-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("packs: a received tar is kept whole; its objects are found, read, listed and streamed in place", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    const other = ObjectStore.open(root); // another process's view, loaded before the pack exists
    const blobs = [enc.encode("alpha\n"), new Uint8Array(5000).fill(7), new Uint8Array(0)];
    const { tar, digest, digests } = await tarOf(blobs);
    assert.equal(other.has(digests[0]), false);

    assert.deepEqual(await store.putPack(tar, digest, "test"), digests);
    assert.deepEqual([...store.loose()], [], "no loose file per object");
    assert.deepEqual(Deno.readDirSync(join(root, "tmp")).toArray(), [], "no tmp file left");
    for (const [i, d] of digests.entries()) {
      for (const s of [store, other]) {
        assert.ok(s.has(d), "seen at once, also by a store opened before the pack came");
        assert.deepEqual(s.readVerified(d), blobs[i]);
        assert.equal(s.size(d), blobs[i].length);
        assert.equal(s.kindOf(d), "blob");
        assert.equal(s.locate(d)?.packed, true);
      }
      assert.deepEqual(new Uint8Array(await new Response(store.openStream(d)).arrayBuffer()), blobs[i]);
    }
    assert.deepEqual([...store.all()].sort(), [...digests].sort());
    assert.deepEqual(store.findByPrefix(digests[1].slice(7, 13)), [digests[1]]);
    assert.deepEqual(await store.verifyAll(), []);

    // reuse marks the pack as used, for clean's grace period
    const tarPath = join(root, "packs", `${digest.slice(7)}.tar`);
    Deno.utimeSync(tarPath, new Date(0), new Date(0));
    assert.ok(store.reuse(digests[0]));
    assert.ok(Date.now() - Deno.statSync(tarPath).mtime!.getTime() < 60_000);

    // reuseAll answers for many at once: packed and loose found, an absent one not; all marked used
    Deno.utimeSync(tarPath, new Date(0), new Date(0));
    const loose = store.putBytes(enc.encode("a loose one\n"));
    Deno.utimeSync(store.path(loose), new Date(0), new Date(0));
    const absent = digestBytes(enc.encode("never stored\n"));
    assert.deepEqual(
      [...other.reuseAll([digests[0], absent, loose, digests[2]])].sort(),
      [digests[0], loose, digests[2]].sort(),
    );
    for (const p of [tarPath, store.path(loose)]) {
      assert.ok(Date.now() - Deno.statSync(p).mtime!.getTime() < 60_000, `${p} marked used`);
    }
    Deno.removeSync(store.path(loose));

    // a second put of the same pack writes nothing new
    assert.deepEqual(await store.putPack(tar, digest, "test"), digests);
    assert.deepEqual(Deno.readDirSync(join(root, "packs")).toArray().map((e) => e.name).sort(), [
      `${digest.slice(7)}.idx`,
      `${digest.slice(7)}.tar`,
    ]);

    // one byte flipped inside an entry: verifyAll names that object only
    Deno.chmodSync(tarPath, 0o644);
    const f = Deno.openSync(tarPath, { read: true, write: true });
    f.seekSync(store.locate(digests[1])!.offset + 10, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array([8]));
    f.close();
    assert.deepEqual(await store.verifyAll(), [digests[1]]);
    assert.throws(
      () => store.readVerified(digests[1]),
      (e) => e instanceof SpfsError && e.code === "CorruptObject",
    );
  }));

Deno.test("packs: reuseAll on an empty store finds nothing and creates nothing", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    const { digests } = await tarOf([enc.encode("x\n"), enc.encode("y\n")]);
    assert.deepEqual([...store.reuseAll(digests)], []);
    assert.deepEqual(Deno.readDirSync(join(root, "objects", "sha256")).toArray(), []);
  }));

Deno.test("packs: an entry that does not match its name is refused and nothing is written", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    const good = enc.encode("good\n"), liar = enc.encode("not what the name says\n");
    const tar = await buildTar([
      { name: digestBytes(good).slice(7), bytes: good },
      { name: digestBytes(good).slice(7).replace(/^./, "0"), bytes: liar },
    ]);
    await assert.rejects(
      () => store.putPack(tar, digestBytes(tar), "registry X"),
      (e) => e instanceof SpfsError && e.code === "CorruptObject" && /registry X/.test(e.message),
    );
    await assert.rejects(
      () => store.putPack(tar.subarray(0, 700), digestBytes(tar), "registry X"),
      (e) => e instanceof SpfsError && e.code === "CorruptObject" && /not a valid tar/.test(e.message),
    );
    assert.equal(store.has(digestBytes(good)), false);
    assert.deepEqual(Deno.readDirSync(join(root, "tmp")).toArray(), []);
  }));

/** A stream that hands out `bytes` in `size`-byte chunks, then fails with `fail` if given. */
function chunked(bytes: Uint8Array, size: number, fail?: Error): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at < bytes.length) {
        c.enqueue(bytes.slice(at, at += size));
      } else if (fail) c.error(fail);
      else c.close();
    },
  });
}

Deno.test("packs: the tar scanner finds an entry only once all its bytes are in, the same as a whole scan", async () => {
  const blobs = [
    enc.encode("a\n"),
    new Uint8Array(1500).fill(3),
    new Uint8Array(0),
    new Uint8Array(512).fill(9),
  ];
  const { tar } = await tarOf(blobs);
  const whole = tarEntries(tar);
  assert.equal(whole.length, 4);
  for (const step of [1, 100, 511, 512, 513, 4096]) {
    const s = new TarScanner();
    const got: typeof whole = [];
    for (let end = Math.min(step, tar.length);; end = Math.min(end + step, tar.length)) {
      for (const e of s.scan(tar, end)) {
        assert.ok(e.offset + e.size <= end, `entry ${e.name} returned at ${end} before its bytes were in`);
        got.push(e);
      }
      if (end === tar.length) break;
    }
    assert.deepEqual(got, whole, `step ${step}`);
    assert.ok(s.done);
  }
  assert.throws(() => new TarScanner().scan(tar.subarray(0, 1024), 1024), /end-of-archive/);
});

Deno.test("packs: a pack streamed in is checked and written as it arrives, and bad streams leave nothing", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    // 6 MB: more than one early flush (WriteBack) runs while it streams in
    const blobs = Array.from({ length: 40 }, (_, i) => new Uint8Array(150_000 + 300 * i).fill(i));
    const { tar, digest, digests } = await tarOf(blobs);
    const pack = { digest, size: tar.length };
    let progress = 0;
    const got = await store.putPackStream(chunked(tar, 65_537), pack, "registry X", (n) => progress += n);
    assert.deepEqual(got, digests);
    assert.equal(progress, tar.length);
    assert.deepEqual(Deno.readFileSync(join(root, "packs", `${digest.slice(7)}.tar`)), tar);
    for (const [i, d] of digests.entries()) assert.deepEqual(store.readVerified(d), blobs[i]);
    assert.deepEqual(Deno.readDirSync(join(root, "tmp")).toArray(), []);

    const other = ObjectStore.open(await Deno.makeTempDir({ dir: root }));
    const noTmp = () => assert.deepEqual(Deno.readDirSync(join(other.root, "tmp")).toArray(), []);
    const corrupt = (re: RegExp) => (e: Error) =>
      e instanceof SpfsError && e.code === "CorruptObject" && /registry X/.test(e.message) &&
      re.test(e.message);
    // an entry whose bytes do not match its name, refused while the stream is still coming
    const bad = tar.slice();
    bad[512 + 512 + 10] ^= 1;
    let pulled = 0;
    const watched = chunked(bad, 1024).pipeThrough(
      new TransformStream({
        transform(c, ctl) {
          pulled += c.length;
          ctl.enqueue(c);
        },
      }),
    );
    await assert.rejects(() => other.putPackStream(watched, pack, "registry X"), corrupt(/hash to/));
    assert.ok(pulled < tar.length, `refused after ${pulled} of ${tar.length} bytes`);
    noTmp();
    // more bytes than the descriptor says, and bytes that do not hash to the pack's digest
    await assert.rejects(
      () => other.putPackStream(chunked(tar, 4096), { digest, size: tar.length - 1 }, "registry X"),
      corrupt(/more than/),
    );
    const padded = new Uint8Array(tar.length + 512);
    padded.set(tar);
    await assert.rejects(
      () => other.putPackStream(chunked(padded, 4096), { digest, size: padded.length }, "registry X"),
      corrupt(/hash to/),
    );
    noTmp();
    // a dropped connection is the caller's to retry: its own error, not a storage error
    const dropped = new TypeError("connection reset");
    await assert.rejects(
      () => other.putPackStream(chunked(tar.subarray(0, 5000), 1000, dropped), pack, "registry X"),
      (e) => e === dropped,
    );
    noTmp();
    assert.equal(other.has(digests[1]), false);
    assert.deepEqual(other.packs.list().packs, []);
  }));

Deno.test("packs: clean keeps a pack any kept object is in, removes an unreached one and an unindexed tar", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    const layerOf = async (text: string) => {
      const src = await Deno.makeTempDir({ dir: root });
      await Deno.writeTextFile(join(src, "f"), text);
      await Deno.mkdir(join(src, "d"));
      await Deno.writeTextFile(join(src, "d", "g"), `${text} too`);
      const { manifest } = await importDir(src, store);
      const layer = store.putBytes(encodeLayer(manifest));
      await Deno.remove(src, { recursive: true });
      return layer;
    };
    const kept = await layerOf("kept");
    const keptFiles = store.packs.list().packs.map((p) => p.hex); // the import packs small files
    const packA = await packLoose(store, [kept]);
    const gone = await layerOf("gone");
    const packB = await packLoose(store, [kept, gone]);
    const orphan = join(root, "packs", `${"e".repeat(64)}.tar`);
    Deno.writeFileSync(orphan, new Uint8Array(10));
    const old = new Date(Date.now() - 3_600_000);
    for (const e of Deno.readDirSync(join(root, "packs"))) {
      Deno.utimeSync(join(root, "packs", e.name), old, old);
    }
    for (const d of [kept, gone]) Deno.utimeSync(store.path(d), old, old);

    const dry = await clean(store, [kept], () => Promise.resolve([]), { graceMs: 60_000, dryRun: true });
    assert.deepEqual(dry.removed.layers, [gone]);
    assert.ok(Deno.statSync(orphan).isFile, "a dry run removes nothing");

    const r = await clean(store, [kept], () => Promise.resolve([]), { graceMs: 60_000 });
    assert.deepEqual(r.removed.layers, [gone]);
    assert.equal(r.removed.objects, dry.removed.objects);
    const left = Deno.readDirSync(join(root, "packs")).toArray().map((e) => e.name).sort();
    assert.equal(keptFiles.length, 1);
    assert.deepEqual(left, [packA.slice(7), ...keptFiles].flatMap((h) => [`${h}.idx`, `${h}.tar`]).sort());
    assert.equal(packB === packA, false);
    const tags = new TagDb(root);
    tags.set("kept", kept);
    const report = await checkStore(store, tags);
    assert.deepEqual(report.missing, []);
    assert.deepEqual(report.corrupt, []);
    assert.ok(report.objects >= 5, `layer, 2 manifests, 2 blobs: ${report.objects}`);
  }));

Deno.test("packs: clean rewrites a pack mostly unreached with only its reached objects, and keeps one barely unreached", () =>
  withRoot(async (root) => {
    const store = ObjectStore.open(root);
    const files = Array.from({ length: 8 }, (_, i) => `file ${i} `.repeat(1000)); // ~7 KB each
    const layerOf = async (names: number[]) => {
      const src = await Deno.makeTempDir({ dir: root });
      for (const i of names) await Deno.writeTextFile(join(src, `f${i}`), files[i]);
      const { manifest } = await importDir(src, store);
      await Deno.remove(src, { recursive: true });
      return store.putBytes(encodeLayer(manifest));
    };
    const big = await layerOf([0, 1, 2, 3, 4, 5, 6, 7]); // one pack of all 8 files
    const seven = await layerOf([0, 1, 2, 3, 4, 5, 6]); // these reuse them: no new pack
    const small = await layerOf([0, 1]);
    const [first] = store.packs.list().packs;
    assert.equal(store.packs.list().packs.length, 1);
    const old = new Date(Date.now() - 3_600_000);
    for (const e of Deno.readDirSync(join(root, "packs"))) {
      Deno.utimeSync(join(root, "packs", e.name), old, old);
    }
    for (const d of store.loose()) Deno.utimeSync(store.path(d), old, old);
    const blob = (i: number) => digestBytes(enc.encode(files[i]));

    // 7 of 8 files reached: the pack is kept whole
    const tags = new TagDb(root);
    const most = await clean(store, [seven, small], () => Promise.resolve([]), { graceMs: 60_000 });
    assert.deepEqual(most.removed.layers, [big]);
    assert.deepEqual(store.packs.list().packs.map((p) => p.hex), [first.hex]);
    assert.ok(store.has(blob(7)));

    // 2 of 8 reached: the dry run says what the rewrite frees, and changes nothing
    const dry = await clean(store, [small], () => Promise.resolve([]), { graceMs: 60_000, dryRun: true });
    assert.deepEqual(store.packs.list().packs.map((p) => p.hex), [first.hex]);
    const r = await clean(store, [small], () => Promise.resolve([]), { graceMs: 60_000 });
    assert.deepEqual(r.removed, dry.removed);
    assert.deepEqual(r.kept, dry.kept);
    assert.deepEqual(r.removed.layers, [seven]);
    assert.ok(r.removed.objects >= 6 + 1, `6 packed files and a layer: ${r.removed.objects}`);
    const [second, ...more] = store.packs.list().packs;
    assert.deepEqual(more, []);
    assert.notEqual(second.hex, first.hex);
    assert.deepEqual(second.entries.map((e) => `sha256:${e[0]}`).sort(), [blob(0), blob(1)].sort());
    assert.ok(Deno.statSync(second.tar).size < 20_000);
    for (const i of [0, 1]) {
      assert.deepEqual(ObjectStore.open(root).readVerified(blob(i)), enc.encode(files[i]));
    }
    for (const i of [2, 7]) assert.equal(ObjectStore.open(root).has(blob(i)), false);
    tags.set("small", small);
    const report = await checkStore(store, tags);
    assert.deepEqual([report.missing, report.corrupt], [[], []]);

    // a damaged entry that is still reached is not copied into a clean-looking pack: kept whole
    const third = await layerOf([3, 4, 5, 6]);
    const p = store.packs.list().packs.find((x) => x.hex !== second.hex)!;
    Deno.chmodSync(p.tar, 0o644);
    const f = Deno.openSync(p.tar, { read: true, write: true });
    f.seekSync(store.locate(blob(3))!.offset, Deno.SeekMode.Start);
    f.writeSync(enc.encode("X"));
    f.close();
    const layer3 = await layerOf([3]);
    for (const e of Deno.readDirSync(join(root, "packs"))) {
      Deno.utimeSync(join(root, "packs", e.name), old, old);
    }
    for (const d of store.loose()) Deno.utimeSync(store.path(d), old, old);
    const would = await clean(store, [small, layer3], () => Promise.resolve([]), {
      graceMs: 60_000,
      dryRun: true,
    });
    assert.deepEqual(would.removed.layers, [third]);
    assert.ok(would.removed.objects >= 3 + 1, "3 of the pack's 4 files are unreached: it is a candidate");
    await clean(store, [small, layer3], () => Promise.resolve([]), { graceMs: 60_000 });
    assert.ok(store.packs.list().packs.some((x) => x.hex === p.hex), "the damaged pack is kept");
    assert.throws(
      () => store.readVerified(blob(3)),
      (e) => e instanceof SpfsError && e.code === "CorruptObject",
    );
  }));
