/**
 * Copy-ups in flight off the FUSE thread. A write-open of a big lower file does not reply at once:
 * its copy is posted to the main thread (which copies on Deno's blocking-task threads) and the
 * open waits here, while the worker goes on serving every other request. When the main thread
 * says the copy is done (the mailbox's "copied"), the copy is published and every open waiting on
 * that inode proceeds and replies.
 */
import type { DeferredCopy, Errno } from "../../fs/backend.ts";
import type { CopyUpHow } from "../../fs/overlay/parts.ts";
import { E } from "../../../ffi/errno.ts";

/** One request waiting for a copy: `run` proceeds and replies; `fail` replies with an errno. */
export interface Waiter {
  run(): void;
  fail(err: Errno): void;
}

interface InFlight {
  ino: number;
  copy: DeferredCopy;
  waiters: Waiter[];
}

/** Copy-ups the worker has posted and not seen finish, by id and by inode. */
export class OffThreadCopies {
  readonly #byId = new Map<number, InFlight>();
  readonly #byIno = new Map<number, InFlight>();
  #nextId = 1;

  /**
   * @param post sends a copy to the main thread (messages.ts "copy")
   * @param onError told when a waiter throws (a bug: it gets EIO)
   */
  constructor(
    readonly post: (m: { id: number; src: string; dst: string; size: number }) => void,
    readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** Copies in flight. */
  get size(): number {
    return this.#byId.size;
  }

  /** Queues `w` behind the copy of `ino` in flight; false when there is none. */
  join(ino: number, w: Waiter): boolean {
    const f = this.#byIno.get(ino);
    if (!f) return false;
    f.waiters.push(w);
    return true;
  }

  /** Posts `copy` for `ino`; `w` proceeds once it is published. */
  start(ino: number, copy: DeferredCopy, w: Waiter): void {
    const id = this.#nextId++;
    const f = { ino, copy, waiters: [w] };
    this.#byId.set(id, f);
    this.#byIno.set(ino, f);
    this.post({ id, src: copy.src, dst: copy.dst, size: copy.size });
  }

  /** The main thread finished copy `id` (`err` 0) or failed it: publish, then run its waiters. */
  done = (id: number, err: Errno, how: CopyUpHow): void => {
    const f = this.#byId.get(id);
    if (!f) return;
    this.#byId.delete(id);
    this.#byIno.delete(f.ino);
    let e: Errno;
    try {
      e = f.copy.finish(err, how);
    } catch (x) {
      this.onError(x);
      e = E.EIO;
    }
    for (const w of f.waiters) {
      try {
        if (e) w.fail(e);
        else w.run();
      } catch (x) {
        this.onError(x);
        w.fail(E.EIO);
      }
    }
  };
}
