/**
 * The pidfd exit watcher against real processes, including the fd-reuse race behind a flaky cold
 * start: a runtime unregistered while its pidfd was being polled, whose fd number the next
 * registration reused, made the new runtime look exited 1 ms after it registered.
 */
import assert from "node:assert/strict";
import { createExitWatcher } from "../../../ffi/exitwatch.ts";

const linux = Deno.build.os === "linux";
const supported = linux || Deno.build.os === "darwin";

function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
}

/** True once `pid` is a zombie or gone (blocking: the JS thread must not run the poll loop). */
function exitedSync(pid: number): boolean {
  try {
    return / Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\)/, ""));
  } catch {
    return true;
  }
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "exit watch: a process's exit is reported once, and only for that process (pidfd; kqueue on macOS)",
  ignore: !supported,
  async fn() {
    const w = createExitWatcher();
    assert.equal(w.kind, linux ? "pidfd" : "kqueue");
    const a = sleeper(), b = sleeper();
    const seen: string[] = [];
    w.watch(a.pid, () => seen.push("a"));
    w.watch(b.pid, () => seen.push("b"));
    a.kill("SIGKILL");
    await a.status;
    for (let i = 0; i < 200 && !seen.length; i++) await tick(5);
    await tick(50);
    assert.deepEqual(seen, ["a"]);
    b.kill("SIGKILL");
    await b.status;
    for (let i = 0; i < 200 && seen.length < 2; i++) await tick(5);
    assert.deepEqual(seen, ["a", "b"]);
    w.close();
  },
});

Deno.test({
  name: "exit watch: an fd reused while poll runs does not report the new process as exited",
  ignore: !linux,
  async fn() {
    const w = createExitWatcher();
    const a = sleeper(), b = sleeper();
    const seen: string[] = [];
    w.watch(a.pid, () => seen.push("a"));
    await tick(50); // the poll loop is now blocked in poll(2) on a's pidfd
    a.kill("SIGKILL");
    // Without yielding: poll returns with a's pidfd ready, then a is unwatched (its fd closed)
    // and b is watched, which gets the same fd number back.
    const deadline = Date.now() + 5000;
    while (!exitedSync(a.pid) && Date.now() < deadline) { /* spin */ }
    const until = Date.now() + 20;
    while (Date.now() < until) { /* let the poll thread return */ }
    w.unwatch(a.pid);
    w.watch(b.pid, () => seen.push("b"));
    await tick(300);
    assert.deepEqual(seen, [], "b is alive; no exit may be reported");
    b.kill("SIGKILL");
    for (let i = 0; i < 200 && !seen.length; i++) await tick(5);
    assert.deepEqual(seen, ["b"]);
    await a.status;
    await b.status;
    w.close();
  },
});
