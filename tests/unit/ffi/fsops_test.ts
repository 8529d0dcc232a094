/** ffi/fsops.ts calls that tests elsewhere do not reach through the overlay. */
import assert from "node:assert/strict";
import { E } from "../../../ffi/errno.ts";
import { markTopDir } from "../../../ffi/fsops.ts";
import { os } from "../../../ffi/os.ts";
import { RuntimeDb } from "../../../core/runtime/records.ts";

/** chattr(1)'s letters for `dir`, from lsattr(1) (e2fsprogs), or null where it has none. */
async function lsattr(dir: string): Promise<string | null> {
  const out = await new Deno.Command("lsattr", { args: ["-d", dir], stdout: "piped", stderr: "null" })
    .output()
    .catch(() => null);
  return out?.success ? new TextDecoder().decode(out.stdout).split(" ")[0] : null;
}

/** The answers of a filesystem or OS without FS_TOPDIR_FL. */
const UNSUPPORTED = [E.ENOTSUP, E.ENOTTY, E.EINVAL];

Deno.test("markTopDir sets chattr's T on a dir, keeps its other flags, and is idempotent", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const before = await lsattr(dir);
    const r = markTopDir(dir);
    if (r !== true) {
      assert.ok(UNSUPPORTED.includes(r), `unexpected errno ${r}`);
      console.log(`markTopDir: not supported under ${dir} (errno ${r}); only the refusal is checked`);
      return;
    }
    assert.equal(os, "linux");
    const after = await lsattr(dir);
    assert.ok(after?.includes("T"), `lsattr: ${after}`);
    // every other letter stays as it was
    if (before) assert.equal(after!.replace("T", "-"), before);
    assert.equal(markTopDir(dir), true);
    assert.equal(await lsattr(dir), after);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("markTopDir answers an errno for a missing path and for a file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.equal(markTopDir(`${dir}/nope`), E.ENOENT);
    Deno.writeTextFileSync(`${dir}/f`, "x");
    assert.equal(markTopDir(`${dir}/f`), os === "darwin" ? E.ENOTSUP : E.ENOTDIR);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the runtimes dir of a storage root is marked, so scratch trees spread over ext4", async () => {
  const root = Deno.makeTempDirSync();
  try {
    new RuntimeDb(root).db.close();
    const supported = markTopDir(Deno.makeTempDirSync({ dir: root })) === true;
    const attrs = await lsattr(`${root}/runtimes`);
    if (supported) assert.ok(attrs?.includes("T"), `lsattr: ${attrs}`);
    else console.log(`FS_TOPDIR_FL unsupported under ${root}; only that the db opened is checked`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
