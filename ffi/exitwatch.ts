/**
 * Process-exit notification without polling delays. Linux: pidfd_open(2) per watched process,
 * and one poll(2) over all of them plus an eventfd(2) used to wake the poll when the set changes;
 * poll runs as a nonblocking FFI call on Deno's blocking thread pool. A pidfd becomes readable when
 * its process exits (pidfd_open(2), Linux 5.3+). Where pidfd_open fails with ENOSYS, callers fall
 * back to polling /proc. macOS: one kqueue with an EVFILT_PROC/NOTE_EXIT filter per pid and an
 * EVFILT_USER filter to wake the blocking kevent(2) for close (xnu bsd/sys/event.h, kqueue(2)).
 */
import { libc } from "./sys.ts";
import * as darwin from "./darwin/libsystem.ts";
import { os } from "./os.ts";
import { E } from "./errno.ts";

const POLLIN = 1, EFD_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000, PIDFD_NONBLOCK = 0o4000;

/** Watches pids and calls back once each exits. */
export interface ExitWatcher {
  /** "pidfd" when exits are events; "poll" when the caller must poll. */
  readonly kind: "pidfd" | "kqueue" | "poll";
  /** Starts watching `pid`; `onExit` runs once when it exits (at once if it is already gone). */
  watch(pid: number, onExit: () => void): void;
  unwatch(pid: number): void;
  close(): void;
}

class PidfdWatcher implements ExitWatcher {
  readonly kind = "pidfd";
  readonly #c = libc();
  readonly #efd: number;
  readonly #byFd = new Map<number, { pid: number; onExit: () => void }>();
  #closed = false;
  #loop?: Promise<void>;

  constructor(efd: number) {
    this.#efd = efd;
  }

  watch(pid: number, onExit: () => void): void {
    const fd = this.#c.pidfd_open(pid, PIDFD_NONBLOCK);
    if (fd < 0) {
      // ESRCH: already gone
      queueMicrotask(onExit);
      return;
    }
    this.#byFd.set(fd, { pid, onExit });
    this.#wake();
    this.#loop ??= this.#run();
  }

  unwatch(pid: number): void {
    for (const [fd, w] of this.#byFd) {
      if (w.pid === pid) {
        this.#byFd.delete(fd);
        this.#c.close(fd);
      }
    }
    this.#wake();
  }

