/**
 * The upper (scratch) dir's own state: whiteout masks, opaque markers and metadata sidecars
 * (core/store/scratch.ts), loaded once per dir; creating upper dirs along a path; temp names in
 * `work/` for atomic copy-up. Paths here are scratch paths, never under the mount point.
 */
import { E } from "../../../ffi/errno.ts";
import { chmod, lchown, mkdir, openDirAnchor, rename, rmdir, touch, unlink } from "../../../ffi/fsops.ts";
import { platform } from "../../platform/facts.ts";
import { libc } from "../../../ffi/sys.ts";
import { maskName, metaName, OPAQUE_NAME, parseScratchName, WH_PREFIX } from "../../store/scratch.ts";
import type { Caller } from "../backend.ts";
import type { DirState, ONode } from "./nodes.ts";

const emptyState = (): DirState => ({ masks: new Set(), meta: new Map(), opaque: false });

/**
 * Paths handed to syscalls stay below this many bytes, leaving room for a name (NAME_MAX) and a
 * whiteout prefix to be appended within PATH_MAX (4096, limits.h).
 */
const SAFE_PATH = 3500;

/** One runtime's scratch and work dirs. */
export class UpperDir {
  readonly #isRoot = Deno.uid() === 0;
  #tmpSeq = 0;
  /** O_PATH fds of scratch dirs, by relative path, anchoring paths too long to name whole. */
  readonly #anchors = new Map<string, number>();

  constructor(readonly scratch: string, readonly work: string) {}

  /**
   * The scratch path of a node or of an overlay path ("" is the root), short enough for a syscall
   * whatever the depth: a local disk accepts any path it can hold, so a deep one is named
   * relative to an anchor dir as `/proc/self/fd/N/rest`.
   */
  path(n: ONode | string): string {
    const rel = typeof n === "string" ? n : n.path;
    // a UTF-16 unit is at most 3 bytes of UTF-8
    return this.scratch.length + rel.length * 3 < SAFE_PATH ? this.scratch + rel : this.#deep(rel);
  }

