/**
 * The overlay's node table: one node per path the kernel knows, by inode number and by path, and
 * the hard-link index (upper st_ino → node). Inode numbers come from the shared Vfs allocator
 * and are recorded in `vfs.owners`, so the worker finds an inode's runtime without a scan. A path
 * keeps its number for the runtime's life (`#inoByPath`), even after the kernel forgets the node;
 * only deleting the name retires it.
 */
import type { Attr } from "../../../ffi/stat.ts";
import type { Digest } from "../../store/objects.ts";
import type { MetaOverride } from "../../store/scratch.ts";
import type { Child, Vfs } from "../vfs.ts";

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
  /** The scratch file's st_ino, once recorded in the hard-link index. */
  upperIno?: number;
  openFds: number;
}

/** What an upper dir's whiteout files say: masked names, metadata sidecars, opacity. */
export interface DirState {
  masks: Set<string>;
  meta: Map<string, MetaOverride>;
  opaque: boolean;
}

export const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000, S_IFSOCK = 0o140000;

/** The node kind of an st_mode. */
export const kindOfMode = (mode: number): Kind =>
  (mode & S_IFMT) === S_IFDIR
    ? "dir"
    : (mode & S_IFMT) === S_IFREG
    ? "file"
    : (mode & S_IFMT) === S_IFLNK
    ? "symlink"
    : "other";

/** The st_mode file-type bits of a node kind; "other" (a FIFO or socket in scratch) as a FIFO. */
export const typeOfKind = (kind: Kind): number =>
  kind === "dir" ? S_IFDIR : kind === "file" ? S_IFREG : kind === "symlink" ? S_IFLNK : S_IFIFO;

export const parentPath = (p: string) => p.slice(0, p.lastIndexOf("/"));
export const baseName = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** Nodes by inode and by path. */
export class NodeTable {
  readonly nodes = new Map<number, ONode>();
  readonly #byPath = new Map<string, ONode>();
  readonly #byUpperIno = new Map<number, ONode>();
  readonly #inoByPath = new Map<string, number>();

  constructor(readonly vfs: Vfs, readonly owner: unknown, readonly root: ONode) {
    this.#byPath.set("", root);
  }

  atPath(path: string): ONode | undefined {
    return this.#byPath.get(path);
  }

  /** A new node, numbered and owned by this runtime. */
  create(path: string, kind: Kind, upper: boolean, lower: Child | null): ONode {
    let ino = this.#inoByPath.get(path);
    // a number a live node still holds (one the kernel keeps open under another name) is not
    // this path's any more: two nodes under one number would read each other's file
    if (ino === undefined || this.nodes.has(ino)) this.#inoByPath.set(path, ino = this.vfs.allocIno());
    const n: ONode = {
      ino,
      path,
      kind,
      nlookup: 0,
      upper,
      lower,
      lowerSources: kind === "dir" && lower?.kind === "dir" ? lower.sources! : null,
      openFds: 0,
    };
    this.nodes.set(n.ino, n);
    this.vfs.owners.set(n.ino, this.owner);
    this.#byPath.set(path, n);
    return n;
  }

  /** The node already standing for upper file `upperIno` (another hard link), if any. */
  linked(upperIno: number): ONode | undefined {
    const same = this.#byUpperIno.get(upperIno);
    return same && !same.detached ? same : undefined;
  }
  /** Records `path` as one more name of `n`, a hard-linked upper file with st_ino `upperIno`. */
  addLink(n: ONode, path: string, upperIno?: number): void {
    (n.links ??= new Set([n.path])).add(path);
    this.#byPath.set(path, n);
    this.#inoByPath.set(path, n.ino);
    if (upperIno !== undefined) this.noteUpperIno(upperIno, n);
  }
  noteUpperIno(upperIno: number, n: ONode): void {
    this.#byUpperIno.set(upperIno, n);
    n.upperIno = upperIno;
  }

