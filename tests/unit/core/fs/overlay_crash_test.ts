/**
 * Crash points of the overlay ops that change more than one scratch entry (rmdir of a dir holding
 * whiteouts, rename over one). Each op runs in a child process (tests/support/overlay_op.ts) that
 * strace kills with SIGKILL at one of its scratch syscalls, in turn at every one of them; a fresh
 * overlay over what is left (work/ emptied, as the restart sweep does) must show the state before
 * the op or one on the way to after it, and never a lower entry that a whiteout had hidden.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importDir } from "../../../../core/store/importer.ts";
import { encodeLayer } from "../../../../core/store/objects.ts";
import { type ONode, Overlay } from "../../../../core/fs/overlay/overlay.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { ROOT_INO, Vfs } from "../../../../core/fs/vfs.ts";
import { runner } from "../../../../core/runner.ts";

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

/** A store with one layer: d/x, d/y, s/f and s/g; the scratch has d/x, d/y and s/g deleted. */
async function prepared(tmp: string): Promise<{ store: string; layer: string; vfs: Vfs; scratch: string }> {
  const src = join(tmp, "src");
  for (const d of ["d", "s"]) Deno.mkdirSync(join(src, d), { recursive: true });
  for (const f of ["d/x", "d/y", "s/f", "s/g"]) Deno.writeTextFileSync(join(src, f), f);
  const store = ObjectStore.open(join(tmp, "store"));
  const { manifest } = await importDir(src, store);
  const layer = store.putBytes(encodeLayer(manifest));
  const vfs = new Vfs(store, me.uid, me.gid);
  const scratch = join(tmp, "prepared");
  const ov = overlay(vfs, layer, scratch);
  const d = ov.lookup(ROOT_INO, "d") as ONode;
  for (const name of ["x", "y"]) assert.equal(ov.unlink(d.ino, name), 0);
  assert.equal(ov.unlink((ov.lookup(ROOT_INO, "s") as ONode).ino, "g"), 0);
  return { store: join(tmp, "store"), layer, vfs, scratch };
}

function overlay(vfs: Vfs, layer: string, scratch: string): Overlay {
  Deno.mkdirSync(join(scratch, "scratch"), { recursive: true });
  Deno.mkdirSync(join(scratch, "work"), { recursive: true });
  return new Overlay({
    id: "t",
    scratch: join(scratch, "scratch"),
    work: join(scratch, "work"),
    vfs,
    layers: [layer],
    rootSources: vfs.view([layer]).rootSources,
    reflink: false,
  });
}

/** The merged tree as "path" lines (dirs end in /), as a restarted service would show it. */
function view(vfs: Vfs, layer: string, dir: string): string[] {
  Deno.removeSync(join(dir, "work"), { recursive: true }); // the restart sweep
  const ov = overlay(vfs, layer, dir);
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
 * per syscall with SIGKILL injected there; returns the distinct views left behind, final included.
 */
async function crashViews(p: Awaited<ReturnType<typeof prepared>>, tmp: string, op: string[]) {
  const run = async (name: string, strace: string[]) => {
    const dir = join(tmp, name);
    await runner().run(["cp", "-a", p.scratch, dir]);
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
      join(dir, "scratch"),
      join(dir, "work"),
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
  const views = new Map<string, string>([[view(p.vfs, p.layer, dry.dir).join(" "), "after"]]);
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
  return views;
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

crashTest(
  "overlay crash points: rmdir of a dir holding whiteouts never brings its lower entries back",
  async () => {
    const tmp = Deno.makeTempDirSync({ prefix: "spfs-test-crash-" });
    try {
      const p = await prepared(tmp);
      const views = await crashViews(p, tmp, ["rmdir", "d"]);
      for (const [v, how] of views) {
        assert.ok(["d/ s/ s/f", "s/ s/f"].includes(v), `${how}: the view is "${v}"`);
      }
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  },
);

crashTest(
  "overlay crash points: rename over a dir holding whiteouts never brings its lower entries back",
  async () => {
    const tmp = Deno.makeTempDirSync({ prefix: "spfs-test-crash-" });
    try {
      const p = await prepared(tmp);
      const views = await crashViews(p, tmp, ["rename", "s", "d"]);
      // before; the target made way (gone) with the source still at its name; after
      for (const [v, how] of views) {
        assert.ok(["d/ s/ s/f", "s/ s/f", "d/ d/f"].includes(v), `${how}: the view is "${v}"`);
      }
      assert.ok(views.has("d/ d/f"));
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  },
);
