/** Editable and durable runtimes on real mounts: POSIX semantics, real workloads, commit, durability. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { LAYER_TIME_S } from "../../core/fs/backend.ts";
import { npmPackageDir, Sandbox } from "../support/sandbox.ts";
import { exists, fuseTest, q, spfsLine, waitFor, writeTree } from "../support/fuse.ts";

const POSIX_OPS = new URL("../support/fixtures/posix_ops.py", import.meta.url).pathname;
const sh = async (cmd: string) => {
  const r = await runner().run(["sh", "-c", cmd]);
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};

/** The starting tree of the POSIX suite (lower layer and local copy alike). */
function posixTree(dir: string): void {
  writeTree(dir, {
    a: "A",
    a2: "A2",
    b: "B",
    c: "C",
    ro: "RO",
    t: "TTTT",
    u: "U",
    v: "V",
    "d/x": "X",
    "d/sub/y": "Y",
    "g/one": "1",
    "g/two": "2",
    l: "->a",
  }, { ro: 0o444 });
  Deno.mkdirSync(join(dir, "e"));
  Deno.mkdirSync(join(dir, "g/h/i"), { recursive: true });
}

fuseTest(
  "editable: every POSIX operation matches a local directory, and commit keeps the result",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = join(sb.root, "src"), local = join(sb.root, "local");
      posixTree(src);
      await sh(`cp -a ${q(src)} ${q(local)}`);
      await sb.ok(["commit", src, "-t", "px"]);
      const want = JSON.parse(await sh(`python3 ${q(POSIX_OPS)} ${q(local)}`));
      const outFile = join(sb.root, "ops.json");
      const r = await sb.spfs([
        "run",
        "--edit",
        "px",
        "--",
        "sh",
        "-c",
        `python3 ${q(POSIX_OPS)} ${q(sb.mountpoint)} > ${q(outFile)} && ${
          spfsLine(["commit", "-t", "px/after"])
        }`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(Deno.readTextFileSync(outFile));
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `step ${want[i][0]}`);
      // the committed layer, run read-only, shows the same tree (FIFOs are not stored; hard links
      // become separate files)
      const tree = JSON.parse(
        await sb.ok(["run", "px/after", "--", "python3", POSIX_OPS, sb.mountpoint, "--tree"]),
      );
      const norm = (rows: any[]) =>
        rows.filter((row) => row[1] !== "fifo").map((row) =>
          row[1] === "file" ? [...row.slice(0, 4), row[5]] : row
        );
      assert.deepEqual(norm(tree), norm(want.at(-1)[1]));
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("editable: read-only runs still get EROFS; bad editable use gets clear errors", async () => {
  const sb = Sandbox.create();
  try {
    const src = join(sb.root, "src");
    posixTree(src);
    await sb.ok(["commit", src, "-t", "base"]);
    const ro = await sb.spfs(["run", "base", "--", "sh", "-c", `echo x > ${sb.mountpoint}/a`]);
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    const outside = await sb.spfs(["commit", "-t", "x"]);
    assert.equal(outside.code, 2);
    assert.match(outside.stderr, /not inside a runtime.*\n.*hint: .*--runtime/);
    const roCommit = await sb.spfs(["run", "base", "--", "sh", "-c", spfsLine(["commit", "-t", "x"])]);
    assert.equal(roCommit.code, 2, roCommit.stderr);
    assert.match(roCommit.stderr, /read-only; there is nothing to commit/);
    const empty = await sb.spfs(["run", "--edit", "base", "--", "sh", "-c", spfsLine(["commit"])]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /no changes to commit/);
    // with a tag and nothing new, the tag names the stack as it is
    const same = await sb.spfs([
      "run",
      "--edit",
      "base",
      "--",
      "sh",
      "-c",
      `${spfsLine(["commit", "-t", "same"])} && ${spfsLine(["commit", "-t", "again", "--json"])}`,
    ]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(
      same.stderr,
      /nothing new in runtime .*; tagged its stack as it is \(1 layer\(s\)\) as same/,
    );
    const base = (await sb.ok(["info", "base", "--json"])).trim();
    const j = JSON.parse(same.stdout.slice(same.stdout.indexOf("{")));
    assert.equal(j.unchanged, true);
    assert.equal(j.tag, "again");
    assert.equal(j.platform, null);
    assert.equal(JSON.parse(base).digest, j.layer);
    assert.equal(JSON.parse(await sb.ok(["info", "same", "--json"])).digest, j.layer);
    const reserved = await sb.spfs([
      "run",
      "--edit",
      "base",
      "--",
      "sh",
      "-c",
      `echo > ${sb.mountpoint}/.wh.x`,
    ]);
    assert.notEqual(reserved.code, 0);
    assert.match(reserved.stderr, /Invalid argument/);
    const badRerun = await sb.spfs(["run", "--rerun", "nope", "--", "true"]);
    assert.equal(badRerun.code, 3);
    assert.match(
      badRerun.stderr,
      /no runtime with id or name "nope"\n.*hint: list them with `spfs runtime list`/,
    );
    const badName = await sb.spfs(["run", "--edit", "--name", "bad name", "base", "--", "true"]);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /invalid runtime name/);
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "workload A: venv, git, tar over a lower dir, delete+recreate; commit work/1 and run it",
  async () => {
    const sb = Sandbox.create();
    try {
      const npm = await npmPackageDir();
      await sb.ok(["commit", npm, "-t", "npm"]);
      const tarball = join(sb.root, "npm.tar");
      await sh(`tar -C ${q(npm)} -cf ${q(tarball)} .`);
      const M = sb.mountpoint;
      const script = [
        "set -e",
        `python3 -m venv ${M}/venv`,
        `${M}/venv/bin/python -c 'import sys; print(sys.prefix)'`,
        `mkdir -p ${M}/work && cd ${M}/work`,
        "git init -q . && git config user.email t@example.com && git config user.name t",
        "echo hello > README && mkdir src && echo 'print(1)' > src/a.py",
        "git add -A && git commit -qm 'first commit' && echo second >> README && git commit -qam 'second commit'",
        `mkdir -p ${M}/lib && tar -C ${M}/lib -xf ${q(tarball)}`,
        `rm -rf ${M}/node_modules/semver && mkdir ${M}/node_modules/semver`,
        `echo replaced > ${M}/node_modules/semver/NEW`,
        "cd /",
        spfsLine(["commit", "-t", "work/1"]),
      ].join("\n");
      const r = await sb.spfs(["run", "--edit", "npm", "--", "sh", "-c", script]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`^${M}/venv$`, "m"));
      const check = [
        "set -e",
        `${M}/venv/bin/python -c 'import sys; print(sys.prefix)'`,
        `git -C ${M}/work log --format=%s`,
        `test ! -e ${M}/node_modules/semver/package.json && echo semver-package-absent`,
        `ls ${M}/node_modules/semver`,
        // work/1 is the whole stack: npm's own lib/ below, the unpacked tree over it
        `test -z "$(diff -r --no-dereference ${
          q(npm)
        } ${M}/lib | grep -v '^Only in ${M}/lib')" && echo lib-identical`,
        `test -f ${M}/lib/npm.js && echo lower-kept`,
        `node ${M}/lib/bin/npm-cli.js --version`,
        `touch ${M}/x 2>/dev/null || echo read-only`,
      ].join("\n");
      const out = await sb.ok(["run", "work/1", "--", "sh", "-c", check]);
      const npmVersion = (await sh("npm --version")).trim();
      assert.deepEqual(out.trim().split("\n"), [
        `${M}/venv`,
        "second commit",
        "first commit",
        "semver-package-absent",
        "NEW",
        "lib-identical",
        "lower-kept",
        npmVersion,
        "read-only",
      ]);
    } finally {
      await sb.dispose();
    }
  },
);

/** Mounts a fresh XFS image with reflink (root and xfsprogs needed), or says why it cannot. */
async function xfsMount(
  dir: string,
  size: string,
): Promise<{ path: string; dispose(): Promise<void> } | string> {
  if (Deno.uid() !== 0) return "mounting an XFS image needs root";
  if ((await runner().run(["sh", "-c", "command -v mkfs.xfs"])).code !== 0) {
    return "mkfs.xfs (xfsprogs) is not installed";
  }
  const img = join(dir, "xfs.img"), mnt = join(dir, "xfs");
  Deno.mkdirSync(mnt, { recursive: true });
  await sh(`truncate -s ${size} ${q(img)} && mkfs.xfs -q -f -m reflink=1 ${q(img)}`);
  const m = await runner().run(["mount", "-o", "loop", img, mnt]);
  if (m.code !== 0) return `cannot loop-mount an XFS image here: ${m.stderr.trim()}`;
  return {
    path: mnt,
    dispose: async () => {
      await runner().run(["umount", "-l", mnt]);
      await runner().run(["rm", "-f", img]);
    },
  };
}

async function appendWorkload(sb: Sandbox, expectReflink: boolean): Promise<void> {
  const src = join(sb.root, "src");
  Deno.mkdirSync(src);
  await sh(`head -c 1073741824 /dev/urandom > ${q(src)}/big.bin`);
  const digest = `sha256:${(await sh(`sha256sum ${q(src)}/big.bin`)).split(" ")[0]}`;
  await sb.ok(["commit", src, "-t", "big"]);
  await sb.ok(["run", "big", "--", "true"]); // starts the service
  const before = JSON.parse(await sb.ok(["status", "--json"]));
  const df = async () => Number((await sh(`df -k --output=used ${q(sb.storage)} | tail -1`)).trim()) * 1024;
  const usedBefore = await df();
  const M = sb.mountpoint;
  const out = await sb.ok([
    "run",
    "--keep-runtime",
    "--name",
    "big",
    "big",
    "--",
    "sh",
    "-c",
    `echo appended >> ${M}/big.bin && tail -c 9 ${M}/big.bin && stat -c %s ${M}/big.bin`,
  ]);
  assert.deepEqual(out.trim().split("\n"), ["appended", String(1073741824 + 9)]);
  const after = JSON.parse(await sb.ok(["status", "--json"]));
  assert.equal(after.backstore.reflink, expectReflink, JSON.stringify(after.backstore));
  assert.equal(after.fuse.copy_ups - before.fuse.copy_ups, 1);
  assert.equal(after.fuse.reflink_copy_ups - before.fuse.reflink_copy_ups, expectReflink ? 1 : 0);
  // the lower blob is unchanged: its object still hashes to its digest, and a read-only run sees it
  const obj = join(sb.storage, "objects", "sha256", digest.slice(7, 9), digest.slice(9));
  assert.equal(`sha256:${(await sh(`sha256sum ${q(obj)}`)).split(" ")[0]}`, digest);
  assert.equal((await sb.ok(["run", "big", "--", "stat", "-c", "%s", `${M}/big.bin`])).trim(), "1073741824");
  if (expectReflink) {
    // a reflink shares extents: scratch's copy adds next to nothing to the space used
    const used = async (p: string) => Number((await sh(`du -sk ${q(p)}`)).split("\t")[0]) * 1024;
    const scratch = JSON.parse(await sb.ok(["runtime", "info", "big", "--json"])).scratch;
    assert.ok(await used(scratch) >= 1073741824, "the scratch copy is a full-size file");
    const grew = await df() - usedBefore;
    console.log(`a 1 GiB copy-up by reflink used ${(grew / 1048576).toFixed(1)} MiB of new space`);
    assert.ok(grew < 256 * 1024 * 1024, `blob and scratch copy share their extents (grew ${grew} bytes)`);
  }
}

fuseTest(
  "workload B: appending to a 1 GiB lower file copies it up (copy_file_range on this backstore)",
  async () => {
    const sb = Sandbox.create();
    try {
      // the machine's default backstore decides which copy-up path this case shows
      const tmp = join(sb.root, "t");
      Deno.mkdirSync(tmp);
      await sb.ok(["commit", tmp, "-t", "empty"]);
      await sb.ok(["run", "empty", "--", "true"]);
      const st = JSON.parse(await sb.ok(["status", "--json"]));
      console.log(`default backstore: ${st.backstore.fs_type}, copy-up by ${st.backstore.copy_up}`);
      await appendWorkload(sb, st.backstore.reflink);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("workload B: on an XFS backstore, copy-up of a 1 GiB file is a reflink", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "spfs-xfs-" });
  const xfs = await xfsMount(dir, "3G");
  if (typeof xfs === "string") {
    console.log(`SKIP reflink case: ${xfs}`);
    if (Deno.env.get("SPFS_REQUIRE_FUSE") === "1" && Deno.uid() === 0) throw new Error(xfs);
    await Deno.remove(dir, { recursive: true });
    return;
  }
  const sb = Sandbox.create({ parent: xfs.path });
  try {
    await appendWorkload(sb, true);
  } finally {
    await sb.dispose();
    await xfs.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

fuseTest(
  "durable: changes survive service --stop and SIGKILL, --rerun sees them, remove deletes them",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = join(sb.root, "src");
      writeTree(src, {
        "a.txt": "a\n",
        "b.txt": "b\n",
        "c.txt": "c\n",
        "d/old": "old\n",
        "d/sub/deep": "deep\n",
      });
      await sb.ok(["commit", src, "-t", "base"]);
      const M = sb.mountpoint;
      const change = [
        `echo new > ${M}/new`,
        `rm ${M}/a.txt`,
        `rm -r ${M}/d && mkdir ${M}/d && echo z > ${M}/d/z`,
        `chmod 600 ${M}/b.txt`,
        `echo appended >> ${M}/c.txt`,
      ].join(" && ");
      await sb.ok(["run", "--keep-runtime", "--name", "dur", "base", "--", "sh", "-c", change]);
      const state =
        `cat ${M}/new ${M}/c.txt; ls ${M}; ls ${M}/d; stat -c %a ${M}/b.txt; test -e ${M}/a.txt || echo no-a`;
      const expected = "new\nc\nappended\nb.txt\nc.txt\nd\nnew\nz\n600\nno-a\n";
      const info = JSON.parse(await sb.ok(["runtime", "info", "dur", "--json"]));
      assert.equal(info.durable, true);
      assert.equal(info.active, false);
      // chmod of a lower file is metadata only: no data copy in scratch
      const scratch = [...Deno.readDirSync(info.scratch)].map((e) => e.name).sort();
      assert.ok(scratch.includes(".wh..wh..meta.b.txt"), scratch.join(","));
      assert.ok(!scratch.includes("b.txt"));
      assert.ok(scratch.includes(".wh.a.txt"));

      await sb.ok(["service", "--stop"]);
      assert.equal(await sb.ok(["run", "--rerun", "dur", "--", "sh", "-c", state]), expected);

      // SIGKILL the service while the runtime is in use, after one more change
      const marker = join(sb.root, "changed");
      const bg = sb.command([
        "run",
        "--rerun",
        "dur",
        "--",
        "sh",
        "-c",
        `echo more >> ${M}/new && touch ${q(marker)} && sleep 3`,
      ]).spawn();
      await waitFor("the change", () => exists(marker));
      Deno.kill(sb.servicePid()!, "SIGKILL");
      await bg.output();
      assert.equal(
        await sb.ok(["run", "--rerun", "dur", "--", "sh", "-c", state]),
        expected.replace("new\n", "new\nmore\n"),
      );

      const inUse = sb.command(["run", "--rerun", "dur", "--", "sh", "-c", `touch ${q(marker)}2 && sleep 3`])
        .spawn();
      await waitFor("the rerun to start", () => exists(`${marker}2`));
      const busy = await sb.spfs(["run", "--rerun", "dur", "--", "true"]);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /already running/);
      const rm = await sb.spfs(["runtime", "remove", "dur"]);
      assert.equal(rm.code, 1);
      assert.match(rm.stderr, /is running/);
      await inUse.output();

      await sb.ok(["runtime", "remove", "dur"]);
      assert.deepEqual(JSON.parse(await sb.ok(["runtime", "list", "--json"])), []);
      assert.throws(() => Deno.statSync(info.scratch), Deno.errors.NotFound);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("no leaks: a non-durable runtime's scratch is gone within 5 s of its root exiting", async () => {
  const sb = Sandbox.create();
  try {
    const src = join(sb.root, "src");
    writeTree(src, { "a.txt": "a\n" });
    await sb.ok(["commit", src, "-t", "base"]);
    const out = await sb.ok([
      "run",
      "--edit",
      "base",
      "--",
      "sh",
      "-c",
      `echo x > ${sb.mountpoint}/f && echo $SPFS_RUNTIME && ls ${sb.storage}/runtimes/$SPFS_RUNTIME/scratch`,
    ]);
    const [id, listed] = out.trim().split("\n");
    assert.equal(listed, "f");
    const dir = join(sb.storage, "runtimes", id);
    const t0 = performance.now();
    while (performance.now() - t0 < 5000) {
      try {
        Deno.statSync(dir);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound, `${dir} still exists after 5 s`);
    console.log(`scratch removed ${Math.round(performance.now() - t0)} ms after the run returned`);
    // commit from outside while a named runtime runs
    const bg = sb.command([
      "run",
      "--edit",
      "--name",
      "live",
      "base",
      "--",
      "sh",
      "-c",
      `echo y > ${sb.mountpoint}/g && touch ${q(sb.root)}/written && sleep 3`,
    ]).spawn();
    await waitFor("the write", () => exists(`${sb.root}/written`));
    await sb.ok(["commit", "--runtime", "live", "-t", "live/1"]);
    await bg.output();
    assert.equal((await sb.ok(["run", "live/1", "--", "cat", `${sb.mountpoint}/g`])).trim(), "y");
  } finally {
    await sb.dispose();
  }
});

fuseTest("isolation: two editable runtimes write the same path concurrently, 1,000 times each", async () => {
  const sb = Sandbox.create();
  try {
    const src = join(sb.root, "src");
    writeTree(src, { "shared.txt": "base\n" });
    await sb.ok(["commit", src, "-t", "base"]);
    const loop = (tag: string) =>
      `import os
bad = 0
p = "${sb.mountpoint}/shared.txt"
for i in range(1000):
    want = "${tag}-%d" % i
    with open(p, "w") as f:
        f.write(want)
    with open(p) as f:
        got = f.read()
    if got != want or os.stat(p).st_size != len(want):
        bad += 1
print(bad)`;
    const runs = await Promise.all(
      ["one", "two"].map((tag) => sb.spfs(["run", "--edit", "base", "--", "python3", "-c", loop(tag)])),
    );
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "0");
    }
    assert.equal(await sb.ok(["run", "base", "--", "cat", `${sb.mountpoint}/shared.txt`]), "base\n");
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "spfs diff lists a runtime's changes; runtime prune removes stopped runtimes after confirmation",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = join(sb.root, "src");
      writeTree(src, { "a.txt": "a\n", "b.txt": "b\n", "d/x": "x\n", "d/y": "y\n", "keep": "k\n" });
      await sb.ok(["commit", src, "-t", "base"]);
      const M = sb.mountpoint;
      const script = [
        `echo new > ${M}/new`,
        `echo changed >> ${M}/a.txt`,
        `rm ${M}/b.txt`,
        `rm -r ${M}/d`,
        `chmod 600 ${M}/keep`,
        spfsLine(["diff"]),
        `echo ---`,
        spfsLine(["diff", "--json"]),
      ].join(" && ");
      const out = await sb.ok(["run", "--keep-runtime", "--name", "p1", "base", "--", "sh", "-c", script]);
      const [text, json] = out.split("---\n");
      assert.equal(text, "M /a.txt\nD /b.txt\nD /d/\nM /keep\nA /new\n");
      assert.deepEqual(JSON.parse(json).map((c: any) => `${c.op} ${c.path}`), [
        "changed /a.txt",
        "removed /b.txt",
        "removed /d",
        "changed /keep",
        "added /new",
      ]);
      // from outside, by name; and between two refs
      assert.equal(await sb.ok(["diff", "--runtime", "p1"]), text);
      await sb.ok(["run", "--rerun", "p1", "--", "sh", "-c", spfsLine(["commit", "-t", "base/2"])]);
      assert.equal(await sb.ok(["diff", "base", "base/2"]), text);
      await sb.ok(["run", "--keep-runtime", "--name", "p2", "base", "--", "true"]);
      const list = JSON.parse(await sb.ok(["runtime", "list", "--json"]));
      assert.deepEqual(list.map((r: any) => [r.name, r.active, r.durable, r.layers.length]), [
        ["p1", false, true, 2],
        ["p2", false, true, 1],
      ]);
      const dry = await sb.ok(["runtime", "prune", "--dry-run"]);
      assert.equal(dry.trim().split("\n").length, 2);
      const refused = await sb.spfs(["runtime", "prune"]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /prune would delete 2 runtime\(s\).*\n.*hint: pass --yes/);
      assert.equal(JSON.parse(await sb.ok(["runtime", "list", "--json"])).length, 2);
      await sb.ok(["runtime", "prune", "--yes"]);
      assert.deepEqual(JSON.parse(await sb.ok(["runtime", "list", "--json"])), []);
      assert.deepEqual([...Deno.readDirSync(join(sb.storage, "runtimes"))].filter((e) => e.isDirectory), []);
    } finally {
      await sb.dispose();
    }
  },
);

/**
 * Runs `body` on a fresh sandbox where tag `base` (one file) is committed, then disposes of it;
 * `sh(script, opts)` runs `sh -c script` in a runtime of `base` started with `opts`.
 */
async function withBase(
  body: (sb: Sandbox, M: string, sh: (script: string, opts?: string[]) => Promise<string>) => Promise<void>,
  tree: Record<string, string> = { "keep": "k\n" },
): Promise<void> {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), tree);
    await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
    await body(
      sb,
      sb.mountpoint,
      (script, opts = ["--edit"]) => sb.ok(["run", ...opts, "base", "--", "sh", "-c", script]),
    );
  } finally {
    await sb.dispose();
  }
}

fuseTest(
  "a commit breaks hard links as its layer does, in the running runtime too: a write lands in its own name",
  () =>
    withBase(async (sb, M, sh) => {
      const commit = spfsLine(["commit"]);
      const live = await sh(
        `cd ${M} && echo one > f && ln f g && ${commit} >/dev/null && echo two > f && cat f g && stat -c %h f g`,
        ["--keep-runtime", "--name", "hl"],
      );
      assert.equal(live, "two\none\n1\n1\n");
      // the same when the kernel had forgotten both names before the commit: they must not come
      // back as one inode (before the fix, f read g's bytes and a write to one showed in both)
      const forgot = await sh(
        `cd ${M} && echo one > f && ln f g && sync && echo 2 > /proc/sys/vm/drop_caches && ` +
          `${commit} >/dev/null && echo two > f && cat f g && stat -c %h f g && ` +
          `test "$(stat -c %i f)" != "$(stat -c %i g)" && echo apart`,
        ["--keep-runtime", "--name", "hl2"],
      );
      assert.equal(forgot, "two\none\n1\n1\napart\n");
      // a linked file held open under one name while the kernel forgot the dir of its other: the
      // commit must find that dir again (before the fix it detached the file, and the open fd
      // read ENOENT, or EIO once the kernel saw its mode-0 attributes)
      const held = await sh(
        `cd ${M} && mkdir x y && echo data > x/f && ln x/f y/g && exec 3< y/g && sync && ` +
          `echo 2 > /proc/sys/vm/drop_caches && ${commit} >/dev/null && cat <&3 && sleep 1.1 && ` +
          `stat -L -c %F /dev/fd/3 && cat x/f y/g`,
        ["--keep-runtime", "--name", "hl3"],
      );
      assert.equal(held, "data\nregular file\ndata\ndata\n");
      await sb.ok(["service", "--stop", "--force"]);
      assert.equal(
        await sb.ok(["run", "--rerun", "hl", "--", "sh", "-c", `cd ${M} && cat f g`]),
        "two\none\n",
      );
    }),
);

fuseTest(
  "right after a commit, stat shows what the layer kept: owners and times it dropped are gone at once",
  () =>
    withBase(async (_sb, M, sh) => {
      // before the commit invalidated the kernel's cached attributes (1 s), stat still said
      // 65534 and today's year right after it
      const out = await sh(
        // a stat every 50 ms keeps the kernel's attributes fresh up to the swap
        // (below the root: a root entry is looked up afresh each time, with its attributes)
        `cd ${M} && mkdir d && echo x > d/f && chown 65534 d/f && stat -c %u d/f || exit 1; ` +
          `(while :; do stat d/f >/dev/null; sleep 0.05; done) & ` +
          `${spfsLine(["commit"])} >/dev/null && stat -c '%u %Y' d/f; kill $!`,
      );
      assert.equal(out, `65534\n${Deno.uid()} ${LAYER_TIME_S}\n`);
    }),
);

fuseTest(
  "a commit drops FIFOs as its layer does, in the running runtime too: a file made there is a new inode",
  () =>
    withBase(async (sb, M, sh) => {
      const commit = spfsLine(["commit"]);
      // the kernel had p's entry (60 s) and inode; before the fix p still showed as a FIFO after
      // the commit, and a file made there took the FIFO's inode number (the kernel then said EIO)
      const out = await sh(
        `cd ${M}/ && mkdir -p d && mkfifo d/p && stat -c %F:%i d/p > ${sb.root}/before && ` +
          `${commit} >/dev/null 2>&1 && { test -e d/p && echo still there; true; } && ` +
          // (a FIFO still there would block the write: timeout ends it)
          `timeout 5 sh -c 'echo x > d/p'; cat d/p; stat -c %F:%i d/p`,
      );
      const [kind, ino] = Deno.readTextFileSync(join(sb.root, "before")).trim().split(":");
      assert.equal(kind, "fifo");
      const lines = out.trim().split("\n");
      assert.equal(lines[0], "x", out);
      const [kind2, ino2] = lines[1].split(":");
      assert.equal(kind2, "regular file");
      assert.notEqual(ino2, ino, "the file at the FIFO's name has an inode of its own");
    }),
);

fuseTest(
  "commit under steady writes: a program that never stops writing does not stop its runtime's commits",
  () =>
    // a log, a language server's cache, an agent's scratch files: the runtime never goes still
    withBase(async (sb, M) => {
      const writer = [
        "import os, sys, time",
        "i = 0",
        `with open('${M}/var/log', 'a', buffering=1) as f:`,
        "    while not os.path.exists(sys.argv[1]):",
        "        f.write(f'line {i}\\n')",
        `        open(f'${M}/var/cache-{i % 7}', 'w').write(str(i))`,
        "        i += 1",
      ].join("\n");
      Deno.writeTextFileSync(join(sb.root, "writer.py"), writer);
      const stop = join(sb.root, "stop");
      const commits = [1, 2, 3, 4].map((i) => `${spfsLine(["commit", "-t", `c${i}`])} >/dev/null || exit 9`);
      const r = await sb.spfs([
        "run",
        "--edit",
        "base",
        "--",
        "sh",
        "-c",
        `python3 ${q(join(sb.root, "writer.py"))} ${q(stop)} & sleep 0.5; ${commits.join("; ")}; ` +
        `touch ${q(stop)}; wait; cat ${M}/var/log | wc -l`,
      ]);
      assert.equal(r.code, 0, `a commit failed: ${r.stderr}`);
      const total = Number(r.stdout.trim());
      // each commit is one moment of the runtime: the log whole up to some line, nothing torn
      let last = 0;
      for (const i of [1, 2, 3, 4]) {
        const log = await sb.ok(["run", `c${i}`, "--", "cat", `${M}/var/log`]);
        const lines = log.split("\n").slice(0, -1);
        assert.ok(log.endsWith("\n"), `c${i}: the log ends mid-line`);
        lines.forEach((l, k) => assert.equal(l, `line ${k}`, `c${i}: line ${k}`));
        assert.ok(lines.length >= last, `c${i} has fewer lines than the commit before`);
        last = lines.length;
      }
      assert.ok(last > 0 && last <= total, `${last} committed lines of ${total}`);
      console.log(`  4 commits landed while a program wrote ${total} lines; the last kept ${last}`);
    }, { "var/keep": "k\n", "bin/tool": "t\n" }),
);
