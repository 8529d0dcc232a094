import assert from "node:assert/strict";
import { join } from "node:path";
import { BlobVerifier } from "../../../../core/service/verifier.ts";
import { digestBytes } from "../../../../core/store/objects.ts";
import { logger } from "../../../../core/log.ts";
import type { Slice } from "../../../../core/store/packs.ts";

/** ObjectStore.locate over a dir of loose files named by digest. */
function looseIn(dir: string) {
  return (d: string): Slice | undefined => {
    try {
      return { path: join(dir, d), offset: 0, size: Deno.statSync(join(dir, d)).size, packed: false };
    } catch {
      return undefined;
    }
  };
}

Deno.test("blob verifier: hashes in the background, reports each corrupt blob once, survives a missing one", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const good = new TextEncoder().encode("good\n".repeat(300_000)); // > 1 MiB: several chunks
    const dGood = digestBytes(good);
    const dBad = digestBytes(new TextEncoder().encode("bad\n"));
    const dGone = digestBytes(new TextEncoder().encode("gone\n"));
    Deno.writeFileSync(join(dir, dGood), good);
    Deno.writeFileSync(join(dir, dBad), new TextEncoder().encode("tampered\n"));
    const corrupt: string[] = [];
    const v = new BlobVerifier(looseIn(dir), (d) => corrupt.push(d), logger("test"));
    v.enqueue(dGood);
    v.enqueue(dGone);
    v.enqueue(dBad);
    assert.equal(v.verified + v.corrupt, 0, "enqueue returns before any hashing");
    await v.idle();
    assert.deepEqual(corrupt, [dBad]);
    assert.equal(v.verified, 1);
    assert.equal(v.corrupt, 1);
    assert.equal(v.queued, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("blob verifier: many small blobs share one read buffer, and each is judged on its own bytes", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const enc = new TextEncoder();
    const corrupt: string[] = [];
    const v = new BlobVerifier(looseIn(dir), (d) => corrupt.push(d), logger("test"));
    // sizes shrink, so a reused buffer still holds the previous blob's tail past each read
    const sizes = [65_537, 65_536, 40_000, 4096, 10, 1, 0];
    const expectBad: string[] = [];
    for (const [i, size] of sizes.entries()) {
      const bytes = new Uint8Array(size).fill(97 + i);
      const d = digestBytes(bytes);
      // every other blob is tampered by one byte (the empty one cannot be)
      if (i % 2 === 1 && size > 0) {
        bytes[size - 1] ^= 1;
        expectBad.push(d);
      }
      Deno.writeFileSync(join(dir, d), bytes);
      v.enqueue(d);
    }
    for (let i = 0; i < 300; i++) {
      const bytes = enc.encode(`small ${i}\n`);
      const d = digestBytes(bytes);
      Deno.writeFileSync(join(dir, d), bytes);
      v.enqueue(d);
    }
    await v.idle();
    assert.deepEqual(corrupt, expectBad);
    assert.equal(v.verified, sizes.length - expectBad.length + 300);
    assert.equal(v.queued, 0);
    // the queue keeps working after it ran empty
    const late = enc.encode("late\n");
    Deno.writeFileSync(join(dir, digestBytes(late)), late);
    v.enqueue(digestBytes(late));
    await v.idle();
    assert.equal(v.verified, sizes.length - expectBad.length + 301);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("blob verifier: a blob inside a pack is judged on its own range only", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const enc = new TextEncoder();
    const a = enc.encode("first blob\n"), b = enc.encode("second blob\n");
    const dA = digestBytes(a), dB = digestBytes(b);
    // pack: [junk 7][a][b, one byte flipped][junk]
    const pack = new Uint8Array(7 + a.length + b.length + 5).fill(0x55);
    pack.set(a, 7);
    pack.set(b, 7 + a.length);
    pack[7 + a.length] ^= 1;
    Deno.writeFileSync(join(dir, "p"), pack);
    const at: Record<string, Slice> = {
      [dA]: { path: join(dir, "p"), offset: 7, size: a.length, packed: true },
      [dB]: { path: join(dir, "p"), offset: 7 + a.length, size: b.length, packed: true },
    };
    const corrupt: string[] = [];
    const v = new BlobVerifier((d) => at[d], (d) => corrupt.push(d), logger("test"));
    v.enqueue(dA);
    v.enqueue(dB);
    await v.idle();
    assert.deepEqual(corrupt, [dB]);
    assert.equal(v.verified, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
