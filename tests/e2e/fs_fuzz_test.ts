/**
 * Differential fuzzing of editable runtimes. The same seeded random operations (creates, writes,
 * truncates, renames over files and dirs, hard and symbolic links, chmods, chowns, unlinks, rmdirs,
 * xattrs, O_EXCL creates, shared-mmap writes, fallocate, copy_file_range, a 255-byte name; some as
 * another uid, so permission checks count too) run on a local copy
 * of a lower tree and inside `spfs run --edit` over that tree committed as a layer.
 * - One at a time: every op's outcome (ok or errno) and the final tree match the local dir, and so
 *   does the committed environment (but for link counts, xattrs and owners, which a layer drops).
 * - SIGKILL of the service mid-run: the rerun runtime is the local state after its last op.
 * - Three runtimes of one stack at once: each matches its own local dir (isolation).
 * - Three programs at once with commits in between: the live tree, the tree after a restart and
 *   the committed layer agree, and every commit lands or says why.
 * A failure prints the seed; SPFS_FUZZ_SEEDS=N and SPFS_FUZZ_OPS=N widen it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, q, spfsLine, writeTree } from "../support/fuse.ts";

const FUZZ = new URL("../support/fixtures/fs_fuzz.py", import.meta.url).pathname;
const OPEN_FDS = new URL("../support/fixtures/open_fds.py", import.meta.url).pathname;
const SEEDS = Number(Deno.env.get("SPFS_FUZZ_SEEDS") ?? 25);
const OPS = Number(Deno.env.get("SPFS_FUZZ_OPS") ?? 80);
/** fs_fuzz.py's NAME_MAX-long name (255 bytes): a whiteout prefix does not fit in front of it. */
const LONG = "L".repeat(255);
/** fs_fuzz.py's deep dir: a path in it comes near PATH_MAX. */
const DEEP = `d/${Array(14).fill("D".repeat(250)).join("/")}`;

/** A dump without what a layer does not keep (README "Store"): link counts, xattrs, owners, FIFOs. */
const kept = (dump: string) => dump.replace(/ (nlink|xattrs|owner)=\S*/g, "").replace(/^.* fifo .*\n/gm, "");

/** The first line where `got` differs from `want`, with context, for the failure message. */
function firstDiff(want: string, got: string): string {
  const w = want.split("\n"), g = got.split("\n");
  const i = w.findIndex((l, k) => l !== g[k]);
  const at = i < 0 ? w.length : i;
  return `line ${at}:\n  local: ${w[at]}\n  spfs:  ${g[at]}\n(before: ${
    w.slice(Math.max(0, at - 3), at).join(" | ")
  })`;
}

/**
 * Writes the fuzz's lower tree under `sb` and commits it as tag `lower`; returns its path. With
 * `big`, four of its files are 3 MB, so their copy-ups run off the FUSE thread.
 */
async function commitLower(sb: Sandbox, big = false): Promise<string> {
  const lower = join(sb.root, "lower");
  writeTree(lower, {
    "a": "lower a\n",
    "b": "lower b\n",
    "d/a": "lower d/a\n",
    "d/b": "lower d/b\n",
    "d/d/c": "lower d/d/c\n",
    "e/a/a": "lower e/a/a\n",
    "e/b": "lower e/b\n",
    [LONG]: "lower long\n",
    [`d/${LONG}`]: "lower d/long\n",
    [`${DEEP}/a`]: "lower deep a\n",
  }, { "b": 0o600 });
  Deno.symlinkSync("a", join(lower, "d/e")); // relative to its own dir: it never points out of the tree
  for (const f of big ? ["a", "d/a", "d/d/c", "e/a/a"] : []) {
    await runner().run(["sh", "-c", `head -c 3000000 /dev/urandom > ${q(join(lower, f))}`]);
  }
  await sb.ok(["commit", lower, "-t", "lower"]);
  return lower;
}

