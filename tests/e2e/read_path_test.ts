/**
 * The read path costs as few round trips as it can: an open and a close send nothing (no OPEN,
 * FLUSH or RELEASE), and nothing waits for a hash. Blobs are verified in the background instead; a
 * corrupt one is refused from then on, its cached pages dropped.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { digestBytes } from "../../core/store/objects.ts";
import { PACKED_BELOW } from "../../core/store/packs.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, spfsLine, waitFor, writeTree } from "../support/fuse.ts";

interface Status {
  ops: Record<string, { count: number }>;
  blobs: { verified: number; corrupt: number; queued: number };
}

/** The service's `spfs status --json`. */
async function status(sb: Sandbox): Promise<Status> {
  return JSON.parse(await sb.ok(["status", "--json"]));
}

/** LOOKUPs the service has served so far. */
async function lookupCount(sb: Sandbox): Promise<number> {
  return (await status(sb)).ops.lookup?.count ?? 0;
}

fuseTest("reading 20 files costs LOOKUPs and READs only: no OPEN, FLUSH or RELEASE round trip", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(
      join(sb.root, "src"),
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, `${i}\n`])),
    );
    await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
    const cat = `for f in ${sb.mountpoint}/f*; do cat $f > /dev/null; done`;
    await sb.ok(["run", "t", "--", "sh", "-c", cat]);
    await sb.ok(["run", "t", "--", "sh", "-c", `${cat}; ${cat}`]);
    const s = await status(sb);
    const n = (op: string) => s.ops[op]?.count ?? 0;
    // the first OPEN answers ENOSYS; the kernel then opens files itself (ffi/fuse/abi.ts noOpen)
    assert.ok(n("open") <= 1, JSON.stringify(s.ops));
    assert.equal(n("release"), 0, JSON.stringify(s.ops));
    // libfuse answers the one FLUSH the kernel tries with ENOSYS, and the kernel sends no more
    assert.equal(s.ops.flush, undefined, "no flush reached spfs");
    // each file's pages stay cached across opens and runs: 20 reads for 60 cats
    assert.equal(n("read"), 20, JSON.stringify(s.ops));
  } finally {
    await sb.dispose();
  }
});

