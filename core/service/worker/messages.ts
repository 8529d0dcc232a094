/** What the service's main thread and its FUSE worker say to each other. */
import type { MessagePort } from "node:worker_threads";
import type { Digest } from "../../store/objects.ts";

/** Data the main thread passes when it starts the worker. */
export interface FuseWorkerData {
  storageRoot: string;
  mountpoint: string;
  libfuse: string[];
  uid: number;
  gid: number;
  /**
   * Mount with allow_other, so processes of other uids inside a runtime are served (permission
   * checks then follow mode bits, `default_permissions`); outsiders still see an empty root.
   */
  allowOther: boolean;
  port: MessagePort;
  /**
   * Read end of the wake pipe: the main thread writes a byte after each message, so the worker's
   * poll(2) wakes and drains its mailbox without any filesystem call under the mount point.
   */
  wakeFd: number;
  /** Int32 count of messages posted, so the worker checks for mail without touching the port. */
  mailboxSeq: SharedArrayBuffer;
  /** Int32 counters shared with the main thread, indexed by metrics.ts `CTR`. */
  counters: SharedArrayBuffer;
  /** Int32 latency histograms, LAT_BUCKETS per OPS slot (metrics.ts). */
  latency: SharedArrayBuffer;
  /** Ops slower than this are logged with their duration (µs). */
  slowUs: number;
}

/** Messages main → worker. */
export type ToWorker =
  | {
    type: "register";
    id: string;
    pid: number;
    startTime: number;
    layers: Digest[];
    /** Editable runtimes: where scratch lives and whether copy-up may reflink. */
    edit?: { scratch: string; work: string; reflink: boolean };
  }
  | { type: "unregister"; pid: number }
  /** Commit support: read the change counter, then swap scratch for a new top layer. */
  | { type: "commit-check"; reqId: number; id: string }
  /**
   * commit-check that also holds back the runtime's requests that would change it (but those
   * naming the root) until "thaw", so a commit can read scratch while programs keep writing.
   */
  | { type: "freeze"; reqId: number; id: string }
  /** Serves what "freeze" held, in order, and holds no more. */
  | { type: "thaw"; id: string }
  | { type: "rebase"; reqId: number; id: string; layers: Digest[]; gen: number; trash: string }
  /** The verifier found this blob corrupt: refuse it from now on. */
  | { type: "corrupt"; digest: Digest }
  /** Copy `id` (a "copy" from the worker) is done: `errno` 0, or why it failed. */
  | { type: "copied"; id: number; errno: number; how: "reflink" | "copy_file_range" | "copy" };

/** Answers to requests that carry a `reqId`. */
export type WorkerReply =
  | { gen: number; copying: number }
  /**
   * `unlinked`: after a rebase, (dir inode, name) of names whose dentries the kernel must drop;
   * `known`: the runtime's inodes the kernel holds, whose cached attributes are now stale.
   */
  | { ok: true; unlinked?: [number, string][]; known?: number[] }
  | { ok: false; reason: string };

/** Log levels the worker forwards to the service log. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Messages worker → main. */
export type FromWorker =
  | { type: "mounted"; libfuse: string; version: string; fd: number }
  /** Drop the kernel's cached pages and attributes of these inodes (lowlevel.ts invalInodeNotice). */
  | { type: "inval"; inos: number[] }
  /** Drop these dentries, (dir inode, name): the root names an ended runtime leaves behind. */
  | { type: "inval-entries"; entries: [number, string][] }
  | { type: "error"; message: string }
  | { type: "log"; level: LogLevel; message: string; fields?: Record<string, unknown> }
  | { type: "exited"; code: number }
  | { type: "reply"; reqId: number; result: WorkerReply }
  /** A copy-up's bytes: copy blob `src` into the new file `dst` (`size` bytes), then answer "copied". */
  | { type: "copy"; id: number; src: string; dst: string; size: number }
  /** A blob's first open: hash it off the FUSE thread (core/service/verifier.ts). */
  | { type: "verify"; digest: Digest }
  /** An op threw something without an errno: a bug, reported once per op and message (core/report.ts). */
  | { type: "bug"; op: string; name: string; message: string; stack?: string };
