/**
 * Files with no OPEN or RELEASE round trip (ffi/fuse/abi.ts `noOpen`): the service is never told
 * when a file is open, so what a local disk does with open files must still hold. Each script runs
 * in a local directory and in an editable runtime, and the two outputs must be equal.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

/** Runs python `code` with D set to `dir`; its stdout, or throws with its stderr. */
async function py(sb: Sandbox, dir: string, code: string, inRuntime: string | null): Promise<string> {
  const argv = ["python3", "-c", `D = ${JSON.stringify(dir)}\n${code}`];
  if (!inRuntime) {
    const r = await runner().run(argv);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout;
  }
  return await sb.ok(["run", "--edit", inRuntime, "--", ...argv]);
}

const OPEN_FILES = `
import os
out = []
# a scratch file unlinked while open for reading and writing: both still work through the fd
fd = os.open(D + "/new", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"first ")
os.unlink(D + "/new")
os.write(fd, b"second")
out.append(os.pread(fd, 100, 0))
out.append(os.fstat(fd).st_size)
out.append(os.path.exists(D + "/new"))
os.close(fd)
# a lower file unlinked while open: its bytes stay readable
fd = os.open(D + "/lower", os.O_RDONLY)
os.unlink(D + "/lower")
out.append(os.read(fd, 100))
os.close(fd)
# a file replaced by rename while open keeps its old bytes; the name shows the new ones
with open(D + "/a", "w") as f: f.write("old a")
r = os.open(D + "/a", os.O_RDONLY)
with open(D + "/b", "w") as f: f.write("new b")
os.rename(D + "/b", D + "/a")
out.append(os.read(r, 100))
os.close(r)
out.append(open(D + "/a").read())
# O_TRUNC of a lower file, and an append through a second fd
with open(D + "/keep", "w") as f: f.write("t")
with open(D + "/keep", "a") as f: f.write("+a")
out.append(open(D + "/keep").read())
# a write-only open of a lower file that never writes changes nothing
os.close(os.open(D + "/other", os.O_WRONLY))
out.append(open(D + "/other").read())
# many opens of one file, closed in another order
fds = [os.open(D + "/other", os.O_RDONLY) for _ in range(50)]
out.append(sum(len(os.pread(f, 4, 0)) for f in fds))
for f in reversed(fds): os.close(f)
print(out)
`;

fuseTest("no OPEN: open, unlinked and renamed-over files behave as on a local disk", async () => {
  const sb = Sandbox.create();
  try {
    const tree = { lower: "lower bytes\n", keep: "kept\n", other: "other\n" };
    writeTree(join(sb.root, "src"), tree);
    writeTree(join(sb.root, "local"), tree);
    await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
    const local = await py(sb, join(sb.root, "local"), OPEN_FILES, null);
    const spfs = await py(sb, sb.mountpoint, OPEN_FILES, "base");
    assert.equal(spfs, local);
    assert.match(
      local,
      /b'first second', 12, False, b'lower bytes\\n', b'old a', 'new b', 't\+a', 'other\\n', 200/,
    );
  } finally {
    await sb.dispose();
  }
});

fuseTest("no OPEN: a file open for writing does not block a commit, and no write is lost", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { f: "base\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
    const M = sb.mountpoint, flag = join(sb.root, "flag"), go = join(sb.root, "go");
    // writes "one", holds the file open while the commit runs outside, then writes "two"
    const code = `
import os, time
fd = os.open("${M}/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, b"one\\n")
open("${flag}", "w").close()
while not os.path.exists("${go}"): time.sleep(0.02)
os.write(fd, b"two\\n")
os.close(fd)
print(open("${M}/log").read(), end="")
`;
    const run = sb.spfs([
      "run",
      "--edit",
      "--name",
      "w",
      "--keep-runtime",
      "base",
      "--",
      "python3",
      "-c",
      code,
    ]);
    for (let i = 0; i < 500 && !exists(flag); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(exists(flag), "the writer started");
    await sb.ok(["commit", "--runtime", "w", "-t", "snap"]);
    Deno.writeTextFileSync(go, "");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "one\ntwo\n", "the write after the commit landed in the same file");
    assert.equal(await sb.ok(["run", "snap", "--", "cat", `${M}/log`]), "one\n");
    // the second write is in the runtime's scratch, on top of the committed layer
    assert.equal(await sb.ok(["run", "--rerun", "w", "--", "cat", `${M}/log`]), "one\ntwo\n");
  } finally {
    await sb.dispose();
  }
});

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}