  #wake(): void {
    this.#c.write(this.#efd, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const fds = [this.#efd, ...this.#byFd.keys()];
      // an fd closed by unwatch while poll runs can be reused by watch for another pid; a ready
      // revents then belongs to the old pidfd, so act only on entries that are still the same
      const polled = fds.map((fd) => this.#byFd.get(fd));
      const buf = new Uint8Array(fds.length * 8);
      const v = new DataView(buf.buffer);
      fds.forEach((fd, i) => {
        v.setInt32(i * 8, fd, true);
        v.setInt16(i * 8 + 4, POLLIN, true);
      });
      const n = await this.#c.poll(buf, BigInt(fds.length), -1);
      if (this.#closed) break;
      if (n < 0) continue; // EINTR
      if (v.getInt16(6, true) & POLLIN) this.#c.read(this.#efd, new Uint8Array(8), 8n);
      for (let i = 1; i < fds.length; i++) {
        if (v.getInt16(i * 8 + 6, true) === 0) continue;
        const w = this.#byFd.get(fds[i]);
        if (!w || w !== polled[i]) continue;
        this.#byFd.delete(fds[i]);
        this.#c.close(fds[i]);
        w.onExit();
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#wake();
    for (const fd of this.#byFd.keys()) this.#c.close(fd);
    this.#byFd.clear();
  }
}

/**
 * kqueue watcher (macOS). Each pid gets a one-shot EVFILT_PROC/NOTE_EXIT filter whose udata is a
 * fresh token, so an exit already queued for an unwatched registration of a reused pid is ignored.
 */
class KqueueWatcher implements ExitWatcher {
  readonly kind = "kqueue";
  readonly #kq: number;
  readonly #byPid = new Map<number, { token: bigint; onExit: () => void }>();
  #nextToken = 1n;
  #closed = false;
  #loop?: Promise<void>;
  readonly #one = new Uint8Array(darwin.KEVENT_SIZE);

  constructor(kq: number) {
    this.#kq = kq;
    this.#change({
      ident: 1,
      filter: darwin.KQ.EVFILT_USER,
      flags: darwin.KQ.EV_ADD | darwin.KQ.EV_CLEAR,
    });
  }

  #change(e: { ident: number; filter: number; flags: number; fflags?: number; udata?: bigint }): number {
    darwin.encodeKevent(new DataView(this.#one.buffer), 0, { fflags: 0, data: 0n, udata: 0n, ...e });
    const rc = darwin.libSystem().kevent(this.#kq, this.#one, 1, null, 0, null);
    return rc < 0 ? darwin.errnoDarwin() : 0;
  }

  watch(pid: number, onExit: () => void): void {
    const K = darwin.KQ, token = this.#nextToken++;
    this.#byPid.set(pid, { token, onExit });
    const err = this.#change({
      ident: pid,
      filter: K.EVFILT_PROC,
      flags: K.EV_ADD | K.EV_ONESHOT,
      fflags: K.NOTE_EXIT,
      udata: token,
    });
    if (err) {
      // ESRCH: already gone
      this.#byPid.delete(pid);
      if (err === E.ESRCH) queueMicrotask(onExit);
      return;
    }
    this.#loop ??= this.#run();
  }

  unwatch(pid: number): void {
    if (!this.#byPid.delete(pid)) return;
    this.#change({ ident: pid, filter: darwin.KQ.EVFILT_PROC, flags: darwin.KQ.EV_DELETE });
  }

  async #run(): Promise<void> {
    const K = darwin.KQ, N = 16;
    const buf = new Uint8Array(N * darwin.KEVENT_SIZE), v = new DataView(buf.buffer);
    while (!this.#closed) {
      const n = await darwin.libSystem().kevent_wait(this.#kq, null, 0, buf, N, null);
      if (this.#closed) break;
      for (let i = 0; i < n; i++) {
        const ev = darwin.decodeKevent(v, i * darwin.KEVENT_SIZE);
        if (ev.filter !== K.EVFILT_PROC || !(ev.fflags & K.NOTE_EXIT)) continue;
        const w = this.#byPid.get(ev.ident);
        if (!w || w.token !== ev.udata) continue;
        this.#byPid.delete(ev.ident);
        w.onExit();
      }
    }
    darwin.libSystem().close(this.#kq);
  }

  close(): void {
    this.#closed = true;
    this.#byPid.clear();
    if (this.#loop) {
      this.#change({ ident: 1, filter: darwin.KQ.EVFILT_USER, flags: 0, fflags: darwin.KQ.NOTE_TRIGGER });
    } else darwin.libSystem().close(this.#kq);
  }
}

/** A watcher that leaves detection to the caller's polling. */
class PollingWatcher implements ExitWatcher {
  readonly kind = "poll";
  watch(): void {}
  unwatch(): void {}
  close(): void {}
}

/** The best exit watcher for this platform: pidfd on Linux 5.3+, kqueue on macOS, else polling. */
export function createExitWatcher(): ExitWatcher {
  if (os === "darwin") {
    try {
      const kq = darwin.libSystem().kqueue();
      return kq >= 0 ? new KqueueWatcher(kq) : new PollingWatcher();
    } catch {
      return new PollingWatcher();
    }
  }
  try {
    const C = libc();
    const efd = C.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // probe: pidfd_open of ourselves works on Linux 5.3+ (ENOSYS before)
    const self = C.pidfd_open(Deno.pid, 0);
    if (self >= 0) C.close(self);
    if (efd < 0 || self < 0) {
      if (efd >= 0) C.close(efd);
      return new PollingWatcher();
    }
    return new PidfdWatcher(efd);
  } catch {
    return new PollingWatcher();
  }
}
