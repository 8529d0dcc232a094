/** Host checks that need no mount: fuse.conf's user_allow_other. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { allowOther } from "../../../../core/platform/checks.ts";

Deno.test("allow_other: root always; another uid only with an uncommented user_allow_other line", () => {
  const dir = Deno.makeTempDirSync({ prefix: "spfs-conf-" });
  try {
    const conf = join(dir, "fuse.conf");
    assert.equal(allowOther(conf, 0).ok, true);
    assert.deepEqual(allowOther(conf, 1000), { ok: false, why: `${conf} lacks user_allow_other` });
    Deno.writeTextFileSync(conf, "# mount_max = 1000\n#user_allow_other\n");
    assert.equal(allowOther(conf, 1000).ok, false);
    Deno.writeTextFileSync(conf, "# mount_max = 1000\n  user_allow_other\n");
    assert.deepEqual(allowOther(conf, 1000), { ok: true, why: `${conf} has user_allow_other` });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
