/**
 * Rows about serving several runtimes at once: head-of-line blocking (stat latency in one runtime
 * while another copies up 1 GiB) and parallel serving (two tree reads in two runtimes at once vs
 * one after the other, with fuse-overlayfs's own ratio on the same two trees for scale).
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import type { Sandbox } from "../../tests/support/sandbox.ts";
import { median, ROUNDS, row, sh, tenThousandFiles, timed } from "./common.ts";

/** Python: stat(argv[1]) in a loop for argv[2] s; prints the p99 and the max latency in ns. */
const STAT_P99 = `import os, sys, time
end = time.time() + float(sys.argv[2]); lat = []
while time.time() < end:
    t = time.perf_counter_ns(); os.stat(sys.argv[1]); lat.append(time.perf_counter_ns() - t)
lat.sort(); print(lat[int(len(lat) * 0.99)], lat[-1])`;

/** Times `a` then `b` (into `seq`), then both at once (into `par`), in ms. */
async function oneThenBoth(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  seq: number[],
  par: number[],
): Promise<void> {
  const t0 = performance.now();
  await a();
  await b();
  seq.push(performance.now() - t0);
  const t1 = performance.now();
  await Promise.all([a(), b()]);
  par.push(performance.now() - t1);
}

/**
 * @param sb a sandbox whose store has tags "big" (a 1 GiB big.bin) and "tenk" (10,000 files under t/)
 */
export async function concurrencyRows(sb: Sandbox): Promise<void> {
  const M = sb.mountpoint;
  const script = join(sb.root, "stat_p99.py");
  Deno.writeTextFileSync(script, STAT_P99);
  // `t` sits at the root, whose entries the kernel never caches: every stat reaches the service
  const statLoop = (s: number) => ["run", "tenk", "--", "python3", script, `${M}/t`, String(s)];

  // a second 10,000-file layer with other bytes, so the two reads share no inode or page
  const other = join(sb.root, "tenk-b");
  await tenThousandFiles(other, "b");
  await sb.ok(["commit", other, "-t", "tenk-b"]);
  const read = 'find "$D/t" -type f -exec cat {} + >/dev/null';
  const readIn = (tag: string) =>
    sb.ok(["run", tag, "--", "sh", "-c", timed(M, read, "echo 3 > /proc/sys/vm/drop_caches")]);

  // the C peer on the same two trees under one mount (one server, as spfs has): its own ratio shows
  // what the machine allows, since both reads also need the CPUs for their own syscalls
  const pair = join(sb.root, "pair"), ovl = join(sb.root, "pair-ovl");
  await sh(
    `mkdir -p ${pair}/a ${pair}/b ${ovl} && cp -al ${sb.root}/tenk/t ${pair}/a/ && cp -al ${other}/t ${pair}/b/`,
  );
  const ov = await runner().run(["fuse-overlayfs", "-o", `lowerdir=${pair}`, ovl]);
  if (ov.code !== 0) console.error(`fuse-overlayfs unavailable: ${ov.stderr.trim()}`);
  const readOvl = (sub: string) => sh(timed(join(ovl, sub), read, "echo 3 > /proc/sys/vm/drop_caches"));
  const seqO: number[] = [], parO: number[] = [];

  const quiet: number[][] = [[], []], busy: number[][] = [[], []], seq: number[] = [], par: number[] = [];
  const p99max = async (into: number[][]) => {
    const [p99, max] = (await sb.ok(statLoop(2))).trim().split(" ").map((ns) => Number(ns) / 1e6);
    into[0].push(p99);
    into[1].push(max);
  };
  const n = Math.max(3, Math.floor(ROUNDS / 2));
  try {
    for (let r = 0; r < n; r++) {
      console.error(`concurrency rows, round ${r + 1}/${n}`);
      await p99max(quiet);
      const copy = sb.ok(["run", "--edit", "big", "--", "sh", "-c", `echo x >> "${M}/big.bin"`]);
      await p99max(busy);
      await copy;

      await oneThenBoth(() => readIn("tenk"), () => readIn("tenk-b"), seq, par);
      if (ov.code === 0) await oneThenBoth(() => readOvl("a"), () => readOvl("b"), seqO, parO);
    }
  } finally {
    if (ov.code === 0) await runner().run(["fusermount3", "-u", "-z", ovl]);
  }
  row("stat p99 while another runtime copies up 1 GiB", "stat p99, nothing else", quiet[0], busy[0]);
  row("stat max while another runtime copies up 1 GiB", "stat max, nothing else", quiet[1], busy[1]);
  const peer = ov.code === 0 ? ` (fuse-overlayfs: ${(median(parO) / median(seqO)).toFixed(2)}x)` : "";
  row(`two tree reads in two runtimes at once${peer}`, "the same one after the other", seq, par);
  if (ov.code === 0) row("two tree reads at once", "fuse-overlayfs (C), the same", parO, par);
}
