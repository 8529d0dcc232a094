/**
 * The merged, writable view of one editable runtime: its layer stack (lower, read-only) under its
 * scratch dir (upper, a real directory on the backstore). Every method returns an errno number on
 * failure, so the FUSE adapter can answer with the exact POSIX error.
 *
 * Inodes: an editable runtime never shares inode numbers with any other environment (its files
 * change), and a path keeps its inode across copy-up and metadata changes; rename moves it.
 * Deletions are whiteout files in scratch (scratch.ts), so they are durable and reach commits.
 * Copy-up writes into `work/` and renames into place, so a crash never leaves a half file visible.
 */
import {
  cstr,
  errno,
  libc,
  O_ACCMODE,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_NOCTTY,
  O_RDONLY,
  O_TRUNC,
} from "../../../ffi/sys.ts";
import { check, cloneFile, lstat, readlinkBytes, rename, touch, utimens } from "../../../ffi/fsops.ts";
import type { Attr } from "../../../ffi/stat.ts";
import type { Digest } from "../../store/objects.ts";
import {
  META_PREFIX,
  type MetaOverride,
  OPAQUE_NAME,
  parseScratchName,
  WH_PREFIX,
} from "../../store/scratch.ts";
import { type Child, E, ROOT_INO, type Vfs } from "../vfs.ts";

const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000;
const S_IFIFO = 0o010000, S_IFSOCK = 0o140000;
const RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;

export type Kind = "file" | "dir" | "symlink" | "other";

/** One path of the runtime as the kernel knows it. */
export interface ONode {
  ino: number;
  /** "" for the root, else "/a/b". */
  path: string;
  kind: Kind;
  nlookup: number;
  /** Present in scratch. */
  upper: boolean;
  /** The lower entry at this path when the node was resolved (decides whether deletion needs a mask). */
  lower: Child | null;
  /** Dirs: lower manifests merged below this dir (null: none, or opaque). */
  lowerSources: Digest[] | null;
  /** Dirs with an upper dir: masks, metadata overrides and opacity, loaded once. */
  state?: DirState;
  /** Lower files: metadata changed without copy-up. */
  meta?: MetaOverride;
  /** Set once unlinked: the last attributes, served while handles stay open. */
  detached?: Attr;
  /** Extra names of a hard-linked upper file (its `path` is one of them). */
  links?: Set<string>;
  openFds: number;
}

interface DirState {
  masks: Set<string>;
  meta: Map<string, MetaOverride>;
  opaque: boolean;
}

/** Caller identity for new entries (from `fuse_ctx`). */
export interface Caller {
  uid: number;
  gid: number;
}

const kindOfMode = (mode: number): Kind =>
  (mode & S_IFMT) === S_IFDIR
    ? "dir"
    : (mode & S_IFMT) === S_IFREG
    ? "file"
    : (mode & S_IFMT) === S_IFLNK
    ? "symlink"
    : "other";

const parentPath = (p: string) => p.slice(0, p.lastIndexOf("/"));
const baseName = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** One editable runtime's merged view. */
export class Overlay {
  readonly id: string;
  readonly scratch: string;
  readonly work: string;
  readonly root: ONode;
  /** Bumped by every change; a commit checks it did not move while it read scratch. */
  gen = 0;
  /** Open handles with write access. */
  writers = 0;
  layers: Digest[];
  readonly nodes = new Map<number, ONode>();
  readonly #byPath = new Map<string, ONode>();
  readonly #byUpperIno = new Map<number, ONode>();
  readonly #vfs: Vfs;
  readonly #reflink: boolean;
  readonly #isRoot = Deno.uid() === 0;
  #tmpSeq = 0;
  readonly #onCopyUp?: (how: "reflink" | "copy_file_range" | "copy") => void;

  constructor(
    o: {
      id: string;
      scratch: string;
      work: string;
      vfs: Vfs;
      layers: Digest[];
      rootSources: Digest[];
      reflink: boolean;
      /** Called after each file copy-up with the method used. */
      onCopyUp?: (how: "reflink" | "copy_file_range" | "copy") => void;
    },
  ) {
    this.id = o.id;
    this.scratch = o.scratch;
    this.work = o.work;
    this.#vfs = o.vfs;
    this.#reflink = o.reflink;
    this.#onCopyUp = o.onCopyUp;
    this.layers = o.layers;
    this.root = {
      ino: ROOT_INO,
      path: "",
      kind: "dir",
      nlookup: 1,
      upper: true,
      lower: null,
      lowerSources: o.rootSources,
      openFds: 0,
    };
    this.#byPath.set("", this.root);
  }

