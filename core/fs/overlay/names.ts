/**
 * The namespace ops of an overlay: create, mknod, mkdir, symlink, link, unlink, rmdir. New entries
 * are made in scratch (their dir copied up first) and owned by the caller when the service is
 * root; deleting a lower entry writes a mask first, so a crash never shows half a change.
 */
import { E } from "../../../ffi/errno.ts";
import * as fs from "../../../ffi/fsops.ts";
import { O_RDWR } from "../../../ffi/sys.ts";
import { WH_PREFIX } from "../../store/scratch.ts";
import { type Caller, nameTooLong } from "../backend.ts";
import { lastAttr } from "./attrs.ts";
import { copyUp } from "./copyup.ts";
import { type Kind, kindOfMode, type ONode } from "./nodes.ts";
import type { OverlayParts } from "./parts.ts";
import { isEmptyDir } from "./rename.ts";
import { UpperDir } from "./upper.ts";

/** Common checks and preparation before creating `name` in `dir`. */
function prepareCreate(
  ov: OverlayParts,
  dirIno: number,
  name: string,
): { dir: ONode; path: string; masked: boolean } | number {
  if (nameTooLong(name)) return E.ENAMETOOLONG;
  const dir = ov.node(dirIno);
  if (!dir) return E.ENOENT;
  if (dir.kind !== "dir") return E.ENOTDIR;
  if (name.startsWith(WH_PREFIX)) return E.EINVAL;
  if (ov.child(dir, name)) return E.EEXIST;
  const e = ov.upper.ensure(dir, (m) => ov.parentOf(m));
  if (e) return e;
  const masked = ov.upper.removeMask(dir, name);
  ov.gen++;
  return { dir, path: `${dir.path}/${name}`, masked };
}

function created(ov: OverlayParts, path: string, kind: Kind): ONode {
  const n = ov.table.create(path, kind, true, null);
  n.nlookup++;
  return n;
}

/** create(2) with O_CREAT: returns the node and a read-write fd of the new file. */
export function create(
  ov: OverlayParts,
  dirIno: number,
  name: string,
  mode: number,
  who: Caller,
): { node: ONode; fd: number } | number {
  const p = prepareCreate(ov, dirIno, name);
  if (typeof p === "number") return p;
  const up = ov.upper.path(p.path);
  // read-write and without O_APPEND whatever the caller asked: the fd serves every later read and
  // write of the inode at the kernel's offsets (core/service/worker/files.ts)
  const fd = fs.createFile(up, O_RDWR, mode);
  if (fd < 0) return -fd;
  ov.upper.setOwner(up, who);
  const node = created(ov, p.path, "file");
  node.openFds++;
  return { node, fd };
}

/** mknod(2): files, FIFOs, sockets and (for a root service) block and character devices. */
export function mknod(
  ov: OverlayParts,
  dirIno: number,
  name: string,
  mode: number,
  rdev: bigint,
  who: Caller,
): ONode | number {
  const p = prepareCreate(ov, dirIno, name);
  if (typeof p === "number") return p;
  const up = ov.upper.path(p.path);
  const rc = fs.mknod(up, mode, rdev);
  if (rc) return rc;
  fs.chmod(up, mode);
  ov.upper.setOwner(up, who);
  return created(ov, p.path, kindOfMode(mode));
}

/** mkdir(2). A dir re-created where a lower one was deleted is opaque. */
export function mkdir(
  ov: OverlayParts,
  dirIno: number,
  name: string,
  mode: number,
  who: Caller,
): ONode | number {
  const p = prepareCreate(ov, dirIno, name);
  if (typeof p === "number") return p;
  const up = ov.upper.path(p.path);
  const rc = fs.mkdir(up, mode);
  if (rc) return rc;
  fs.chmod(up, mode);
  ov.upper.setOwner(up, who);
  const n = created(ov, p.path, "dir");
  n.state = UpperDir.emptyState();
  if (p.masked) {
    const e = ov.upper.markOpaque(n);
    if (e) return e;
  }
  return n;
}

/** symlink(2). */
export function symlink(
  ov: OverlayParts,
  dirIno: number,
  name: string,
  target: Uint8Array,
  who: Caller,
): ONode | number {
  const p = prepareCreate(ov, dirIno, name);
  if (typeof p === "number") return p;
  const up = ov.upper.path(p.path);
  const rc = fs.symlink(target, up);
  if (rc) return rc;
  ov.upper.setOwner(up, who);
  return created(ov, p.path, "symlink");
}

/** link(2): hard links live in scratch, so a lower file is copied up first. */
export function link(ov: OverlayParts, ino: number, dirIno: number, name: string): ONode | number {
  const n = ov.node(ino);
  if (!n || n.detached) return E.ENOENT;
  if (n.kind === "dir") return E.EPERM;
  const e = copyUp(ov, n);
  if (e) return e;
  const p = prepareCreate(ov, dirIno, name);
  if (typeof p === "number") return p;
  const rc = fs.link(ov.upper.path(n), ov.upper.path(p.path));
  if (rc) return rc;
  const a = fs.lstat(ov.upper.path(n));
  ov.table.addLink(n, p.path, typeof a === "number" ? undefined : a.ino);
  n.nlookup++;
  return n;
}

/** unlink(2): removes the scratch entry and masks a lower one. */
export function unlink(ov: OverlayParts, dirIno: number, name: string): number {
  const dir = ov.node(dirIno);
  if (!dir) return E.ENOENT;
  const n = ov.child(dir, name);
  if (!n) return E.ENOENT;
  if (n.kind === "dir") return E.EISDIR;
  const path = `${dir.path}/${name}`;
  const last = ov.attr(n);
  // mask first: a crash in between leaves the scratch entry, which wins, so nothing half-done shows
  if (ov.lowerChild(dir, name)) {
    const e = ov.upper.addMask(dir, name, (m) => ov.parentOf(m));
    if (e) return e;
    ov.upper.dropMeta(dir, name);
  }
  if (n.upper) {
    const rc = fs.unlink(ov.upper.path(path));
    if (rc && rc !== E.ENOENT) return rc;
  }
  ov.table.detach(n, path, last, (m) => lastAttr(ov, m));
  ov.gen++;
  return 0;
}

/** rmdir(2): ENOTEMPTY when the merged dir has entries; masks a lower dir. */
export function rmdir(ov: OverlayParts, dirIno: number, name: string): number {
  const dir = ov.node(dirIno);
  if (!dir) return E.ENOENT;
  const n = ov.child(dir, name);
  if (!n) return E.ENOENT;
  if (n.kind !== "dir") return E.ENOTDIR;
  if (!isEmptyDir(ov, n)) return E.ENOTEMPTY;
  const path = `${dir.path}/${name}`;
  const last = ov.attr(n);
  if (ov.lowerChild(dir, name)) { // per name: a dir made where a lower file was has no `lower`
    const e = ov.upper.addMask(dir, name, (m) => ov.parentOf(m));
    if (e) return e;
  }
  if (n.upper) {
    const e = ov.upper.clearMarkers(n);
    if (e) return e;
    const rc = fs.rmdir(ov.upper.path(path));
    if (rc) return rc;
    ov.upper.invalidate();
  }
  ov.table.detach(n, path, last, (m) => lastAttr(ov, m));
  ov.gen++;
  return 0;
}