  /** Anchors `rel` at cached O_PATH dir fds, each step shorter than SAFE_PATH bytes. */
  #deep(rel: string): string {
    if (!platform.procFdPaths) return this.scratch + rel; // no anchors here: the call says ENAMETOOLONG
    const enc = new TextEncoder();
    let base = this.scratch, done = "";
    let rest = rel;
    while (enc.encode(base + rest).length >= SAFE_PATH) {
      // the longest whole-component prefix of `rest` that fits after `base`
      let cut = 0;
      for (let i = rest.indexOf("/", 1); i > 0; i = rest.indexOf("/", i + 1)) {
        if (enc.encode(base + rest.slice(0, i)).length >= SAFE_PATH) break;
        cut = i;
      }
      if (cut === 0) return `${base}${rest}`; // one name longer than NAME_MAX: the syscall says so
      done += rest.slice(0, cut);
      let fd = this.#anchors.get(done);
      if (fd === undefined) {
        fd = openDirAnchor(base + rest.slice(0, cut));
        if (fd < 0) return "/proc/self/fd/-1/missing"; // an ancestor is absent: ENOENT on every OS
        this.#anchors.set(done, fd);
      }
      base = `/proc/self/fd/${fd}`;
      rest = rest.slice(cut);
    }
    return base + rest;
  }

  /**
   * Forgets the anchors: a dir was renamed or removed, or scratch was swapped by a commit, so a
   * cached fd may no longer be the dir at its path. Call after any such change.
   */
  invalidate(): void {
    for (const fd of this.#anchors.values()) libc().close(fd);
    this.#anchors.clear();
  }

  /** A fresh name in work/ (same filesystem as scratch, so a rename publishes atomically). */
  tmp(): string {
    return `${this.work}/cu-${Deno.pid}-${++this.#tmpSeq}`;
  }

  /** The whiteout state of an upper dir (read once); undefined when `dir` has no upper dir. */
  state(dir: ONode): DirState | undefined {
    if (!dir.upper) return undefined;
    if (dir.state) return dir.state;
    const st = emptyState();
    for (const e of Deno.readDirSync(this.path(dir))) {
      const p = parseScratchName(e.name, () => Deno.readTextFileSync(`${this.path(dir)}/${e.name}`));
      if (p.kind === "opaque") st.opaque = true;
      else if (p.kind === "mask") st.masks.add(p.name);
      else if (p.kind === "meta") {
        try {
          st.meta.set(p.name, JSON.parse(Deno.readTextFileSync(`${this.path(dir)}/${e.name}`)));
        } catch { /* a torn sidecar: ignore it, the lower attributes show */ }
      }
    }
    if (st.opaque) dir.lowerSources = null;
    dir.state = st;
    return st;
  }

  /** Makes sure `dir` exists in scratch, creating its upper chain with the lower modes. */
  ensure(dir: ONode, parentOf: (n: ONode) => ONode): number {
    if (dir.upper) return 0;
    const e = this.ensure(parentOf(dir), parentOf);
    if (e) return e;
    const path = this.path(dir);
    const mode = dir.lower?.mode ?? 0o755;
    // made in work/ with its mode, then renamed into place, so a crash never leaves the umask's
    // mode; moving a dir rewrites its "..", which takes u+wx on it (rename(2) EACCES) until the end
    const tmp = this.tmp(), movable = mode | 0o300;
    let rc = mkdir(tmp, movable) || chmod(tmp, movable) || rename(tmp, path);
    if (rc) rmdir(tmp);
    if (rc === E.EEXIST || rc === E.ENOTEMPTY || (!rc && movable !== mode)) rc = chmod(path, mode);
    if (rc) return rc;
    dir.upper = true;
    dir.state = emptyState();
    return 0;
  }

  /** Removes the mask of `name` in `dir`; true when there was one. */
  removeMask(dir: ONode, name: string): boolean {
    const st = this.state(dir);
    if (!st?.masks.has(name)) return false;
    unlink(`${this.path(dir)}/${maskName(name).file}`);
    st.masks.delete(name);
    return true;
  }

  /** Masks the lower entry `name` of `dir` (creating `dir` in scratch first). */
  addMask(dir: ONode, name: string, parentOf: (n: ONode) => ONode): number {
    const e = this.ensure(dir, parentOf);
    if (e) return e;
    const { file, long } = maskName(name);
    const rc = long ? this.writeMarker(dir, file, name) : touch(`${this.path(dir)}/${file}`);
    if (rc) return rc;
    this.state(dir)!.masks.add(name);
    return 0;
  }

  /** Deletes the metadata sidecar of `name` in `dir`, if any. */
  dropMeta(dir: ONode, name: string): void {
    const st = this.state(dir);
    if (!st?.meta.has(name)) return;
    unlink(`${this.path(dir)}/${metaName(name).file}`);
    st.meta.delete(name);
  }

  /**
   * Writes a marker file `file` of upper dir `dir` holding `text`, atomically (a temp in work/,
   * then a rename), so a crash never leaves one that says nothing. 0 or an errno.
   * @throws Deno errors from the write (ENOSPC), with the temp removed.
   */
  writeMarker(dir: ONode, file: string, text: string): number {
    const tmp = this.tmp();
    try {
      Deno.writeTextFileSync(tmp, text);
    } catch (e) {
      unlink(tmp);
      throw e;
    }
    const rc = rename(tmp, `${this.path(dir)}/${file}`);
    if (rc) unlink(tmp);
    return rc;
  }

  /** Makes an upper dir opaque: no lower entry below it shows any more. */
  markOpaque(n: ONode): number {
    const st = this.state(n)!;
    const rc = touch(`${this.path(n)}/${OPAQUE_NAME}`);
    if (rc) return rc;
    st.opaque = true;
    n.lowerSources = null;
    return 0;
  }

  /**
   * Deletes the whiteout files of an upper dir whose merged listing is empty, or with `keepOpaque`
   * those of an opaque dir but its opaque marker (they hide nothing any more).
   */
  clearMarkers(n: ONode, keepOpaque = false): number {
    for (const e of Deno.readDirSync(this.path(n))) {
      if (!e.name.startsWith(WH_PREFIX) || (keepOpaque && e.name === OPAQUE_NAME)) continue;
      const rc = unlink(`${this.path(n)}/${e.name}`);
      if (rc) return rc;
    }
    n.state = { ...emptyState(), opaque: keepOpaque };
    return 0;
  }

  /**
   * Moves upper dir `n` into work/ when it holds whiteouts, ahead of a rename over it (rename(2)
   * replaces only an empty dir). Returns its work path, undefined when it held nothing (it stays),
   * or an errno. Pair with `discard` after the rename, or `restore` when the rename failed.
   */
  moveAway(n: ONode): string | undefined | number {
    const path = this.path(n);
    let empty: boolean;
    try {
      empty = Deno.readDirSync(path)[Symbol.iterator]().next().done === true;
    } catch (e) {
      return e instanceof Deno.errors.NotFound ? E.ENOENT : E.EIO;
    }
    if (empty) return undefined;
    const tmp = this.tmp();
    const rc = rename(path, tmp);
    if (rc) return rc;
    this.invalidate();
    n.state = emptyState();
    return tmp;
  }

  /** Puts back a dir moveAway took, after the step it made way for failed. */
  restore(n: ONode, tmp: string): void {
    if (!rename(tmp, this.path(n))) n.state = undefined; // read again from disk when next needed
  }

  /** Removes a tree moveAway put in work/; what fails here the restart sweep removes. */
  discard(tmp: string): void {
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch { /* left for the sweep of work/ */ }
  }

  /** A root service creates entries as their caller, as a local disk would. */
  setOwner(path: string, who: Caller): void {
    if (this.#isRoot && (who.uid !== 0 || who.gid !== 0)) lchown(path, who.uid, who.gid);
  }

  /** A fresh, empty whiteout state (a dir just made in scratch). */
  static emptyState = emptyState;
}
