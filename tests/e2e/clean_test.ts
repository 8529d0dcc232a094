/** `spfs clean`: removes what nothing reaches, keeps tags with history, durable and running runtimes. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fuseTest, waitFor, writeTree } from "../support/fuse.ts";
import { Sandbox } from "../support/sandbox.ts";

fuseTest(
  "clean removes an unreferenced layer and keeps tags, history, durable and running runtimes",
  async () => {
    const sb = Sandbox.create();
    const commit = async (name: string, tag?: string) => {
      writeTree(join(sb.root, name), { [`${name}.txt`]: `${name} only\n`, "shared.txt": "same in all\n" });
      const out = await sb.ok(["commit", join(sb.root, name), "--json", ...(tag ? ["-t", tag] : [])]);
      return JSON.parse(out).digest as string;
    };
    let sleeper: Deno.ChildProcess | undefined;
    try {
      await commit("tagged", "keep/1");
      const orphan = await commit("orphan");
      const old = await commit("old", "hist/1");
      await commit("new", "hist/1"); // `old` now lives only in hist/1's history
      const durable = await commit("durable");
      await sb.ok(["run", "--keep-runtime", "--name", "dur", durable, "--", "true"]);
      const live = await commit("live");
      sleeper = sb.command(["run", live, "--", "sh", "-c", `sleep 3; cat ${join(sb.mountpoint, "live.txt")}`])
        .spawn();
      await waitFor("the live runtime", async () => (await sb.ok(["status", "--json"])).includes(live));

      const young = JSON.parse(await sb.ok(["clean", "--json"]));
      assert.deepEqual(young.removed.layers, [], "the default grace period keeps fresh objects");
      assert.ok(young.young >= 3);
      const dry = JSON.parse(await sb.ok(["clean", "--grace", "0", "--dry-run", "--json"]));
      assert.deepEqual(dry.removed.layers, [orphan]);
      assert.equal((await sb.spfs(["info", orphan])).code, 0, "a dry run removes nothing");

      // a run started while clean works still works
      const [cleaned, during] = await Promise.all([
        sb.ok(["clean", "--grace", "0", "--json"]),
        sb.spfs(["run", "keep/1", "--", "cat", join(sb.mountpoint, "tagged.txt")]),
      ]);
      const r = JSON.parse(cleaned);
      assert.deepEqual(r.removed.layers, [orphan]);
      assert.equal(r.removed.objects, 3, "the layer, its manifest and its one unshared file");
      assert.equal(during.code, 0, during.stderr);
      assert.equal(during.stdout, "tagged only\n");
      assert.equal((await sb.spfs(["info", orphan])).code, 3);
      await sb.ok(["check"]);

      for (const [ref, file] of [["keep/1", "tagged"], ["hist/1~1", "old"], [old, "old"]]) {
        const out = await sb.ok(["run", ref, "--", "cat", join(sb.mountpoint, `${file}.txt`)]);
        assert.equal(out, `${file} only\n`);
      }
      const re = await sb.ok(["run", "--rerun", "dur", "--", "cat", join(sb.mountpoint, "durable.txt")]);
      assert.equal(re, "durable only\n");
      const s = await sleeper.output();
      assert.equal(new TextDecoder().decode(s.stdout), "live only\n", new TextDecoder().decode(s.stderr));
      sleeper = undefined;
    } finally {
      try {
        sleeper?.kill("SIGKILL");
        await sleeper?.status;
      } catch { /* gone */ }
      await sb.dispose();
    }
  },
);
