import assert from "node:assert/strict";
import { join } from "node:path";
import { importDir, scratchChanged } from "../../../../core/store/importer.ts";
import {
  decodeObject,
  digestBytes,
  encodeLayer,
  encodeManifest,
  type Entry,
} from "../../../../core/store/objects.ts";
import { resolveRef, resolveSpec } from "../../../../core/store/refs.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { PACKED_BELOW } from "../../../../core/store/packs.ts";
import { TagDb } from "../../../../core/store/tags.ts";
import { SpfsError } from "../../../../core/errors.ts";

const enc = new TextEncoder();

function tmp(): string {
  return Deno.makeTempDirSync({ prefix: "spfs-unit-" });
}

Deno.test("manifest encoding is canonical: entry order does not change bytes or digest", () => {
  const a: Entry = {
    name: "a",
    kind: "file",
    mode: 0o644,
    size: 1,
    digest: digestBytes(new Uint8Array([1])),
  };
  const b: Entry = {
    name: 'b"q',
    kind: "symlink",
    mode: 0o777,
    size: 1,
    digest: digestBytes(new Uint8Array([2])),
  };
  const m1 = encodeManifest([a, b]), m2 = encodeManifest([b, a]);
  assert.deepEqual(m1, m2);
  assert.equal(digestBytes(m1), digestBytes(m2));
  const dec = decodeObject(m1, digestBytes(m1));
  assert.equal(dec.type, "spfs/manifest@1");
  assert.throws(() => encodeManifest([a, a]), /duplicate/);
});

Deno.test("objects are written atomically, read-only, verified, and deduplicated", () => {
  const root = tmp();
  const s = ObjectStore.open(root);
  const bytes = new TextEncoder().encode("hello");
  const d = s.putBytes(bytes);
  assert.equal(d, digestBytes(bytes));
  assert.equal(s.putBytes(bytes), d);
  assert.equal(Deno.statSync(s.path(d)).mode! & 0o777, 0o444);
  assert.deepEqual([...Deno.readDirSync(s.tmpDir)], []);
  assert.deepEqual(s.readVerified(d), bytes);
  // corrupt it: reads refuse it
  Deno.chmodSync(s.path(d), 0o644);
  Deno.writeTextFileSync(s.path(d), "HELLO");
  assert.throws(
    () => s.readVerified(d),
    (e: unknown) => e instanceof SpfsError && e.code === "CorruptObject",
  );
  Deno.removeSync(root, { recursive: true });
});

Deno.test("a writer killed mid-import leaves no partial object, and its tmp file is swept on open", async () => {
  const root = tmp();
  const big = join(root, "big.bin");
  const f = Deno.openSync(big, { write: true, create: true });
  const chunk = crypto.getRandomValues(new Uint8Array(65536));
  for (let i = 0; i < 1024; i++) f.writeSync(chunk); // 64 MiB
  f.close();
  const store = join(root, "store");
  const script = `
    import { ObjectStore } from ${
    JSON.stringify(new URL("../../../../core/store/store.ts", import.meta.url).href)
  };
    const s = ObjectStore.open(${JSON.stringify(store)});
    let told = false;
    await s.putFile(${
    JSON.stringify(big)
  }, () => { if (!told) { told = true; console.log("writing"); } while (true) {} });`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /writing/);
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
  const tmpFiles = [...Deno.readDirSync(join(store, "tmp"))];
  assert.equal(tmpFiles.length, 1, "the killed writer left its tmp file");
  const s = ObjectStore.open(store);
  assert.deepEqual([...s.all()], [], "no object became visible");
  assert.deepEqual([...Deno.readDirSync(s.tmpDir)], [], "the tmp file was swept");
  Deno.removeSync(root, { recursive: true });
});

Deno.test("tags keep history; REFs resolve by tag, ~N, digest and unique prefix", () => {
  const root = tmp();
  const s = ObjectStore.open(root);
  const tags = new TagDb(root);
  const m = s.putBytes(encodeManifest([]));
  const l1 = s.putBytes(encodeLayer(m, { n: "1" }));
  const l2 = s.putBytes(encodeLayer(m, { n: "2" }));
  tags.set("tool/1", l1);
  tags.set("tool/1", l2);
  assert.equal(resolveRef("tool/1", s, tags), l2);
  assert.equal(resolveRef("tool/1~0", s, tags), l2);
  assert.equal(resolveRef("tool/1~1", s, tags), l1);
  assert.throws(() => resolveRef("tool/1~2", s, tags), /goes back too far/);
  assert.equal(resolveRef(l1, s, tags), l1);
  assert.equal(resolveRef(l1.slice(7, 19), s, tags), l1);
  assert.equal(resolveRef("sha256:" + l1.slice(7, 19), s, tags), l1);
  assert.throws(
    () => resolveRef("nope", s, tags),
    (e: unknown) => e instanceof SpfsError && e.code === "UnknownRef" && !!e.hint,
  );
  assert.throws(
    () => tags.set("bad+name", l1),
    (e: unknown) => e instanceof SpfsError && e.code === "InvalidTagName",
  );
  assert.deepEqual(resolveSpec("tool/1~1+tool/1", s, tags).layers, [l1, l2]);
  assert.throws(() => resolveSpec(m, s, tags), /not a layer or platform/);
  assert.deepEqual(tags.list().map((t) => t.name), ["tool/1"]);
  assert.equal(tags.history("tool/1").length, 2);
  tags.close();
  Deno.removeSync(root, { recursive: true });
});

