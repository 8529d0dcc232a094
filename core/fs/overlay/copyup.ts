/**
 * Copy-up: a lower file or symlink is cloned into scratch (reflink, copy_file_range or a byte
 * copy, ffi/fsops.ts cloneFile) under a temp name in work/, given its mode, owner and times, and
 * renamed into place, so a crash never leaves a half file visible. A dir is created in scratch
 * with its lower mode. A whole subtree (rename of a lower dir) becomes opaque once copied.
 *
 * A big file's bytes may be copied off the FUSE thread instead (`beginCopyUp`/`endCopyUp`): the
 * caller fills the temp file elsewhere and publishes it here, so one runtime's 1 GiB copy-up does
 * not stall every other runtime's requests.
 */
import { E } from "../../../ffi/errno.ts";
import {
  chmod,
  cloneFile,
  createFile,
  lchown,
  openFile,
  rename,
  symlink,
  unlink,
  utimens,
} from "../../../ffi/fsops.ts";
import { errnoOfException, libc, O_RDWR, O_WRONLY } from "../../../ffi/sys.ts";
import { readSlice } from "../../store/store.ts";
import { metaName } from "../../store/scratch.ts";
import type { Digest } from "../../store/objects.ts";
import { baseName, type ONode } from "./nodes.ts";
import type { CopyUpHow, OverlayParts } from "./parts.ts";

/**
 * Copies a lower file or symlink (or creates a lower dir) in scratch: 0 or an errno.
 * @param empty copy a file's metadata only (an open with O_TRUNC drops the bytes anyway)
 */
export function copyUp(ov: OverlayParts, n: ONode, empty = false): number {
  if (n.upper) return 0;
  const parentOf = (m: ONode) => ov.parentOf(m);
  if (n.kind === "dir") return ov.upper.ensure(n, parentOf);
  const e = ov.upper.ensure(ov.parentOf(n), parentOf);
  if (e) return e;
  const tmp = ov.upper.tmp();
  if (n.kind === "symlink") {
    const rc = symlink(ov.vfs.blobBytes(n.lower!.digest!), tmp);
    return rc || place(ov, n, tmp);
  }
  const how = empty ? emptyFile(tmp) : copyBlob(ov, n.lower!.digest!, tmp);
  if (typeof how === "number") {
    unlink(tmp); // a partial copy (ENOSPC, EIO) must not stay in work/
    return how;
  }
  return place(ov, n, tmp, how);
}

/** Copies a blob's bytes into the new file `tmp`: cloned when loose, written when in a pack (small). */
function copyBlob(ov: OverlayParts, d: Digest, tmp: string): CopyUpHow | number {
  const src = ov.vfs.blob(d);
  if (!src) return E.EIO; // listed but missing from the store: `spfs check` says so
  if (!src.packed) return cloneFile(src.path, tmp, ov.reflink);
  try {
    Deno.writeFileSync(tmp, readSlice(src), { createNew: true, mode: 0o600 });
    return "copy";
  } catch (e) {
    return errnoOfException(e);
  }
}

function emptyFile(tmp: string): CopyUpHow | number {
  const fd = createFile(tmp, O_WRONLY, 0o600);
  if (fd < 0) return -fd;
  libc().close(fd);
  return "copy";
}

/** A file copy-up whose bytes someone else copies from `src` into the new file `tmp`. */
export interface CopyJob {
  src: string;
  tmp: string;
  digest: Digest;
}

/**
 * Starts a copy-up of the lower file `n` whose bytes are copied elsewhere: its parent is made in
 * scratch and a temp name chosen. Counts in `copying` until `endCopyUp`, so a commit waits.
 * @returns the job, or an errno
 */
