import assert from "node:assert/strict";
import { join } from "node:path";
import { mountsAt } from "../../ffi/sys.ts";
import { processExited, procInfo } from "../../ffi/sys.ts";
import { Sandbox } from "../support/sandbox.ts";
import { exists, fuseTest, waitFor, writeTree } from "../support/fuse.ts";

async function waitGone(pid: number, ms: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (processExited(pid)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return -1;
}

fuseTest(
  "idle timeout: the service exits after the last runtime ends, and the next run starts it again",
  async () => {
    const sb = Sandbox.create();
    const idle = { SPFS_SERVICE_IDLE_TIMEOUT: "2" };
    try {
      writeTree(join(sb.root, "src"), { "f": "x\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "idle"]);
      assert.equal(await sb.ok(["run", "idle", "--", "cat", `${sb.mountpoint}/f`], idle), "x\n");
      const pid = sb.servicePid()!;
      assert.ok(procInfo(pid), "the service is up after the run");
      const after = await waitGone(pid, 20_000);
      assert.ok(after >= 0, "the idle service exited");
      console.log(`  idle service exited ${(after / 1000).toFixed(1)} s after the run ended (timeout 2 s)`);
      assert.deepEqual(mountsAt(sb.mountpoint), [], "it unmounted on the way out");
      assert.equal(await sb.ok(["run", "idle", "--", "cat", `${sb.mountpoint}/f`], idle), "x\n");
      assert.notEqual(sb.servicePid(), pid);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "spfs service --if-not-running exits 0 and names the running pid; bad idle timeouts are usage errors",
  async () => {
    const sb = Sandbox.create();
    try {
      await sb.ok(["service", "--idle-timeout", "0"]);
      const pid = sb.servicePid()!;
      const r = await sb.spfs(["service", "--if-not-running"]);
      assert.equal(r.code, 0);
      assert.match(r.stderr, new RegExp(`already running \\(pid ${pid}\\)`));
      const j = await sb.spfs(["service", "--if-not-running", "--json"]);
      assert.equal(JSON.parse(j.stdout).pid, pid);
      const bad = await sb.spfs(["service", "--idle-timeout", "soon"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--idle-timeout must be a number of seconds/);
      const badEnv = await sb.spfs(["status"], { SPFS_SERVICE_IDLE_TIMEOUT: "-1" });
      assert.equal(badEnv.code, 2);
      assert.match(badEnv.stderr, /SPFS_SERVICE_IDLE_TIMEOUT must be a number of seconds/);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "root exit: a SIGKILLed run is unregistered at once (pidfd), and processes it had routed linger",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "f": "x\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
      await sb.ok(["service", "--idle-timeout", "0"]);
      const log = Deno.readTextFileSync(join(sb.runtime, "service.log"));
      assert.match(log, /root-process exit watch: \\?"pidfd\\?"/);
      const M = sb.mountpoint, out = join(sb.root, "out");
      const ready = join(sb.root, "ready");
      // the background job touches /spfs while the root lives, then outlives it
      const run = sb.command([
        "run",
        "base",
        "--",
        "sh",
        "-c",
        `(ls ${M} >/dev/null; touch ${ready}; sleep 2; cat ${M}/f > ${out}) & sleep 4`,
      ]).spawn();
      await waitFor("the background job to touch the mount", () => exists(ready));
      Deno.kill(run.pid, "SIGKILL");
      const t0 = performance.now();
      let gone = -1;
      while (performance.now() - t0 < 5000) {
        const s = JSON.parse(await sb.ok(["status", "--json"]));
        if (s.runtimes.length === 0) {
          gone = performance.now() - t0;
          break;
        }
      }
      assert.ok(gone >= 0, "the runtime was unregistered");
      console.log(
        `  runtime unregistered within ${gone.toFixed(0)} ms of SIGKILL (includes one status call)`,
      );
      await run.output().catch(() => {});
      for (let i = 0; i < 200; i++) {
        try {
          if (Deno.readTextFileSync(out) !== "") break;
        } catch { /* not yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(Deno.readTextFileSync(out), "x\n", "the lingering process still sees the environment");
      const outsider = await new Deno.Command("ls", { args: ["-A", M], stdout: "piped" }).output();
      assert.equal(new TextDecoder().decode(outsider.stdout), "", "outsiders still see nothing");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "a runtime dir too deep for a Unix socket path (sun_path) still serves: run and status",
  async () => {
    const parent = Deno.makeTempDirSync({ prefix: "spfs-deep-" });
    const deep = join(parent, "d".repeat(60), "e".repeat(60));
    Deno.mkdirSync(deep, { recursive: true });
    const sb = Sandbox.create({ parent: deep });
    try {
      const socket = join(sb.runtime, "service.sock");
      assert.ok(new TextEncoder().encode(socket).length > 107, `${socket} is longer than sun_path`);
      writeTree(join(sb.root, "src"), { f: "deep\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "deep"]);
      assert.equal(await sb.ok(["run", "deep", "--", "cat", `${sb.mountpoint}/f`]), "deep\n");
      assert.ok(exists(socket), "the socket is at its configured path");
      const status = JSON.parse(await sb.ok(["status", "--json"]));
      assert.equal(status.healthy, true);
      assert.equal(status.pid, sb.servicePid());
    } finally {
      await sb.dispose();
      Deno.removeSync(parent, { recursive: true });
    }
  },
);

fuseTest(
  "notifications: mount and unmount without an id are acted on and get no reply",
  async () => {
    const sb = Sandbox.create();
    const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      writeTree(join(sb.root, "src"), { "f": "x\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
      await sb.ok(["service", "--idle-timeout", "0"]);
      const conn = await Deno.connect({ transport: "unix", path: join(sb.runtime, "service.sock") });
      const lines = async (frames: unknown[]): Promise<unknown[]> => {
        await conn.write(new TextEncoder().encode(frames.map((f) => JSON.stringify(f) + "\n").join("")));
        let text = "";
        const b = new Uint8Array(65536);
        while (!text.endsWith("\n")) text += new TextDecoder().decode(b.subarray(0, (await conn.read(b))!));
        return text.trim().split("\n").map((l) => JSON.parse(l));
      };
      const mount = { jsonrpc: "2.0", method: "mount", params: { pid: sleeper.pid, spec: "base" } };
      const runtimes = { jsonrpc: "2.0", id: 1, method: "runtimes" };
      type Reply = { id: number; result: { runtimes: { root_pid: number }[] } };
      const [r1, more] = await lines([mount, runtimes]) as Reply[];
      assert.equal(r1.id, 1, "the only reply is the call's");
      assert.equal(more, undefined);
      assert.deepEqual(r1.result.runtimes.map((r) => r.root_pid), [sleeper.pid]);
      const unmount = { jsonrpc: "2.0", method: "unmount", params: { pid: sleeper.pid } };
      const [r2] = await lines([unmount, { ...runtimes, id: 2 }]) as Reply[];
      assert.equal(r2.id, 2);
      assert.deepEqual(r2.result.runtimes, []);
      conn.close();
    } finally {
      sleeper.kill();
      await sleeper.status;
      await sb.dispose();
    }
  },
);

fuseTest(
  "spfs run becomes its command: its pid, its signal death, SIGPIPE at default, no spfs fd, and the next RPC never sees the ended runtime",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "f": "x\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
      await sb.ok(["service", "--idle-timeout", "0"]);
      const probe = sb.command([
        "run",
        "base",
        "--",
        "sh",
        "-c",
        `echo $$; cat ${sb.mountpoint}/f; grep SigIgn /proc/self/status; ls -l /proc/self/fd/`,
      ]).spawn();
      const out = await probe.output();
      const [pid, f, sigIgn, ...fds] = new TextDecoder().decode(out.stdout).trim().split("\n");
      assert.equal(Number(pid), probe.pid, "the command runs as the process spfs was started as");
      assert.equal(f, "x", "the command sees the environment");
      assert.equal(BigInt(`0x${sigIgn.split(/\s+/)[1]}`) & (1n << 12n), 0n, "SIGPIPE (13) is not ignored");
      assert.ok(
        !fds.some((l) => /socket:/.test(l)),
        `no socket to the service is inherited:\n${fds.join("\n")}`,
      );

      const killed = await sb.command(["run", "base", "--", "sh", "-c", "kill -TERM $$"]).output();
      assert.equal(killed.signal, "SIGTERM", "the caller sees the signal itself, not an exit code");

      for (let i = 0; i < 10; i++) {
        await sb.ok(["run", "base", "--", "true"]);
        const s = JSON.parse(await sb.ok(["status", "--json"]));
        assert.deepEqual(s.runtimes, [], `run ${i}: the runtime ended with its command`);
      }
      await sb.ok([
        "run",
        "--keep-runtime",
        "--name",
        "ws",
        "base",
        "--",
        "sh",
        "-c",
        `echo 1 > ${sb.mountpoint}/n`,
      ]);
      for (let i = 2; i <= 6; i++) {
        // re-entered right after the last command exited: never "already running"
        await sb.ok(["run", "--rerun", "ws", "--", "sh", "-c", `echo ${i} > ${sb.mountpoint}/n`]);
      }
      assert.equal(await sb.ok(["run", "--rerun", "ws", "--", "cat", `${sb.mountpoint}/n`]), "6\n");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("service --stop refuses while a runtime's command runs, naming it; --force stops it", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "f": "x\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "busy"]);
    const ready = join(sb.root, "ready");
    const run = sb.command([
      "run",
      "--name",
      "long-build",
      "busy",
      "--",
      "sh",
      "-c",
      `touch ${ready}; sleep 30`,
    ]).spawn();
    await waitFor("the run to start", () => exists(ready));
    const pid = sb.servicePid()!;
    const r = await sb.spfs(["service", "--stop", "--json"]);
    assert.equal(r.code, 1);
    const err = JSON.parse(r.stderr).error; // --json errors go to stderr
    assert.equal(err.code, "RuntimeInUse");
    assert.match(err.message, /1 runtime\(s\) still running: long-build \(pid \d+, busy\)/);
    assert.match(err.hint, /--stop --force/);
    assert.ok(!processExited(pid), "the service still runs");
    assert.equal((await sb.spfs(["service", "--force"])).code, 2, "--force alone is a usage error");
    await sb.ok(["service", "--stop", "--force"]);
    assert.ok(processExited(pid), "--force stopped it");
    run.kill("SIGKILL");
    await run.status;
  } finally {
    await sb.dispose();
  }
});