fuseTest("creating files costs no CREATE or RELEASE round trip, and behaves as on a local disk", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "d/f": "f\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
    await sb.ok(["service"]);
    const py = [
      "import os, sys",
      "d = sys.argv[1]",
      // a read-only mode is still written through the open that created the file
      "fd = os.open(d + '/ro', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)",
      "os.write(fd, b'made read-only'); os.close(fd)",
      "print(open(d + '/ro').read(), oct(os.stat(d + '/ro').st_mode & 0o777))",
      "try:\n  os.open(d + '/ro', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)\nexcept FileExistsError:\n  print('EEXIST')",
      "for i in range(20):\n  with open(f'{d}/n{i}', 'w') as f: f.write(str(i))",
      "print(sum(int(open(f'{d}/n{i}').read()) for i in range(20)))",
    ].join("\n");
    const out = await sb.ok(["run", "--edit", "t", "--", "python3", "-c", py, `${sb.mountpoint}/d`]);
    assert.deepEqual(out.trim().split("\n"), ["made read-only 0o444", "EEXIST", "190"]);
    const s = await status(sb);
    const n = (op: string) => s.ops[op]?.count ?? 0;
    // the first CREATE answers ENOSYS; the kernel then uses MKNOD and opens without asking
    assert.ok(n("create") <= 1, JSON.stringify(s.ops));
    assert.ok(n("mknod") >= 20, JSON.stringify(s.ops));
    assert.equal(n("release"), 0, JSON.stringify(s.ops));
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "a corrupt blob, loose or packed: served until the background verifier finds it, then EIO and logged",
  async () => {
    const sb = Sandbox.create();
    try {
      // files of PACKED_BELOW bytes or more are loose objects, smaller ones go into a pack
      const big = (text: string) => text.padEnd(PACKED_BELOW, ".");
      const bad = big("the committed bytes\n"), gone = big("removed from the store\n");
      const badp = "packed, then damaged\n", good = "intact\n";
      writeTree(join(sb.root, "src"), { bad, good, gone, badp });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
      const blobOf = (text: string) => {
        const hex = digestBytes(new TextEncoder().encode(text)).slice(7);
        return [hex, join(sb.storage, "objects", "sha256", hex.slice(0, 2), hex.slice(2))];
      };
      const [hex, blob] = blobOf(bad);
      Deno.chmodSync(blob, 0o644);
      Deno.chmodSync(join(blobOf(gone)[1], ".."), 0o755);
      Deno.removeSync(blobOf(gone)[1]);
      Deno.writeTextFileSync(blob, big("tampered on disk!!!\n")); // same length, other bytes
      // the small file's bytes, damaged in place inside its pack
      const packs = join(sb.storage, "packs");
      const tar = join(packs, Deno.readDirSync(packs).find((e) => e.name.endsWith(".tar"))!.name);
      const tarBytes = Deno.readFileSync(tar);
      const at = new TextDecoder().decode(tarBytes).indexOf(badp);
      assert.ok(at > 0, "the small file is in the pack");
      tarBytes.set(new TextEncoder().encode("PACKED, then damaged\n"), at);
      Deno.chmodSync(tar, 0o644);
      Deno.writeFileSync(tar, tarBytes);

      // the first open is not held up by a hash: it is served, and the blob queued
      await sb.spfs(["run", "t", "--", "cat", `${sb.mountpoint}/bad`, `${sb.mountpoint}/badp`]);
      let s: Status | undefined;
      await waitFor("the verifier to find both blobs", async () => {
        s = await status(sb);
        return s!.blobs.corrupt === 2;
      });
      for (const name of ["bad", "badp"]) {
        const r = await sb.spfs(["run", "t", "--", "cat", `${sb.mountpoint}/${name}`]);
        assert.notEqual(r.code, 0, name);
        assert.match(r.stderr, /Input\/output error/, name);
      }
      assert.equal(await sb.ok(["run", "t", "--", "cat", `${sb.mountpoint}/good`]), good);
      const g = await sb.spfs(["run", "t", "--", "cat", `${sb.mountpoint}/gone`]);
      assert.match(g.stderr, /Input\/output error/, "a blob missing from the store is EIO, not ENOENT");
      s = await status(sb);
      assert.equal(s!.blobs.verified, 1, "the intact blob was verified too");
      const log = Deno.readTextFileSync(join(sb.runtime, "service.log"));
      assert.match(log, new RegExp(`blob .*sha256:${hex}.* does not match its digest; refusing to serve it`));
      const hexp = blobOf(badp)[0];
      assert.match(
        log,
        new RegExp(`blob .*sha256:${hexp}.* does not match its digest; refusing to serve it`),
      );
      assert.match(log, new RegExp(`blob sha256:${blobOf(gone)[0]} is missing from the store`));
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "readdirplus: a listing links its names, so a stat of each costs no LOOKUP below the root",
  async () => {
    const sb = Sandbox.create();
    try {
      const n = 40;
      writeTree(
        join(sb.root, "src"),
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`d/f${i}`, `${i}\n`])),
      );
      await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
      const ops = async () => (await status(sb)).ops;
      await sb.ok(["service"]);
      const before = await ops();
      // relative paths from inside d: no walk passes the root, whose names are looked up every time
      const out = await sb.ok([
        "run",
        "t",
        "--",
        "sh",
        "-c",
        `cd ${sb.mountpoint}/d && ls -l | wc -l; for f in f*; do stat -c %s "$f"; done | wc -l`,
      ]);
      assert.deepEqual(out.trim().split("\n"), [String(n + 1), String(n)]);
      const after = await ops();
      const delta = (k: string) => (after[k]?.count ?? 0) - (before[k]?.count ?? 0);
      assert.ok(delta("readdirplus") >= 1, JSON.stringify(after));
      // one root lookup of "d" per path walk (ls, the glob and n stats), none of the n names
      assert.ok(
        delta("lookup") <= n + 5,
        `lookups ${delta("lookup")} for ${n} files: ${JSON.stringify(after)}`,
      );
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "readdirplus in an editable runtime links what it lists: a later stat or find asks nothing",
  async () => {
    const sb = Sandbox.create();
    try {
      const n = 30;
      writeTree(join(sb.root, "src"), {
        ...Object.fromEntries(Array.from({ length: n }, (_, i) => [`d/s${i}/f`, `${i}\n`])),
        ...Object.fromEntries(Array.from({ length: n }, (_, i) => [`d/f${i}`, `${i}\n`])),
      });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
      await sb.ok(["service"]);
      const inD = (script: string) =>
        sb.ok(["run", "--edit", "t", "--", "sh", "-c", `cd ${sb.mountpoint}/d && ${script}`]);
      // find descends into every listed dir: no LOOKUP for any of them
      let before = await lookupCount(sb);
      assert.equal((await inD("find . | wc -l")).trim(), String(1 + 3 * n));
      const found = await lookupCount(sb) - before;
      assert.ok(found <= 3, `lookups ${found}`);
      // a stat of each listed file asks nothing (one root lookup per run and path walk at most)
      before = await lookupCount(sb);
      assert.equal(
        (await inD(`ls >/dev/null; for i in 1 2; do for f in f*; do stat -c %s "$f"; done; done | wc -l`))
          .trim(),
        String(2 * n),
      );
      const got = await lookupCount(sb) - before;
      assert.ok(got <= 3, `lookups ${got} for ${n} files stat'ed twice`);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "an ended editable runtime's cached tree is dropped at once, not by the next runtime's walk",
  async () => {
    const sb = Sandbox.create();
    try {
      const n = 50;
      writeTree(
        join(sb.root, "src"),
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`d/f${i}`, `${i}\n`])),
      );
      await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
      await sb.ok(["service"]);
      const forgets = async () => {
        const ops = (await status(sb)).ops;
        return (ops.forget?.count ?? 0) + (ops.forget_multi?.count ?? 0);
      };
      const before = await forgets();
      // the listing links d's n files into the kernel; they live as long as the dentry of "d"
      assert.equal(
        (await sb.ok(["run", "--edit", "t", "--", "find", `${sb.mountpoint}/d`])).split("\n").length,
        n + 2,
      );
      // nothing walks the mount from here on: only the service's notice can make the kernel let go
      await waitFor("the kernel to forget the ended runtime's inodes", async () => await forgets() > before);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "a missing name below the root is cached as a negative entry; at the root it is asked every time",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "d/f": "f\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "t"]);
      await sb.ok(["service"]);
      // 20 probes each, from inside the dir so that no walk passes the root but the probe itself
      const probe = (dir: string) =>
        `cd ${dir} && for i in $(seq 20); do test -e nope && exit 1; done; echo ok`;
      for (const edit of [[], ["--edit"]]) {
        const before = await lookupCount(sb);
        assert.equal(
          await sb.ok(["run", ...edit, "t", "--", "sh", "-c", probe(`${sb.mountpoint}/d`)]),
          "ok\n",
        );
        const below = (await lookupCount(sb)) - before;
        assert.ok(below <= 3, `${below} lookups for 20 probes of d/nope (${edit.join("") || "read-only"})`);
      }
      const before = await lookupCount(sb);
      assert.equal(await sb.ok(["run", "t", "--", "sh", "-c", probe(sb.mountpoint)]), "ok\n");
      const atRoot = (await lookupCount(sb)) - before;
      assert.ok(atRoot >= 20, `${atRoot} lookups for 20 probes of /nope: the root must not cache names`);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "negative entries: names made after a miss appear, in that runtime only; another stack's names are its own",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "one"), { "d/f": "f\n" });
      writeTree(join(sb.root, "two"), { "d/f": "f\n", "d/g": "g\n" });
      await sb.ok(["commit", join(sb.root, "one"), "-t", "one"]);
      await sb.ok(["commit", join(sb.root, "two"), "-t", "two"]);
      await sb.ok(["service"]);
      const M = sb.mountpoint;
      // the same dir in two stacks: a miss cached in one must not hide the name in the other
      const seen = async (tag: string) =>
        (await sb.ok(["run", tag, "--", "sh", "-c", `cd ${M}/d; test -e g && echo yes || echo no`])).trim();
      assert.equal(await seen("one"), "no");
      assert.equal(await seen("two"), "yes");
      assert.equal(await seen("one"), "no");

      // inside one editable runtime: every way of making a name after a miss, and a commit between
      const steps = [
        "cd $M/d",
        "test ! -e n1 && echo hi > n1 && cat n1",
        "test ! -e n2 && mkdir n2 && test -d n2 && echo dir",
        "test ! -e n3 && ln -s f n3 && cat n3",
        "test ! -e n4 && ln f n4 && cat n4",
        "test ! -e n5 && mv n1 n5 && test ! -e n1 && cat n5",
        "rm n5 && test ! -e n5 && echo gone",
        "test ! -e n6",
        spfsLine(["commit", "-t", "one/2"]) + " >/dev/null",
        "echo after > n6 && cat n6",
      ];
      const out = await sb.ok(["run", "--edit", "one", "--", "sh", "-ec", `M=${M}\n${steps.join("\n")}`]);
      assert.deepEqual(out.trim().split("\n"), ["hi", "dir", "f", "f", "hi", "gone", "after"]);
      // another runtime of the same layer saw none of it
      assert.equal(
        await sb.ok(["run", "--edit", "one", "--", "sh", "-c", `ls ${M}/d`]),
        "f\n",
      );
      assert.equal(await sb.ok(["run", "one/2", "--", "sh", "-c", `ls ${M}/d`]), "f\nn2\nn3\nn4\n");
    } finally {
      await sb.dispose();
    }
  },
);
