import assert from "node:assert/strict";
import { join } from "node:path";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

Deno.test({
  name: "storage commands: commit --json, tag with history, tags, ls, info, --storage",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "v1"), {
        "bin/tool": "#!/bin/sh\necho v1\n",
        "README": "one\n",
        "lib/link": "->../README",
      }, { "bin/tool": 0o755 });
      writeTree(join(sb.root, "v2"), { "bin/tool": "#!/bin/sh\necho v2\n" }, { "bin/tool": 0o755 });
      const c1 = JSON.parse(await sb.ok(["commit", join(sb.root, "v1"), "-t", "tool/1", "--json"]));
      assert.deepEqual([c1.files, c1.symlinks, c1.bytes], [2, 1, 22]);
      const d2 = (await sb.ok(["commit", join(sb.root, "v2")])).trim();
      assert.match(d2, /^sha256:[0-9a-f]{64}$/);
      await sb.ok(["tag", d2.slice(7, 17), "tool/1"]);
      const hist = JSON.parse(await sb.ok(["tags", "tool/1", "--json"]));
      assert.deepEqual(hist.map((h: { digest: string }) => h.digest), [d2, c1.digest]);
      assert.deepEqual(JSON.parse(await sb.ok(["tags", "--json"])).map((t: { name: string }) => t.name), [
        "tool/1",
      ]);
      const ls = JSON.parse(await sb.ok(["ls", "tool/1~1", "--json"]));
      assert.deepEqual(ls.map((e: { name: string; kind: string }) => `${e.name}:${e.kind}`), [
        "README:file",
        "bin:dir",
        "lib:dir",
      ]);
      const stacked = JSON.parse(await sb.ok(["ls", "tool/1~1+tool/1", "bin", "--json"]));
      assert.equal(stacked[0].size, 18);
      assert.equal(stacked[0].mode, 0o755);
      assert.match(await sb.ok(["ls", "tool/1~1", "/lib"]), /^lrwxrwxrwx\s+9\s+link$/m);
      const info = JSON.parse(await sb.ok(["info", "tool/1~1", "--json"]));
      assert.equal(info.kind, "layer");
      assert.equal(info.files, 2);
      assert.deepEqual(info.tags, []);
      assert.deepEqual(JSON.parse(await sb.ok(["info", d2, "--json"])).tags, ["tool/1"]);
      // --storage points at another, empty store
      const other = join(sb.root, "other");
      const r = await sb.spfs(["--storage", other, "info", "tool/1"]);
      assert.equal(r.code, 3);
      const badLs = await sb.spfs(["ls", "tool/1", "/nope"]);
      assert.equal(badLs.code, 3);
      assert.match(badLs.stderr, /\/nope does not exist/);
      // a file lists as itself, as ls(1) does; a path through a file is an error
      assert.match(await sb.ok(["ls", "tool/1~1", "README"]), /^-rw-r--r--\s+\d+\s+README$/m);
      const through = await sb.spfs(["ls", "tool/1~1", "README/x"]);
      assert.equal(through.code, 2);
      assert.match(through.stderr, /README is a file in tool\/1~1, not a directory/);
      const deep = await sb.spfs(["ls", "tool/1~1", "bin/nope"]);
      assert.match(deep.stderr, /hint: list its parent: spfs ls tool\/1~1 bin/);
    } finally {
      await sb.dispose();
    }
  },
});

fuseTest(
  "deno task install puts spfs on PATH, and the README's commit-inside-a-run example works",
  async () => {
    const sb = Sandbox.create();
    try {
      const root = join(sb.root, "prefix");
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          new URL("../../scripts/install.ts", import.meta.url).pathname,
          "--root",
          root,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(new TextDecoder().decode(out.stdout).trim(), join(root, "bin/spfs"));
      assert.match(new TextDecoder().decode(out.stderr), /is not on PATH; add it/);

      writeTree(join(sb.root, "tools1"), { "share/doc/x": "doc\n", "bin/tool": "t\n" });
      await sb.ok(["commit", join(sb.root, "tools1"), "-t", "tools/1"]);
      const PATH = `${join(root, "bin")}:${Deno.env.get("PATH")}`;
      const M = sb.mountpoint;
      await sb.ok(
        [
          "run",
          "--edit",
          "tools/1",
          "--",
          "sh",
          "-c",
          `echo hi > ${M}/note && rm -r ${M}/share/doc && spfs commit -t tools/2`,
        ],
        { PATH },
      );
      assert.equal(await sb.ok(["run", "tools/2", "--", "cat", `${M}/note`]), "hi\n");
      assert.equal((await sb.spfs(["run", "tools/2", "--", "ls", `${M}/share/doc`])).code, 2);
    } finally {
      await sb.dispose();
    }
  },
);
