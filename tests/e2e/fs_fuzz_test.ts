/**
 * Differential fuzzing of editable runtimes: the same seeded random operations (creates, writes,
 * truncates, renames over files and dirs, hard and symbolic links, chmods, chowns, unlinks, rmdirs,
 * xattrs, O_EXCL creates) run on
 * a local copy of a lower tree and inside `spfs run --edit` over that tree committed as a layer.
 * Some ops run as another uid, so permission checks are compared too. Every op's outcome (ok or
 * errno) and the final tree must match, and so must the environment the runtime commits (but for
 * link counts, xattrs and owners, which a layer does not keep). A failure prints the seed;
 * SPFS_FUZZ_SEEDS=N and SPFS_FUZZ_OPS=N widen it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { selfArgv } from "../../core/client/rpc.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, q, writeTree } from "../support/fuse.ts";

const FUZZ = new URL("../support/fixtures/fs_fuzz.py", import.meta.url).pathname;
const SEEDS = Number(Deno.env.get("SPFS_FUZZ_SEEDS") ?? 25);
const OPS = Number(Deno.env.get("SPFS_FUZZ_OPS") ?? 80);

/** The first line where `got` differs from `want`, with context, for the failure message. */
function firstDiff(want: string, got: string): string {
  const w = want.split("\n"), g = got.split("\n");
  const i = w.findIndex((l, k) => l !== g[k]);
  const at = i < 0 ? w.length : i;
  return `line ${at}:\n  local: ${w[at]}\n  spfs:  ${g[at]}\n(before: ${
    w.slice(Math.max(0, at - 3), at).join(" | ")
  })`;
}

fuseTest("fs fuzz: random ops in an editable runtime and its commit match a local dir", async () => {
  const sb = Sandbox.create();
  try {
    const lower = join(sb.root, "lower");
    writeTree(lower, {
      "a": "lower a\n",
      "b": "lower b\n",
      "d/a": "lower d/a\n",
      "d/b": "lower d/b\n",
      "d/d/c": "lower d/d/c\n",
      "e/a/a": "lower e/a/a\n",
      "e/b": "lower e/b\n",
    }, { "b": 0o600 });
    Deno.symlinkSync("a", join(lower, "d/e")); // relative to its own dir: it never points out of the tree
    await sb.ok(["commit", lower, "-t", "lower"]);
    for (let seed = 1; seed <= SEEDS; seed++) {
      const local = join(sb.root, `local-${seed}`);
      await runner().run(["cp", "-a", lower, local]);
      const want = await runner().run(["python3", FUZZ, local, String(seed), String(OPS)]);
      assert.equal(want.code, 0, want.stderr);
      const commit = selfArgv(["commit", "-t", `fz${seed}`]).map(q).join(" ");
      const got = await sb.ok([
        "run",
        "--edit",
        "lower",
        "--",
        "sh",
        "-c",
        `python3 ${q(FUZZ)} ${q(sb.mountpoint)} ${seed} ${OPS} && ${commit} >/dev/null`,
      ]);
      assert.ok(got === want.stdout, `seed ${seed}: ops or tree differ, ${firstDiff(want.stdout, got)}`);
      // a layer keeps no hard links, xattrs or owners (README "Store"): those are not compared
      const kept = (dump: string) => dump.replace(/ (nlink|xattrs|owner)=\S*/g, "");
      const wantDump = kept((await runner().run(["python3", FUZZ, local, "dump"])).stdout);
      const layer = kept(await sb.ok(["run", `fz${seed}`, "--", "python3", FUZZ, sb.mountpoint, "dump"]));
      assert.ok(
        layer === wantDump,
        `seed ${seed}: the committed layer differs, ${firstDiff(wantDump, layer)}`,
      );
    }
    console.log(`  ${SEEDS} seeds × ${OPS} ops matched a local dir, before and after commit`);
  } finally {
    await sb.dispose();
  }
});
