import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { npmPackageDir, Sandbox, TREE_LISTING } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

fuseTest(
  "main job: npm's own tree runs from a committed layer; outsiders see an empty mount point",
  async () => {
    const sb = Sandbox.create();
    try {
      const src = await npmPackageDir();
      const c = JSON.parse(await sb.ok(["commit", src, "-t", "npm", "--json"]));
      assert.match(c.digest, /^sha256:[0-9a-f]{64}$/);
      assert.ok(c.files > 1000, `npm has thousands of files, got ${c.files}`);
      const host = (await runner().run(["npm", "--version"])).stdout.trim();
      const inside = await sb.ok([
        "run",
        "npm",
        "--",
        "node",
        `${sb.mountpoint}/bin/npm-cli.js`,
        "--version",
      ]);
      assert.equal(inside.trim(), host);
      const diff = await sb.spfs(["run", "npm", "--", "diff", "-r", "--no-dereference", src, sb.mountpoint]);
      assert.equal(diff.code, 0, `diff reported differences:\n${diff.stdout.slice(0, 3000)}${diff.stderr}`);
      const want = (await runner().run(["sh", "-c", `cd ${src} && ${TREE_LISTING}`])).stdout;
      const got = await sb.ok(["run", "npm", "--", "sh", "-c", `cd ${sb.mountpoint} && ${TREE_LISTING}`]);
      assert.equal(got, want, "types, modes, sizes and symlink targets must match");
      // a process outside the run sees nothing while the run is alive
      const holder = sb.command([
        "run",
        "npm",
        "--",
        "sh",
        "-c",
        `test -f ${sb.mountpoint}/bin/npm-cli.js && echo ready && sleep 30`,
      ]).spawn();
      const reader = holder.stdout.getReader();
      assert.match(new TextDecoder().decode((await reader.read()).value), /ready/);
      assert.deepEqual([...Deno.readDirSync(sb.mountpoint)], []);
      assert.throws(() => Deno.statSync(join(sb.mountpoint, "bin/npm-cli.js")), Deno.errors.NotFound);
      holder.kill("SIGTERM");
      assert.equal((await holder.status).code, 128 + 15);
      reader.releaseLock();
      await holder.stdout.cancel();
      await holder.stderr.cancel();
    } finally {
      await sb.dispose();
    }
  },
);

function servicePidsFor(runtimeDir: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      const env = Deno.readTextFileSync(`/proc/${e.name}/environ`).split("\0");
      if (
        cmd.includes("service") && cmd.includes("--foreground") &&
        env.includes(`SPFS_RUNTIME_DIR=${runtimeDir}`)
      ) out.push(Number(e.name));
    } catch { /* exited */ }
  }
  return out;
}

fuseTest(
  "concurrent cold start: 10 runs with no service leave exactly one service and all succeed",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "hello.txt": "hello\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "cold"]);
      assert.deepEqual(servicePidsFor(sb.runtime), []);
      const rs = await Promise.all(
        Array.from({ length: 10 }, () => sb.spfs(["run", "cold", "--", "cat", `${sb.mountpoint}/hello.txt`])),
      );
      for (const r of rs) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "hello\n");
      }
      const pids = servicePidsFor(sb.runtime);
      assert.equal(pids.length, 1, `service processes: ${pids.join(", ")}`);
      assert.equal(sb.servicePid(), pids[0]);
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest("a service killed with SIGKILL leaves a stale mount that the next spfs run cleans up", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "f": "data\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "k"]);
    assert.equal(await sb.ok(["run", "k", "--", "cat", `${sb.mountpoint}/f`]), "data\n");
    const pid = sb.servicePid()!;
    Deno.kill(pid, "SIGKILL");
    // the kernel aborts the connection once the dead process's fds are closed
    let err = "";
    for (let i = 0; i < 250 && !/not connected/i.test(err); i++) {
      try {
        Deno.statSync(sb.mountpoint);
      } catch (e) {
        err = String(e);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(err, /not connected/i, "the dead mount reports ENOTCONN");
    assert.equal(await sb.ok(["run", "k", "--", "cat", `${sb.mountpoint}/f`]), "data\n");
    assert.notEqual(sb.servicePid(), pid);
    const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) =>
      l.split(" ")[4] === sb.mountpoint
    );
    assert.equal(mounts.length, 1, "exactly one live mount remains");
  } finally {
    await sb.dispose();
  }
});