export function beginCopyUp(ov: OverlayParts, n: ONode): CopyJob | number {
  if (n.kind !== "file" || n.upper || !n.lower?.digest) return E.EINVAL;
  const e = ov.upper.ensure(ov.parentOf(n), (m) => ov.parentOf(m));
  if (e) return e;
  ov.copying++;
  return { src: ov.vfs.blobPath(n.lower.digest), tmp: ov.upper.tmp(), digest: n.lower.digest };
}

/**
 * Publishes a copy begun by `beginCopyUp`, once `job.tmp` holds the bytes (`err` 0) or the copy
 * failed (`err` its errno). The temp file is dropped instead when the path is no longer that lower
 * file (copied up meanwhile by a chmod, unlinked, or swapped by a commit): the caller then opens
 * whatever the path is now. Returns 0 or an errno.
 */
export function endCopyUp(ov: OverlayParts, ino: number, job: CopyJob, err: number, how: CopyUpHow): number {
  ov.copying--;
  const n = ov.node(ino);
  const same = n && !n.upper && !n.detached && n.kind === "file" && n.lower?.digest === job.digest;
  if (err || !same) {
    unlink(job.tmp);
    return err;
  }
  const e = ov.upper.ensure(ov.parentOf(n), (m) => ov.parentOf(m));
  if (e) {
    unlink(job.tmp);
    return e;
  }
  return place(ov, n, job.tmp, how);
}

/**
 * Copies a detached lower file (its last name unlinked or renamed over while the kernel still knows
 * it) into an unnamed scratch file: a temp file in work/ with the file's metadata, opened
 * read-write and unlinked at once, so it never shows in scratch or a commit. Linux sends no OPEN,
 * so a process that opened the file before its name went may first write it only now.
 * @returns the fd (the caller keeps it as the node's pin), or an errno
 */
export function orphanCopyUp(ov: OverlayParts, n: ONode): { fd: number } | number {
  if (n.kind !== "file" || n.upper || !n.lower?.digest) return E.ENOENT;
  const tmp = ov.upper.tmp();
  const how = copyBlob(ov, n.lower.digest, tmp);
  if (typeof how === "number") {
    unlink(tmp);
    return how;
  }
  giveMeta(n, tmp);
  const fd = openFile(tmp, O_RDWR);
  unlink(tmp);
  if (fd < 0) return -fd;
  ov.onCopyUp?.(how);
  n.upper = true;
  n.meta = undefined;
  return { fd };
}

/** Gives the copy `tmp` the lower file's mode, owner and times (its sidecar's, when it has one). */
function giveMeta(n: ONode, tmp: string): void {
  const c = n.lower!, m = n.meta;
  chmod(tmp, m?.mode ?? c.mode);
  if (m?.uid !== undefined || m?.gid !== undefined) lchown(tmp, m.uid ?? -1, m.gid ?? -1);
  if (m?.atimeNs || m?.mtimeNs) {
    utimens(tmp, m.atimeNs ? BigInt(m.atimeNs) : undefined, m.mtimeNs ? BigInt(m.mtimeNs) : undefined);
  }
}

/** Gives `tmp` the lower file's metadata and renames it into place: 0 or an errno. */
function place(ov: OverlayParts, n: ONode, tmp: string, how?: CopyUpHow): number {
  if (how) giveMeta(n, tmp);
  const mv = rename(tmp, ov.upper.path(n));
  if (mv) {
    unlink(tmp);
    return mv;
  }
  if (how) ov.onCopyUp?.(how);
  n.upper = true;
  if (n.meta) {
    const dir = ov.parentOf(n);
    unlink(`${ov.upper.path(dir)}/${metaName(baseName(n.path)).file}`);
    ov.upper.state(dir)?.meta.delete(baseName(n.path));
    n.meta = undefined;
  }
  ov.gen++;
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
  // opaque first: a crash before the masks are gone leaves them redundant, not the lower entries back
  if (n.lowerSources) {
    e = ov.upper.markOpaque(n) || ov.upper.clearMarkers(n, true);
    if (e) return e;
  }
  return 0;
}
