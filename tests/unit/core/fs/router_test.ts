import assert from "node:assert/strict";
import { Router } from "../../../../core/fs/router.ts";
import type { ProcInfo } from "../../../../ffi/linux/proc.ts";
import { parseProcStat } from "../../../../ffi/linux/proc.ts";

class FakeProcs {
  procs = new Map<number, ProcInfo & { tgid: number }>();
  reads = 0;
  add(pid: number, ppid: number, startTime = 100, tgid = pid) {
    this.procs.set(pid, { ppid, startTime, tgid });
  }
  info = (pid: number) => {
    this.reads++;
    const p = this.procs.get(pid);
    return p ? { ppid: p.ppid, startTime: p.startTime } : null;
  };
  tgid = (tid: number) => this.procs.get(tid)?.tgid ?? null;
}

Deno.test("router: descendants route to their root; outsiders and pid 0 to nothing", () => {
  const p = new FakeProcs();
  p.add(1, 0);
  p.add(10, 1); // spfs run A
  p.add(11, 10); // its child
  p.add(12, 11); // grandchild
  p.add(13, 12, 100, 12); // a thread of the grandchild
  p.add(20, 1); // outsider
  const r = new Router<string>(p);
  r.register(10, 100, "A");
  assert.equal(r.resolve(12)?.mount, "A");
  assert.equal(r.resolve(13)?.mount, "A");
  assert.equal(r.resolve(20), null);
  assert.equal(r.resolve(0), null);
  assert.equal(r.resolve(999), null);
});

Deno.test("router: a reused pid (new start time) is not served from the cache", () => {
  const p = new FakeProcs();
  p.add(1, 0);
  p.add(10, 1);
  p.add(11, 10);
  p.add(30, 1);
  const r = new Router<string>(p);
  r.register(10, 100, "A");
  assert.equal(r.resolve(11)?.mount, "A");
  assert.equal(r.resolve(11)?.mount, "A");
  assert.equal(r.stats.hits, 1);
  // pid 11 exits and is reused by a child of the outsider 30
  p.add(11, 30, 200);
  assert.equal(r.resolve(11), null);
  // the root itself is reused: its start time no longer matches
  p.add(10, 1, 300);
  p.add(12, 10, 301);
  assert.equal(r.resolve(12), null);
});

Deno.test("router: nested runs route to the innermost root; routed processes linger after unregister", () => {
  const p = new FakeProcs();
  p.add(1, 0);
  p.add(10, 1);
  p.add(11, 10);
  p.add(12, 11);
  const r = new Router<string>(p);
  r.register(10, 100, "outer");
  assert.equal(r.resolve(11)?.mount, "outer"); // caches 11 → outer
  r.register(11, 100, "inner");
  assert.equal(r.resolve(12)?.mount, "inner");
  r.unregister(11);
  assert.equal(r.resolve(12)?.mount, "inner"); // routed while inner lived: lingers until it exits
  p.add(13, 12);
  assert.equal(r.resolve(13)?.mount, "inner"); // and so do the processes it starts
  p.add(14, 10);
  assert.equal(r.resolve(14)?.mount, "outer"); // a new process under the outer root
  r.unregister(10);
  p.add(15, 1);
  assert.equal(r.resolve(15), null); // never routed, parent chain reaches no root
  p.add(12, 1, 500); // pid 12 reused by an unrelated process
  assert.equal(r.resolve(12), null);
});

Deno.test("parseProcStat copes with spaces and parens in comm", () => {
  const line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100";
  assert.deepEqual(parseProcStat(line), { ppid: 17, startTime: 987654 });
});

/** FakeProcs whose pins name one process (pid + start time) and die with it, as /proc fds do. */
class PinnedProcs extends FakeProcs {
  open = new Map<number, string>();
  #next = 1;
  pins = {
    pin: (pid: number) => {
      const p = this.procs.get(pid);
      if (!p) return null;
      this.open.set(this.#next, `${pid}@${p.startTime}`);
      return this.#next++;
    },
    alive: (pin: number) => {
      const [pid, start] = this.open.get(pin)!.split("@").map(Number);
      return this.procs.get(pid)?.startTime === start;
    },
    unpin: (pin: number) => {
      assert.ok(this.open.delete(pin), `pin ${pin} closed once`);
    },
  };
  kill(pid: number) {
    this.procs.delete(pid);
  }
}

Deno.test("router pins: a caller seen before is checked through its pin, never served after its pid is reused", () => {
  const p = new PinnedProcs();
  p.add(1, 0);
  p.add(10, 1);
  p.add(11, 10);
  p.add(30, 1);
  const r = new Router<string>(p);
  r.register(10, 100, "A");
  assert.equal(r.resolve(11)?.mount, "A");
  const reads = p.reads;
  for (let i = 0; i < 5; i++) assert.equal(r.resolve(11)?.mount, "A");
  assert.equal(p.reads, reads, "hits through the pin read no process facts");
  // 11 exits and its pid goes to a child of the outsider: the pin is dead, the walk says null
  p.kill(11);
  p.add(11, 30, 200);
  assert.equal(r.resolve(11), null);
  assert.equal(r.resolve(11), null);
  // a caller that exits is not routed, and leaves no pin behind
  p.add(12, 10);
  assert.equal(r.resolve(12)?.mount, "A");
  p.kill(12);
  assert.equal(r.resolve(12), null);
  // unregister drops the root's own entry and pin; routed processes linger
  assert.equal(r.resolve(10)?.mount, "A");
  r.unregister(10);
  p.add(13, 1);
  assert.equal(r.resolve(13), null);
  for (const v of p.open.values()) assert.notEqual(v, "10@100", "the root's pin went with its entry");
});

Deno.test("router pins: at most 256 open, the oldest dropped first, and a nested root re-routes its pinned pid", () => {
  const p = new PinnedProcs();
  p.add(1, 0);
  p.add(10, 1);
  const r = new Router<string>(p);
  r.register(10, 100, "A");
  for (let pid = 100; pid < 500; pid++) {
    p.add(pid, 10);
    assert.equal(r.resolve(pid)?.mount, "A");
  }
  assert.equal(p.open.size, 256);
  assert.ok(![...p.open.values()].includes("100@100"), "the oldest pin went first");
  // 499 is pinned under A; registering it as a root must not leave it routed to A through the pin
  r.register(499, 100, "B");
  assert.equal(r.resolve(499)?.mount, "B");
  p.add(600, 499);
  assert.equal(r.resolve(600)?.mount, "B");
});
