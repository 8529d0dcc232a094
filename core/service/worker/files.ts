/**
 * The worker's open files, by inode. Linux sends no OPEN or RELEASE once the first OPEN answered
 * ENOSYS (ffi/fuse/abi.ts `noOpen`), so a `cat` of a file costs at most a LOOKUP and a READ, and
 * nothing at all when its pages and entry are cached. READ, WRITE, FSYNC and FALLOCATE then come
 * with the inode only: the worker keeps one fd per inode here, opened by the inode's owner on first
 * use, closed when the kernel forgets the inode, and the least recently used ones closed past a cap
 * or when the service runs out of descriptors.
 * macOS opens still come, and are answered from the same table.
 */
import { O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } from "../../../ffi/sys.ts";
import { E } from "../../../ffi/errno.ts";
import type { Errno, FsBackend } from "../../fs/backend.ts";
import { CTR } from "../../metrics.ts";

/** One inode's fd and the backend that opened it (and closes it). */
export interface InodeFile {
  fh: number;
  b: FsBackend;
  read: boolean;
  write: boolean;
}

/** fds kept open at most; each holds a scratch file or a blob (a pack) open. */
export const MAX_OPEN_FILES = 1024;

/** The fds of inodes in use, least recently used first. */
export class InodeFiles {
  readonly #m = new Map<number, InodeFile>();

  /** @param counters the service's counters: `opens` counts fds opened, `openHandles` those open now */
  constructor(readonly counters: Int32Array, readonly max = MAX_OPEN_FILES) {}

  /** The fd of `ino` when it allows `need`, marked as most recently used. */
  get(ino: number, need: "r" | "w"): InodeFile | undefined {
    const f = this.#m.get(ino);
    if (!f || !(need === "r" ? f.read : f.write)) return undefined;
    this.#m.delete(ino);
    this.#m.set(ino, f);
    return f;
  }

  /** The fd of `ino` whatever it allows, untouched; undefined when none is open. */
  peek(ino: number): InodeFile | undefined {
    return this.#m.get(ino);
  }

  /**
   * Opens `ino` through `b` for reading, or for writing (read-write when the file allows it, else
   * write-only) when `write`; `trunc` truncates as open(2) O_TRUNC does. A lower file opened for
   * writing is copied up by the backend. Replaces the inode's previous fd.
   * @returns the entry, or the backend's errno (EROFS from a read-only stack)
   */
  open(b: FsBackend, ino: number, write: boolean, trunc = false): InodeFile | Errno {
    let mode = write ? O_RDWR : O_RDONLY;
    const t = trunc ? O_TRUNC : 0;
    let r = b.open(ino, mode | t);
    if ((r === E.EMFILE || r === E.ENFILE) && this.#m.size > 0) {
      // the service is out of descriptors: give back the older half of ours and try once more
      for (let k = Math.ceil(this.#m.size / 2); k > 0; k--) this.drop(this.#m.keys().next().value!);
      r = b.open(ino, mode | t);
    }
    if (r === E.EACCES && write) r = b.open(ino, (mode = O_WRONLY) | t); // writable, not readable (0200)
    if (typeof r === "number") return r;
    this.counters[CTR.opens]++;
    return this.adopt(ino, { fh: r.fh, b, read: mode !== O_WRONLY, write });
  }

  /** Keeps `f` (an fd its backend opened, as by create) as the fd of `ino`, replacing the previous. */
  adopt(ino: number, f: InodeFile): InodeFile {
    this.drop(ino);
    this.#m.set(ino, f);
    if (this.#m.size > this.max) this.drop(this.#m.keys().next().value!);
    this.counters[CTR.openHandles] = this.#m.size;
    return f;
  }

  /** Closes the fd of `ino`, if one is open. */
  drop(ino: number): void {
    const f = this.#m.get(ino);
    if (!f) return;
    this.#m.delete(ino);
    f.b.release(f.fh);
    this.counters[CTR.openHandles] = this.#m.size;
  }

  /** Closes every fd for which `pred` holds (a runtime went away, a commit swapped its scratch). */
  dropIf(pred: (f: InodeFile, ino: number) => boolean): void {
    for (const [ino, f] of [...this.#m]) if (pred(f, ino)) this.drop(ino);
  }
}
