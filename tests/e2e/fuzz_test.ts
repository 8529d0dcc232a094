/** RPC fuzzing against a real service: bad frames never stop it from serving. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

const enc = new TextEncoder();

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// no mount/shutdown: a valid one would register a random pid or stop the service on purpose
const VALID = [
  '{"jsonrpc":"2.0","id":1,"method":"health"}',
  '{"jsonrpc":"2.0","id":"s","method":"status","params":{}}',
  '{"jsonrpc":"2.0","id":3,"method":"unmount","params":{"id":"nope"}}',
  '{"jsonrpc":"2.0","id":4,"method":"runtimes"}',
  '{"jsonrpc":"2.0","id":5,"method":"commit","params":{"runtime":"none","tag":"x"}}',
  '[{"jsonrpc":"2.0","id":6,"method":"health"},{"jsonrpc":"2.0","method":"status"}]',
];

type Frame = { bytes: Uint8Array; then?: "close" };

function frame(r: () => number): Frame {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const line = (s: string): Frame => ({ bytes: enc.encode(s + "\n") });
  const k = r();
  if (k < 0.25) {
    // mutate a valid frame: flip, insert or delete characters
    const s = [...pick(VALID)];
    for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) {
      const at = Math.floor(r() * s.length);
      const c = String.fromCharCode(32 + Math.floor(r() * 95));
      if (r() < 0.4) s[at] = c;
      else if (r() < 0.5) s.splice(at, 0, c);
      else s.splice(at, 1);
    }
    return line(s.join(""));
  }
  if (k < 0.4) {
    const bytes = new Uint8Array(1 + Math.floor(r() * 200));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
    return { bytes: new Uint8Array([...bytes.filter((b) => b !== 10), 10]) };
  }
  if (k < 0.55) {
    return line(pick([
      '{"jsonrpc":"2.0","id":1,"method":"mount","params":{"pid":"x","spec":5}}',
      '{"jsonrpc":"2.0","id":1e308,"method":"health"}',
      '{"jsonrpc":"2.0","id":1,"method":"mount","params":{"pid":9223372036854775807,"spec":"a"}}',
      '{"jsonrpc":"2.0","id":-0,"method":"unmount","params":{"pid":-1}}',
      '{"jsonrpc":"2.0","id":{},"method":[]}',
      '{"jsonrpc":"1.0","id":1,"method":"health"}',
      '{"jsonrpc":"2.0","id":1,"method":"health","params":[1,2,3]}',
      '{"jsonrpc":"2.0","id":1,"method":"__proto__"}',
      '{"jsonrpc":"2.0","id":1,"method":"constructor"}',
      '{"jsonrpc":"2.0","id":1,"method":"status","params":{"__proto__":{"x":1}}}',
      "[]",
      "null",
      "12345678901234567890123456789",
      '"just a string"',
      `[${Array(150).fill('{"jsonrpc":"2.0","id":1,"method":"health"}').join(",")}]`,
    ]));
  }
  if (k < 0.6) {
    const d = 1000 + Math.floor(r() * 100_000);
    return line(pick([
      "[".repeat(d) + "]".repeat(d),
      `{"jsonrpc":"2.0","id":1,"method":"status","params":${'{"a":'.repeat(d)}1${"}".repeat(d)}}`,
    ]));
  }
  if (k < 0.6005) return line(`{"jsonrpc":"2.0","id":1,"method":"health","pad":"${"x".repeat(10 << 20)}"}`);
  if (k < 0.65) {
    const s = pick(VALID);
    return { bytes: enc.encode(s.slice(0, Math.floor(r() * s.length))), then: "close" };
  }
  if (k < 0.7) return { bytes: new Uint8Array(), then: "close" };
  return line(pick(VALID));
}

async function connect(socket: string): Promise<Deno.UnixConn> {
  return await Deno.connect({ transport: "unix", path: socket });
}

/** Reads and drops everything the service sends on `conn` until it closes. */
async function discardReplies(conn: Deno.UnixConn): Promise<void> {
  const b = new Uint8Array(65536);
  try {
    while ((await conn.read(b)) !== null) { /* replies are not checked here */ }
  } catch { /* reset */ }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : 0;
}

fuseTest("fuzz: rounds of 10,000 random and mutated frames on 8 connections; health answers", async () => {
  const sb = Sandbox.create();
  try {
    writeTree(join(sb.root, "src"), { f: "x\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "base"]);
    await sb.ok(["service", "--idle-timeout", "0"]);
    const pid = sb.servicePid()!;
    const socket = join(sb.runtime, "service.sock");
    const before = rssKiB(pid);
    let done = false, healthOk = 0;
    const healthFailures: string[] = [];
    const health = (async () => {
      while (!done) {
        try {
          const c = await connect(socket);
          await c.write(enc.encode('{"jsonrpc":"2.0","id":"h","method":"health"}\n'));
          const buf = new Uint8Array(4096);
          const timer = setTimeout(() => c.close(), 10_000);
          const n = await c.read(buf);
          clearTimeout(timer);
          c.close();
          const reply = JSON.parse(new TextDecoder().decode(buf.subarray(0, n ?? 0)));
          if (reply.result?.healthy) healthOk++;
          else healthFailures.push(JSON.stringify(reply));
        } catch (e) {
          healthFailures.push(String(e));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // two rounds of 10,000: the first sets the heap's high-water mark (frames up to 16 MiB), so a
    // leak shows as growth in the second
    const PER_CONN = 1250;
    let sent = 0;
    const round = (seed: number) =>
      Promise.all(Array.from({ length: 8 }, async (_, w) => {
        const r = rng(seed + w);
        let c = await connect(socket);
        let reading = discardReplies(c);
        for (let i = 0; i < PER_CONN; i++) {
          const f = frame(r);
          let broken = false;
          try {
            if (f.bytes.length) await c.write(f.bytes);
          } catch {
            broken = true; // the service closed an oversize connection
          }
          sent++;
          if (f.then === "close" || broken || f.bytes.length > 1 << 20) {
            try {
              c.close();
            } catch { /* closed */ }
            await reading;
            c = await connect(socket);
            reading = discardReplies(c);
          }
        }
        try {
          c.close();
        } catch { /* closed */ }
        await reading;
      }));
    await round(1000);
    const mid = rssKiB(pid);
    await round(2000);
    let after = rssKiB(pid);
    // V8 may grow its heap once more without a leak (a round with more large frames in flight at
    // once); a leak grows every round, so a jump is judged by one more round
    const growth = [after - mid];
    if (growth[0] >= 64 * 1024) {
      await round(3000);
      const third = rssKiB(pid);
      growth.push(third - after);
      after = third;
    }
    done = true;
    await health;
    const mib = (k: number) => (k / 1024).toFixed(0);
    console.log(
      `  ${sent} frames; health answered ${healthOk} times; RSS ${mib(before)} MiB before, ${
        mib(mid)
      } after 10,000, growth per further 10,000: ${growth.map(mib).join(", ")} MiB`,
    );
    assert.equal(sent, 10_000 * (1 + growth.length));
    assert.deepEqual(healthFailures, []);
    assert.ok(healthOk > 0);
    assert.equal(sb.servicePid(), pid, "the same service is still running");
    assert.ok(after < before + 384 * 1024, `RSS stays bounded (${before} → ${after} KiB)`);
    assert.ok(
      Math.min(...growth) < 64 * 1024,
      `no growth once warm: a leak (${mid} KiB, then +${growth} KiB)`,
    );
    assert.equal(await sb.ok(["run", "base", "--", "cat", `${sb.mountpoint}/f`]), "x\n");
  } finally {
    await sb.dispose();
  }
});
