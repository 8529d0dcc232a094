/**
 * Crash points of the overlay ops that change more than one scratch entry (rmdir of a dir holding
 * whiteouts, rename over one, rename of a lower file or tree). Each op runs in a child process (tests/support/overlay_op.ts) that
 * strace kills with SIGKILL at one of its scratch syscalls, in turn at every one of them; a fresh
 * overlay over what is left (work/ emptied, as the restart sweep does) must show the state before
 * the op or one on the way to after it, and never a lower entry that a whiteout had hidden.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importDir } from "../../../../core/store/importer.ts";
import { encodeLayer } from "../../../../core/store/objects.ts";
import type { ONode } from "../../../../core/fs/overlay/overlay.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { ROOT_INO, Vfs } from "../../../../core/fs/vfs.ts";
import { runner } from "../../../../core/runner.ts";
import { overlayIn } from "../../../support/overlay_op.ts";

const me = { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
const PROBE = new URL("../../../support/overlay_op.ts", import.meta.url).pathname;
const MUTATING = [
  "unlink",
  "unlinkat",
  "rmdir",
  "rename",
  "renameat",
  "renameat2",
  "mkdir",
  "mkdirat",
  "openat",
];
const haveStrace = (await runner().run(["sh", "-c", "command -v strace"])).code === 0;

/**
 * A store with one layer: a, d/x, d/y, s/f, s/g and t/u/v; the scratch has d/x, d/y and s/g
 * deleted.
 */
async function prepared(tmp: string): Promise<{ store: string; layer: string; vfs: Vfs; scratch: string }> {
  const src = join(tmp, "src");
  for (const d of ["d", "s", "t/u"]) Deno.mkdirSync(join(src, d), { recursive: true });
  for (const f of ["a", "d/x", "d/y", "s/f", "s/g", "t/u/v"]) Deno.writeTextFileSync(join(src, f), f);
  const store = ObjectStore.open(join(tmp, "store"));
  const { manifest } = await importDir(src, store);
  const layer = store.putBytes(encodeLayer(manifest));
  const vfs = new Vfs(store, me.uid, me.gid);
  const scratch = join(tmp, "prepared");
  const ov = overlayIn(vfs, layer, scratch);
  const d = ov.lookup(ROOT_INO, "d") as ONode;
  for (const name of ["x", "y"]) assert.equal(ov.unlink(d.ino, name), 0);
  assert.equal(ov.unlink((ov.lookup(ROOT_INO, "s") as ONode).ino, "g"), 0);
  return { store: join(tmp, "store"), layer, vfs, scratch };
}

/** The merged tree as "path" lines (dirs end in /), as a restarted service would show it. */
function view(vfs: Vfs, layer: string, dir: string): string[] {
  Deno.removeSync(join(dir, "work"), { recursive: true }); // the restart sweep
  const ov = overlayIn(vfs, layer, dir);
  const out: string[] = [];
  const walk = (ino: number, prefix: string) => {
    const l = ov.list(ino);
    assert.notEqual(typeof l, "number");
    for (const [name, n] of l as [string, ONode][]) {
      out.push(n.kind === "dir" ? `${prefix}${name}/` : `${prefix}${name}`);
      if (n.kind === "dir") walk(n.ino, `${prefix}${name}/`);
    }
  };
  walk(ROOT_INO, "");
  return out.sort();
}

/**
 * Runs the op on a copy of `prepared` once under strace to list its scratch syscalls, then once
 * per syscall with SIGKILL injected there. Returns the view before the op, the one after it, and
 * each distinct view a kill left (with where it was killed).
 */
