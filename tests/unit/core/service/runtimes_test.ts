/** The runtime table ends runtimes whose root has exited before answering, whatever the exit watch says. */
import assert from "node:assert/strict";
import { type Runtime, RuntimeTable } from "../../../../core/service/runtimes.ts";
import type { RuntimeDb } from "../../../../core/runtime/records.ts";
import type { WorkerHandle } from "../../../../core/service/worker_handle.ts";
import { logger } from "../../../../core/log.ts";
import { procInfo } from "../../../../ffi/sys.ts";
import { handle } from "../../../../core/service/rpc.ts";
import type { Service } from "../../../../core/service/state.ts";

function runtime(id: string, pid: number, startTime: number): Runtime {
  return {
    id,
    name: null,
    root_pid: pid,
    env_spec: "base",
    layers: [],
    started_ms: 0,
    created_ms: 0,
    startTime,
    editable: false,
    durable: false,
    active: true,
  };
}

Deno.test("reap ends runtimes whose root is gone, a zombie or a reused pid, and keeps live ones", async () => {
  const sent: unknown[] = [];
  const worker = { send: (m: unknown) => sent.push(m) } as unknown as WorkerHandle;
  const table = new RuntimeTable({} as RuntimeDb, worker, logger("test"));
  try {
    const gone = new Deno.Command("true").spawn();
    const gonePid = gone.pid, goneStart = procInfo(gonePid)?.startTime ?? 0;
    await gone.status;
    // a zombie: exited, not yet waited for by its parent (sh, then sleep in its place). The child
    // outlives the exec: a `true` could end first, and sh reap it, before its pid is read
    const parent = new Deno.Command("sh", {
      args: ["-c", "sleep 0.3 & echo $!; exec sleep 5"],
      stdout: "piped",
    })
      .spawn();
    const reader = parent.stdout.getReader();
    const zombiePid = Number(new TextDecoder().decode((await reader.read()).value).trim());
    const zombieStart = procInfo(zombiePid)!.startTime;
    for (let i = 0; i < 100 && procInfo(zombiePid) && !isZombie(zombiePid); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(isZombie(zombiePid), "the test needs a zombie");
    const self = procInfo(Deno.pid)!.startTime;
    const rts = [
      runtime("gone", gonePid, goneStart),
      runtime("zombie", zombiePid, zombieStart),
      runtime("reused", Deno.pid, self + 1),
      runtime("live", Deno.pid, self),
    ];
    for (const rt of rts) table.live.set(rt.id, rt);
    table.reap();
    assert.deepEqual([...table.live.keys()], ["live"]);
    assert.equal(sent.length, 3, "the worker is told to forget each ended runtime");
    parent.kill("SIGKILL");
    reader.releaseLock();
    await parent.stdout.cancel();
    await parent.status;
  } finally {
    table.exits.close();
  }
});

Deno.test("every RPC but health reaps first: a runtime whose root exited is never listed", async () => {
  const worker = { send: () => {} } as unknown as WorkerHandle;
  const rdb = { all: () => [] } as unknown as RuntimeDb;
  const table = new RuntimeTable(rdb, worker, logger("test"));
  try {
    const gone = new Deno.Command("true").spawn();
    const rt = runtime("gone", gone.pid, procInfo(gone.pid)?.startTime ?? 0);
    await gone.status;
    table.live.set(rt.id, rt); // as if the exit watch had not reported it yet
    const s = { runtimes: table, rdb, log: logger("test") } as unknown as Service;
    await handle(s, { jsonrpc: "2.0", id: 1, method: "health" });
    assert.equal(table.live.size, 1, "health answers without reading the table");
    const r = await handle(s, { jsonrpc: "2.0", id: 2, method: "runtimes" });
    assert.deepEqual((r as { result: unknown }).result, { runtimes: [] });
  } finally {
    table.exits.close();
  }
});

function isZombie(pid: number): boolean {
  try {
    const t = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return t[t.lastIndexOf(")") + 2] === "Z";
  } catch {
    return false;
  }
}