/** The digest fs_fuzz.py's `trace` prints for a dump (sha256 of its lines, 16 hex digits). */
async function dumpDigest(dump: string): Promise<string> {
  const bytes = new TextEncoder().encode(dump.replace(/\n$/, ""));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

fuseTest("fs fuzz: random ops in an editable runtime and its commit match a local dir", async () => {
  const sb = Sandbox.create();
  try {
    const lower = await commitLower(sb);
    for (let seed = 1; seed <= SEEDS; seed++) {
      const local = join(sb.root, `local-${seed}`);
      await runner().run(["cp", "-a", lower, local]);
      const want = await runner().run(["python3", FUZZ, local, String(seed), String(OPS)]);
      assert.equal(want.code, 0, want.stderr);
      const commit = spfsLine(["commit", "-t", `fz${seed}`]);
      const got = await sb.ok([
        "run",
        "--edit",
        "lower",
        "--",
        "sh",
        "-c",
        `python3 ${q(FUZZ)} ${q(sb.mountpoint)} ${seed} ${OPS} && ${commit} >/dev/null`,
      ]);
      assert.ok(got === want.stdout, `seed ${seed}: ops or tree differ, ${firstDiff(want.stdout, got)}`);
      const wantDump = kept((await runner().run(["python3", FUZZ, local, "dump"])).stdout);
      const layer = kept(await sb.ok(["run", `fz${seed}`, "--", "python3", FUZZ, sb.mountpoint, "dump"]));
      assert.ok(
        layer === wantDump,
        `seed ${seed}: the committed layer differs, ${firstDiff(wantDump, layer)}`,
      );
    }
    console.log(`  ${SEEDS} seeds × ${OPS} ops matched a local dir, before and after commit`);
  } finally {
    await sb.dispose();
  }
});

fuseTest("fds kept open while their names go act on their own file, as on a local dir", async () => {
  // Linux sends no OPEN: a lower file unlinked or renamed over after its open is first written
  // only now, and an unlinked scratch file's old path may already name another file
  const sb = Sandbox.create();
  try {
    const lower = await commitLower(sb);
    const local = join(sb.root, "local");
    await runner().run(["cp", "-a", lower, local]);
    const want = await runner().run(["python3", OPEN_FDS, local]);
    assert.equal(want.code, 0, want.stderr);
    const commit = spfsLine(["commit", "-t", "fds"]);
    const got = await sb.ok([
      "run",
      "--edit",
      "lower",
      "--",
      "sh",
      "-c",
      `python3 ${q(OPEN_FDS)} ${q(sb.mountpoint)} && ${commit} >/dev/null`,
    ]);
    assert.equal(got, want.stdout);
    const tree = await sb.ok(["run", "fds", "--", "python3", FUZZ, sb.mountpoint, "dump"]);
    const localTree = (await runner().run(["python3", FUZZ, local, "dump"])).stdout;
    assert.equal(kept(tree), kept(localTree), "the commit holds no unnamed file");
  } finally {
    await sb.dispose();
  }
});

fuseTest("fs fuzz: three editable runtimes of one stack at once each match their own local dir", async () => {
  // the root is the one inode they share: what one runtime does must never show in another
  const sb = Sandbox.create();
  const ROUNDS = Math.max(2, Math.round(SEEDS / 10)), OPS_I = 300;
  try {
    const lower = await commitLower(sb);
    for (let round = 1; round <= ROUNDS; round++) {
      const seeds = [1, 2, 3].map((k) => 1000 + round * 10 + k);
      const want = await Promise.all(seeds.map(async (seed) => {
        const local = join(sb.root, `local-i${seed}`);
        await runner().run(["cp", "-a", lower, local]);
        const r = await runner().run(["python3", FUZZ, local, String(seed), String(OPS_I)]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout;
      }));
      const got = await Promise.all(
        seeds.map((seed) =>
          sb.ok(["run", "--edit", "lower", "--", "python3", FUZZ, sb.mountpoint, String(seed), String(OPS_I)])
        ),
      );
      for (const [k, seed] of seeds.entries()) {
        assert.ok(got[k] === want[k], `seed ${seed}: ops or tree differ, ${firstDiff(want[k], got[k])}`);
      }
    }
    console.log(`  ${ROUNDS} rounds of 3 runtimes × ${OPS_I} ops at once, each matched its own local dir`);
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "fs fuzz: a service SIGKILLed mid-run loses nothing; the runtime reruns at its last op",
  async () => {
    const sb = Sandbox.create();
    const KILLS = Math.max(3, Math.round(SEEDS / 5)), OPS_K = 1200;
    try {
      const lower = await commitLower(sb);
      const killedAt: string[] = [];
      const lost = /^(\d+) error (ENOTCONN|ECONNABORTED|ENODEV)$/m;
      for (let seed = 1; seed <= KILLS; seed++) {
        const local = join(sb.root, `local-k${seed}`);
        await runner().run(["cp", "-a", lower, local]);
        const trace = await runner().run(["python3", FUZZ, local, String(seed), String(OPS_K), "trace"]);
        assert.equal(trace.code, 0, trace.stderr);
        const states = new Map<string, number[]>();
        // "state N+": between two changes of op N (a create, then its write), as N + 0.5
        for (const [, i, half, h] of trace.stdout.matchAll(/^state (\d+)(\+?) (\w+)$/gm)) {
          states.set(h, [...states.get(h) ?? [], Number(i) + (half ? 0.5 : 0)]);
        }
        await sb.ok(["run", "lower", "--", "true"]); // the service is up, so there is a pid to kill
        const pid = sb.servicePid()!;
        const run = sb.command([
          "run",
          "--keep-runtime",
          "--name",
          `k${seed}`,
          "lower",
          "--",
          "python3",
          FUZZ,
          sb.mountpoint,
          String(seed),
          String(OPS_K),
        ]).output();
        await new Promise((r) => setTimeout(r, 50 + ((seed * 7919) % 300)));
        Deno.kill(pid, "SIGKILL");
        const out = new TextDecoder().decode((await run).stdout);
        // the first op the dead service did not answer: it may or may not have landed; on a busy
        // machine the kill may even come before the program started (spfs run still starting up)
        const first = out.match(lost)?.[1];
        const started = /^\d+ /m.test(out);
        const allowed = first !== undefined
          ? [Number(first), Number(first) + 0.5, Number(first) + 1]
          : started
          ? [OPS_K]
          : [0];
        killedAt.push(first ?? (started ? "after the last op" : "before the first op"));
        const dump = await sb.ok([
          "run",
          "--rerun",
          `k${seed}`,
          "--",
          "python3",
          FUZZ,
          sb.mountpoint,
          "dump",
        ]);
        const at = states.get(await dumpDigest(dump)) ?? [];
        if (!at.some((i) => allowed.includes(i))) {
          // replay the first allowed count of ops on a fresh local copy: where the rerun differs
          const want = join(sb.root, `want-k${seed}`);
          await runner().run(["cp", "-a", lower, want]);
          await runner().run(["python3", FUZZ, want, String(seed), String(allowed[0])]);
          const local = (await runner().run(["python3", FUZZ, want, "dump"])).stdout;
          assert.fail(
            `seed ${seed}: after the kill the runtime holds the state after ops [${at}], want one of ` +
              `[${allowed}]; against the state before op ${allowed[0]}: ${firstDiff(local, dump)}\n` +
              `the program's last lines:\n${out.split("\n").slice(-6).join("\n")}`,
          );
        }
        const commit = spfsLine(["commit", "-t", `k${seed}`]);
        await sb.ok(["run", "--rerun", `k${seed}`, "--", "sh", "-c", `${commit} >/dev/null || true`]);
      }
      const check = await sb.spfs(["check"]);
      assert.equal(check.code, 0, `spfs check after the kills:\n${check.stdout}${check.stderr}`);
      console.log(
        `  ${KILLS} kills, at ops ${killedAt.join(", ")}: each runtime reran at its last answered op`,
      );
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "fs fuzz: three programs at once, commits in between: the runtime, its restart and its commit agree",
  async () => {
    const sb = Sandbox.create();
    const ROUNDS = Math.max(2, Math.round(SEEDS / 8)), OPS_C = 500, M = sb.mountpoint;
    try {
      await commitLower(sb, true);
      const spfs = spfsLine([]);
      let commits = 0;
      const refused = new Map<string, number>();
      for (let round = 1; round <= ROUNDS; round++) {
        const out = join(sb.root, `round-${round}`);
        Deno.mkdirSync(out);
        const fuzzers = [1, 2, 3].map((k) =>
          `python3 ${q(FUZZ)} ${q(M)} ${round * 10 + k} ${OPS_C} nodump > ${out}/fuzz${k} 2>&1 &`
        ).join(" ");
        const commitLoop = `for i in 1 2 3 4 5 6; do ${spfs} commit > /dev/null 2> ${out}/commit$i; ` +
          `echo $? >> ${out}/commit$i; done &`;
        await sb.ok([
          "run",
          "--keep-runtime",
          "--name",
          `c${round}`,
          "lower",
          "--",
          "sh",
          "-c",
          `${fuzzers} ${commitLoop} wait; echo end > ${q(M)}/end; python3 ${q(FUZZ)} ${
            q(M)
          } dump > ${out}/live`,
        ]);
        for (let k = 1; k <= 3; k++) {
          const log = Deno.readTextFileSync(`${out}/fuzz${k}`);
          assert.doesNotMatch(
            log,
            /EIO|Traceback/, // (EBADF is a write through a read-only fd)
            `round ${round}, program ${k}:\n${log.slice(-2000)}`,
          );
        }
        for (let i = 1; i <= 6; i++) {
          const lines = Deno.readTextFileSync(`${out}/commit${i}`).trimEnd().split("\n");
          const rc = lines.pop(), err = lines.join("\n");
          if (rc === "0") commits++;
          else {
            assert.match(
              err,
              /no changes to commit|kept changing during the commit|being copied up/,
              `round ${round}, commit ${i} failed for another reason (exit ${rc}):\n${err}`,
            );
            const why = err.match(/no changes|being copied up|during the commit \(([^)]*)\)/)!;
            refused.set(why[1] ?? why[0], (refused.get(why[1] ?? why[0]) ?? 0) + 1);
          }
        }
        const live = Deno.readTextFileSync(`${out}/live`);
        const pid = sb.servicePid();
        if (pid) Deno.kill(pid, "SIGKILL");
        const commit = spfsLine(["commit", "-t", `c${round}`]);
        const again = await sb.ok([
          "run",
          "--rerun",
          `c${round}`,
          "--",
          "sh",
          "-c",
          `python3 ${q(FUZZ)} ${q(M)} dump && ${commit} > /dev/null`,
        ]);
        assert.ok(
          again === live,
          `round ${round}: after a restart the runtime differs, ${firstDiff(live, again)}`,
        );
        const layer = await sb.ok(["run", `c${round}`, "--", "python3", FUZZ, M, "dump"]);
        assert.ok(
          kept(layer) === kept(live),
          `round ${round}: the committed layer differs, ${firstDiff(kept(live), kept(layer))}`,
        );
      }
      const check = await sb.spfs(["check"]);
      assert.equal(check.code, 0, `spfs check:\n${check.stdout}${check.stderr}`);
      console.log(
        `  ${ROUNDS} rounds of 3 × ${OPS_C} ops at once: ${commits} commits landed; refused: ${
          JSON.stringify(Object.fromEntries(refused))
        }`,
      );
    } finally {
      await sb.dispose();
    }
  },
);
