/**
 * Maps a FUSE caller to the runtime registered for its process ancestry. Linux reports the calling
 * thread id; the walk goes tid → its thread group → ppid → … until a registered root pid (whose
 * start time still matches) or init. Results are cached per (pid, start time): pids are reused, so
 * an entry is valid only while the start time matches.
 *
 * The lingering rule: a process routed to a root while that root lived keeps that root's mount
 * after the root exits, until the process itself exits (its cache entry dies with its start time).
 * Processes it starts later inherit the same mount through the cached ancestry walk. A process the
 * service never saw before the root exited, and whose parent chain no longer reaches the root,
 * sees an empty mount point.
 */
import type { ProcInfo } from "../../ffi/sys.ts";

/** Process facts the router needs; injected so tests can fake a process tree. */
export interface ProcSource {
  info(pid: number): ProcInfo | null;
  tgid(tid: number): number | null;
}

/** A registered root process. */
export interface Root<M> {
  pid: number;
  startTime: number;
  mount: M;
}

interface CacheEntry<M> {
  startTime: number;
  root: Root<M> | null;
}

const MAX_CACHE = 65_536;
const MAX_DEPTH = 512;

/** The router: registrations plus the ancestry cache. */
export class Router<M> {
  readonly #roots = new Map<number, Root<M>>();
  readonly #cache = new Map<number, CacheEntry<M>>();
  readonly #proc: ProcSource;
  readonly stats = { hits: 0, misses: 0 };

  constructor(proc: ProcSource) {
    this.#proc = proc;
  }

  /** Registers `pid` (started at `startTime`) as the root of `mount`. */
  register(pid: number, startTime: number, mount: M): void {
    this.#roots.set(pid, { pid, startTime, mount });
    // walks that found no root may now end here; the new root itself may be cached under another
    // (its descendants do not exist yet: a run registers itself before it spawns anything)
    for (const [k, e] of this.#cache) if (e.root === null || k === pid) this.#cache.delete(k);
  }

  /** Removes a root. Processes already routed through it linger on it (see the rule above). */
  unregister(pid: number): Root<M> | undefined {
    const r = this.#roots.get(pid);
    if (!r) return undefined;
    this.#roots.delete(pid);
    this.#cache.delete(pid);
    return r;
  }

  roots(): IterableIterator<Root<M>> {
    return this.#roots.values();
  }

  #rootAt(pid: number, info: ProcInfo): Root<M> | undefined {
    const r = this.#roots.get(pid);
    return r && r.startTime === info.startTime ? r : undefined;
  }

  /** The root whose tree contains thread `tid`, or null (outside every tree, or tid 0). */
  resolve(tid: number): Root<M> | null {
    if (tid <= 0) return null;
    const info = this.#proc.info(tid);
    if (!info) return null;
    const hit = this.#cache.get(tid);
    if (hit && hit.startTime === info.startTime) {
      this.stats.hits++;
      return hit.root;
    }
    this.stats.misses++;
    const chain: [number, number][] = [[tid, info.startTime]];
    let root: Root<M> | null = this.#rootAt(tid, info) ?? null;
    if (!root) {
      // a non-leader thread: its own process may be the root
      const tgid = this.#proc.tgid(tid);
      let pid = tgid !== null && tgid !== tid ? tgid : info.ppid;
      for (let depth = 0; pid > 0 && depth < MAX_DEPTH; depth++) {
        const pi = this.#proc.info(pid);
        if (!pi) break;
        // roots first: a nested run registers a pid that may be cached under an outer root
        const r = this.#rootAt(pid, pi);
        if (r) {
          root = r;
          chain.push([pid, pi.startTime]);
          break;
        }
        const cached = this.#cache.get(pid);
        if (cached && cached.startTime === pi.startTime) {
          root = cached.root;
          break;
        }
        chain.push([pid, pi.startTime]);
        if (pid === 1) break;
        pid = pi.ppid;
      }
    }
    if (this.#cache.size + chain.length > MAX_CACHE) this.#cache.clear();
    for (const [pid, startTime] of chain) this.#cache.set(pid, { startTime, root });
    return root;
  }
}
