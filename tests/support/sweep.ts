/**
 * Cleanup of test runs: every run of `deno task test` works under its own temp dir
 * (`$TMPDIR/spfs-tests-PID`, passed to the tests as their TMPDIR), so whatever a stopped run left
 * behind — FUSE and tmpfs mounts, loop-mounted XFS, services — is found by that dir alone.
 */
import { join } from "node:path";
import type { MountEntry } from "../../ffi/linux/mounts.ts";
import { mounts } from "../../ffi/sys.ts";
import { abortFuseConnection } from "../../core/platform/checks.ts";
import { platform } from "../../core/platform/facts.ts";
import { runner } from "../../core/runner.ts";

/** Name prefix of a test run's temp dir; the suffix is the pid of the runner that owns it. */
export const RUN_DIR_PREFIX = "spfs-tests-";

/** What a sweep removed. */
export interface SweepReport {
  /** pids sent SIGKILL */
  killed: number[];
  /** mount points unmounted, deepest first */
  unmounted: string[];
}

const under = (p: string, dir: string) => p === dir || p.startsWith(dir + "/");

/** pids (not this one) whose environment has TMPDIR inside `dir`: every process a test started. */
export function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    let env: string;
    try {
      env = Deno.readTextFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // gone, or not ours to read
    }
    const tmp = env.split("\0").find((kv) => kv.startsWith("TMPDIR="))?.slice(7);
    if (tmp && under(tmp.replace(/\/$/, ""), dir)) pids.push(pid);
  }
  return pids;
}

/** Mounts at or below `dir`, deepest first. */
export function mountsUnder(dir: string): MountEntry[] {
  return mounts().filter((m) => under(m.mountpoint, dir))
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
}

/**
 * Kills every process of a test run under `dir`, then unmounts everything mounted below it. A FUSE
 * connection is aborted first (as root), so a server stuck or a zombie holding /dev/fuse cannot
 * make the unmount wait. Never touches a path on a mount, so it cannot hang. Never throws.
 */
export async function sweepDir(dir: string): Promise<SweepReport> {
  const killed = killAll(dir);
  const unmounted: string[] = [];
  for (const m of mountsUnder(dir)) {
    const fuse = m.fstype.startsWith("fuse");
    if (fuse && Deno.uid() === 0) {
      await abortFuseConnection(m).catch(() => {/* the connection is already gone */});
    }
    const argv = fuse && Deno.uid() !== 0
      ? platform.unmountArgv(m.mountpoint)
      : ["umount", "-l", m.mountpoint];
    if ((await runner().run(argv)).code === 0) unmounted.push(m.mountpoint);
  }
  // A process may have forked between the scan and its SIGKILL, or still be exiting (one blocked
  // on a FUSE request dies only once the connection is aborted above): scan again until none is left.
  for (let i = 0; i < 100; i++) {
    const more = killAll(dir);
    if (!more.length) break;
    killed.push(...more.filter((p) => !killed.includes(p)));
    await new Promise((r) => setTimeout(r, 20));
  }
  return { killed, unmounted };
}

/** SIGKILLs every process under `dir`; returns the pids it found. */
function killAll(dir: string): number[] {
  const pids = processesUnder(dir);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
  return pids;
}

/**
 * Sweeps and removes every `tmp/spfs-tests-PID` whose runner is no longer alive (a run stopped by
 * SIGKILL or a crash). Live runs are left alone, so two runs on one machine do not fight.
 */
export async function sweepStaleRuns(tmp: string): Promise<SweepReport & { dirs: string[] }> {
  const out = { killed: [] as number[], unmounted: [] as string[], dirs: [] as string[] };
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(tmp)];
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory || !e.name.startsWith(RUN_DIR_PREFIX)) continue;
    const owner = Number(e.name.slice(RUN_DIR_PREFIX.length));
    if (Number.isInteger(owner) && alive(owner)) continue;
    const dir = join(tmp, e.name);
    const r = await sweepDir(dir);
    out.killed.push(...r.killed);
    out.unmounted.push(...r.unmounted);
    await removeDir(dir);
    out.dirs.push(dir);
  }
  return out;
}

/** Removes a swept run dir; staying on one filesystem in case an unmount failed. */
export async function removeDir(dir: string): Promise<void> {
  await runner().run(["rm", "-rf", "--one-file-system", dir]);
}

function alive(pid: number): boolean {
  try {
    // a runner is a deno process; a recycled pid running something else counts as dead
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("scripts/test.ts");
  } catch {
    return false;
  }
}
