/**
 * Attributes: an upper entry's come from lstat of its scratch path; a lower entry's from its
 * manifest entry plus any metadata override. setattr truncates after copy-up; mode, owner and
 * times of a lower file are recorded as a sidecar without copying its data.
 */
import {
  chmod,
  fchmod,
  fchown,
  fstat,
  ftruncate,
  lchown,
  lstat,
  truncate,
  utimens,
} from "../../../ffi/fsops.ts";
import { E } from "../../../ffi/errno.ts";
import type { Attr } from "../../../ffi/stat.ts";
import { metaName, type MetaOverride } from "../../store/scratch.ts";
import { LAYER_TIME_S, type SetAttr } from "../backend.ts";
import { copyUp } from "./copyup.ts";
import { baseName, type ONode, typeOfKind } from "./nodes.ts";
import type { OverlayParts } from "./parts.ts";

/** Attributes of a node, or an errno. */
export function attrOf(ov: OverlayParts, n: ONode): Attr | number {
  if (n.detached) return n.detached;
  if (n.upper) {
    const a = lstat(ov.upper.path(n));
    if (typeof a === "number") return a;
    return { ...a, ino: n.ino, nlink: n.kind === "dir" ? 2 + subdirs(ov, n, a.nlink) : a.nlink };
  }
  const c = n.lower!;
  const type = typeOfKind(c.kind);
  const m = n.meta;
  const ns = (t: string | undefined) => t !== undefined ? BigInt(t) : undefined;
  return {
    ino: n.ino,
    mode: type | ((m?.mode ?? c.mode) & 0o7777),
    nlink: n.kind === "dir" ? 2 + subdirs(ov, n) : 1,
    uid: m?.uid ?? ov.vfs.owner.uid,
    gid: m?.gid ?? ov.vfs.owner.gid,
    size: c.size,
    blocks: Math.ceil(c.size / 512),
    blksize: 65536,
    time: LAYER_TIME_S,
    atimeNs: ns(m?.atimeNs),
    mtimeNs: ns(m?.mtimeNs),
    ctimeNs: ns(m?.ctimeNs ?? m?.mtimeNs),
  };
}

/**
 * The subdirs of a merged dir (its nlink is 2 plus that, as on a local disk): upper dirs, plus lower
 * dirs not masked and not shadowed by an upper entry. Counted without listing the upper dir, since
 * the kernel asks for a dir's attributes after every create in it (`default_permissions`): the
 * upper dir's own st_nlink gives its subdirs (`upperNlink`, when the backing fs counts them), and
 * only the lower subdirs are looked up in scratch, one lstat each.
 */
function subdirs(ov: OverlayParts, dir: ONode, upperNlink?: number): number {
  const st = ov.upper.state(dir); // first: loading an opaque dir's state drops its lowerSources
  let n = 0;
  if (dir.upper) {
    if (upperNlink !== undefined && upperNlink >= 2) n = upperNlink - 2;
    else {
      // ext4 reports 1 past 65,000 subdirs (dir_nlink): count them
      for (const e of Deno.readDirSync(ov.upper.path(dir))) if (e.isDirectory) n++;
    }
  }
  if (dir.lowerSources) {
    const lower = ov.vfs.childrenOf(dir.lowerSources);
    // an untouched lower dir (the common case: every path walk asks for it) counts once per listing
    if (!dir.upper && !st?.masks.size) return n + ov.vfs.subdirs(lower);
    const base = dir.upper ? ov.upper.path(dir) : "";
    for (const [name, c] of lower) {
      if (c.kind !== "dir" || st?.masks.has(name)) continue;
      if (dir.upper && lstat(`${base}/${name}`) !== E.ENOENT) continue; // counted above, or replaced
      n++;
    }
  }
  return n;
}

/**
 * setattr(2)-side changes of a node. `fd`, the inode's fd open for writing if any, is always one
 * of its scratch file: every change then goes through it.
 */
export function setattr(ov: OverlayParts, n: ONode, set: SetAttr, fd: number | undefined): Attr | number {
  if (n.detached && n.kind === "dir") return setGoneDir(n.detached, set);
  if (n.detached) return fd === undefined || !n.upper ? E.ENOENT : setByFd(n, set, fd);
  // a scratch file open for writing (tar, cp -p and install set attributes right after writing):
  // through its fd, sparing two walks of its scratch path
  if (fd !== undefined && n.upper && n.kind === "file") {
    const a = setByFd(n, set, fd);
    if (typeof a !== "number") ov.gen++;
    return a;
  }
  let e = 0;
  if (set.size !== undefined) {
    if (n.kind === "dir") return E.EISDIR;
    // a truncate to 0 (an O_TRUNC open on Linux) copies no bytes
    if ((e = copyUp(ov, n, set.size === 0))) return e;
    e = truncate(ov.upper.path(n), set.size);
    if (e) return e;
  }
  const meta = set.mode !== undefined || set.uid !== undefined || set.gid !== undefined ||
    set.atime !== undefined || set.mtime !== undefined;
  if (meta) e = !n.upper && n.kind === "file" ? writeSidecar(ov, n, set) : setUpper(ov, n, set);
  if (e) return e;
  ov.gen++;
  return attrOf(ov, n);
}

