/** The real command runner: real programs (never shell builtins), honest exit codes for signals. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { processRunner } from "../../../core/runner.ts";

Deno.test("runner: `cp -a` is the real cp (dax's builtin has no -a); a missing program is 127", async () => {
  const root = Deno.makeTempDirSync({ prefix: "spfs-runner-" });
  try {
    Deno.mkdirSync(join(root, "src/a"), { recursive: true });
    Deno.writeTextFileSync(join(root, "src/a/f"), "x");
    Deno.symlinkSync("a/f", join(root, "src/l"));
    const r = await processRunner.run(["cp", "-a", join(root, "src"), join(root, "dst")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(join(root, "dst/a/f")), "x");
    assert.equal(Deno.readLinkSync(join(root, "dst/l")), "a/f");
    const missing = await processRunner.run(["spfs-no-such-program-x"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /spfs-no-such-program-x: command not found/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("runner: a child killed by a signal is 128+N, never 0; stdin reaches the child; timeoutMs kills", async () => {
  // dax-sh 0.44 reported 0 here, which made a hung FUSE mount look healthy
  assert.equal((await processRunner.run(["sh", "-c", "kill -9 $$"])).code, 137);
  assert.equal((await processRunner.run(["timeout", "-s", "KILL", "0.2", "sleep", "5"])).code, 137);
  assert.equal((await processRunner.run(["sh", "-c", "exit 3"])).code, 3);
  const cat = await processRunner.run(["cat"], { stdin: "in\n" });
  assert.deepEqual([cat.code, cat.stdout], [0, "in\n"]);
  // sleep exits 0 unless it was stopped
  assert.notEqual((await processRunner.run(["sleep", "5"], { timeoutMs: 200 })).code, 0);
});
