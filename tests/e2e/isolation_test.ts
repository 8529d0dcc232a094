import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

fuseTest(
  "isolation: 8 concurrent runs over two layers with different content at the same paths",
  async () => {
    const sb = Sandbox.create();
    try {
      const a = join(sb.root, "a"), b = join(sb.root, "b");
      writeTree(a, {
        "shared.txt": "AAAAAAAAAA from layer a\n",
        "dir/x.txt": "x of a\n",
        "dir/sub/deep": "deep a\n",
        "link": "->target-a",
        "kind/y": "a dir here\n",
      }, { "shared.txt": 0o644 });
      writeTree(b, {
        "shared.txt": "B\n",
        "dir/x.txt": "x of b, longer\n",
        "dir/only-b": "b",
        "dir/sub/deep": "deep of b\n",
        "link": "->target-b",
        "kind": "a file here\n",
      }, { "shared.txt": 0o755 });
      await sb.ok(["commit", a, "-t", "iso/a"]);
      await sb.ok(["commit", b, "-t", "iso/b"]);
      // cat and stat the shared paths (root level and nested), list a nested dir, and read a path
      // that is a dir in one layer and a file in the other: one "---"-terminated group per iteration
      const body = (D: string) =>
        `cat ${D}/shared.txt ${D}/dir/x.txt ${D}/dir/sub/deep; ` +
        `stat -c '%s %a %F' ${D}/shared.txt ${D}/dir/x.txt ${D}/link; stat -c '%a %F' ${D}/kind; ` +
        `ls ${D}/dir | tr '\\n' ' '; readlink ${D}/link; cat ${D}/kind 2>/dev/null || ls ${D}/kind; echo ---`;
      const loop = (D: string) =>
        `for i in $(seq 200); do ${body(D)}; done; stat -c %i ${D}/shared.txt ${D}/dir/x.txt ${D}/dir`;
      const expected = async (src: string) => (await runner().run(["sh", "-c", body(src)])).stdout;
      const want = { "iso/a": await expected(a), "iso/b": await expected(b) };
      assert.notEqual(want["iso/a"], want["iso/b"]);
      // the native run printed its own paths; the runs print the mount point's
      const fix = (s: string, src: string) => s.replaceAll(src, sb.mountpoint);
      want["iso/a"] = fix(want["iso/a"], a);
      want["iso/b"] = fix(want["iso/b"], b);
      const tags = Array.from({ length: 8 }, (_, i) => (i % 2 ? "iso/b" : "iso/a") as "iso/a" | "iso/b");
      const runs = await Promise.all(
        tags.map(async (tag) => ({
          tag,
          r: await sb.spfs(["run", tag, "--", "sh", "-c", loop(sb.mountpoint)]),
        })),
      );
      const inodes: Record<string, Set<string>> = { "iso/a": new Set(), "iso/b": new Set() };
      let wrong = 0, checked = 0;
      for (const { tag, r } of runs) {
        assert.equal(r.code, 0, r.stderr);
        const groups = r.stdout.split("---\n");
        const tail = groups.pop()!.trim().split("\n");
        assert.equal(groups.length, 200);
        for (const g of groups) {
          checked++;
          if (g + "---\n" !== want[tag]) wrong++;
        }
        for (const ino of tail) inodes[tag].add(ino);
      }
      assert.equal(checked, 1600);
      assert.equal(
        wrong,
        0,
        `${wrong} of 1600 iterations saw another environment's entry, attributes or bytes`,
      );
      const shared = [...inodes["iso/a"]].filter((i) => inodes["iso/b"].has(i));
      assert.deepEqual(shared, [], "different content must never share an inode number");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "a rename from below the root into it is EXDEV (the kernel would move its cached dentry, timeout and all, where every runtime looks); mv copies instead",
  async () => {
    const sb = Sandbox.create();
    const M = sb.mountpoint;
    try {
      writeTree(join(sb.root, "src"), { "e/a/x": "x\n", "e/b": "b\n", "r": "r\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
      const renames = [["e/a", "z0"], ["e/b", "z0"], ["r", "e/r2"], ["e/r2", "r"], ["e/r2", "e/r4"], [
        "e",
        "e5",
      ]];
      const py = `import os; os.chdir(${JSON.stringify(M)})
for a, b in ${JSON.stringify(renames)}:
    try:
        os.stat(a)  # the kernel then holds a's dentry, below the root cached 60 s
        os.rename(a, b)
        print(a, b, "ok")
    except OSError as e:
        print(a, b, e.strerror)`;
      assert.equal(
        await sb.ok(["run", "--edit", "base", "--", "python3", "-c", py]),
        [
          "e/a z0 Invalid cross-device link",
          "e/b z0 Invalid cross-device link",
          "r e/r2 ok", // out of the root, below it and within it, as on a local disk
          "e/r2 r Invalid cross-device link",
          "e/r2 e/r4 ok",
          "e e5 ok",
        ].join("\n") + "\n",
      );
      // mv falls back to copy and unlink on EXDEV, as between two filesystems
      const moves = `cd ${M} && stat e/a e/b >/dev/null && mv e/a z1 && mv e/b z2 && ls -d z1 z2 && cat z1/x`;
      assert.equal(await sb.ok(["run", "--edit", "base", "--", "sh", "-c", moves]), "z1\nz2\nx\n");
      for (const edit of [[], ["--edit"]]) {
        const r = await sb.spfs(["run", ...edit, "base", "--", "sh", "-c", `cd ${M} && ls -d z1 z2`]);
        assert.notEqual(r.code, 0, `another runtime saw ${r.stdout.trim()}`);
        assert.equal(r.stdout, "");
      }
    } finally {
      await sb.dispose();
    }
  },
);
