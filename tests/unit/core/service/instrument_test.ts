/**
 * `precompile` calls every op once, before the mount is offered, with a context that throws on
 * first use. That is safe only while each op touches its context before anything else (a native
 * call, a write to shared state): this checks it for every op in the table.
 */
import assert from "node:assert/strict";
import { precompile } from "../../../../core/service/worker/instrument.ts";
import { OPS_TABLE } from "../../../../core/service/worker/ops/table.ts";
import type { Op } from "../../../../core/service/worker/instrument.ts";
import type { OpName } from "../../../../ffi/fuse/abi.ts";

Deno.test("precompile: every op stops at its first use of the context", () => {
  const stray: string[] = [];
  for (const [name, fn] of Object.entries(OPS_TABLE)) {
    if (name === "destroy") continue; // an empty function: nothing to stop
    if (!precompile(fn as Op<OpName>)) stray.push(name);
  }
  assert.deepEqual(stray, []);
});

Deno.test("precompile: runs an op up to its first use of the context; reports one that stops elsewhere", () => {
  let ran = false;
  const early: Op<"statfs"> = (c) => {
    ran = true;
    c.counters[0]++;
  };
  assert.equal(precompile(early as Op<OpName>), true);
  assert.equal(ran, true, "the op ran up to its first use of c, which is why the table test matters");
  const never: Op<"statfs"> = () => {
    throw new Error("other");
  };
  assert.equal(precompile(never as Op<OpName>), false);
});
