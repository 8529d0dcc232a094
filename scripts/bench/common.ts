/** Shared by the bench modules: rounds, timing helpers, test trees and the result table. */
import { runner } from "../../core/runner.ts";

/** Rounds per row (SPFS_BENCH_ROUNDS, default 7). */
export const ROUNDS = Number(Deno.env.get("SPFS_BENCH_ROUNDS") ?? 7);

/** The median of a sample (the upper one for an even count). */
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The result table, header first. */
export const rows: string[][] = [["benchmark", "baseline", "baseline ms", "spfs ms", "spfs/baseline"]];

/** Adds a row: medians in ms of `base` and `spfs`, and their ratio. */
export function row(name: string, baseName: string, base: number[], spfs: number[]): void {
  const b = median(base), s = median(spfs);
  rows.push([name, baseName, b.toFixed(1), s.toFixed(1), `${(s / b).toFixed(2)}x`]);
  console.error(`  ${name}: ${baseName} ${b.toFixed(1)} ms, spfs ${s.toFixed(1)} ms`);
}

/** Wall time of a command in ms. @throws Error with its stderr when it exits non-zero. */
export async function timeCmd(cmd: Deno.Command): Promise<number> {
  const t0 = performance.now();
  const out = await cmd.output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return performance.now() - t0;
}

/** Runs `work` (a shell snippet using $D) k times inside one shell; prints ns per run. */
export function innerScript(dir: string, work: string, k: number): string {
  return `D=${dir}; for i in $(seq ${k}); do s=$(date +%s%N); ${work}; e=$(date +%s%N); echo $((e-s)); done`;
}

/** Parses the ns lines printed by innerScript/timed into ms. */
export const parseNs = (out: string) => out.trim().split("\n").map((l) => Number(l) / 1e6);

/** Times `work` (shell, using $D) once inside a shell; prints ns. `setup` runs untimed first. */
export function timed(dir: string, work: string, setup = ""): string {
  return `D=${dir}; ${setup}\ns=$(date +%s%N); ${work}; e=$(date +%s%N); echo $((e-s))`;
}

/** Runs a shell script through the runner; its stdout. @throws Error with its stderr on failure. */
export async function sh(script: string): Promise<string> {
  const r = await runner().run(["sh", "-c", script]);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout;
}

/** Writes 10,000 small files at `dir`/t/1..100/1..100, each holding `mark` and its name. */
export const tenThousandFiles = (dir: string, mark = "") =>
  sh(
    `for d in $(seq 100); do mkdir -p ${dir}/t/$d; for f in $(seq 100); do echo ${mark}$d$f > ${dir}/t/$d/$f; done; done`,
  );

/** Shell: creates $D/w with 10,000 small files holding `mark` and their number. */
export const createFiles = (mark: string) =>
  `mkdir "$D/w"; for n in $(seq 10000); do echo "${mark} $n" > "$D/w/f$n"; done`;
