/**
 * The merged, writable view of one editable runtime: its layer stack (lower, read-only) under its
 * scratch dir (upper, a real directory on the backstore). Every method returns an errno number on
 * failure, so the FUSE backend can answer with the exact POSIX error.
 *
 * Inodes: an editable runtime never shares inode numbers with any other environment (its files
 * change), and a path keeps its inode across copy-up and metadata changes; rename moves it.
 * Deletions are whiteout files in scratch (core/store/scratch.ts), so they are durable and reach
 * commits. Composed of: the node table (nodes.ts), the upper dir's state (upper.ts), copy-up
 * (copyup.ts), attributes (attrs.ts), namespace ops (names.ts), rename (rename.ts) and xattrs
 * (xattr.ts).
 */
import { E } from "../../../ffi/errno.ts";
import { lstat, openFile, readlinkBytes } from "../../../ffi/fsops.ts";
import { O_ACCMODE, O_CREAT, O_EXCL, O_NOCTTY, O_RDONLY, O_TRUNC } from "../../../ffi/sys.ts";
import type { Attr } from "../../../ffi/stat.ts";
import type { Digest } from "../../store/objects.ts";
import { WH_PREFIX } from "../../store/scratch.ts";
import { type Caller, nameTooLong, type SetAttr } from "../backend.ts";
import { type Child, ROOT_INO, type Vfs } from "../vfs.ts";
import { attrOf, goneAttr, setattr } from "./attrs.ts";
import { beginCopyUp, type CopyJob, copyUp, endCopyUp, orphanCopyUp } from "./copyup.ts";
import { baseName, type Kind, kindOfMode, NodeTable, type ONode, parentPath } from "./nodes.ts";
import type { CopyUpHow, OverlayParts } from "./parts.ts";
import { renameNode } from "./rename.ts";
import { UpperDir } from "./upper.ts";
import * as names from "./names.ts";
import * as xattr from "./xattr.ts";

export type { Caller, Kind, ONode };

/** What an overlay is made of: its runtime id, scratch and work dirs, and its layer stack. */
export interface OverlayOptions {
  id: string;
  scratch: string;
  work: string;
  vfs: Vfs;
  layers: Digest[];
  /** The root manifests of `layers`, bottom to top (Vfs.view). */
  rootSources: Digest[];
  /** Whether copy-up may try a reflink (the backstore probe said so). */
  reflink: boolean;
  /** Called after each file copy-up with the method used. */
  onCopyUp?: (how: CopyUpHow) => void;
}

