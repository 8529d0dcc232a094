/**
 * An editable runtime behaves like a local disk for every user, and no spfs command hangs on a
 * mount: other uids inside a runtime, inode numbers across the kernel dropping its caches, layer
 * times that zip tools accept, and a FUSE mount whose server stopped answering. (Names, deep
 * paths, link counts, devices, fallocate and ctime are compared with a local dir step by step in
 * edit_test.ts through tests/support/fixtures/posix_ops.py.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, q, spfsLine, waitFor, writeTree } from "../support/fuse.ts";

const NOBODY = "setpriv --reuid 65534 --regid 65534 --clear-groups";

/** Lets uid 65534 reach the sandbox's mount point (temp dirs are 0700). */
function openUp(sb: Sandbox): void {
  Deno.chmodSync(sb.root, 0o755);
  for (let d = sb.mountpoint; d.startsWith(sb.root) && d !== sb.root; d = join(d, "..")) {
    Deno.chmodSync(d, 0o755);
  }
}

fuseTest(
  "other users inside an editable runtime get mode-bit permissions; outside, an empty mount point",
  async () => {
    const sb = Sandbox.create();
    const M = sb.mountpoint;
    try {
      openUp(sb);
      const src = join(sb.root, "src");
      writeTree(src, { "pub.txt": "public\n", "open/.keep": "" }, { "pub.txt": 0o644, "open/.keep": 0o644 });
      Deno.chmodSync(join(src, "open"), 0o777);
      await sb.ok(["commit", src, "-t", "users"]);
      const script = [
        `echo root > ${M}/rootfile && chmod 0644 ${M}/rootfile`,
        `${NOBODY} sh -c ${
          q([
            `cat ${M}/pub.txt`,
            `(echo x > ${M}/rootfile) 2>/dev/null && echo WROTE-ROOTFILE || echo denied-rootfile`,
            `(echo x >> ${M}/pub.txt) 2>/dev/null && echo WROTE-LOWER || echo denied-lower`,
            `echo mine > ${M}/open/mine && stat -c %u ${M}/open/mine && cat ${M}/open/mine`,
          ].join("; "))
        }`,
      ].join(" && ");
      const out = await sb.ok(["run", "--edit", "users", "--", "sh", "-c", script]);
      assert.deepEqual(out.trim().split("\n"), [
        "public",
        "denied-rootfile",
        "denied-lower",
        "65534",
        "mine",
      ]);
      const outside = await runner().run(["sh", "-c", `${NOBODY} ls -A ${q(M)}`]);
      assert.equal(outside.code, 0, outside.stderr);
      assert.equal(outside.stdout, "", "the same uid outside every runtime sees an empty mount point");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "names and link targets that are not UTF-8 get EILSEQ (as on APFS), never one file for two names",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { a: "a\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
      const script = `
import errno, json, os
os.chdir(${JSON.stringify(sb.mountpoint)})
res = []
def attempt(fn):
    try:
        fn()
        res.append("ok")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
attempt(lambda: open(b"caf\\xe9", "w"))
attempt(lambda: open(b"caf\\xe8", "w"))
attempt(lambda: os.mkdir(b"d\\xff"))
attempt(lambda: os.rename(b"a", b"b\\xff"))
attempt(lambda: os.stat(b"x\\xff"))
attempt(lambda: open("caf\\ufffd", "w"))
attempt(lambda: os.symlink(b"t\\xffx", b"bad"))
os.symlink("t\\u2192x", "lnk")
print(json.dumps({"res": res, "ls": sorted(n.hex() for n in os.listdir(b".")), "link": os.readlink(b"lnk").hex()}))
`;
      const out = JSON.parse(await sb.ok(["run", "--edit", "base", "--", "python3", "-c", script]));
      // U+FFFD itself too: commit reads names lossily and could not tell it from a bad byte
      assert.deepEqual(out.res, Array(7).fill("EILSEQ"));
      assert.deepEqual(out.ls, ["61", "6c6e6b"], "nothing was created but lnk");
      assert.equal(out.link, "74e2869278", "the target's bytes");
      const commit = spfsLine(["commit", "-t", "linked"]);
      await sb.ok([
        "run",
        "--edit",
        "base",
        "--",
        "sh",
        "-c",
        `ln -s 't\u2192x' ${sb.mountpoint}/l && ${commit}`,
      ]);
      assert.equal(await sb.ok(["run", "linked", "--", "readlink", `${sb.mountpoint}/l`]), "t\u2192x\n");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "hard links to a lower file: renaming one name and unlinking the other behaves as on a local dir, through commit",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = join(sb.root, "src");
      writeTree(src, { "a.txt": "hello\n", "b.txt": "b\n" });
      await sb.ok(["commit", src, "-t", "base"]);
      // each name of a hard-linked file decides its own mask: a.txt has a lower entry, hard.txt none
      const script = `
import os, sys
os.chdir(sys.argv[1])
os.link("a.txt", "hard.txt")
with open("hard.txt", "a") as f: f.write("more\\n")
os.rename("hard.txt", "moved.txt")
os.unlink("a.txt")
os.link("b.txt", "b2.txt")
os.rename("b.txt", "b3.txt")
os.unlink("b2.txt")
print(sorted(os.listdir(".")), open("moved.txt").read().split(), os.stat("moved.txt").st_nlink)
`;
      const local = join(sb.root, "local");
      await runner().run(["cp", "-a", src, local]);
      const want = await runner().run(["python3", "-c", script, local]);
      assert.equal(want.code, 0, want.stderr);
      const commit = spfsLine(["commit", "-t", "after"]);
      const got = await sb.ok([
        "run",
        "--edit",
        "base",
        "--",
        "sh",
        "-c",
        `python3 -c ${q(script)} ${sb.mountpoint} && ${commit} >/dev/null`,
      ]);
      assert.equal(got, want.stdout);
      assert.equal(await sb.ok(["run", "after", "--", "ls", sb.mountpoint]), "b3.txt\nmoved.txt\n");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("inode numbers stay the same when the kernel drops its caches, editable and read-only", async () => {
  assert.equal(Deno.uid(), 0, "dropping the kernel's caches needs root (CI and the dev machines are root)");
  const sb = Sandbox.create();
  const M = sb.mountpoint;
  try {
    const src = join(sb.root, "src");
    writeTree(src, { f: "1", "d/g": "2", "d/e/h": "3" });
    await sb.ok(["commit", src, "-t", "ino"]);
    const paths = ["f", "d", "d/g", "d/e", "d/e/h"].map((p) => `${M}/${p}`).join(" ");
    const script = `stat -c %i ${paths}; echo 2 > /proc/sys/vm/drop_caches; sleep 0.2; stat -c %i ${paths}`;
    for (const edit of [[], ["--edit"]]) {
      const lines = (await sb.ok(["run", ...edit, "ino", "--", "sh", "-c", script])).trim().split("\n");
      assert.equal(lines.length, 10);
      assert.deepEqual(lines.slice(5), lines.slice(0, 5), `same inodes after drop_caches ${edit.join(" ")}`);
    }
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "tar -x sets modes, owners and times through its open files as on a local disk; a commit keeps the modes",
  async () => {
    const sb = Sandbox.create();
    const M = sb.mountpoint;
    try {
      // a tree with odd modes, owners and times, archived with numeric owners
      const src = join(sb.root, "src"), tar = join(sb.root, "t.tar"), local = join(sb.root, "local");
      writeTree(src, { "a/x": "x\n", "a/ro": "ro\n", "a/b/big": "y".repeat(70_000), "setuid": "s\n" });
      const prep = [
        `cd ${q(src)}`,
        "chmod 0444 a/ro && chmod 4755 setuid && chmod 0750 a/b",
        "chown 65534:65534 a/x && chown 123:456 a/b/big",
        "touch -h -d '2001-02-03 04:05:06.789' a/x a/ro a/b/big setuid a/b a",
        `tar --format=posix --numeric-owner -cf ${q(tar)} .`,
        `mkdir ${q(local)} && tar -xpf ${q(tar)} -C ${q(local)}`,
      ];
      assert.equal((await runner().run(["sh", "-ec", prep.join("\n")])).code, 0);
      const list = (dir: string) =>
        `cd ${dir} && find . -mindepth 1 -printf '%p %y %m %U:%G %s %T@\\n' | sort`;
      const want = (await runner().run(["sh", "-c", list(q(local))])).stdout;
      assert.ok(want.includes("./a/x f 644 65534:65534 2 981173106.7890000000"), want);
      Deno.mkdirSync(join(sb.root, "empty"));
      await sb.ok(["commit", join(sb.root, "empty"), "-t", "empty"]);
      const got = await sb.ok([
        "run",
        "--edit",
        "empty",
        "--",
        "sh",
        "-ec",
        `mkdir ${M}/t && tar -xpf ${q(tar)} -C ${M}/t && ${list(`${M}/t`)} && ${
          spfsLine(["commit", "-t", "untarred"])
        } >/dev/null`,
      ]);
      assert.equal(got, want);
      // a layer keeps names, types and modes; owners and times are normalized (see the next test)
      const modes = (l: string) => l.split("\n").map((e) => e.split(" ").slice(0, 3).join(" ")).join("\n");
      assert.equal(modes(await sb.ok(["run", "untarred", "--", "sh", "-c", list(`${M}/t`)])), modes(want));
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("layer files show 1980-01-01 as their times, which zip and wheel tools accept", async () => {
  const sb = Sandbox.create();
  const M = sb.mountpoint;
  try {
    const src = join(sb.root, "src");
    writeTree(src, { "pkg/mod.py": "x = 1\n" });
    await sb.ok(["commit", src, "-t", "times"]);
    const zip = join(sb.root, "out.zip");
    const out = await sb.ok([
      "run",
      "times",
      "--",
      "sh",
      "-c",
      `stat -c %Y ${M}/pkg/mod.py && python3 -c ${
        q(`import zipfile; zipfile.ZipFile(${JSON.stringify(zip)}, "w").write(${
          JSON.stringify(`${M}/pkg/mod.py`)
        })`)
      } && echo zipped`,
    ]);
    assert.deepEqual(out.trim().split("\n"), ["315532800", "zipped"]);
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "a hung FUSE mount: doctor and run finish within 5 s, say so, and the cleanup recovers it",
  async () => {
    const sb = Sandbox.create();
    const M = sb.mountpoint;
    const other = join(sb.root, "other-runtime");
    let stuck: number | undefined;
    try {
      writeTree(join(sb.root, "src"), { f: "hello\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "h"]);
      // a second service (its own runtime dir, so its own lock) mounts here, then stops answering
      await sb.ok(["service"], { SPFS_RUNTIME_DIR: other });
      stuck = Number(Deno.readTextFileSync(join(other, "service.pid")).trim());
      // the kernel caches the root's attributes: a probe must not take them for an answer
      await runner().run(["stat", M]);
      Deno.kill(stuck, "SIGSTOP");

      let t0 = performance.now();
      const doctor = await sb.spfs(["doctor", "--json"]);
      const doctorS = (performance.now() - t0) / 1000;
      assert.ok(doctorS < 5, `doctor took ${doctorS.toFixed(1)} s`);
      assert.notEqual(doctor.code, 0);
      const checks = JSON.parse(doctor.stdout).checks as { name: string; detail: string; fix?: string }[];
      const mp = checks.find((c) => c.name === "mount point")!;
      assert.match(mp.detail, new RegExp(`hung FUSE mount at ${M}`));
      assert.match(mp.fix!, /\/sys\/fs\/fuse\/connections\/\d+\/abort/);

      t0 = performance.now();
      const run = await sb.spfs(["run", "h", "--", "cat", `${M}/f`]);
      const runS = (performance.now() - t0) / 1000;
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "hello\n");
      assert.ok(runS < 5, `run took ${runS.toFixed(1)} s`);

      // our own service stopped: run says so instead of hanging
      const ours = sb.servicePid()!;
      Deno.kill(ours, "SIGSTOP");
      t0 = performance.now();
      const blocked = await sb.spfs(["run", "h", "--", "true"]);
      assert.ok((performance.now() - t0) / 1000 < 5);
      assert.notEqual(blocked.code, 0);
      assert.match(blocked.stderr, new RegExp(`service \\(pid ${ours}\\) did not answer within 3 s`));
      // so does every other command that asks the service, each naming the pid to end
      for (const args of [["status"], ["service", "--stop"], ["runtime", "list"], ["clean", "--dry-run"]]) {
        t0 = performance.now();
        const r = await sb.spfs(args);
        const s = (performance.now() - t0) / 1000;
        assert.ok(s < 5, `${args.join(" ")} took ${s.toFixed(1)} s`);
        assert.notEqual(r.code, 0, args.join(" "));
        assert.match(
          r.stderr,
          new RegExp(`pid ${ours}\\) did not answer within 3 s[^]*kill -9 ${ours}`),
          args.join(" "),
        );
      }
      const doc = await sb.spfs(["doctor", "--json"]);
      const svc = (JSON.parse(doc.stdout).checks as { name: string; detail: string; fix?: string }[])
        .find((c) => c.name === "service")!;
      assert.match(`${svc.detail} ${svc.fix}`, new RegExp(`did not answer within 3 s[^]*kill -9 ${ours}`));
      Deno.kill(ours, "SIGCONT");
      await waitFor(
        "the service to answer again",
        async () => (await sb.spfs(["run", "h", "--", "true"])).code === 0,
      );
    } finally {
      if (stuck) {
        try {
          Deno.kill(stuck, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await sb.dispose();
    }
  },
);
