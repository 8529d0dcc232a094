/**
 * `deno task bench`: each row runs spfs side by side with a baseline in the same run, alternating
 * rounds, and reports medians and the ratio spfs/baseline. Machines are shared and noisy: read the
 * ratios, not the absolute times. Needs root for fuse-overlayfs and for dropping caches.
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { npmPackageDir, Sandbox } from "../harness.ts";

const ROUNDS = Number(Deno.env.get("SPFS_BENCH_ROUNDS") ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: string[][] = [["benchmark", "baseline", "baseline ms", "spfs ms", "spfs/baseline"]];

function row(name: string, baseName: string, base: number[], spfs: number[]) {
  const b = median(base), s = median(spfs);
  rows.push([name, baseName, b.toFixed(1), s.toFixed(1), `${(s / b).toFixed(2)}x`]);
  console.error(`  ${name}: baseline ${b.toFixed(1)} ms, spfs ${s.toFixed(1)} ms`);
}

async function timeCmd(cmd: Deno.Command): Promise<number> {
  const t0 = performance.now();
  const out = await cmd.output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return performance.now() - t0;
}

/** Runs `work` (a shell snippet using $D) k times inside one shell; prints ns per run. */
function innerScript(dir: string, work: string, k: number): string {
  return `D=${dir}; for i in $(seq ${k}); do s=$(date +%s%N); ${work}; e=$(date +%s%N); echo $((e-s)); done`;
}
const parseNs = (out: string) => out.trim().split("\n").map((l) => Number(l) / 1e6);

const sb = Sandbox.create({ prefix: "spfs-bench-" });
const overlay = join(sb.root, "overlay");
Deno.mkdirSync(overlay);
try {
  const src = await npmPackageDir();
  await sb.ok(["commit", src, "-t", "npm"]);
  await sb.ok(["service"]);
  const M = sb.mountpoint;

  // 1. start-up floor
  console.error("spfs run -- true vs deno run of an empty script");
  const empty = join(sb.root, "empty.ts");
  Deno.writeTextFileSync(empty, "");
  const base: number[] = [], spfs: number[] = [];
  for (let i = 0; i < ROUNDS * 2; i++) {
    base.push(
      await timeCmd(
        new Deno.Command(Deno.execPath(), { args: ["run", "-A", empty], stdout: "null", stderr: "piped" }),
      ),
    );
    spfs.push(await timeCmd(sb.command(["run", "npm", "--", "true"])));
  }
  row("spfs run npm -- true (warm service)", "deno run empty.ts", base, spfs);

  // 2/3. walks and reads of the npm tree: native vs spfs vs fuse-overlayfs
  const ov = await runner().run(["fuse-overlayfs", "-o", `lowerdir=${src}`, overlay]);
  const haveOverlay = ov.code === 0;
  if (!haveOverlay) console.error(`fuse-overlayfs unavailable: ${ov.stderr.trim()}`);
  for (
    const [name, work] of [
      ["find -type f | wc -l (npm tree)", 'find "$D" -type f | wc -l >/dev/null'],
      ["read every file (npm tree)", 'find "$D" -type f -exec cat {} + >/dev/null'],
    ] as const
  ) {
    console.error(name);
    const nat: number[] = [], sp: number[] = [], ovl: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      nat.push(...parseNs((await runner().run(["sh", "-c", innerScript(src, work, 3)])).stdout));
      sp.push(...parseNs(await sb.ok(["run", "npm", "--", "sh", "-c", innerScript(M, work, 3)])));
      if (haveOverlay) {
        ovl.push(...parseNs((await runner().run(["sh", "-c", innerScript(overlay, work, 3)])).stdout));
      }
    }
    row(name, "native dir", nat, sp);
    if (haveOverlay) row(name, "fuse-overlayfs (C)", ovl, sp);
  }
  if (haveOverlay) await runner().run(["fusermount3", "-u", overlay]);

  // 4. sequential read of 1 GiB
  console.error("sequential read of 1 GiB");
  const bigDir = join(sb.root, "big");
  Deno.mkdirSync(bigDir);
  await runner().run(["sh", "-c", `head -c 1073741824 /dev/urandom > ${bigDir}/big.bin`]);
  await sb.ok(["commit", bigDir, "-t", "big"]);
  const read = 'cat "$D/big.bin" >/dev/null';
  await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)]); // first open verifies the blob digest
  const bn: number[] = [], bs: number[] = [], cn: number[] = [], cs: number[] = [];
  const canDrop = Deno.uid() === 0;
  for (let r = 0; r < Math.max(3, Math.floor(ROUNDS / 2)); r++) {
    bn.push(...parseNs((await runner().run(["sh", "-c", innerScript(bigDir, read, 1)])).stdout));
    bs.push(...parseNs(await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)])));
    if (canDrop) {
      const drop = "sync; echo 3 > /proc/sys/vm/drop_caches";
      cn.push(
        ...parseNs((await runner().run(["sh", "-c", `${drop}; ${innerScript(bigDir, read, 1)}`])).stdout),
      );
      await runner().run(["sh", "-c", drop]);
      cs.push(...parseNs(await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)])));
    }
  }
  row("cat 1 GiB file (page cache warm)", "native file", bn, bs);
  if (canDrop) row("cat 1 GiB file (caches dropped)", "native file", cn, cs);
} finally {
  await runner().run(["fusermount3", "-u", "-z", overlay]);
  await sb.dispose();
}
const { table } = await import("../../cli/output.ts");
console.log(`\nmedians over ${ROUNDS} alternating rounds (ms)\n`);
console.log(table(rows));