/** The time now, ns since the epoch (ms resolution). */
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/**
 * setattr through an fd of the file's scratch copy: the only way for a file that has lost its last
 * name (ftruncate, fchmod, fchown, futimens of an fd a process still holds), since its old path may
 * now name another file.
 */
function setByFd(n: ONode, set: SetAttr, fd: number): Attr | number {
  let e = 0;
  if (set.size !== undefined) e ||= ftruncate(fd, set.size);
  if (set.mode !== undefined) e ||= fchmod(fd, set.mode);
  if (set.uid !== undefined || set.gid !== undefined) {
    e ||= fchown(fd, set.uid ?? 0xffffffff, set.gid ?? 0xffffffff);
  }
  if (set.atime !== undefined || set.mtime !== undefined) e ||= utimens(fd, set.atime, set.mtime);
  if (e) return e;
  const a = fstat(fd);
  return typeof a === "number" ? a : { ...a, ino: n.ino };
}

/**
 * setattr through the fd of a removed dir (fchmod, fchown, futimens after rmdir): nothing is left
 * on disk, so the attributes it keeps serving change, as a local disk's would.
 */
function setGoneDir(a: Attr, set: SetAttr): Attr | number {
  if (set.size !== undefined) return E.EISDIR;
  const ns = (t: bigint | "now") => t === "now" ? nowNs() : t;
  if (set.mode !== undefined) a.mode = (a.mode & ~0o7777) | (set.mode & 0o7777);
  if (set.uid !== undefined) a.uid = set.uid;
  if (set.gid !== undefined) a.gid = set.gid;
  if (set.atime !== undefined) a.atimeNs = ns(set.atime);
  if (set.mtime !== undefined) a.mtimeNs = ns(set.mtime);
  a.ctimeNs = nowNs();
  a.atimeNs ??= BigInt(a.time) * 1_000_000_000n;
  a.mtimeNs ??= BigInt(a.time) * 1_000_000_000n;
  return a;
}

/** Records mode, owner and times of a lower file in its dir's metadata sidecar. */
function writeSidecar(ov: OverlayParts, n: ONode, set: SetAttr): number {
  const dir = ov.parentOf(n);
  const e = ov.upper.ensure(dir, (m) => ov.parentOf(m));
  if (e) return e;
  const now = () => String(nowNs());
  const m: MetaOverride = {
    ...(n.meta ?? { digest: n.lower!.digest!, size: n.lower!.size, mode: n.lower!.mode }),
  };
  if (set.mode !== undefined) m.mode = set.mode & 0o7777;
  if (set.uid !== undefined) m.uid = set.uid;
  if (set.gid !== undefined) m.gid = set.gid;
  if (set.atime !== undefined) m.atimeNs = set.atime === "now" ? now() : String(set.atime);
  if (set.mtime !== undefined) m.mtimeNs = set.mtime === "now" ? now() : String(set.mtime);
  m.ctimeNs = now(); // any change of metadata is a status change
  const name = baseName(n.path);
  const { file, long } = metaName(name);
  const rc = ov.upper.writeMarker(dir, file, JSON.stringify(long ? { ...m, name } : m));
  if (rc) return rc;
  ov.upper.state(dir)!.meta.set(name, m);
  n.meta = m;
  return 0;
}

/** chmod, lchown and utimensat of the scratch entry (copied up first). */
function setUpper(ov: OverlayParts, n: ONode, set: SetAttr): number {
  let e = copyUp(ov, n);
  if (e) return e;
  const p = ov.upper.path(n);
  if (set.mode !== undefined && n.kind !== "symlink") e ||= chmod(p, set.mode);
  if (set.uid !== undefined || set.gid !== undefined) {
    e ||= lchown(p, set.uid ?? 0xffffffff, set.gid ?? 0xffffffff);
  }
  if (set.atime !== undefined || set.mtime !== undefined) {
    e ||= utimens(ov.upper.path(n), set.atime, set.mtime);
  }
  return e;
}

/**
 * The attributes to keep serving for a node that is going away: `attrOf`, else (nothing left to
 * stat) zeroes under the node's file type. Never a mode without a type: the kernel takes that as
 * a changed inode and fails every later use of it with EIO (Linux fs/fuse/inode.c
 * `fuse_invalid_attr`, fs/fuse/dir.c `fuse_do_getattr`).
 */
export function lastAttr(ov: OverlayParts, n: ONode): Attr {
  const a = attrOf(ov, n);
  return typeof a === "number" ? goneAttr(n) : a;
}

/** Zeroed attributes of a node with nothing left to stat, under its file type. */
export function goneAttr(n: ONode): Attr {
  return {
    ino: n.ino,
    mode: typeOfKind(n.kind),
    nlink: 0,
    uid: 0,
    gid: 0,
    size: 0,
    blocks: 0,
    blksize: 4096,
    time: 0,
  };
}
