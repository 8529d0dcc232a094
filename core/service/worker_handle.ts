/**
 * The main thread's handle on the FUSE worker: starts it and waits for the mount, sends it
 * commands through its MessagePort and wakes it through a pipe (never through the mount), asks
 * questions that expect an answer, and stops it by unmounting.
 */
import { MessageChannel, Worker } from "node:worker_threads";
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { reportBug } from "../report.ts";
import { runner } from "../runner.ts";
import { libc, wakePipe } from "../../ffi/sys.ts";
import { invalEntryNotice, invalInodeNotice } from "../../ffi/fuse/lowlevel.ts";
import { platform } from "../platform/facts.ts";
import { allowOther, libfuseCandidates } from "../platform/checks.ts";
import type { Digest } from "../store/objects.ts";
import type { Slice } from "../store/packs.ts";
import { BlobVerifier } from "./verifier.ts";
import { copyForWorker } from "./copier.ts";
import type { FromWorker, FuseWorkerData, ToWorker, WorkerReply } from "./worker/messages.ts";

const ONE = new Uint8Array([1]);

/** A command that expects an answer, before the handle numbers it. */
type Question<T = Extract<ToWorker, { reqId: number }>> = T extends unknown ? Omit<T, "reqId"> : never;

/** A running FUSE worker. */
export class WorkerHandle {
  /** "libfuse3.so.3 3.14.0": the library that loaded and its version. */
  libfuse = "";
  /** Resolves with the worker's exit code (-1: crashed or terminated). */
  readonly exited: Promise<number>;
  #exit!: (code: number) => void;
  #nextReq = 1;
  readonly #pending = new Map<number, (r: WorkerReply) => void>();
  readonly #port: MessageChannel["port1"];
  readonly #worker: Worker;
  readonly #wake: [number, number];
  readonly #seq = new Int32Array(new SharedArrayBuffer(4));
  #stopped = false;
  /** The FUSE session's /dev/fuse fd (the worker's), for kernel notices; -1 until mounted. */
  #sessionFd = -1;
  /** Hashes each blob the worker serves, off the FUSE thread. */
  readonly verifier: BlobVerifier;

