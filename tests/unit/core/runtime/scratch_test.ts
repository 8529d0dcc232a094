import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchBase } from "../../../../core/runtime/ramdisk.ts";
import type { Config } from "../../../../core/config.ts";
import { SpfsError } from "../../../../core/errors.ts";

Deno.test("--scratch DIR: a directory holds spfs-runtimes/; a missing path or a file says which and how to fix", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const cfg = {} as Config;
    assert.equal(scratchBase(cfg, dir), `${dir}/spfs-runtimes`);
    const fail = (spec: string) => {
      try {
        scratchBase(cfg, spec);
      } catch (e) {
        assert.ok(e instanceof SpfsError);
        return `${e.code}: ${e.message} (${e.hint})`;
      }
      assert.fail(`${spec} was accepted`);
    };
    const missing = join(dir, "nope");
    assert.equal(
      fail(missing),
      `UsageError: --scratch ${missing} does not exist (create it first: mkdir -p ${missing})`,
    );
    Deno.writeTextFileSync(join(dir, "f"), "");
    assert.match(fail(join(dir, "f")), /^UsageError: --scratch .*\/f is not a directory \(pass a directory/);
    assert.match(fail("rel/dir"), /must be ramdisk:NAME or an absolute directory/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
