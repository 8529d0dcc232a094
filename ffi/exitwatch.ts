/**
 * Process-exit notification without polling delays. Linux: pidfd_open(2) per watched process,
 * and one poll(2) over all of them plus an eventfd(2) used to wake the poll when the set changes;
 * poll runs as a nonblocking FFI call on Deno's blocking thread pool. A pidfd becomes readable when
 * its process exits (pidfd_open(2), Linux 5.3+). Where pidfd_open fails with ENOSYS, callers fall
 * back to polling /proc. macOS (kqueue EVFILT_PROC/NOTE_EXIT) is not implemented yet and uses the
 * polling fallback too.
 */
import { libc } from "./libc.ts";
import { platform } from "./platform.ts";

const POLLIN = 1, EFD_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000, PIDFD_NONBLOCK = 0o4000;

/** Watches pids and calls back once each exits. */
export interface ExitWatcher {
  /** "pidfd" when exits are events; "poll" when the caller must poll. */
  readonly kind: "pidfd" | "poll";
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

/** A watcher that leaves detection to the caller's polling. */
class PollingWatcher implements ExitWatcher {
  readonly kind = "poll";
  watch(): void {}
  unwatch(): void {}
  close(): void {}
}

/** The best exit watcher for this platform: pidfd on Linux 5.3+, else polling. */
export function createExitWatcher(): ExitWatcher {
  if (platform.os !== "linux") return new PollingWatcher();
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
