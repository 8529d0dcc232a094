/**
 * Read-only merged views of layer stacks and the inode table they share.
 *
 * Inode rules (ARCHITECTURE.md "Routing and kernel caches"): a file inode is keyed by (blob digest,
 * mode) and a symlink by its target blob, so identical immutable content may share one inode across
 * environments (good for the page cache) while different content never does. A directory inode is
 * keyed by (layer stack, path): its merged listing depends on both, and the kernel forbids two
 * dentries for one directory. A key keeps its number for the service's life, even after the kernel
 * forgets the inode (git's index, tar and rsync key on inode numbers); numbers are never reused.
 *
 * Only the root inode is shared by every environment, so only lookups in the root depend on the
 * caller. Below it each directory inode belongs to one stack, and whoever holds its dentry sees
 * that stack, as with an open file handle.
 */
import { SpfsError } from "../errors.ts";
import type { Digest, Manifest } from "../store/objects.ts";
import { type ObjectStore, readSlice } from "../store/store.ts";
import type { Slice } from "../store/packs.ts";
import type { Attr } from "../../ffi/stat.ts";
import { LAYER_TIME_S } from "./backend.ts";

export const ROOT_INO = 1;
const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000;
const BLKSIZE = 65536;

/** A merged child entry: file/symlink carry a blob digest, a dir carries its manifests bottom→top. */
export interface Child {
  kind: "file" | "dir" | "symlink";
  mode: number;
  size: number;
  digest?: Digest;
  sources?: Digest[];
}

/** An interned inode. `nlookup` counts kernel references (lookup replies minus forgets). */
export interface Node extends Child {
  ino: number;
  key: string;
  nlookup: number;
  /** Dirs only: the stack the listing belongs to. */
  stackKey?: string;
  /** Dirs: the path of the listing. Files and symlinks: the path they were first reached at (for logs). */
  path?: string;
}

/** A directory of one stack: its path and manifests bottom→top. */
export interface DirRef {
  stackKey: string;
  path: string;
  sources: Digest[];
}

/** One environment's view: its layers and their root manifests, bottom to top. */
export interface View {
  stackKey: string;
  layers: Digest[];
  rootSources: Digest[];
}

/** Errno values (the host's: ffi/errno.ts). */
import { E } from "../../ffi/errno.ts";
export { E };

/** The shared inode table and manifest cache of one service. */
export class Vfs {
  readonly nodes = new Map<number, Node>();
  /** Inodes that belong to an editable runtime, mapped to its overlay. */
  readonly owners = new Map<number, unknown>();
  readonly #byKey = new Map<string, number>();
  readonly #manifests = new Map<Digest, Manifest>();
  readonly #listings = new Map<string, Map<string, Child>>();
  /** Subdir counts of merged listings (listings are immutable once built). */
  readonly #subdirs = new WeakMap<Map<string, Child>, number>();
  readonly #store: ObjectStore;
  readonly #uid: number;
  readonly #gid: number;
  #nextIno = ROOT_INO + 1;
  /** Listing-cache lookups (merged manifests per directory). */
  readonly stats = { hits: 0, misses: 0 };

  constructor(store: ObjectStore, uid: number, gid: number) {
    this.#store = store;
    this.#uid = uid;
    this.#gid = gid;
  }

  /**
   * Builds the view of a layer stack (reads each layer object).
   * @throws SpfsError UnknownRef/CorruptObject when a layer is missing or damaged.
   */
  view(layers: Digest[]): View {
    const rootSources = layers.map((d) => {
      const obj = this.#store.readObject(d);
      if (obj.type !== "spfs/layer@1") throw new SpfsError("UsageError", `${d} is not a layer`);
      return obj.manifest;
    });
    return { stackKey: layers.join("+"), layers, rootSources };
  }

