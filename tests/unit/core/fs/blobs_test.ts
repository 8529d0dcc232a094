import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { BlobOpener } from "../../../../core/fs/blobs.ts";
import { digestBytes } from "../../../../core/store/objects.ts";
import type { Slice } from "../../../../core/store/packs.ts";
import { looseName } from "../../../../core/store/store.ts";
import { E } from "../../../../ffi/errno.ts";
import { libc } from "../../../../ffi/sys.ts";

const enc = new TextEncoder();

/** Writes `text` as the loose object of `d` below `objects`. */
function writeLoose(objects: string, d: string, text: string): void {
  const p = join(objects, looseName(d));
  Deno.mkdirSync(dirname(p), { recursive: true });
  Deno.writeFileSync(p, enc.encode(text));
}

/** `size` bytes of `fd` from `offset`, as text. */
function pread(fd: number, offset: number, size: number): string {
  const b = new Uint8Array(size);
  const n = Number(libc().pread(fd, b, BigInt(size), BigInt(offset)));
  return new TextDecoder().decode(b.subarray(0, Math.max(0, n)));
}

/** The targets of this process's open fds (Linux /proc/self/fd). */
function openTargets(): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      out.push(Deno.readLinkSync(`/proc/self/fd/${e.name}`));
    } catch { /* the fd of the listing itself */ }
  }
  return out;
}

Deno.test("blob open: served at once, handed to the verifier once, refused with EIO once marked corrupt", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const d = digestBytes(enc.encode("blob\n"));
    writeLoose(dir, d, "not the blob\n"); // corrupt on disk
    const asked: string[] = [];
    const o = new BlobOpener(dir, (x) => asked.push(x));
    const fd = o.open(d);
    assert.ok(fd >= 0, "the first open is not held up by a hash, even of a corrupt blob");
    assert.equal(pread(fd, 0, 64), "not the blob\n", "the loose file below the objects dir is opened");
    libc().close(fd);
    const fd2 = o.open(d);
    assert.ok(fd2 >= 0);
    libc().close(fd2);
    assert.deepEqual(asked, [d], "the verifier is asked once per blob");
    o.markCorrupt(d);
    assert.equal(o.open(d), -E.EIO);
    const gone: string[] = [];
    const missing = new BlobOpener(join(dir, "none"), (x) => asked.push(x), (x) => gone.push(x));
    assert.equal(missing.open(d), -E.EIO, "a blob missing from the store is an I/O error, not ENOENT");
    assert.deepEqual(gone, [d]);
    assert.equal(asked.length, 1, "a blob that cannot be opened is not queued");
    // a name that is no digest never reaches openat, whatever it holds
    assert.equal(o.open(`sha256:../../${"0".repeat(58)}`), -E.EIO);
    assert.equal(o.open("sha256:00"), -E.EIO);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "blob open: a packed blob is a dup of its pack's kept fd; a pack removed from the store is let go",
  ignore: Deno.build.os !== "linux", // reads /proc/self/fd
  fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const objects = join(dir, "objects");
      Deno.mkdirSync(objects);
      // two packs: "aaaa" + "bbbb" in the first, "cccc" in the second
      const packA = join(dir, "a.tar"), packB = join(dir, "b.tar");
      Deno.writeTextFileSync(packA, "aaaabbbb");
      Deno.writeTextFileSync(packB, "cccc");
      const [da, db, dc] = ["a", "b", "c"].map((t) => digestBytes(enc.encode(t.repeat(4))));
      const where = new Map<string, Slice>([
        [da, { path: packA, offset: 0, size: 4, packed: true }],
        [db, { path: packA, offset: 4, size: 4, packed: true }],
        [dc, { path: packB, offset: 0, size: 4, packed: true }],
      ]);
      const gone: string[] = [];
      const o = new BlobOpener(objects, () => {}, (d) => gone.push(d), (d) => where.get(d));
      const kept = () => openTargets().filter((t) => t.startsWith(packA)).length;

      const fa = o.open(da), fb = o.open(db);
      assert.ok(fa >= 0 && fb >= 0 && fa !== fb, "each open is an fd of its own");
      assert.deepEqual(o.slices.get(fa), [0, 4]);
      assert.deepEqual(o.slices.get(fb), [4, 4]);
      assert.equal(pread(fb, 4, 4), "bbbb");
      assert.equal(kept(), 3, "the pack itself was opened once, kept, and dup'ed for each blob");
      for (const fd of [fa, fb]) {
        o.closed(fd);
        libc().close(fd);
      }
      assert.equal(o.slices.size, 0);
      assert.equal(kept(), 1, "closing a blob's fd leaves the pack's open");

      // `spfs clean` removes the pack: its fd goes when the next pack is first opened
      Deno.removeSync(packA);
      const fc = o.open(dc);
      assert.equal(pread(fc, 0, 4), "cccc");
      assert.equal(kept(), 0, "a removed pack's space is not held by a kept fd");
      libc().close(fc);
      assert.equal(o.open(da), -E.EIO, "a blob whose pack is gone is missing: EIO");
      assert.deepEqual(gone, [da]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
