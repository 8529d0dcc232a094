/** Crash safety: SIGKILL the service mid-read and mid-commit; nothing is corrupt or lost. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, spfsLine, waitFor } from "../support/fuse.ts";

fuseTest(
  "crash: SIGKILL during a 1 GiB read and during a commit; next run works, check is clean, durable data intact",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = join(sb.root, "src");
      Deno.mkdirSync(src);
      await runner().run([
        "sh",
        "-c",
        `head -c 1073741824 /dev/urandom > ${src}/big.bin && echo small > ${src}/small`,
      ]);
      await sb.ok(["commit", src, "-t", "big"]);
      const M = sb.mountpoint;

      // a durable runtime with a change big enough that committing it takes a while
      await sb.ok([
        "run",
        "--keep-runtime",
        "--name",
        "keep",
        "big",
        "--",
        "sh",
        "-c",
        `head -c 268435456 /dev/urandom > ${M}/data && echo note > ${M}/note && sha256sum ${M}/data > ${sb.root}/data.sha`,
      ]);
      const dataSha = Deno.readTextFileSync(join(sb.root, "data.sha")).split(" ")[0];

      // 1. SIGKILL while a 1 GiB read is in flight
      const reader = sb.command(["run", "big", "--", "sh", "-c", `cat ${M}/big.bin > /dev/null`]).spawn();
      await waitFor("the read to start", async () => {
        const s = await sb.spfs(["status", "--json"]);
        return s.code === 0 && JSON.parse(s.stdout).open_handles > 0;
      });
      Deno.kill(sb.servicePid()!, "SIGKILL");
      const r1 = await reader.output();
      assert.notEqual(r1.code, 0, "the interrupted read fails rather than returning short data silently");
      assert.equal(
        (await sb.ok(["run", "big", "--", "sh", "-c", `head -c 100 ${M}/big.bin | wc -c`])).trim(),
        "100",
      );

      // 2. SIGKILL while a commit of the durable runtime is importing
      const tmp = join(sb.storage, "tmp");
      const commit = sb.command([
        "run",
        "--rerun",
        "keep",
        "--",
        "sh",
        "-c",
        spfsLine(["commit", "-t", "keep/1"]),
      ]).spawn();
      await waitFor("the commit to write into tmp/", () => {
        try {
          return [...Deno.readDirSync(tmp)].length > 0;
        } catch {
          return false;
        }
      });
      Deno.kill(sb.servicePid()!, "SIGKILL");
      const r2 = await commit.output();
      assert.notEqual(r2.code, 0);

      // the next run works, the store verifies, the commit left no tag, and the runtime's changes are intact
      const state = await sb.ok([
        "run",
        "--rerun",
        "keep",
        "--",
        "sh",
        "-c",
        `cat ${M}/note && sha256sum ${M}/data | cut -d' ' -f1 && head -c 6 ${M}/small`,
      ]);
      assert.equal(state, `note\n${dataSha}\nsmall\n`);
      const check = JSON.parse(await sb.ok(["check", "--json"]));
      assert.equal(check.ok, true, JSON.stringify(check));
      assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [], "tmp/ was swept");
      const tags = await sb.spfs(["tags", "keep/1"]);
      assert.notEqual(tags.code, 0, "an interrupted commit creates no tag");
      // and the commit, retried, succeeds
      await sb.ok([
        "run",
        "--rerun",
        "keep",
        "--",
        "sh",
        "-c",
        spfsLine(["commit", "-t", "keep/1"]),
      ]);
      assert.equal(await sb.ok(["run", "keep/1", "--", "cat", `${M}/note`]), "note\n");
    } finally {
      await sb.dispose();
    }
  },
);
