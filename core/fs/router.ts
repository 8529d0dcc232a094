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
  /**
   * Optional: a handle on the process now running as `pid` (null when none can be had), checked
   * by `alive` much more cheaply than `info`; `alive` turns false for good once that process has
   * exited, whoever gets its pid next.
   */
  pins?: { pin(pid: number): number | null; alive(pin: number): boolean; unpin(pin: number): void };
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
/** Callers kept pinned (one fd each on Linux): the most recent ones. */
const MAX_PINS = 256;

/** The router: registrations plus the ancestry cache. */
export class Router<M> {
  readonly #roots = new Map<number, Root<M>>();
  readonly #cache = new Map<number, CacheEntry<M>>();
  /** tid → a pin taken before its cache entry was read; valid only with that entry. */
  readonly #pins = new Map<number, number>();
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
    for (const [k, e] of this.#cache) if (e.root === null || k === pid) this.#forget(k);
  }

  /** Drops the cache entry of `pid` and its pin. */
  #forget(pid: number): void {
    this.#cache.delete(pid);
    this.#unpin(pid);
  }

  #unpin(pid: number): void {
    const pin = this.#pins.get(pid);
    if (pin === undefined) return;
    this.#pins.delete(pid);
    this.#proc.pins!.unpin(pin);
  }

  /** Keeps `pin` for `tid`, dropping the oldest pin past MAX_PINS. */
  #keepPin(tid: number, pin: number): void {
    this.#unpin(tid);
    this.#pins.set(tid, pin);
    if (this.#pins.size > MAX_PINS) this.#unpin(this.#pins.keys().next().value!);
  }

  /** Removes a root. Processes already routed through it linger on it (see the rule above). */
  unregister(pid: number): Root<M> | undefined {
    const r = this.#roots.get(pid);
    if (!r) return undefined;
    this.#roots.delete(pid);
    this.#forget(pid);
    return r;
  }

  roots(): IterableIterator<Root<M>> {
    return this.#roots.values();
  }

  #rootAt(pid: number, info: ProcInfo): Root<M> | undefined {
    const r = this.#roots.get(pid);
    return r && r.startTime === info.startTime ? r : undefined;
  }

  /**
   * The root whose tree contains thread `tid`, or null (outside every tree, or tid 0). A caller
   * seen before is checked through its pin (one pread on Linux) instead of re-reading its start time.
   */
  resolve(tid: number): Root<M> | null {
    if (tid <= 0) return null;
    const pins = this.#proc.pins;
    const pinned = this.#pins.get(tid);
    if (pinned !== undefined) {
      const e = this.#cache.get(tid);
      if (e && pins!.alive(pinned)) {
        this.stats.hits++;
        return e.root;
      }
      this.#unpin(tid); // that process has exited
    }
    // pinned before its start time is read: if it exits in between, the pin is dead, never wrong
    const pin = pins?.pin(tid) ?? null;
    const info = this.#proc.info(tid);
    if (!info) {
      if (pin !== null) pins!.unpin(pin);
      return null;
    }
    const hit = this.#cache.get(tid);
    if (hit && hit.startTime === info.startTime) {
      this.stats.hits++;
      if (pin !== null) this.#keepPin(tid, pin);
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
    if (this.#cache.size + chain.length > MAX_CACHE) {
      for (const k of [...this.#pins.keys()]) this.#unpin(k);
      this.#cache.clear();
    }
    for (const [pid, startTime] of chain) {
      this.#unpin(pid); // a pin belongs to the entry it was taken with
      this.#cache.set(pid, { startTime, root });
    }
    if (pin !== null) this.#keepPin(tid, pin);
    return root;
  }
}