  manifest(d: Digest): Manifest {
    let m = this.#manifests.get(d);
    if (m) return m;
    const obj = this.#store.readObject(d);
    if (obj.type !== "spfs/manifest@1") throw new SpfsError("CorruptObject", `${d} is not a manifest`);
    m = obj;
    if (this.#manifests.size >= 50_000) this.#manifests.delete(this.#manifests.keys().next().value!);
    this.#manifests.set(d, m);
    return m;
  }

  /** Merged children of a directory given its manifests bottom→top. Masks delete; upper wins. */
  merge(sources: Digest[]): Map<string, Child> {
    const out = new Map<string, Child>();
    for (const src of sources) {
      for (const e of this.manifest(src).entries) {
        if (e.kind === "mask") {
          out.delete(e.name);
        } else if (e.kind === "dir") {
          const prev = out.get(e.name);
          out.set(e.name, {
            kind: "dir",
            mode: e.mode,
            size: 0,
            sources: prev?.kind === "dir" && !e.opaque ? [...prev.sources!, e.digest] : [e.digest],
          });
        } else {
          out.set(e.name, { kind: e.kind, mode: e.mode, size: e.size, digest: e.digest });
        }
      }
    }
    return out;
  }

  /** Children of dir `path` of a stack (cached per stack and path). */
  children(stackKey: string, path: string, sources: Digest[]): Map<string, Child> {
    const key = `${stackKey}\0${path}`;
    let c = this.#listings.get(key);
    if (c) this.stats.hits++;
    else {
      this.stats.misses++;
      c = this.merge(sources);
      if (this.#listings.size >= 20_000) this.#listings.delete(this.#listings.keys().next().value!);
      this.#listings.set(key, c);
    }
    return c;
  }

  /** Merged children of a directory given only its manifests (cached by those manifests). */
  childrenOf(sources: Digest[]): Map<string, Child> {
    return this.children("*", sources.join(","), sources);
  }

  /** A fresh inode number (never reused while the service runs). */
  allocIno(): number {
    return this.#nextIno++;
  }

  /** The uid and gid lower entries are served with. */
  get owner(): { uid: number; gid: number } {
    return { uid: this.#uid, gid: this.#gid };
  }

  /**
   * The directory an inode stands for. The shared root resolves through the caller's `view`
   * (null: an outsider, who sees nothing); every other directory inode belongs to one stack.
   */
  dirOf(view: View | null, ino: number): DirRef | number {
    if (ino === ROOT_INO) {
      return view ? { stackKey: view.stackKey, path: "", sources: view.rootSources } : E.ENOENT;
    }
    const n = this.nodes.get(ino);
    if (!n) return E.ENOENT;
    if (n.kind !== "dir") return E.ENOTDIR;
    return { stackKey: n.stackKey!, path: n.path!, sources: n.sources! };
  }

  /** Interns the inode for a child of `dir`. */
  intern(dir: DirRef, name: string, c: Child): Node {
    const path = `${dir.path}/${name}`;
    const key = c.kind === "dir"
      ? `d\0${dir.stackKey}\0${path}`
      : c.kind === "file"
      ? `f\0${c.digest}\0${c.mode}`
      : `l\0${c.digest}`;
    const known = this.#byKey.get(key);
    const live = known !== undefined ? this.nodes.get(known) : undefined;
    if (live) return live;
    // files and symlinks are shared by content, so their path is only where they were first seen
    const node: Node = { ...c, ino: known ?? this.#nextIno++, key, nlookup: 0, path };
    if (c.kind === "dir") node.stackKey = dir.stackKey;
    this.nodes.set(node.ino, node);
    this.#byKey.set(key, node.ino);
    return node;
  }

  /** lookup(parent, name): the node (its nlookup incremented) or an errno. `view` matters only at the root. */
  lookup(view: View | null, parent: number, name: string): Node | number {
    const dir = this.dirOf(view, parent);
    if (typeof dir === "number") return dir;
    const c = this.children(dir.stackKey, dir.path, dir.sources).get(name);
    if (!c) return E.ENOENT;
    const node = this.intern(dir, name, c);
    node.nlookup++;
    return node;
  }

  /** The listing of a directory inode (`view` matters only at the root; null there lists nothing). */
  list(view: View | null, ino: number): [string, Node][] | number {
    if (!view && ino === ROOT_INO) return [];
    const dir = this.dirOf(view, ino);
    if (typeof dir === "number") return dir;
    const out: [string, Node][] = [];
    for (const [name, c] of this.children(dir.stackKey, dir.path, dir.sources)) {
      out.push([name, this.intern(dir, name, c)]);
    }
    return out;
  }

  /**
   * Drops `n` kernel references; a node nobody references is forgotten (its number never reused).
   * True when the kernel holds no reference now.
   */
  forget(ino: number, n: number): boolean {
    const node = this.nodes.get(ino);
    if (ino === ROOT_INO) return false;
    if (!node) return true;
    node.nlookup -= n;
    // the key keeps its number (#byKey): the next lookup of the same object gets it back
    if (node.nlookup <= 0) this.nodes.delete(ino);
    return node.nlookup <= 0;
  }

  /** Attributes of an inode, or undefined when unknown. */
  attr(ino: number): Attr | undefined {
    // the root differs per caller, so its nlink is 1, which tells find/fts not to count on it
    if (ino === ROOT_INO) return this.#attr(ROOT_INO, { kind: "dir", mode: 0o755, size: 0 }, 1);
    const n = this.nodes.get(ino);
    if (!n) return undefined;
    return this.#attr(
      ino,
      n,
      n.kind === "dir" ? 2 + this.subdirs(this.children(n.stackKey!, n.path!, n.sources!)) : 1,
    );
  }

  /** How many of `children` are dirs (a dir's nlink is 2 plus that, as on a local disk). */
  subdirs(children: Map<string, Child>): number {
    let n = this.#subdirs.get(children);
    if (n !== undefined) return n;
    n = 0;
    for (const c of children.values()) if (c.kind === "dir") n++;
    this.#subdirs.set(children, n);
    return n;
  }

  #attr(ino: number, c: Child, nlink: number): Attr {
    const type = c.kind === "dir" ? S_IFDIR : c.kind === "file" ? S_IFREG : S_IFLNK;
    return {
      ino,
      mode: type | (c.mode & 0o7777),
      nlink,
      uid: this.#uid,
      gid: this.#gid,
      size: c.size,
      blocks: Math.ceil(c.size / 512),
      blksize: BLKSIZE,
      time: LAYER_TIME_S,
    };
  }

  /** The store's dir of loose objects (store.ts `looseName` places a blob below it). */
  get objectsDir(): string {
    return this.#store.objectsDir;
  }

  /** The loose object path of a blob (a packed blob is found by `packedBlob`). */
  blobPath(d: Digest): string {
    return this.#store.path(d);
  }

  /** Where a blob packed with others is (packs.ts), or undefined. */
  packedBlob(d: Digest, refresh = true): Slice | undefined {
    return this.#store.packs.find(d, refresh);
  }

  /** Where a blob's bytes are, loose or packed, or undefined when the store lacks it. */
  blob(d: Digest): Slice | undefined {
    return this.#store.locate(d);
  }

  /**
   * A blob's bytes (symlink targets, small copy-ups from a pack).
   * @throws Deno.errors.NotFound when the store lacks it; other read errors.
   */
  blobBytes(d: Digest): Uint8Array {
    const s = this.#store.locate(d);
    if (!s) throw new Deno.errors.NotFound(`blob ${d}`);
    return readSlice(s);
  }
}