  /** Forgets a node nobody references. */
  drop(n: ONode): void {
    this.nodes.delete(n.ino);
    this.vfs.owners.delete(n.ino);
    for (const p of n.links ?? [n.path]) if (this.#byPath.get(p) === n) this.#byPath.delete(p);
    if (n.upperIno !== undefined && this.#byUpperIno.get(n.upperIno) === n) {
      this.#byUpperIno.delete(n.upperIno);
    }
  }

  /** Forgets every node (the runtime ended); the kernel's later forgets find nothing. */
  dispose(): void {
    for (const ino of this.nodes.keys()) this.vfs.owners.delete(ino);
    this.nodes.clear();
    this.#byPath.clear();
  }

  /**
   * Removes the name `path` of `n`; the node stays for open handles. Nodes below a removed dir
   * are detached with their last attributes (`lastAttr`).
   */
  detach(n: ONode, path: string, last: Attr | number, lastAttr: (m: ONode) => Attr): void {
    // a deleted dir is empty, so its children's names were retired one by one already
    this.#inoByPath.delete(path);
    if (n.links && n.links.size > 1) {
      n.links.delete(path);
      if (this.#byPath.get(path) === n) this.#byPath.delete(path);
      if (n.path === path) n.path = n.links.values().next().value!;
      return;
    }
    if (typeof last !== "number") n.detached = { ...last, nlink: 0 };
    if (n.kind !== "dir") {
      // nothing is known below a non-dir: no scan (rm -rf unlinks thousands of them)
      if (this.#byPath.get(path) === n) this.#byPath.delete(path);
      return;
    }
    for (const [p, m] of this.#byPath) {
      if (m === n || p.startsWith(path + "/")) {
        this.#byPath.delete(p);
        if (m !== n && !m.detached) m.detached = { ...lastAttr(m), nlink: 0 };
      }
    }
  }

  /** Moves `n` (at `from`) and everything known below it to `to`; moved descendants lose their lower. */
  move(n: ONode, from: string, to: string): void {
    const numbers: [string, number][] = [];
    if (n.kind !== "dir") numbers.push([from, this.#inoByPath.get(from) ?? n.ino]);
    else {for (const [p, ino] of this.#inoByPath) {
        if (p === from || p.startsWith(from + "/")) numbers.push([p, ino]);
      }}
    for (const [p] of numbers) this.#inoByPath.delete(p);
    for (const [p, ino] of numbers) this.#inoByPath.set(to + p.slice(from.length), ino);
    const moved: [string, ONode][] = [];
    const at = this.#byPath.get(from);
    if (n.kind !== "dir") {
      if (at) moved.push([from, at]);
    } else {
      for (const [p, m] of this.#byPath) {
        if (p === from || p.startsWith(from + "/")) moved.push([p, m]);
      }
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

  /** Empties the path tables for a rebase; returns the known paths, parents first. */
  takeForRebase(): [string, ONode][] {
    const known = [...this.#byPath.entries()].filter(([p]) => p !== "").sort((a, b) =>
      a[0].split("/").length - b[0].split("/").length
    );
    this.#byPath.clear();
    this.#byPath.set("", this.root);
    this.#byUpperIno.clear();
    return known;
  }
  /**
   * Paths that share their inode number with another path (names of a hard-linked file), all but
   * one per number: `keep(ino)` when it names one of them, else its node's path, else the first
   * seen. A layer keeps no hard links, so after a rebase each of these is a file of its own and
   * needs a number of its own, even when the kernel had forgotten the node and the table no longer
   * lists its names.
   */
  sharedNumbers(keep: (ino: number) => string | undefined): string[] {
    const byIno = new Map<number, string[]>();
    for (const [p, ino] of this.#inoByPath) {
      const ps = byIno.get(ino);
      if (ps) ps.push(p);
      else byIno.set(ino, [p]);
    }
    const extra: string[] = [];
    for (const [ino, ps] of byIno) {
      if (ps.length < 2) continue;
      const kept = [keep(ino), this.nodes.get(ino)?.path].find((p) => p !== undefined && ps.includes(p)) ??
        ps[0];
      for (const p of ps) if (p !== kept) extra.push(p);
    }
    return extra;
  }
  /** Forgets the inode number of `path`: its next node gets a new one. */
  unnumber(path: string): void {
    this.#inoByPath.delete(path);
  }
  /** Puts `n` back at `path` after a rebase. */
  place(path: string, n: ONode): void {
    this.#byPath.set(path, n);
  }
}