async function rpcLines(
  path: string,
  payload: string | Uint8Array,
  replies: number,
): Promise<{ lines: any[]; closed: boolean }> {
  const conn = await Deno.connect({ transport: "unix", path });
  const w = conn.writable.getWriter();
  void w.write(typeof payload === "string" ? new TextEncoder().encode(payload) : payload).catch(() => {});
  const reader = conn.readable.getReader();
  let buf = "";
  const lines: any[] = [];
  let closed = false;
  while (lines.length < replies) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
    if (done) {
      closed = true;
      break;
    }
    buf += new TextDecoder().decode(value);
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  }
  if (!closed) {
    const { done } = await Promise.race([
      reader.read().catch(() => ({ done: true })),
      new Promise<{ done: false }>((r) => setTimeout(() => r({ done: false }), 200)),
    ]);
    closed = !!done;
  }
  try {
    conn.close();
  } catch { /* closed */ }
  return { lines, closed };
}

fuseTest("bad RPC frames each get a JSON-RPC error and the service keeps serving others", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "f": "ok\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "r"]);
    await sb.ok(["service"]);
    const sock = join(sb.runtime, "service.sock");
    assert.equal(Deno.statSync(sock).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(sb.runtime).mode! & 0o777, 0o700);
    const frames = [
      "this is not json",
      '{"jsonrpc":"2.0","id":1,"method":"no_such_method"}',
      '{"jsonrpc":"2.0","id":2,"method":"mount","params":{"pid":"x","spec":5}}',
      '{"jsonrpc":"2.0","id":3,"method":"mount","params":{"pid":1,"spec":"no-such-tag"}}',
      '{"jsonrpc":"2.0","id":6,"method":"mount","params":{"pid":2147483000,"spec":"r"}}',
      '{"id":4,"method":"health"}',
      '{"jsonrpc":"2.0","id":5,"method":"health"}',
    ];
    const { lines, closed } = await rpcLines(sock, frames.join("\n") + "\n", frames.length);
    assert.equal(closed, false, "a bad frame does not close the connection");
    assert.deepEqual(lines.map((l) => l.error?.code ?? "ok"), [
      -32700,
      -32601,
      -32602,
      -32000,
      -32000,
      -32600,
      "ok",
    ]);
    assert.equal(lines[3].error.data.code, "UnknownRef");
    assert.ok(lines[3].error.data.hint);
    assert.equal(lines[4].error.data.code, "ProcessNotFound");
    assert.deepEqual(lines[4].error.data.details, { pid: 2147483000 });
    assert.equal(lines[6].result.healthy, true);
    // an oversized frame (2 MiB, no newline yet) is rejected and its connection closed …
    const big = new Uint8Array(2 * 1024 * 1024).fill(0x61);
    const [over, health] = await Promise.all([
      rpcLines(sock, big, 1),
      rpcLines(sock, '{"jsonrpc":"2.0","id":9,"method":"health"}\n', 1),
    ]);
    assert.equal(over.lines[0].error.code, -32001);
    assert.equal(over.closed, true);
    // … while other clients are served, and real work still succeeds afterwards
    assert.equal(health.lines[0].result.healthy, true);
    assert.equal(await sb.ok(["run", "r", "--", "cat", `${sb.mountpoint}/f`]), "ok\n");
  } finally {
    await sb.dispose();
  }
});

fuseTest("read-only runs: writes fail with EROFS; exit codes pass through", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "f": "x\n", "d/g": "y\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "ro"]);
    const M = sb.mountpoint;
    for (
      const cmd of [
        `touch ${M}/new`,
        `echo > ${M}/f`,
        `mkdir ${M}/nd`,
        `rm ${M}/f`,
        `rmdir ${M}/d`,
        `chmod 777 ${M}/f`,
        `ln -s x ${M}/l`,
        `mv ${M}/f ${M}/f2`,
      ]
    ) {
      const r = await sb.spfs(["run", "ro", "--", "sh", "-c", cmd]);
      assert.notEqual(r.code, 0, cmd);
      assert.match(r.stderr, /Read-only file system/, `${cmd}: ${r.stderr}`);
    }
    assert.equal((await sb.spfs(["run", "ro", "--", "sh", "-c", "exit 7"])).code, 7);
    const nf = await sb.spfs(["run", "ro", "--", "no-such-command-xyz"]);
    assert.equal(nf.code, 127);
    assert.match(nf.stderr, /command not found/);
    const st = JSON.parse(await sb.ok(["status", "--json"]));
    assert.equal(st.mountpoint, M);
    assert.equal(st.runtimes.length, 0, "runs unregister when their command exits");
  } finally {
    await sb.dispose();
  }
});

fuseTest("spfs shell runs $SHELL inside the environment", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { "f": "in the env\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "sh"]);
    const shell = join(sb.root, "myshell");
    Deno.writeTextFileSync(shell, `#!/bin/sh\ncat ${sb.mountpoint}/f\nexit 4\n`);
    Deno.chmodSync(shell, 0o755);
    const r = await sb.spfs(["shell", "sh"], { SHELL: shell });
    assert.equal(r.stdout, "in the env\n");
    assert.equal(r.code, 4);
  } finally {
    await sb.dispose();
  }
});