async function crashViews(p: Awaited<ReturnType<typeof prepared>>, tmp: string, op: string[]) {
  const copy = async (name: string) => {
    const dir = join(tmp, name);
    await runner().run(["cp", "-a", p.scratch, dir]);
    return dir;
  };
  const run = async (name: string, strace: string[]) => {
    const dir = await copy(name);
    const r = await runner().run([
      "strace",
      "-f",
      "-qq",
      ...strace,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      PROBE,
      p.store,
      p.layer,
      dir,
      ...op,
    ]);
    return { dir, r };
  };
  const log = join(tmp, `${op[0]}.strace`);
  const dry = await run(`${op[0]}-all`, ["-e", `trace=${MUTATING.join(",")}`, "-o", log]);
  assert.equal(dry.r.stdout.trim(), "0", `${op.join(" ")}: ${dry.r.stderr}`);
  // the nth call of each syscall in its thread, as strace counts for `when` (per tracee)
  const seen = new Map<string, number>();
  const points: [string, number, string][] = [];
  for (const line of Deno.readTextFileSync(log).split("\n")) {
    const m = /^(\d+)\s+(\w+)\((.*)$/.exec(line);
    if (!m || !MUTATING.includes(m[2])) continue;
    const key = `${m[1]} ${m[2]}`, nth = (seen.get(key) ?? 0) + 1;
    seen.set(key, nth);
    const creates = m[2] !== "openat" || m[3].includes("O_CREAT");
    if (creates && m[3].includes(dry.dir)) points.push([m[2], nth, line]);
  }
  assert.ok(points.length >= 2, `expected several scratch syscalls, got:\n${points.join("\n")}`);
  const before = view(p.vfs, p.layer, await copy("before")).join(" ");
  const after = view(p.vfs, p.layer, dry.dir).join(" ");
  const views = new Map<string, string>();
  for (const [i, [call, nth, line]] of points.entries()) {
    const { dir, r } = await run(`${op[0]}-${i}`, [
      "-o",
      "/dev/null",
      "-e",
      `inject=${call}:signal=SIGKILL:when=${nth}`,
    ]);
    assert.equal(r.stdout.trim(), "", `killed before ${line}, yet it finished`);
    views.set(view(p.vfs, p.layer, dir).join(" "), `killed before ${line}`);
  }
  return { before, after, views };
}

/** Deno.test, but without strace: ignored with a line, or failed where CI requires everything. */
function crashTest(name: string, fn: () => Promise<void>): void {
  if (haveStrace) return void Deno.test(name, fn);
  const why = "strace is missing (deno task test installs it as root)";
  if (Deno.env.get("SPFS_REQUIRE_FUSE") === "1") {
    Deno.test(name, () => {
      throw new Error(`SPFS_REQUIRE_FUSE=1 (CI) needs every test: ${why}`);
    });
  } else {
    console.error(`${name}: ignored, ${why}`);
    Deno.test({ name, ignore: true, fn });
  }
}

/** Runs `op` with a kill at each crash point; every view left must be one of `allowed(before, after)`. */
function crashCase(what: string, op: string[], allowed: (before: string, after: string) => string[]): void {
  crashTest(`overlay crash points: ${what}`, async () => {
    const tmp = Deno.makeTempDirSync({ prefix: "spfs-test-crash-" });
    try {
      const p = await prepared(tmp);
      const { before, after, views } = await crashViews(p, tmp, op);
      assert.notEqual(before, after);
      const ok = allowed(before, after);
      for (const [v, how] of views) assert.ok(ok.includes(v), `${how}: the view is "${v}", not one of ${ok}`);
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  });
}

crashCase("rmdir of a dir holding whiteouts never brings its lower entries back", ["rmdir", "d"], (b, a) => [
  b,
  a,
]);
// the target may be gone with the source still at its name (it made way first)
crashCase(
  "rename over a dir holding whiteouts never brings its lower entries back",
  ["rename", "s", "d"],
  (b, a) => [b, a, b.split(" ").filter((p) => p !== "d/").join(" ")],
);
crashCase(
  "rename of a lower file shows the old name or the new one",
  ["rename", "a", "s/a2"],
  (b, a) => [b, a],
);
crashCase(
  "rename of a lower dir tree shows the old tree or the new one",
  ["rename", "t", "t2"],
  (b, a) => [b, a],
);
