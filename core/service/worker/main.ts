/**
 * The FUSE worker: serves the mount on this Worker's own thread. Its loop polls the session fd
 * together with a wake pipe: a byte from the main thread means "drain the mailbox" (register,
 * unregister, commit), and a readable session fd means one request, which is read and processed
 * here, its op callbacks running synchronously (ARCHITECTURE.md "FUSE threading"). The mailbox is
 * also drained before each request, so a registration is seen before the registered process's
 * first request. Nothing here makes a filesystem call under the mount point: a FUSE server that
 * waits on itself deadlocks, and a SIGKILL then leaves an unkillable process.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type FuseAbi, type FuseReplies, type FuseSession, mountSession } from "../../../ffi/fuse/abi.ts";
import { E } from "../../../ffi/errno.ts";
import { errno, libc, pollHere, setNonblocking } from "../../../ffi/sys.ts";
import type { FuseWorkerData } from "./messages.ts";
import { buildServer, post, type Server } from "./server.ts";

export { buildServer };
export type { FromWorker, FuseWorkerData, ToWorker, WorkerReply } from "./messages.ts";

const POLLIN = 0x1, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;

/**
 * How long (ms) the loop keeps asking for the next request before it sleeps in poll. Waking a
 * sleeping thread on another CPU costs more than the whole request (ARCHITECTURE.md "FUSE
 * threading"); a client that sends its next request within this window finds the loop awake. An
 * `os.stat` of a root name in a Python loop (one LOOKUP each) took 25–35 µs without the spin and
 * 17–18 µs with it, 4 runs each on a 2-core VM. The spin stops after one that caught nothing and
 * resumes once a request again comes within the window, so a quiet mount costs no CPU.
 */
const SPIN_MS = 0.05;

/** The mailbox as the loop sees it. */
interface Mail {
  pending(): boolean;
  drain(): void;
  /** True while some runtime's changing requests are held back (a commit is reading its scratch). */
  holding: boolean;
  /** Keeps a copy of `request` to serve later when it is one to hold; true when it did. */
  hold(request: Uint8Array): boolean;
}

/**
 * Serves `fuse` until its session ends. Under load it reads requests back to back (the session fd
 * is non-blocking on Linux), spins briefly for the next one (SPIN_MS), and polls only when none
 * comes; every wake-up byte, and every request, first applies the mail the main thread posted.
 * `struct pollfd` {fd i32, events i16, revents i16} × 2.
 * @returns 0 after an unmount, else the negative errno that ended it.
 */
export function serveLoop(fuse: FuseSession, wakeFd: number, mail: Mail): number {
  const C = libc();
  const nonblocking = setNonblocking(fuse.fd);
  const pfds = new Uint8Array(16), v = new DataView(pfds.buffer);
  v.setInt32(0, fuse.fd, true);
  v.setInt16(4, POLLIN, true);
  v.setInt32(8, wakeFd, true);
  v.setInt16(12, POLLIN, true);
  const sink = new Uint8Array(256);
  let spin = nonblocking;
  /** Waits for a request or a wake-up; false when only mail arrived (or poll was interrupted). */
  const wait = (): boolean | number => {
    v.setInt16(6, 0, true);
    v.setInt16(14, 0, true);
    if (pollHere(pfds, 2, -1) < 0) return errno() === E.EINTR ? false : -errno();
    if (v.getInt16(14, true) & POLLIN) C.read(wakeFd, sink, BigInt(sink.length));
    if (mail.pending()) mail.drain();
    return (v.getInt16(6, true) & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) !== 0;
  };
  while (!fuse.exited()) {
    if (!nonblocking) {
      const w = wait();
      if (typeof w === "number") return w;
      if (!w) continue;
    }
    let r = fuse.receive();
    if (r === -E.EAGAIN && spin) {
      const until = performance.now() + SPIN_MS;
      while (r === -E.EAGAIN && !mail.pending() && performance.now() < until) r = fuse.receive();
      spin = r !== -E.EAGAIN || mail.pending();
    }
    if (r === -E.EAGAIN) {
      const idle = performance.now();
      const w = wait();
      if (typeof w === "number") return w;
      spin = performance.now() - idle < SPIN_MS; // would a spin have caught it?
      continue;
    }
    if (r === -E.EINTR) continue;
    if (r <= 0) return r;
    if (mail.pending()) mail.drain(); // a registration always lands before its process's request
    if (mail.holding) {
      const req = fuse.current();
      if (req && mail.hold(req)) continue;
    }
    fuse.process();
  }
  return 0;
}

function serve(data: FuseWorkerData): void {
  let fuse: FuseSession;
  let server: Server | undefined;
  try {
    const build = (abi: FuseAbi, reply: FuseReplies) => (server = buildServer(data, abi, reply)).table;
    fuse = mountSession(data.libfuse, build, data.mountpoint, data.allowOther ? ["allow_other"] : []);
  } catch (e) {
    post({ type: "error", message: `cannot mount with libfuse (${data.libfuse.join(", ")}): ${e}` });
    return;
  }
  server!.mailbox.replay = fuse.processBytes;
  server!.mailbox.drain();
  post({ type: "mounted", libfuse: fuse.name, version: fuse.version, fd: fuse.fd });
  const rc = serveLoop(fuse, data.wakeFd, server!.mailbox);
  fuse.close();
  for (const cb of server!.callbacks) cb.close();
  post({ type: "exited", code: rc });
}

if (parentPort && workerData) serve(workerData as FuseWorkerData);