  /** The node of an inode of this runtime (the shared root inode maps to this runtime's root). */
  node(ino: number): ONode | undefined {
    return ino === ROOT_INO ? this.root : this.nodes.get(ino);
  }

  upperPath(n: ONode | string): string {
    return this.scratch + (typeof n === "string" ? n : n.path);
  }

  #state(dir: ONode): DirState | undefined {
    if (!dir.upper) return undefined;
    if (dir.state) return dir.state;
    const st: DirState = { masks: new Set(), meta: new Map(), opaque: false };
    for (const e of Deno.readDirSync(this.upperPath(dir))) {
      const p = parseScratchName(e.name);
      if (p.kind === "opaque") st.opaque = true;
      else if (p.kind === "mask") st.masks.add(p.name);
      else if (p.kind === "meta") {
        try {
          st.meta.set(p.name, JSON.parse(Deno.readTextFileSync(`${this.upperPath(dir)}/${e.name}`)));
        } catch { /* a torn sidecar: ignore it, the lower attributes show */ }
      }
    }
    if (st.opaque) dir.lowerSources = null;
    dir.state = st;
    return st;
  }

  #lowerChild(dir: ONode, name: string): Child | undefined {
    const st = this.#state(dir);
    if (!dir.lowerSources || st?.masks.has(name)) return undefined;
    return this.#vfs.childrenOf(dir.lowerSources).get(name);
  }

  #newNode(path: string, kind: Kind, upper: boolean, lower: Child | null): ONode {
    const n: ONode = {
      ino: this.#vfs.allocIno(),
      path,
      kind,
      nlookup: 0,
      upper,
      lower,
      lowerSources: kind === "dir" && lower?.kind === "dir" ? lower.sources! : null,
      openFds: 0,
    };
    this.nodes.set(n.ino, n);
    this.#vfs.owners.set(n.ino, this);
    this.#byPath.set(path, n);
    return n;
  }

  /** The child `name` of `dir`, resolved from scratch and the lower layers; undefined when absent. */
  child(dir: ONode, name: string): ONode | undefined {
    const path = `${dir.path}/${name}`;
    const known = this.#byPath.get(path);
    if (known) return known;
    if (name.startsWith(WH_PREFIX)) return undefined;
    const up = dir.upper ? lstat(this.upperPath(path)) : E.ENOENT;
    const low = this.#lowerChild(dir, name);
    if (typeof up === "number") {
      if (!low) return undefined;
      const n = this.#newNode(path, low.kind, false, low);
      if (low.kind === "file") n.meta = this.#state(dir)?.meta.get(name);
      return n;
    }
    const kind = kindOfMode(up.mode);
    if (kind === "file" && up.nlink > 1) {
      const same = this.#byUpperIno.get(up.ino);
      if (same && !same.detached) {
        (same.links ??= new Set([same.path])).add(path);
        this.#byPath.set(path, same);
        return same;
      }
    }
    const n = this.#newNode(path, kind, true, low ?? null);
    if (kind === "dir" && low?.kind !== "dir") n.lowerSources = null;
    if (kind === "file" && up.nlink > 1) this.#byUpperIno.set(up.ino, n);
    return n;
  }

  /** lookup(parent, name): the node with its kernel reference count raised, or an errno. */
  lookup(parentIno: number, name: string): ONode | number {
    const dir = this.node(parentIno);
    if (!dir) return E.ENOENT;
    if (dir.kind !== "dir") return E.ENOTDIR;
    const n = this.child(dir, name);
    if (!n) return E.ENOENT;
    n.nlookup++;
    return n;
  }

  /** Drops kernel references; an unreferenced node with no open handles is forgotten. */
  forget(ino: number, count: number): void {
    const n = this.nodes.get(ino);
    if (!n) return;
    n.nlookup -= count;
    if (n.nlookup <= 0 && n.openFds <= 0) this.#drop(n);
  }

  #drop(n: ONode): void {
    this.nodes.delete(n.ino);
    this.#vfs.owners.delete(n.ino);
    for (const p of n.links ?? [n.path]) if (this.#byPath.get(p) === n) this.#byPath.delete(p);
    for (const [k, v] of this.#byUpperIno) if (v === n) this.#byUpperIno.delete(k);
  }

  /** Forgets every node (the runtime ended); the kernel's later forgets find nothing. */
  dispose(): void {
    for (const ino of this.nodes.keys()) this.#vfs.owners.delete(ino);
    this.nodes.clear();
    this.#byPath.clear();
  }

  /** Called when a handle on `n` closes. */
  released(n: ONode, write: boolean): void {
    n.openFds--;
    if (write) this.writers--;
    if (n.nlookup <= 0 && n.openFds <= 0 && n.ino !== ROOT_INO) this.#drop(n);
  }

  /** Attributes of a node, or an errno. */
  attr(n: ONode): Attr | number {
    if (n.detached) return n.detached;
    if (n.upper) {
      const a = lstat(this.upperPath(n));
      if (typeof a === "number") return a;
      return { ...a, ino: n.ino, nlink: n.kind === "dir" ? 1 : a.nlink };
    }
    const c = n.lower!;
    const type = c.kind === "dir" ? S_IFDIR : c.kind === "file" ? S_IFREG : S_IFLNK;
    const m = n.meta;
    return {
      ino: n.ino,
      mode: type | ((m?.mode ?? c.mode) & 0o7777),
      nlink: 1,
      uid: m?.uid ?? this.#vfs.owner.uid,
      gid: m?.gid ?? this.#vfs.owner.gid,
      size: c.size,
      blocks: Math.ceil(c.size / 512),
      blksize: 65536,
      time: 0,
      atimeNs: m?.atimeNs !== undefined ? BigInt(m.atimeNs) : undefined,
      mtimeNs: m?.mtimeNs !== undefined ? BigInt(m.mtimeNs) : undefined,
      ctimeNs: m?.mtimeNs !== undefined ? BigInt(m.mtimeNs) : undefined,
    };
  }

  /** The merged listing of a dir: lower entries not masked, then scratch entries (which win). */
  list(ino: number): [string, ONode][] | number {
    const dir = this.node(ino);
    if (!dir) return E.ENOENT;
    if (dir.kind !== "dir") return E.ENOTDIR;
    const st = this.#state(dir);
    const names = new Set<string>();
    if (dir.lowerSources) {
      for (const name of this.#vfs.childrenOf(dir.lowerSources).keys()) {
        if (!st?.masks.has(name)) names.add(name);
      }
    }
    if (dir.upper) {
      for (const e of Deno.readDirSync(this.upperPath(dir))) {
        if (!e.name.startsWith(WH_PREFIX)) names.add(e.name);
      }
    }
    const out: [string, ONode][] = [];
    for (const name of names) {
      const n = this.child(dir, name);
      if (n) out.push([name, n]);
    }
    return out;
  }

  /** Symlink target bytes, or an errno. */
  readlink(n: ONode): Uint8Array | number {
    if (n.kind !== "symlink") return E.EINVAL;
    if (n.upper) return readlinkBytes(this.upperPath(n));
    return Deno.readFileSync(this.#vfs.blobPath(n.lower!.digest!));
  }

  #parent(n: ONode): ONode {
    const pp = parentPath(n.path);
    const p = this.#byPath.get(pp);
    if (p) return p;
    // the kernel forgot the parent while a readdir-interned child stayed: walk down again
    let cur = this.root;
    for (const part of pp.split("/").slice(1)) cur = this.child(cur, part)!;
    return cur;
  }

  /** Makes sure `dir` exists in scratch (creating its upper chain with the lower modes). */
  #upperDir(dir: ONode): number {
    if (dir.upper) return 0;
    const e = this.#upperDir(this.#parent(dir));
    if (e) return e;
    const path = this.upperPath(dir);
    const mode = dir.lower?.mode ?? 0o755;
    let rc = check(libc().mkdir(cstr(path), mode));
    if (rc === E.EEXIST) rc = 0;
    if (rc) return rc;
    check(libc().chmod(cstr(path), mode));
    dir.upper = true;
    dir.state = { masks: new Set(), meta: new Map(), opaque: false };
    return 0;
  }

  #tmp(): string {
    return `${this.work}/cu-${Deno.pid}-${++this.#tmpSeq}`;
  }

  /** Copies a lower file or symlink into scratch (clone, then rename into place). */
  copyUp(n: ONode): number {
    if (n.upper) return 0;
    if (n.kind === "dir") return this.#upperDir(n);
    const dir = this.#parent(n);
    const e = this.#upperDir(dir);
    if (e) return e;
    const c = n.lower!;
    const dst = this.upperPath(n);
    const tmp = this.#tmp();
    if (n.kind === "symlink") {
      const target = Deno.readFileSync(this.#vfs.blobPath(c.digest!));
      const rc = check(libc().symlink(new Uint8Array([...target, 0]), cstr(tmp)));
      if (rc) return rc;
    } else {
      const how = cloneFile(this.#vfs.blobPath(c.digest!), tmp, this.#reflink);
      if (typeof how === "number") {
        libc().unlink(cstr(tmp)); // a partial copy (ENOSPC, EIO) must not stay in work/
        return how;
      }
      this.#onCopyUp?.(how);
      const m = n.meta;
      check(libc().chmod(cstr(tmp), (m?.mode ?? c.mode) & 0o7777));
      if (m?.uid !== undefined || m?.gid !== undefined) {
        check(libc().lchown(cstr(tmp), m.uid ?? -1 >>> 0, m.gid ?? -1 >>> 0));
      }
      if (m?.atimeNs || m?.mtimeNs) {
        utimens(tmp, m.atimeNs ? BigInt(m.atimeNs) : undefined, m.mtimeNs ? BigInt(m.mtimeNs) : undefined);
      }
    }
    const rc = rename(tmp, dst);
    if (rc) {
      check(libc().unlink(cstr(tmp)));
      return rc;
    }
    n.upper = true;
    if (n.meta) {
      check(libc().unlink(cstr(`${this.upperPath(dir)}/${META_PREFIX}${baseName(n.path)}`)));
      this.#state(dir)?.meta.delete(baseName(n.path));
      n.meta = undefined;
    }
    this.gen++;
    return 0;
  }

  /** Opens a node for a FUSE open: write access copies a lower file up first. Returns an fd or an errno. */
  open(n: ONode, flags: number, blobOpen: (d: Digest) => number): { fd: number; write: boolean } | number {
    if (n.kind === "dir") return E.EISDIR;
    if (n.kind !== "file") return E.EACCES;
    const write = (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0;
    if (write) {
      const e = this.copyUp(n);
      if (e) return e;
    }
    let fd: number;
    if (n.upper) {
      fd = libc().open(
        cstr(this.upperPath(n)),
        (flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC,
      );
      if (fd < 0) return errno();
    } else {
      fd = blobOpen(n.lower!.digest!);
      if (fd < 0) return -fd;
    }
    n.openFds++;
    if (write) {
      this.writers++;
      this.gen++;
    }
    return { fd, write };
  }

  #removeMask(dir: ONode, name: string): boolean {
    const st = this.#state(dir);
    if (!st?.masks.has(name)) return false;
    check(libc().unlink(cstr(`${this.upperPath(dir)}/${WH_PREFIX}${name}`)));
    st.masks.delete(name);
    return true;
  }

  #addMask(dir: ONode, name: string): number {
    const e = this.#upperDir(dir);
    if (e) return e;
    const rc = touch(`${this.upperPath(dir)}/${WH_PREFIX}${name}`);
    if (rc) return rc;
    this.#state(dir)!.masks.add(name);
    return 0;
  }

  #dropMeta(dir: ONode, name: string): void {
    const st = this.#state(dir);
    if (!st?.meta.has(name)) return;
    check(libc().unlink(cstr(`${this.upperPath(dir)}/${META_PREFIX}${name}`)));
    st.meta.delete(name);
  }

  #setOwner(path: string, who: Caller): void {
    // a root service creates entries as their caller, as a local disk would
    if (this.#isRoot && (who.uid !== 0 || who.gid !== 0)) check(libc().lchown(cstr(path), who.uid, who.gid));
  }

  /** Common checks and preparation before creating `name` in `dir`. */
  #prepareCreate(dirIno: number, name: string): { dir: ONode; path: string; masked: boolean } | number {
    const dir = this.node(dirIno);
    if (!dir) return E.ENOENT;
    if (dir.kind !== "dir") return E.ENOTDIR;
    if (name.startsWith(WH_PREFIX)) return E.EINVAL;
    if (this.child(dir, name)) return E.EEXIST;
    const e = this.#upperDir(dir);
    if (e) return e;
    const masked = this.#removeMask(dir, name);
    this.gen++;
    return { dir, path: `${dir.path}/${name}`, masked };
  }

  #created(path: string, kind: Kind): ONode {
    const n = this.#newNode(path, kind, true, null);
    n.nlookup++;
    return n;
  }

  /** create(2) with O_CREAT: returns the node and an fd opened with `flags`. */
  create(
    dirIno: number,
    name: string,
    mode: number,
    flags: number,
    who: Caller,
  ): { node: ONode; fd: number } | number {
    const p = this.#prepareCreate(dirIno, name);
    if (typeof p === "number") return p;
    const up = this.upperPath(p.path);
    const fd = libc().open3(cstr(up), flags | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0o7777);
    if (fd < 0) return errno();
    check(libc().fchmod(fd, mode & 0o7777));
    this.#setOwner(up, who);
    const node = this.#created(p.path, "file");
    node.openFds++;
    if ((flags & O_ACCMODE) !== O_RDONLY) this.writers++;
    return { node, fd };
  }

  /** mknod(2): regular files, FIFOs and sockets only. */
  mknod(dirIno: number, name: string, mode: number, rdev: bigint, who: Caller): ONode | number {
    const type = mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) return E.EPERM;
    const p = this.#prepareCreate(dirIno, name);
    if (typeof p === "number") return p;
    const up = this.upperPath(p.path);
    const rc = check(libc().mknod(cstr(up), mode, rdev));
    if (rc) return rc;
    check(libc().chmod(cstr(up), mode & 0o7777));
    this.#setOwner(up, who);
    return this.#created(p.path, kindOfMode(mode));
  }

  /** mkdir(2). A dir re-created where a lower one was deleted is opaque. */
  mkdir(dirIno: number, name: string, mode: number, who: Caller): ONode | number {
    const p = this.#prepareCreate(dirIno, name);
    if (typeof p === "number") return p;
    const up = this.upperPath(p.path);
    const rc = check(libc().mkdir(cstr(up), mode & 0o7777));
    if (rc) return rc;
    check(libc().chmod(cstr(up), mode & 0o7777));
    this.#setOwner(up, who);
    const n = this.#created(p.path, "dir");
    n.state = { masks: new Set(), meta: new Map(), opaque: false };
    if (p.masked) {
      const e = this.#markOpaque(n);
      if (e) return e;
    }
    return n;
  }

  /** symlink(2). */
  symlink(dirIno: number, name: string, target: Uint8Array, who: Caller): ONode | number {
    const p = this.#prepareCreate(dirIno, name);
    if (typeof p === "number") return p;
    const up = this.upperPath(p.path);
    const z = new Uint8Array(target.length + 1);
    z.set(target);
    const rc = check(libc().symlink(z, cstr(up)));
    if (rc) return rc;
    this.#setOwner(up, who);
    return this.#created(p.path, "symlink");
  }

  /** link(2): hard links live in scratch, so a lower file is copied up first. */
  link(ino: number, dirIno: number, name: string): ONode | number {
    const n = this.node(ino);
    if (!n || n.detached) return E.ENOENT;
    if (n.kind === "dir") return E.EPERM;
    const e = this.copyUp(n);
    if (e) return e;
    const p = this.#prepareCreate(dirIno, name);
    if (typeof p === "number") return p;
    const rc = check(libc().link(cstr(this.upperPath(n)), cstr(this.upperPath(p.path))));
    if (rc) return rc;
    (n.links ??= new Set([n.path])).add(p.path);
    this.#byPath.set(p.path, n);
    const a = lstat(this.upperPath(n));
    if (typeof a !== "number") this.#byUpperIno.set(a.ino, n);
    n.nlookup++;
    return n;
  }

  #emptyDir(n: ONode): boolean {
    const l = this.list(n.ino);
    return typeof l !== "number" && l.length === 0;
  }

  /** Removes a name from the tables; the node stays for open handles. */
  #detach(n: ONode, path: string, last: Attr | number): void {
    if (n.links && n.links.size > 1) {
      n.links.delete(path);
      if (this.#byPath.get(path) === n) this.#byPath.delete(path);
      if (n.path === path) n.path = n.links.values().next().value!;
      return;
    }
    if (typeof last !== "number") n.detached = { ...last, nlink: 0 };
    for (const [p, m] of this.#byPath) {
      if (m === n || p.startsWith(path + "/")) {
        this.#byPath.delete(p);
        if (m !== n && !m.detached) m.detached = { ...(this.#lastAttr(m)), nlink: 0 };
      }
    }
  }

  #lastAttr(n: ONode): Attr {
    const a = this.attr(n);
    return typeof a === "number"
      ? { ino: n.ino, mode: 0, nlink: 0, uid: 0, gid: 0, size: 0, blocks: 0, blksize: 4096, time: 0 }
      : a;
  }

  /** unlink(2): removes the scratch entry and masks a lower one. */
  unlink(dirIno: number, name: string): number {
    const dir = this.node(dirIno);
    if (!dir) return E.ENOENT;
    const n = this.child(dir, name);
    if (!n) return E.ENOENT;
    if (n.kind === "dir") return E.EISDIR;
    const path = `${dir.path}/${name}`;
    const last = this.attr(n);
    // mask first: a crash in between leaves the scratch entry, which wins, so nothing half-done shows
    if (n.lower) {
      const e = this.#addMask(dir, name);
      if (e) return e;
      this.#dropMeta(dir, name);
    }
    if (n.upper) {
      const rc = check(libc().unlink(cstr(this.upperPath(path))));
      if (rc && rc !== E.ENOENT) return rc;
    }
    this.#detach(n, path, last);
    this.gen++;
    return 0;
  }

  /** rmdir(2): ENOTEMPTY when the merged dir has entries; masks a lower dir. */
  rmdir(dirIno: number, name: string): number {
    const dir = this.node(dirIno);
    if (!dir) return E.ENOENT;
    const n = this.child(dir, name);
    if (!n) return E.ENOENT;
    if (n.kind !== "dir") return E.ENOTDIR;
    if (!this.#emptyDir(n)) return E.ENOTEMPTY;
    const path = `${dir.path}/${name}`;
    const last = this.attr(n);
    if (n.lower) {
      const e = this.#addMask(dir, name);
      if (e) return e;
    }
    if (n.upper) {
      const e = this.#clearMarkers(n);
      if (e) return e;
      const rc = check(libc().rmdir(cstr(this.upperPath(path))));
      if (rc) return rc;
    }
    this.#detach(n, path, last);
    this.gen++;
    return 0;
  }

  /** Makes an upper dir opaque: no lower entry below it shows any more. */
  #markOpaque(n: ONode): number {
    const rc = touch(`${this.upperPath(n)}/${OPAQUE_NAME}`);
    if (rc) return rc;
    n.state!.opaque = true;
    n.lowerSources = null;
    return 0;
  }

  /** Deletes the whiteout files of an upper dir whose merged listing is empty. */
  #clearMarkers(n: ONode): number {
    for (const e of Deno.readDirSync(this.upperPath(n))) {
      if (!e.name.startsWith(WH_PREFIX)) continue;
      const rc = check(libc().unlink(cstr(`${this.upperPath(n)}/${e.name}`)));
      if (rc) return rc;
    }
    n.state = { masks: new Set(), meta: new Map(), opaque: false };
    return 0;
  }

  /** Copies a whole subtree into scratch; a dir that had lower entries becomes opaque. */
  #deepCopyUp(n: ONode): number {
    if (n.kind !== "dir") return this.copyUp(n);
    let e = this.#upperDir(n);
    if (e) return e;
    const l = this.list(n.ino);
    if (typeof l === "number") return l;
    for (const [, c] of l) if ((e = this.#deepCopyUp(c))) return e;
    if (n.lowerSources) {
      e = this.#clearMarkers(n) || this.#markOpaque(n);
      if (e) return e;
    }
    return 0;
  }

  #movePaths(n: ONode, from: string, to: string): void {
    const moved: [string, ONode][] = [];
    for (const [p, m] of this.#byPath) {
      if (p === from || p.startsWith(from + "/")) moved.push([p, m]);
    }
    for (const [p] of moved) this.#byPath.delete(p);
    for (const [p, m] of moved) {
      const np = to + p.slice(from.length);
      if (m.links?.has(p)) {
        m.links.delete(p);
        m.links.add(np);
      }
      if (m.path === p) m.path = np;
      if (m !== n) {
        m.lower = null;
        m.lowerSources = null;
      }
      this.#byPath.set(np, m);
    }
  }

  /** rename(2) and renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE. */
  rename(dirIno: number, name: string, ndirIno: number, nname: string, flags: number): number {
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return E.EINVAL;
    const dir = this.node(dirIno), ndir = this.node(ndirIno);
    if (!dir || !ndir) return E.ENOENT;
    if (ndir.kind !== "dir") return E.ENOTDIR;
    if (nname.startsWith(WH_PREFIX)) return E.EINVAL;
    const src = this.child(dir, name);
    if (!src) return E.ENOENT;
    const dst = this.child(ndir, nname);
    const from = `${dir.path}/${name}`, to = `${ndir.path}/${nname}`;
    if (src === dst) return 0;
    if (dst && (flags & RENAME_NOREPLACE)) return E.EEXIST;
    if (flags & RENAME_EXCHANGE) {
      if (!dst) return E.ENOENT;
    } else if (dst) {
      if (src.kind === "dir" && dst.kind !== "dir") return E.ENOTDIR;
      if (src.kind !== "dir" && dst.kind === "dir") return E.EISDIR;
      if (dst.kind === "dir" && !this.#emptyDir(dst)) return E.ENOTEMPTY;
    }
    const dstLast = dst ? this.attr(dst) : E.ENOENT;
    let e = this.#deepCopyUp(src);
    if (!e && (flags & RENAME_EXCHANGE)) e = this.#deepCopyUp(dst!);
    if (!e) e = this.#upperDir(ndir);
    if (e) return e;
    const lowerAtDst = ndir.lowerSources ? this.#vfs.childrenOf(ndir.lowerSources).get(nname) : undefined;
    if (!(flags & RENAME_EXCHANGE)) {
      if (dst?.upper && dst.kind === "dir") {
        e = this.#clearMarkers(dst);
        if (e) return e;
      }
      this.#removeMask(ndir, nname);
      if (src.kind === "dir" && lowerAtDst && !src.state?.opaque) {
        e = this.#markOpaque(src);
        if (e) return e;
      }
    }
    const rc = rename(this.upperPath(from), this.upperPath(to), flags & RENAME_EXCHANGE);
    if (rc) return rc;
    if (flags & RENAME_EXCHANGE) {
      const tmp = `${to}\0swap`;
      this.#movePaths(dst!, to, tmp);
      this.#movePaths(src, from, to);
      this.#movePaths(dst!, tmp, from);
    } else {
      if (src.lower) {
        e = this.#addMask(dir, name);
        if (e) return e;
      }
      if (dst) this.#detach(dst, to, dstLast);
      this.#movePaths(src, from, to);
      src.lower = lowerAtDst ?? null;
      if (src.kind === "dir") src.lowerSources = null;
    }
    this.gen++;
    return 0;
  }

  /**
   * setattr: size truncates (after copy-up); mode, owner and times of a lower file are recorded
   * as a metadata override without copying its data.
   */
  setattr(
    n: ONode,
    set: {
      mode?: number;
      uid?: number;
      gid?: number;
      size?: number;
      atime?: bigint | "now";
      mtime?: bigint | "now";
    },
    fd: number | undefined,
  ): Attr | number {
    if (n.detached && fd === undefined) return E.ENOENT;
    let e = 0;
    if (set.size !== undefined) {
      if (n.kind === "dir") return E.EISDIR;
      e = this.copyUp(n);
      if (e) return e;
      e = fd !== undefined && !n.detached
        ? check(libc().ftruncate(fd, BigInt(set.size)))
        : check(libc().truncate(cstr(this.upperPath(n)), BigInt(set.size)));
      if (e) return e;
    }
    const meta = set.mode !== undefined || set.uid !== undefined || set.gid !== undefined ||
      set.atime !== undefined || set.mtime !== undefined;
    if (meta && !n.upper && n.kind === "file") {
      const dir = this.#parent(n);
      if ((e = this.#upperDir(dir))) return e;
      const now = () => String(BigInt(Date.now()) * 1_000_000n);
      const m: MetaOverride = {
        ...(n.meta ?? { digest: n.lower!.digest!, size: n.lower!.size, mode: n.lower!.mode }),
      };
      if (set.mode !== undefined) m.mode = set.mode & 0o7777;
      if (set.uid !== undefined) m.uid = set.uid;
      if (set.gid !== undefined) m.gid = set.gid;
      if (set.atime !== undefined) m.atimeNs = set.atime === "now" ? now() : String(set.atime);
      if (set.mtime !== undefined) m.mtimeNs = set.mtime === "now" ? now() : String(set.mtime);
      const name = baseName(n.path);
      const tmp = this.#tmp();
      Deno.writeTextFileSync(tmp, JSON.stringify(m));
      e = rename(tmp, `${this.upperPath(dir)}/${META_PREFIX}${name}`);
      if (e) return e;
      this.#state(dir)!.meta.set(name, m);
      n.meta = m;
    } else if (meta) {
      if ((e = this.copyUp(n))) return e;
      const p = cstr(this.upperPath(n));
      if (set.mode !== undefined && n.kind !== "symlink") e ||= check(libc().chmod(p, set.mode & 0o7777));
      if (set.uid !== undefined || set.gid !== undefined) {
        e ||= check(libc().lchown(p, set.uid ?? 0xffffffff, set.gid ?? 0xffffffff));
      }
      if (set.atime !== undefined || set.mtime !== undefined) {
        e ||= utimens(this.upperPath(n), set.atime, set.mtime);
      }
      if (e) return e;
    }
    this.gen++;
    return this.attr(n);
  }

  /** getxattr: only user.* names exist here; lower entries have none. */
  getxattr(n: ONode, name: string, size: number): Uint8Array | number {
    if (!n.upper || !name.startsWith("user.")) return E.ENOATTR;
    const buf = size > 0 ? new Uint8Array(size) : null;
    const r = Number(libc().lgetxattr(cstr(this.upperPath(n)), cstr(name), buf, BigInt(size)));
    if (r < 0) return errno();
    return size > 0 ? buf!.subarray(0, r) : new Uint8Array(r);
  }

  /** setxattr: user.* only (others ENOTSUP); copies a lower entry up first. */
  setxattr(n: ONode, name: string, value: Deno.PointerValue, size: number, flags: number): number {
    if (!name.startsWith("user.")) return E.ENOTSUP;
    const e = this.copyUp(n);
    if (e) return e;
    this.gen++;
    return check(libc().lsetxattr(cstr(this.upperPath(n)), cstr(name), value, BigInt(size), flags));
  }

  /** listxattr: the NUL-separated user.* names, or only the needed size when `size` is 0. */
  listxattr(n: ONode, size: number): Uint8Array | number {
    if (!n.upper) return new Uint8Array(0);
    const buf = size > 0 ? new Uint8Array(size) : null;
    const r = Number(libc().llistxattr(cstr(this.upperPath(n)), buf, BigInt(size)));
    if (r < 0) return errno();
    return size > 0 ? buf!.subarray(0, r) : new Uint8Array(r);
  }

  /** removexattr. */
  removexattr(n: ONode, name: string): number {
    if (!n.upper) return E.ENOATTR;
    this.gen++;
    return check(libc().lremovexattr(cstr(this.upperPath(n)), cstr(name)));
  }

  /**
   * After a commit moved scratch into a new top layer: the stack grows, scratch is empty, and every
   * known path keeps its inode but now resolves to the new layer.
   */
  rebase(layers: Digest[], rootSources: Digest[]): void {
    this.layers = layers;
    this.root.lowerSources = rootSources;
    this.root.state = undefined;
    const known = [...this.#byPath.entries()].filter(([p]) => p !== "").sort((a, b) =>
      a[0].split("/").length - b[0].split("/").length
    );
    this.#byPath.clear();
    this.#byPath.set("", this.root);
    this.#byUpperIno.clear();
    for (const [path, n] of known) {
      const dir = this.#byPath.get(parentPath(path));
      const low = dir ? this.#lowerChild(dir, baseName(path)) : undefined;
      if (!low || n.detached) {
        n.detached ??= { ...this.#lastAttr(n), nlink: 0 };
        continue;
      }
      n.upper = false;
      n.state = undefined;
      n.links = undefined;
      n.meta = undefined;
      n.kind = low.kind;
      n.lower = low;
      n.lowerSources = low.kind === "dir" ? low.sources! : null;
      n.path = path;
      this.#byPath.set(path, n);
    }
    this.gen++;
  }
}
