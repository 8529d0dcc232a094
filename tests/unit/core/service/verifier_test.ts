import assert from "node:assert/strict";
import { join } from "node:path";
import { BlobVerifier } from "../../../../core/service/verifier.ts";
import { digestBytes } from "../../../../core/store/objects.ts";
import { logger } from "../../../../core/log.ts";

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
    const v = new BlobVerifier((d) => join(dir, d), (d) => corrupt.push(d), logger("test"));
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