/** Whether open(2) `flags` may change the file: write access, or O_TRUNC. */
export function opensToWrite(flags: number): boolean {
  return (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0;
}

/** One editable runtime's merged view. */
export class Overlay implements OverlayParts {
  readonly id: string;
  readonly root: ONode;
  gen = 0;
  /** Copy-ups in flight off the FUSE thread (copyup.ts beginCopyUp): a commit waits for them. */
  copying = 0;
  layers: Digest[];
  readonly vfs: Vfs;
  readonly upper: UpperDir;
  readonly table: NodeTable;
  readonly reflink: boolean;
  readonly onCopyUp?: (how: CopyUpHow) => void;

  constructor(
    o: OverlayOptions & {
      /** What `vfs.owners` records for this runtime's inodes (its FUSE backend); default: this. */
      owner?: unknown;
    },
  ) {
    this.id = o.id;
    this.vfs = o.vfs;
    this.reflink = o.reflink;
    this.onCopyUp = o.onCopyUp;
    this.layers = o.layers;
    this.upper = new UpperDir(o.scratch, o.work);
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
    this.table = new NodeTable(o.vfs, o.owner ?? this, this.root);
  }

  get scratch(): string {
    return this.upper.scratch;
  }
  get work(): string {
    return this.upper.work;
  }
  /** This runtime's nodes by inode (the root excluded). */
  get nodes(): Map<number, ONode> {
    return this.table.nodes;
  }

  /**
   * How many nodes made by readdirs are kept, oldest dropped first when nobody looked them up
   * (16,384 nodes: about 4 MB). Tests lower it.
   */
  listedMax = 16_384;
  /** Nodes made by readdirs, oldest first. */
  readonly #listed = new Set<ONode>();

  /** The node of an inode of this runtime (the shared root inode maps to this runtime's root). */
  node(ino: number): ONode | undefined {
    return ino === ROOT_INO ? this.root : this.table.nodes.get(ino);
  }

  upperPath(n: ONode | string): string {
    return this.upper.path(n);
  }

  /** The lower entry `name` of `dir` shows (not masked, `dir` not opaque), or undefined. */
  lowerChild(dir: ONode, name: string): Child | undefined {
    const st = this.upper.state(dir);
    if (!dir.lowerSources || st?.masks.has(name)) return undefined;
    return this.vfs.childrenOf(dir.lowerSources).get(name);
  }

  /** The child `name` of `dir`, resolved from scratch and the lower layers; undefined when absent. */
  child(dir: ONode, name: string): ONode | undefined {
    const path = `${dir.path}/${name}`;
    const known = this.table.atPath(path);
    if (known) return known;
    if (name.startsWith(WH_PREFIX)) return undefined;
    const up = dir.upper ? lstat(this.upper.path(path)) : E.ENOENT;
    const low = this.lowerChild(dir, name);
    if (typeof up === "number") {
      if (!low) return undefined;
      const n = this.table.create(path, low.kind, false, low);
      if (low.kind === "file") n.meta = this.upper.state(dir)?.meta.get(name);
      return n;
    }
    const kind = kindOfMode(up.mode);
    // any non-dir may have several names (a symlink, a FIFO too): one node, however many
    const linked = kind !== "dir" && up.nlink > 1;
    if (linked) {
      const same = this.table.linked(up.ino);
      if (same) {
        this.table.addLink(same, path);
        return same;
      }
    }
    const n = this.table.create(path, kind, true, low ?? null);
    if (kind === "dir" && low?.kind !== "dir") n.lowerSources = null;
    if (linked) this.table.noteUpperIno(up.ino, n);
    return n;
  }

  /** lookup(parent, name): the node with its kernel reference count raised, or an errno. */
  lookup(parentIno: number, name: string): ONode | number {
    if (nameTooLong(name)) return E.ENAMETOOLONG;
    const dir = this.node(parentIno);
    if (!dir) return E.ENOENT;
    if (dir.kind !== "dir") return E.ENOTDIR;
    const n = this.child(dir, name);
    if (!n) return E.ENOENT;
    n.nlookup++;
    return n;
  }

  /**
   * Drops kernel references; an unreferenced node with no open handles is forgotten. True when
   * the kernel holds no reference now.
   */
  forget(ino: number, count: number): boolean {
    const n = this.table.nodes.get(ino);
    if (!n) return ino !== ROOT_INO;
    n.nlookup -= count;
    if (n.nlookup <= 0 && n.openFds <= 0) this.table.drop(n);
    return n.nlookup <= 0;
  }

  /** Forgets every node (the runtime ended); the kernel's later forgets find nothing. */
  dispose(): void {
    this.upper.invalidate();
    this.table.dispose();
  }

  /** Called when a handle on `n` closes. */
  released(n: ONode): void {
    n.openFds--;
    if (n.nlookup <= 0 && n.openFds <= 0 && n.ino !== ROOT_INO) this.table.drop(n);
  }

  /** Attributes of a node, or an errno. */
  attr(n: ONode): Attr | number {
    return attrOf(this, n);
  }

  /**
   * The merged listing of a dir: lower entries not masked, then scratch entries (which win). With
   * `transient` (a readdir), the nodes made only for it are kept for a later lookup (a `find` then
   * a `cat`), but only the last `listedMax` of them: the kernel holds no reference to a listed name,
   * and keeping one node per name would grow the table by every tree a runtime lists. A dropped
   * path keeps its number, so a later lookup still returns the listed inode.
   */
  list(ino: number, transient = false): [string, ONode][] | number {
    const dir = this.node(ino);
    if (!dir) return E.ENOENT;
    if (dir.kind !== "dir") return E.ENOTDIR;
    const st = this.upper.state(dir);
    const names = new Set<string>();
    if (dir.lowerSources) {
      for (const name of this.vfs.childrenOf(dir.lowerSources).keys()) {
        if (!st?.masks.has(name)) names.add(name);
      }
    }
    if (dir.upper) {
      for (const e of Deno.readDirSync(this.upper.path(dir))) {
        if (!e.name.startsWith(WH_PREFIX)) names.add(e.name);
      }
    }
    const out: [string, ONode][] = [];
    for (const name of names) {
      const known = this.table.nodes.size;
      const n = this.child(dir, name);
      if (!n) continue;
      out.push([name, n]);
      if (transient && this.table.nodes.size > known) this.#listed.add(n); // made for this listing
    }
    for (const n of this.#listed) {
      if (this.#listed.size <= this.listedMax) break;
      this.#listed.delete(n);
      if (n.nlookup <= 0 && n.openFds <= 0 && this.table.nodes.get(n.ino) === n) this.table.drop(n);
    }
    return out;
  }

  /** Symlink target bytes, or an errno. */
  readlink(n: ONode): Uint8Array | number {
    if (n.kind !== "symlink") return E.EINVAL;
    if (n.upper) return readlinkBytes(this.upper.path(n));
    return this.vfs.blobBytes(n.lower!.digest!);
  }

  /** The parent dir node of `n`; the kernel may have forgotten it while a child stayed. */
  parentOf(n: ONode): ONode {
    const pp = parentPath(n.path);
    const p = this.table.atPath(pp);
    if (p) return p;
    let cur = this.root;
    for (const part of pp.split("/").slice(1)) cur = this.child(cur, part)!;
    return cur;
  }

  /** Copies a lower file or symlink into scratch (clone, then rename into place). */
  copyUp(n: ONode): number {
    return copyUp(this, n);
  }

  /**
   * The copy-up a write-open of `n` would make, when its bytes are worth copying off the FUSE
   * thread: a lower file of at least `minBytes`, not truncated by the open, where no reflink makes
   * the copy instant. Null: open at once.
   */
  slowCopyUp(n: ONode, flags: number, minBytes: number): CopyJob | number | null {
    const write = (flags & O_ACCMODE) !== O_RDONLY;
    if (!write || (flags & O_TRUNC) || n.kind !== "file" || n.upper || n.detached || this.reflink) {
      return null;
    }
    if ((n.lower?.size ?? 0) < minBytes) return null;
    // a blob in a pack is small (< 1 MiB) and is written in place, not cloned elsewhere
    if (this.vfs.blob(n.lower!.digest!)?.packed) return null;
    return beginCopyUp(this, n);
  }

  /** An unnamed read-write copy of a detached lower file (copyup.ts orphanCopyUp), or an errno. */
  orphanCopyUp(n: ONode): { fd: number } | number {
    return orphanCopyUp(this, n);
  }

  /** Publishes a copy-up begun by `slowCopyUp` (copyup.ts endCopyUp): 0 or an errno. */
  endCopyUp(ino: number, job: CopyJob, err: number, how: CopyUpHow): number {
    return endCopyUp(this, ino, job, err, how);
  }

  /** Opens a node for a FUSE open: write access copies a lower file up first. Returns an fd or an errno. */
  open(n: ONode, flags: number, blobOpen: (d: Digest) => number): { fd: number } | number {
    if (n.kind === "dir") return E.EISDIR;
    if (n.kind !== "file") return E.EACCES;
    const write = opensToWrite(flags);
    // an open that raced an unlink: copying it up would bring the name back in scratch
    if (write && n.detached && !n.upper) return E.ENOENT;
    if (write) {
      const e = copyUp(this, n, (flags & O_TRUNC) !== 0);
      if (e) return e;
    }
    let fd: number;
    if (n.upper) {
      fd = openFile(this.upper.path(n), flags & ~(O_CREAT | O_EXCL | O_NOCTTY));
      if (fd < 0) return -fd;
    } else {
      fd = blobOpen(n.lower!.digest!);
      if (fd < 0) return -fd;
    }
    n.openFds++;
    if (write) this.gen++;
    return { fd };
  }

  /** create(2) with O_CREAT: the node and a read-write fd of the new file. */
  create(dirIno: number, name: string, mode: number, who: Caller): { node: ONode; fd: number } | number {
    return names.create(this, dirIno, name, mode, who);
  }
  /** mknod(2): files, FIFOs, sockets and (for a root service) block and character devices. */
  mknod(dirIno: number, name: string, mode: number, rdev: bigint, who: Caller): ONode | number {
    return names.mknod(this, dirIno, name, mode, rdev, who);
  }
  /** mkdir(2). A dir re-created where a lower one was deleted is opaque. */
  mkdir(dirIno: number, name: string, mode: number, who: Caller): ONode | number {
    return names.mkdir(this, dirIno, name, mode, who);
  }
  symlink(dirIno: number, name: string, target: Uint8Array, who: Caller): ONode | number {
    return names.symlink(this, dirIno, name, target, who);
  }
  /** link(2): hard links live in scratch, so a lower file is copied up first. */
  link(ino: number, dirIno: number, name: string): ONode | number {
    return names.link(this, ino, dirIno, name);
  }
  /** unlink(2): removes the scratch entry and masks a lower one. */
  unlink(dirIno: number, name: string): number {
    return names.unlink(this, dirIno, name);
  }
  /** rmdir(2): ENOTEMPTY when the merged dir has entries; masks a lower dir. */
  rmdir(dirIno: number, name: string): number {
    return names.rmdir(this, dirIno, name);
  }

  /** rename(2) and renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE. */
  rename(dirIno: number, name: string, ndirIno: number, nname: string, flags: number): number {
    return renameNode(this, dirIno, name, ndirIno, nname, flags);
  }

  /** setattr: see attrs.ts. */
  setattr(n: ONode, set: SetAttr, fd: number | undefined): Attr | number {
    return setattr(this, n, set, fd);
  }

  getxattr(n: ONode, name: string, size: number, position = 0): Uint8Array | number {
    return xattr.getxattr(this, n, name, size, position);
  }
  setxattr(
    n: ONode,
    name: string,
    value: Deno.PointerValue,
    size: number,
    flags: number,
    position = 0,
  ): number {
    return xattr.setxattr(this, n, name, value, size, flags, position);
  }
  listxattr(n: ONode, size: number): Uint8Array | number {
    return xattr.listxattr(this, n, size);
  }
  removexattr(n: ONode, name: string): number {
    return xattr.removexattr(this, n, name);
  }

  /** Inode numbers of this runtime's nodes the kernel holds (looked up and not yet forgotten). */
  kernelInodes(): number[] {
    const out: number[] = [];
    for (const n of this.table.nodes.values()) if (n.nlookup > 0) out.push(n.ino);
    return out;
  }

  /** The dir node at `path`, resolved from the root when the table has none; undefined if none. */
  dirAt(path: string): ONode | undefined {
    const known = this.table.atPath(path);
    if (known) return known.kind === "dir" ? known : undefined;
    let cur: ONode | undefined = this.root;
    for (const part of path.split("/").slice(1)) {
      cur = this.child(cur, part);
      if (!cur || cur.kind !== "dir") return undefined;
    }
    return cur;
  }

  /**
   * After a commit moved scratch into a new top layer: the stack grows, scratch is empty, and every
   * known path keeps its inode but now resolves to the new layer. A layer keeps no hard links, so
   * of a node's several names only its own path keeps it; each other name becomes a file of its
   * own, with a new inode at its next lookup; so does a name of a linked file the kernel had
   * forgotten, which the table no longer lists but whose number it kept. A node the layer does not
   * hold (a FIFO, a socket, or something below one) is detached, as by unlink: its path's number
   * is retired, so a new object made there gets a new inode while the kernel still knows the old
   * one; it keeps the attributes it had in the old scratch, now at `trash`. A known path whose dir
   * the kernel had forgotten (a linked file open under its other name) finds that dir again.
   * @param trash where the old scratch went (its files give the detached nodes' last attributes)
   * @returns (dir inode, name) of those other names and of the names the commit dropped, whose
   *   dentries the kernel must drop: they still lead to the old node, and a write through them
   *   would land in its path's file, a stat would show what is gone
   */
  rebase(layers: Digest[], rootSources: Digest[], trash?: string): [number, string][] {
    this.upper.invalidate();
    this.layers = layers;
    this.root.lowerSources = rootSources;
    this.root.state = undefined;
    const taken = this.table.takeForRebase();
    // a linked node keeps its own path, or the first of its names the table still lists
    const at = new Map(taken), own = new Map<ONode, string>();
    for (const [path, n] of taken) {
      if (n.links && n.links.size > 1 && !own.has(n)) own.set(n, at.get(n.path) === n ? n.path : path);
    }
    // names of linked files the kernel had forgotten still share a number: one keeps it
    const shared = this.table.sharedNumbers((ino) => {
      const n = this.table.nodes.get(ino);
      return n && own.get(n);
    });
    const unlinked: [number, string][] = [];
    for (const [path, n] of taken) {
      const dir = this.dirAt(parentPath(path));
      if (own.has(n) && own.get(n) !== path) {
        this.table.unnumber(path);
        if (dir) unlinked.push([dir.ino, baseName(path)]);
        continue;
      }
      const low = dir ? this.lowerChild(dir, baseName(path)) : undefined;
      if (!low || n.detached) {
        if (!n.detached) {
          this.table.unnumber(path);
          if (dir) unlinked.push([dir.ino, baseName(path)]);
          const a = trash === undefined ? E.ENOENT : lstat(trash + path);
          n.detached = typeof a === "number" ? goneAttr(n) : { ...a, ino: n.ino, nlink: 0 };
        }
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
      this.table.place(path, n);
    }
    for (const p of shared) this.table.unnumber(p);
    this.gen++;
    return unlinked;
  }
}
