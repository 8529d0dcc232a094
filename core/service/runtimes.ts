/**
 * The service's runtime table: the runtimes registered now, their records in the runtime db
 * (durable ones outlive the service), and the root-process exit watch that ends them.
 */
import { SpfsError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { RuntimeDb } from "../runtime/records.ts";
import { createExitWatcher } from "../../ffi/exitwatch.ts";
import { processExited, procInfo } from "../../ffi/sys.ts";
import type { RuntimeInfo } from "../../proto/protocol.ts";
import type { WorkerHandle } from "./worker_handle.ts";

/** A registered runtime: its record plus the root process's start time (pids are reused). */
export interface Runtime extends RuntimeInfo {
  startTime: number;
  created_ms: number;
}

/** The runtimes registered in this service. */
export class RuntimeTable {
  readonly live = new Map<string, Runtime>();
  readonly exits = createExitWatcher();

  constructor(readonly rdb: RuntimeDb, readonly worker: WorkerHandle, readonly log: Logger) {}

  /** A registered runtime by id or name. */
  find(ref: string): Runtime | undefined {
    for (const rt of this.live.values()) if (rt.id === ref || rt.name === ref) return rt;
    return undefined;
  }

  /** The error for a runtime nobody knows. */
  notFound(ref: string): SpfsError {
    return new SpfsError("RuntimeNotFound", `no runtime with id or name "${ref}"`, {
      hint: "list them with `spfs runtime list`",
    });
  }

  /** A runtime as the protocol shows it. */
  info({ startTime: _, ...r }: Runtime): RuntimeInfo {
    return r;
  }

  /** Durable runtimes that are not running now. */
  inactive(): RuntimeInfo[] {
    return this.rdb.all().filter((r) => !this.live.has(r.id)).map((r) => ({
      ...r,
      root_pid: 0,
      started_ms: 0,
      scratch: r.editable ? this.rdb.dirs(r.id).scratch : undefined,
      active: false,
    }));
  }

  /**
   * Adds `rt`, tells the worker, and watches its root process. A pid reused before its pidfd was
   * opened means the root is already gone, and the runtime ends at once.
   */
  add(rt: Runtime, reflink: boolean): void {
    this.live.set(rt.id, rt);
    this.exits.watch(rt.root_pid, () => this.remove(rt, "root process exited"));
    if (procInfo(rt.root_pid)?.startTime !== rt.startTime) return this.remove(rt, "root process exited");
    const d = this.rdb.dirs(rt.id);
    this.worker.send({
      type: "register",
      id: rt.id,
      pid: rt.root_pid,
      startTime: rt.startTime,
      layers: rt.layers,
      edit: rt.editable ? { scratch: d.scratch, work: d.work, reflink } : undefined,
    });
  }

  /** Ends a runtime: the worker forgets it, and a non-durable runtime's scratch is deleted. */
  remove(rt: Runtime, why: string): void {
    if (this.live.get(rt.id) !== rt) return;
    this.live.delete(rt.id);
    this.exits.unwatch(rt.root_pid);
    this.worker.send({ type: "unregister", pid: rt.root_pid });
    this.log.info("unregistered runtime {runtime} ({why})", { runtime: rt.id, root_pid: rt.root_pid, why });
    if (rt.editable && !rt.durable) {
      void this.rdb.removeDirs(rt.id).catch((e) =>
        this.log.error("cannot remove scratch of {runtime}: {error}", { runtime: rt.id, error: String(e) })
      );
    }
  }

  /**
   * Ends every runtime whose root process has exited (gone, a zombie, or its pid reused). The exit
   * watch reports exits asynchronously; an RPC made right after a root exits (`spfs status`, or
   * `spfs run --rerun` of the runtime that root just left) reaps first, so it never sees that
   * runtime still live. One /proc read (macOS: proc_pidinfo) per live runtime.
   */
  reap(): void {
    for (const rt of [...this.live.values()]) {
      let exited = false;
      try {
        exited = processExited(rt.root_pid, rt.startTime);
      } catch { /* /proc unreadable now (EMFILE): the exit watch still ends it */ }
      if (exited) this.remove(rt, "root process exited");
    }
  }

  /** Without pidfd or kqueue, polling /proc is the exit detection. */
  pollExits(): void {
    if (this.exits.kind === "poll") this.reap();
  }
}
