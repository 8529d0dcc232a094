/**
 * Runs the test suite (`deno test`) and ends with the plain summary line "N passed, N failed"
 * that CI reads. Extra arguments go to `deno test` (e.g. a filter).
 *
 * The tests run with TMPDIR set to this run's own dir (`$TMPDIR/spfs-tests-PID`), so everything
 * they leave is found by that dir: on SIGINT/SIGTERM, at the deadline, and at the end, the run's
 * processes are killed and its mounts removed; at start, the leftovers of runs that died are swept.
 *
 * Env: SPFS_TEST_TIMEOUT_S — whole-run deadline in seconds (default 1080, under CI's 20 min).
 */
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { removeDir, RUN_DIR_PREFIX, sweepDir, sweepStaleRuns } from "../tests/support/sweep.ts";

const tmp = (Deno.env.get("TMPDIR") || "/tmp").replace(/\/$/, "");
const deadlineS = Number(Deno.env.get("SPFS_TEST_TIMEOUT_S") ?? 1080);

const stale = await sweepStaleRuns(tmp);
if (stale.dirs.length) {
  console.error(
    `test: swept ${stale.dirs.length} earlier run(s): ${stale.unmounted.length} mount(s), ` +
      `${stale.killed.length} process(es)`,
  );
}

const runDir = join(tmp, `${RUN_DIR_PREFIX}${Deno.pid}`);
Deno.mkdirSync(runDir, { recursive: true });

const args = ["test", "-A", "--quiet", ...Deno.args];
if (!Deno.args.some((a) => a.startsWith("tests") || a.endsWith(".ts"))) args.push("tests/");
const child = new Deno.Command(Deno.execPath(), {
  args,
  env: { TMPDIR: runDir },
  stdout: "piped",
  stderr: "inherit",
}).spawn();

let stopping: Promise<never> | undefined;

/** Kills the run, removes its mounts and dir, and exits with `code`. */
function stop(why: string, code: number): Promise<never> {
  return stopping ??= cleanUpAndExit(why, code);
}

async function cleanUpAndExit(why: string, code: number): Promise<never> {
  console.error(`\ntest: ${why}; stopping the run and cleaning up ${runDir}`);
  const r = await sweepDir(runDir); // kills `deno test` too: its TMPDIR is runDir
  await removeDir(runDir);
  console.error(`test: killed ${r.killed.length} process(es), removed ${r.unmounted.length} mount(s)`);
  console.log(`\n0 passed, 1 failed  (${why})`);
  Deno.exit(code);
}

for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.addSignalListener(sig, () => void stop(`stopped by ${sig}`, code));
}
const deadline = setTimeout(
  () => void stop(`the run passed its ${deadlineS} s deadline`, 1),
  deadlineS * 1000,
);

const dec = new TextDecoder();
let tail = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + dec.decode(chunk)).slice(-4000);
}
const status = await child.status;
if (stopping) await stopping; // the child died because stop() killed it
clearTimeout(deadline);
const left = await sweepDir(runDir);
await removeDir(runDir);
if (left.unmounted.length || left.killed.length) {
  console.error(
    `test: tests left ${left.unmounted.length} mount(s) and ${left.killed.length} process(es); removed`,
  );
}
// deno's own summary: "ok | 12 passed (3 steps) | 0 failed (5s)" or "FAILED | 3 passed | 1 failed (2s)"
const plain = stripVTControlCharacters(tail);
const m = /(\d+) passed[^|]*\|\s*(\d+) failed/.exec(plain);
const ignored = /(\d+) ignored/.exec(plain);
if (m) console.log(`\n${m[1]} passed, ${m[2]} failed${ignored ? `, ${ignored[1]} skipped` : ""}`);
else console.log(`\n0 passed, 1 failed  (deno test ended with code ${status.code} and no summary)`);
Deno.exit(status.code);
