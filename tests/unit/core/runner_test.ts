/** The real command runner runs programs, never the dax shell's builtins of the same name. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { daxRunner } from "../../../core/runner.ts";

Deno.test("runner: `cp -a` is the real cp (dax's builtin has no -a); a missing program is 127", async () => {
  const root = Deno.makeTempDirSync({ prefix: "spfs-runner-" });
  try {
    Deno.mkdirSync(join(root, "src/a"), { recursive: true });
    Deno.writeTextFileSync(join(root, "src/a/f"), "x");
    Deno.symlinkSync("a/f", join(root, "src/l"));
    const r = await daxRunner.run(["cp", "-a", join(root, "src"), join(root, "dst")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(join(root, "dst/a/f")), "x");
    assert.equal(Deno.readLinkSync(join(root, "dst/l")), "a/f");
    const missing = await daxRunner.run(["spfs-no-such-program-x"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /spfs-no-such-program-x: command not found/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
