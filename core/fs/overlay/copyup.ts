/**
 * Copy-up: a lower file or symlink is cloned into scratch (reflink, copy_file_range or a byte
 * copy, ffi/fsops.ts cloneFile) under a temp name in work/, given its mode, owner and times, and
 * renamed into place, so a crash never leaves a half file visible. A dir is created in scratch
 * with its lower mode. A whole subtree (rename of a lower dir) becomes opaque once copied.
 */
import { chmod, cloneFile, lchown, rename, symlink, unlink, utimens } from "../../../ffi/fsops.ts";
import { META_PREFIX } from "../../store/scratch.ts";
import { baseName, type ONode } from "./nodes.ts";
import type { OverlayParts } from "./parts.ts";

/** Copies a lower file or symlink (or creates a lower dir) in scratch: 0 or an errno. */
export function copyUp(ov: OverlayParts, n: ONode): number {
  if (n.upper) return 0;
  const parentOf = (m: ONode) => ov.parentOf(m);
  if (n.kind === "dir") return ov.upper.ensure(n, parentOf);
  const dir = ov.parentOf(n);
  const e = ov.upper.ensure(dir, parentOf);
  if (e) return e;
  const tmp = ov.upper.tmp();
  const rc = n.kind === "symlink" ? copySymlink(ov, n, tmp) : copyFile(ov, n, tmp);
  if (rc) return rc;
  const mv = rename(tmp, ov.upper.path(n));
  if (mv) {
    unlink(tmp);
    return mv;
  }
  n.upper = true;
  if (n.meta) {
    unlink(`${ov.upper.path(dir)}/${META_PREFIX}${baseName(n.path)}`);
    ov.upper.state(dir)?.meta.delete(baseName(n.path));
    n.meta = undefined;
  }
  ov.gen++;
  return 0;
}

function copySymlink(ov: OverlayParts, n: ONode, tmp: string): number {
  const target = Deno.readFileSync(ov.vfs.blobPath(n.lower!.digest!));
  return symlink(target, tmp);
}

/** Clones the blob to `tmp` and applies the lower mode and any metadata override. */
function copyFile(ov: OverlayParts, n: ONode, tmp: string): number {
  const c = n.lower!;
  const how = cloneFile(ov.vfs.blobPath(c.digest!), tmp, ov.reflink);
  if (typeof how === "number") {
    unlink(tmp); // a partial copy (ENOSPC, EIO) must not stay in work/
    return how;
  }
  ov.onCopyUp?.(how);
  const m = n.meta;
  chmod(tmp, m?.mode ?? c.mode);
  if (m?.uid !== undefined || m?.gid !== undefined) lchown(tmp, m.uid ?? -1, m.gid ?? -1);
  if (m?.atimeNs || m?.mtimeNs) {
    utimens(tmp, m.atimeNs ? BigInt(m.atimeNs) : undefined, m.mtimeNs ? BigInt(m.mtimeNs) : undefined);
  }
  return 0;
}

/** Copies a whole subtree into scratch; a dir that had lower entries becomes opaque. */
export function deepCopyUp(ov: OverlayParts, n: ONode): number {
  if (n.kind !== "dir") return copyUp(ov, n);
  let e = ov.upper.ensure(n, (m) => ov.parentOf(m));
  if (e) return e;
  const l = ov.list(n.ino);
  if (typeof l === "number") return l;
  for (const [, c] of l) if ((e = deepCopyUp(ov, c))) return e;
  if (n.lowerSources) {
    e = ov.upper.clearMarkers(n) || ov.upper.markOpaque(n);
    if (e) return e;
  }
  return 0;
}
