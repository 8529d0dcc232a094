/** ffi/fsops.ts calls that tests elsewhere do not reach through the overlay. */
import assert from "node:assert/strict";
import { E } from "../../../ffi/errno.ts";
import { closeFd, fdPath, markTopDir, nameInDir, openDirNoFollow, openRegular } from "../../../ffi/fsops.ts";
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

Deno.test("openRegular reads only a regular file, never through a symlink; nameInDir follows an open dir", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/f`, "data");
    Deno.symlinkSync("f", `${dir}/link`);
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    assert.equal(openRegular(`${dir}/link`), -E.ELOOP, "a symlink is refused, not followed");
    assert.equal(openRegular(`${dir}/fifo`), -E.ENXIO, "a FIFO is refused without blocking");
    assert.equal(openRegular(`${dir}/gone`), -E.ENOENT);
    const fd = openRegular(`${dir}/f`);
    assert.ok(fd >= 0);
    assert.equal(Deno.readTextFileSync(fdPath(fd)), "data");
    closeFd(fd);
    assert.ok([-E.ELOOP, -E.ENOTDIR].includes(openDirNoFollow(`${dir}/link`)), "no dir through a symlink");
    Deno.mkdirSync(`${dir}/d`);
    Deno.writeTextFileSync(`${dir}/d/x`, "in d");
    const dfd = openDirNoFollow(`${dir}/d`);
    assert.ok(dfd >= 0);
    Deno.renameSync(`${dir}/d`, `${dir}/moved`);
    Deno.symlinkSync("/etc", `${dir}/d`); // the old path now leads elsewhere
    if (os === "linux") assert.equal(Deno.readTextFileSync(nameInDir(dfd, "x")!), "in d");
    else assert.equal(nameInDir(dfd, "x"), null);
    closeFd(dfd);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