  private constructor(
    readonly cfg: Config,
    shared: { counters: SharedArrayBuffer; latency: SharedArrayBuffer },
    log: Logger,
    locate: (d: Digest) => Slice | undefined,
  ) {
    this.verifier = new BlobVerifier(locate, (digest) => this.send({ type: "corrupt", digest }), log);
    this.exited = new Promise<number>((r) => this.#exit = r);
    const channel = new MessageChannel();
    this.#port = channel.port1;
    this.#wake = wakePipe();
    const data: FuseWorkerData = {
      storageRoot: cfg.storageRoot,
      mountpoint: cfg.mountpoint,
      libfuse: libfuseCandidates(cfg),
      uid: Deno.uid() ?? 0,
      gid: Deno.gid() ?? 0,
      allowOther: allowOther().ok,
      port: channel.port2,
      wakeFd: this.#wake[0],
      mailboxSeq: this.#seq.buffer as SharedArrayBuffer,
      ...shared,
      slowUs: 100_000,
    };
    this.#worker = new Worker(new URL("./worker/main.ts", import.meta.url), {
      workerData: data,
      transferList: [channel.port2 as any],
    });
  }

  /**
   * Starts the worker and resolves once it has mounted `cfg.mountpoint`.
   * @throws SpfsError MountFailed with libfuse's reason, or when the worker crashes first.
   */
  static start(
    cfg: Config,
    shared: { counters: SharedArrayBuffer; latency: SharedArrayBuffer },
    log: Logger,
    locate: (d: Digest) => Slice | undefined,
  ): Promise<WorkerHandle> {
    const w = new WorkerHandle(cfg, shared, log, locate);
    return new Promise((resolve, reject) => {
      w.#worker.on("message", (m: FromWorker) => {
        switch (m.type) {
          case "mounted":
            w.libfuse = `${m.libfuse} ${m.version}`;
            w.#sessionFd = m.fd;
            return resolve(w);
          case "inval":
            return void w.#invalidate(m.inos);
          case "inval-entries":
            return void w.invalidateEntries(m.entries);
          case "error":
            return reject(
              new SpfsError("MountFailed", `cannot mount ${cfg.mountpoint}: ${m.message}`, {
                hint: "run `spfs service --foreground` to see libfuse's own message",
              }),
            );
          case "log":
            return log[m.level === "warning" ? "warn" : m.level](m.message, m.fields ?? {});
          case "exited":
            return w.#exit(m.code);
          case "reply":
            w.#pending.get(m.reqId)?.(m.result);
            w.#pending.delete(m.reqId);
            return;
          case "verify":
            return w.verifier.enqueue(m.digest);
          case "copy":
            return void copyForWorker(m.src, m.dst).then((r) => w.send({ type: "copied", id: m.id, ...r }));
          case "bug": {
            const e = Object.assign(new Error(m.message), { name: m.name, stack: m.stack });
            return void reportBug(e, { component: "service", command: `fuse ${m.op}` }, cfg.sentryDsn);
          }
        }
      });
      w.#worker.on("error", (e: unknown) => {
        log.error("FUSE worker crashed: {error}", { error: String(e) });
        void reportBug(e, { component: "service", command: "fuse worker" }, cfg.sentryDsn);
        reject(new SpfsError("MountFailed", `FUSE worker failed: ${e}`));
        w.#exit(-1);
      });
      w.#worker.on("exit", () => w.#exit(-1));
    });
  }

  /**
   * Tells the kernel to drop its cached pages of `inos`, from here and off this thread: never from
   * the FUSE thread, which must stay free to answer the reads the kernel may be waiting on.
   */
  async #invalidate(inos: number[], attrsOnly = false): Promise<void> {
    for (const ino of inos) {
      if (this.#stopped || this.#sessionFd < 0) return;
      // best effort: it fails (ENOENT, unreadable off this thread) when the kernel has forgotten
      // the inode, and then nothing of it is cached
      await libc().write_off_thread(this.#sessionFd, invalInodeNotice(ino, attrsOnly), 40n);
    }
  }

  /**
   * Tells the kernel to drop its cached attributes of `inos` (not their pages), from here and off
   * this thread, as #invalidate does. Resolves once every notice is written.
   */
  invalidateAttrs(inos: number[]): Promise<void> {
    return this.#invalidate(inos, true);
  }

  /**
   * Tells the kernel to drop its dentries (dir inode, name), from here and off this thread: each
   * notice takes its dir's lock, which a request waiting on the FUSE thread may hold. Resolves once
   * every notice is written. Root entries only once the runtime they lead into has ended: each
   * prunes the kernel's whole cached subtree below it, whichever runtime last looked the name up.
   */
  async invalidateEntries(entries: [number, string][]): Promise<void> {
    const enc = new TextEncoder();
    for (const [dir, name] of entries) {
      if (this.#stopped || this.#sessionFd < 0) return;
      const notice = invalEntryNotice(dir, enc.encode(name));
      // best effort: ENOENT when the kernel holds no such dentry
      await libc().write_off_thread(this.#sessionFd, notice, BigInt(notice.length));
    }
  }

  /** Queues a command and wakes the worker's poll (a byte on the wake pipe). */
  send(m: ToWorker): void {
    if (this.#stopped) return; // the wake pipe is closed; its fd numbers may belong to others now
    this.#port.postMessage(m);
    Atomics.add(this.#seq, 0, 1);
    libc().write(this.#wake[1], ONE, 1n);
  }

  /** Sends a question and resolves with the worker's answer. */
  ask<R extends WorkerReply>(m: Question): Promise<R> {
    const reqId = this.#nextReq++;
    const p = new Promise<R>((res) => this.#pending.set(reqId, res as (r: WorkerReply) => void));
    this.send({ ...m, reqId } as ToWorker);
    return p;
  }

  /** Unmounts (a child process does: this process never touches its own mount), then ends the worker. */
  async stop(log: Logger): Promise<void> {
    const r = await runner().run(platform.unmountArgv(this.cfg.mountpoint));
    if (r.code !== 0) log.warn("unmount: {stderr}", { stderr: r.stderr.trim() });
    const timeout = new Promise<number>((res) => setTimeout(() => res(-2), 5000));
    if (await Promise.race([this.exited, timeout]) === -2) log.warn("FUSE worker did not exit in 5 s");
    await this.#worker.terminate();
    this.#stopped = true;
    for (const fd of this.#wake) libc().close(fd);
  }
}
