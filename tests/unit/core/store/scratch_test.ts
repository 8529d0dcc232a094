import assert from "node:assert/strict";
import { maskName, metaName, parseScratchName } from "../../../../core/store/scratch.ts";

const noRead = () => {
  throw new Error("read only for hashed markers");
};

Deno.test("scratch names: whiteout prefixes, and hashed markers for names a prefix would push past NAME_MAX", () => {
  assert.deepEqual(maskName("a"), { file: ".wh.a", long: false });
  assert.deepEqual(metaName("a"), { file: ".wh..wh..meta.a", long: false });
  assert.deepEqual(parseScratchName("a", noRead), { kind: "entry", name: "a" });
  assert.deepEqual(parseScratchName(".wh.a", noRead), { kind: "mask", name: "a" });
  assert.deepEqual(parseScratchName(".wh..wh..meta.a", noRead), { kind: "meta", name: "a" });
  assert.deepEqual(parseScratchName(".wh..wh..opq", noRead), { kind: "opaque" });
  // the longest names that still fit behind each prefix, in bytes (é is two)
  assert.equal(maskName("x".repeat(251)).long, false);
  assert.equal(maskName("x".repeat(252)).long, true);
  assert.equal(maskName("é".repeat(126)).long, true);
  assert.equal(metaName("x".repeat(241)).long, false);
  assert.equal(metaName("x".repeat(242)).long, true);
  const long = "L".repeat(255);
  const m = maskName(long), s = metaName(long);
  assert.match(m.file, /^\.wh\.\.wh\.\.lmask\.[0-9a-f]{64}$/);
  assert.match(s.file, /^\.wh\.\.wh\.\.lmeta\.[0-9a-f]{64}$/);
  assert.notEqual(maskName("M".repeat(255)).file, m.file);
  assert.deepEqual(parseScratchName(m.file, () => long), { kind: "mask", name: long });
  assert.deepEqual(parseScratchName(s.file, () => JSON.stringify({ mode: 0o600, name: long })), {
    kind: "meta",
    name: long,
  });
  // a marker whose content is not the name its hash says, or not JSON, is ignored
  assert.deepEqual(parseScratchName(m.file, () => "other"), { kind: "torn" });
  assert.deepEqual(parseScratchName(m.file, () => ""), { kind: "torn" });
  assert.deepEqual(parseScratchName(s.file, () => "{"), { kind: "torn" });
  assert.deepEqual(parseScratchName(s.file, () => JSON.stringify({ mode: 1 })), { kind: "torn" });
});
