/** Load: many concurrent runs on one service, each checking it only ever sees its own environment. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

const RUNS = 64, SECONDS = 10;

fuseTest(
  `load: ${RUNS} concurrent runs, ${SECONDS} s of mixed reads and stats each, no cross-environment result`,
  async () => {
    const sb = Sandbox.create();
    try {
      for (const v of ["a", "b"]) {
        writeTree(join(sb.root, v), { "id": `${v}\n`, "dir/file": `${v} nested\n`, [`only-${v}`]: v });
        await sb.ok(["commit", join(sb.root, v), "-t", `load/${v}`]);
      }
      await sb.ok(["service", "--idle-timeout", "0"]);
      const M = sb.mountpoint;
      // each iteration prints "ok" or what it wrongly saw; the loop ends after SECONDS
      const loop = (v: string, other: string) =>
        `end=$(($(date +%s) + ${SECONDS})); n=0; while [ $(date +%s) -lt $end ]; do ` +
        `a=$(cat ${M}/id ${M}/dir/file); s=$(stat -c %s ${M}/only-${v}); ` +
        `if [ "$a" != "$(printf '${v}\\n${v} nested')" ] || [ "$s" != 1 ] || [ -e ${M}/only-${other} ]; ` +
        `then echo "WRONG $a $s"; fi; ls ${M}/dir >/dev/null; n=$((n+1)); done; echo "iterations $n"`;
      const t0 = performance.now();
      const runs = await Promise.all(Array.from({ length: RUNS }, (_, i) => {
        const [v, o] = i % 2 ? ["b", "a"] : ["a", "b"];
        return sb.spfs(["run", `load/${v}`, "--", "sh", "-c", loop(v, o)]);
      }));
      let iterations = 0;
      for (const r of runs) {
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stdout, /WRONG/, r.stdout.split("\n").find((l) => l.startsWith("WRONG")));
        iterations += Number(/iterations (\d+)/.exec(r.stdout)![1]);
      }
      console.log(
        `  ${RUNS} runs, ${iterations} iterations in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s, 0 wrong`,
      );
      for (let i = 0; i < 100; i++) {
        if (JSON.parse(await sb.ok(["status", "--json"])).runtimes.length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(JSON.parse(await sb.ok(["status", "--json"])).runtimes, [], "no runtime leaked");
    } finally {
      await sb.dispose();
    }
  },
);
