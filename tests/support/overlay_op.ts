/**
 * One overlay op in a process of its own, for crash tests that kill it at a chosen syscall
 * (tests/unit/core/fs/overlay_crash_test.ts): opens the store at `store`, an overlay of `layer`
 * over DIR/scratch and DIR/work, walks to the parent of each path and runs the op.
 * Usage: overlay_op.ts STORE LAYER DIR (rmdir PATH | rename FROM TO)
 */
import { join } from "node:path";
import { Overlay } from "../../core/fs/overlay/overlay.ts";
import { ObjectStore } from "../../core/store/store.ts";
import { ROOT_INO, Vfs } from "../../core/fs/vfs.ts";

/** An overlay of `layer` over `dir`/scratch and `dir`/work, made if missing (a runtime's layout). */
export function overlayIn(vfs: Vfs, layer: string, dir: string): Overlay {
  const scratch = join(dir, "scratch"), work = join(dir, "work");
  for (const d of [scratch, work]) Deno.mkdirSync(d, { recursive: true });
  return new Overlay({
    id: "crash",
    scratch,
    work,
    vfs,
    layers: [layer],
    rootSources: vfs.view([layer]).rootSources,
    reflink: false,
  });
}

if (import.meta.main) {
  const [store, layer, dir, op, ...paths] = Deno.args;
  const ov = overlayIn(new Vfs(ObjectStore.open(store), Deno.uid() ?? 0, Deno.gid() ?? 0), layer, dir);
  /** The inode of `path`'s parent dir and its last name. */
  const parentOf = (path: string): [number, string] => {
    const parts = path.split("/");
    let ino = ROOT_INO;
    for (const p of parts.slice(0, -1)) {
      const n = ov.lookup(ino, p);
      if (typeof n === "number") throw new Error(`${path}: errno ${n}`);
      ino = n.ino;
    }
    return [ino, parts.at(-1)!];
  };
  let rc: number;
  if (op === "rmdir") rc = ov.rmdir(...parentOf(paths[0]));
  else if (op === "rename") rc = ov.rename(...parentOf(paths[0]), ...parentOf(paths[1]), 0);
  else throw new Error(`unknown op ${op}`);
  console.log(rc);
}
