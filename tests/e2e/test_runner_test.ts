/** The test runner cleans up after itself: on SIGTERM, and at the start of the next run after a SIGKILL. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fuseTest, waitFor } from "../support/fuse.ts";
import { mountsUnder, processesUnder, RUN_DIR_PREFIX, sweepDir } from "../support/sweep.ts";
import { exists } from "../../ffi/fsops.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Starts scripts/test.ts on the fixture with its own TMPDIR; resolves once the fixture holds its mounts. */
async function startRun(tmp: string, extra: string[] = []): Promise<Deno.ChildProcess> {
  const marker = join(tmp, "ready");
  try {
    Deno.removeSync(marker);
  } catch { /* first run */ }
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      join(ROOT, "scripts/test.ts"),
      "tests/support/fixtures/leave_mounts.ts",
      ...extra,
    ],
    cwd: ROOT,
    env: { TMPDIR: tmp, SPFS_SWEEP_MARKER: marker },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (!extra.length) await waitFor("the fixture to mount", () => exists(marker));
  return child;
}

const runDirs = (tmp: string) => [...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith(RUN_DIR_PREFIX));

fuseTest(
  "test runner: SIGTERM removes the run's mounts and processes; a SIGKILLed run is swept by the next",
  async () => {
    if (Deno.uid() !== 0) {
      console.log("  SKIP test runner sweep: the fixture mounts a tmpfs, which needs root");
      return;
    }
    const tmp = Deno.makeTempDirSync({ prefix: "spfs-sweep-" });
    try {
      // SIGTERM: the runner cleans up before it exits
      let run = await startRun(tmp);
      assert.ok(mountsUnder(tmp).some((m) => m.fstype === "fuse.spfs"), "a FUSE mount is up");
      assert.ok(mountsUnder(tmp).some((m) => m.fstype === "tmpfs"), "a tmpfs is up");
      assert.ok(processesUnder(tmp).length > 2, "deno test, the service and the runtime are up");
      run.kill("SIGTERM");
      let out = await run.output();
      const err = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 143, err);
      assert.match(err, /stopped by SIGTERM/);
      assert.deepEqual(mountsUnder(tmp).map((m) => m.mountpoint), []);
      assert.deepEqual(processesUnder(tmp), []);
      assert.deepEqual(runDirs(tmp), []);

      // SIGKILL: nothing runs in the runner, so the leftovers stay until the next run starts
      run = await startRun(tmp);
      run.kill("SIGKILL");
      await run.status;
      assert.ok(mountsUnder(tmp).length >= 2, "a SIGKILLed run leaves its mounts");
      assert.ok(processesUnder(tmp).length > 0, "and its processes");
      run = await startRun(tmp, ["--filter", "no test has this name"]);
      out = await run.output();
      assert.match(new TextDecoder().decode(out.stderr), /swept 1 earlier run\(s\): [2-9] mount\(s\)/);
      assert.deepEqual(mountsUnder(tmp).map((m) => m.mountpoint), []);
      assert.deepEqual(processesUnder(tmp), []);
      assert.deepEqual(runDirs(tmp), []);
    } finally {
      await sweepDir(tmp); // after a failed assertion, so the failure is what gets reported
      Deno.removeSync(tmp, { recursive: true });
    }
  },
);
