/**
 * Kill anywhere: SIGKILL the service 50 times at random moments while registrations,
 * unregistrations and file reads are in flight. After each kill, within 1 s: no thread of it is
 * in uninterruptible sleep (D), it holds no /dev/fuse fd, a stat of the mount point returns
 * (ENOTCONN or success) instead of hanging, and the next `spfs run` works. A service that entered
 * its own mount (the old self-lstat wake-up) could leave a thread blocked in the kernel forever.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

const KILLS = 50;

/** Threads of `pid` in state D, and whether it holds /dev/fuse open; null once it is gone. */
function leftovers(pid: number): { dThreads: number[]; fuseFd: boolean } | null {
  try {
    const dThreads: number[] = [];
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const st = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
        if (st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) === "D") dThreads.push(Number(t.name));
      } catch { /* the thread ended */ }
    }
    let fuseFd = false;
    for (const f of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${f.name}`) === "/dev/fuse") fuseFd = true;
      } catch { /* closed meanwhile */ }
    }
    return { dThreads, fuseFd };
  } catch {
    return null;
  }
}

fuseTest(
  "kill anywhere: 50 SIGKILLs mid-registration and mid-read leave no stuck thread or mount",
  async () => {
    const sb = Sandbox.create();
    const M = sb.mountpoint;
    try {
      const src = join(sb.root, "src");
      writeTree(
        src,
        Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, `file ${i}\n`.repeat(200)])),
      );
      await runner().run(["sh", "-c", `head -c 8388608 /dev/urandom > ${src}/big.bin`]);
      await sb.ok(["commit", src, "-t", "k"]);
      await sb.ok(["run", "k", "--", "true"]);

      // three loops of runs: each registers, reads every file, and unregisters on exit
      let running = true;
      const load = Array.from({ length: 3 }, async () => {
        while (running) {
          await sb.spfs(["run", "k", "--", "sh", "-c", `cat ${M}/* > /dev/null`]).catch(() => {});
        }
      });
      try {
        for (let i = 0; i < KILLS; i++) {
          let pid = sb.servicePid();
          for (let w = 0; w < 200 && !(pid && leftovers(pid)); w++) {
            await new Promise((r) => setTimeout(r, 25));
            pid = sb.servicePid();
          }
          assert.ok(pid, `kill ${i}: a service is running`);
          await new Promise((r) => setTimeout(r, Math.random() * 300));
          Deno.kill(pid, "SIGKILL");

          const killedAt = performance.now();
          let left = leftovers(pid);
          while (left && (left.dThreads.length || left.fuseFd) && performance.now() - killedAt < 1000) {
            await new Promise((r) => setTimeout(r, 10));
            left = leftovers(pid);
          }
          assert.ok(
            !left || (!left.dThreads.length && !left.fuseFd),
            `kill ${i}: 1 s after SIGKILL pid ${pid} still has ${JSON.stringify(left)}`,
          );
          const st = await runner().run(["timeout", "1", "stat", "-c", "%i", M]);
          assert.ok(
            st.code === 0 || /not connected|connection abort/i.test(st.stderr),
            `kill ${i}: stat of the mount point must return (exit ${st.code}: ${st.stderr.trim()})`,
          );
          const r = await sb.spfs(["run", "k", "--", "head", "-c", "9", `${M}/f1`]);
          assert.equal(r.code, 0, `kill ${i}: the next run works\n${r.stderr}`);
          assert.equal(r.stdout, "file 1\nfi");
        }
      } finally {
        running = false;
        await Promise.all(load);
      }
    } finally {
      await sb.dispose();
    }
  },
);