Deno.test("an ambiguous digest prefix is refused with a hint", () => {
  const root = tmp();
  const s = ObjectStore.open(root);
  const tags = new TagDb(root);
  // find two blobs sharing a 4-hex prefix
  const seen = new Map<string, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) {
    const d = s.putBytes(new TextEncoder().encode(String(i)));
    const p = d.slice(7, 11);
    if (seen.has(p)) pair = [seen.get(p)!, d];
    seen.set(p, d);
  }
  assert.throws(
    () => resolveRef(pair![0].slice(7, 11), s, tags),
    (e: unknown) => e instanceof SpfsError && e.code === "AmbiguousRef",
  );
  tags.close();
  Deno.removeSync(root, { recursive: true });
});

Deno.test("import keeps modes, symlinks and nesting; skips FIFOs", async () => {
  const root = tmp();
  const src = join(root, "src");
  Deno.mkdirSync(join(src, "d/e"), { recursive: true });
  Deno.writeTextFileSync(join(src, "x.sh"), "#!/bin/sh\n");
  Deno.chmodSync(join(src, "x.sh"), 0o750);
  Deno.writeTextFileSync(join(src, "d/e/f"), "f");
  Deno.symlinkSync("../x.sh", join(src, "d/link"));
  await new Deno.Command("mkfifo", { args: [join(src, "fifo")] }).output();
  const s = ObjectStore.open(join(root, "store"));
  const r = await importDir(src, s);
  assert.equal(r.files, 2);
  assert.equal(r.symlinks, 1);
  assert.equal(r.skipped.length, 1);
  const top = decodeObject(s.readVerified(r.manifest), r.manifest);
  assert.equal(top.type, "spfs/manifest@1");
  if (top.type !== "spfs/manifest@1") return;
  const x = top.entries.find((e) => e.name === "x.sh")!;
  assert.equal(x.mode, 0o750);
  const d = top.entries.find((e) => e.name === "d")!;
  const dm = decodeObject(s.readVerified(d.digest), d.digest);
  if (dm.type !== "spfs/manifest@1") throw new Error("not a manifest");
  const link = dm.entries.find((e) => e.name === "link")!;
  assert.equal(new TextDecoder().decode(s.readVerified(link.digest)), "../x.sh");
  assert.equal(top.entries.find((e) => e.name === "fifo"), undefined, "a plain dir's FIFO leaves no trace");
  // in a runtime's scratch, a FIFO replaced whatever a lower layer had at its name: that stays gone
  const scratch = decodeObject(s.readVerified((await importDir(src, s, {}, { scratch: true })).manifest), "");
  if (scratch.type !== "spfs/manifest@1") throw new Error("not a manifest");
  assert.equal(scratch.entries.find((e) => e.name === "fifo")?.kind, "mask");
  // same tree, same digest
  assert.equal((await importDir(src, s)).manifest, r.manifest);
  await assert.rejects(
    importDir(join(src, "x.sh"), s),
    (e: unknown) => e instanceof SpfsError && e.code === "NotADirectory",
  );
  Deno.removeSync(root, { recursive: true });
});

Deno.test("import refuses a name or a symlink target that is not UTF-8, saying which", async () => {
  for (
    const [what, make, why] of [
      ["name", (d: string) => `touch "${d}/$(printf 'caf\\351')"`, /the name is not valid UTF-8/],
      [
        "target",
        (d: string) => `ln -s "$(printf 't\\377x')" ${d}/lnk`,
        /lnk: its symlink target is not valid UTF-8/,
      ],
    ] as const
  ) {
    const root = tmp();
    const src = join(root, "src");
    Deno.mkdirSync(src);
    await new Deno.Command("bash", { args: ["-c", make(src)] }).output();
    await assert.rejects(
      importDir(src, ObjectStore.open(join(root, "store"))),
      (e: unknown) => e instanceof SpfsError && e.code === "UsageError" && why.test(e.message),
      what,
    );
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("import packs small files in walk order, keeps large ones loose, and writes a known file once", async () => {
  const root = tmp();
  const src = join(root, "src");
  Deno.mkdirSync(join(src, "b/c"), { recursive: true });
  Deno.mkdirSync(join(src, "a"), { recursive: true });
  const files: Record<string, Uint8Array> = {
    "z": enc.encode("z\n"),
    "b/c/2": enc.encode("two\n"),
    "b/1": enc.encode("one\n"),
    "b/same": enc.encode("one\n"), // the same bytes under a second name: one object
    "a/empty": new Uint8Array(0),
    "big.bin": new Uint8Array(PACKED_BELOW).fill(9), // exactly the limit: loose
    "a/just-under": new Uint8Array(PACKED_BELOW - 1).fill(3),
  };
  for (const [p, b] of Object.entries(files)) Deno.writeFileSync(join(src, p), b);
  const s = ObjectStore.open(join(root, "store"));
  const r = await importDir(src, s);
  assert.equal(r.files, 7);

  const { packs } = s.packs.list();
  assert.equal(packs.length, 1);
  // a walk by name: a/empty, a/just-under, b/1 (b/same is the same object), b/c/2, z
  const order = ["a/empty", "a/just-under", "b/1", "b/c/2", "z"].map((p) => digestBytes(files[p]).slice(7));
  assert.deepEqual(packs[0].entries.map(([hex]) => hex), order);
  const big = digestBytes(files["big.bin"]);
  assert.equal(s.locate(big)?.packed, false, "a file of PACKED_BELOW bytes is loose");
  for (const [p, b] of Object.entries(files)) assert.deepEqual(s.readVerified(digestBytes(b)), b, p);
  // GNU tar reads the pack as written, entry for entry
  const listed = await new Deno.Command("tar", { args: ["-tf", packs[0].tar], stdout: "piped" }).output();
  assert.deepEqual(new TextDecoder().decode(listed.stdout).trim().split("\n"), order);
  assert.deepEqual(await s.verifyAll(), []);

  // the same tree again, and a tree sharing all but one file: only the new file is written
  assert.equal((await importDir(src, s)).manifest, r.manifest);
  assert.equal(s.packs.list().packs.length, 1);
  Deno.writeFileSync(join(src, "b/c/3"), enc.encode("three\n"));
  await importDir(src, s);
  const after = s.packs.list().packs;
  assert.equal(after.length, 2);
  assert.deepEqual(after.find((p) => p.hex !== packs[0].hex)!.entries.map(([h]) => h), [
    digestBytes(enc.encode("three\n")).slice(7),
  ]);
  Deno.removeSync(root, { recursive: true });
});

Deno.test("an import that lost a scratch entry to a rename says the tree changed; other failures do not", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const store = ObjectStore.open(join(root, "store"));
    const missing = await importDir(join(root, "gone"), store).catch((e) => e);
    assert.ok(!scratchChanged(missing), "a missing source dir is a usage error, not a race");
    const lost = new SpfsError("StorageError", "importing x", { cause: new Deno.errors.NotFound("x") });
    assert.ok(scratchChanged(lost), "a file renamed away between the listing and its read");
    assert.ok(scratchChanged(new Deno.errors.NotADirectory("x")), "a dir replaced by a file");
    assert.ok(!scratchChanged(new SpfsError("StorageFull", "full", { cause: new Error("ENOSPC") })));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("import never reads through a symlink swapped in after the scan: the tree changed, nothing is stored", async () => {
  const root = tmp();
  const secret = join(root, "secret");
  Deno.writeTextFileSync(secret, "not yours\n");
  for (
    const [what, swap] of [
      ["a file swapped for a symlink", (src: string) => Deno.symlinkSync(secret, join(src, "d/f"))],
      ["a dir above it swapped for a symlink", (src: string) => {
        Deno.mkdirSync(join(root, "elsewhere"), { recursive: true });
        Deno.linkSync(secret, join(root, "elsewhere/f")); // a regular file, reached through the symlink
        Deno.renameSync(join(src, "d"), join(root, `old-${Date.now()}`));
        Deno.symlinkSync(join(root, "elsewhere"), join(src, "d"));
      }],
      ["a big file swapped for a symlink", (src: string) => Deno.symlinkSync(secret, join(src, "d/big"))],
    ] as const
  ) {
    const src = Deno.makeTempDirSync({ dir: root });
    Deno.mkdirSync(join(src, "d"));
    Deno.writeTextFileSync(join(src, "d/f"), "f\n");
    Deno.writeFileSync(join(src, "d/big"), new Uint8Array(PACKED_BELOW + 1));
    const s = ObjectStore.open(join(root, `store-${what.length}`));
    const e = await importDir(src, s, {
      scanned: () => {
        for (const n of ["d/f", "d/big"]) {
          try {
            Deno.removeSync(join(src, n));
          } catch { /* moved with d */ }
        }
        swap(src);
      },
    }, { scratch: true }).catch((e) => e);
    assert.ok(e instanceof SpfsError && scratchChanged(e), `${what}: ${e}`);
    const objects = new Deno.Command("grep", {
      args: ["-rl", "not yours", join(root, `store-${what.length}`)],
    });
    assert.equal((await objects.output()).code, 1, `${what}: the secret reached the store`);
  }
  Deno.removeSync(root, { recursive: true });
});
