/**
 * The worker's side of the main thread's commands: register and unregister runtimes, and the two
 * steps of a commit. Drained after each wake-up and before each request, so a registration is
 * seen before the registered process's first request.
 */
import { receiveMessageOnPort } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { CTR } from "../../metrics.ts";
import type { BlobOpener } from "../../fs/blobs.ts";
import { OverlayBackend } from "../../fs/overlay/backend.ts";
import { ReadOnlyBackend } from "../../fs/readonly.ts";
import type { Router } from "../../fs/router.ts";
import type { Vfs } from "../../fs/vfs.ts";
import type { MountRec } from "./context.ts";
import type { InodeFiles } from "./files.ts";
import type { Digest } from "../../store/objects.ts";
import type { LogLevel, ToWorker, WorkerReply } from "./messages.ts";

/** Applies main-thread commands to the router and the editable runtimes. */
export class Mailbox {
  readonly #overlays = new Map<string, OverlayBackend>();
  readonly #seq: Int32Array;
  #applied = 0;

  constructor(
    readonly port: MessagePort,
    readonly vfs: Vfs,
    readonly router: Router<MountRec>,
    readonly blobs: BlobOpener,
    readonly counters: Int32Array,
    readonly reply: (reqId: number, result: WorkerReply) => void,
    readonly log: (level: LogLevel, message: string, fields?: Record<string, unknown>) => void,
    seq: SharedArrayBuffer,
    /** Told when a copy-up copied off the FUSE thread is done (copies.ts OffThreadCopies.done). */
    readonly copied: (id: number, errno: number, how: "reflink" | "copy_file_range" | "copy") => void =
      () => {},
    /** The worker's fds by inode: those of a runtime that goes, or of a corrupt blob, are closed. */
    readonly files?: InodeFiles,
    /**
     * Asks the main thread to drop the kernel's cached pages of inodes (messages.ts "inval"); set
     * where no OPEN comes to refuse a corrupt blob at (abi.ts `noOpen`).
     */
    readonly invalidate?: (inos: number[]) => void,
  ) {
    this.#seq = new Int32Array(seq);
  }

  /** True when the main thread posted messages not applied yet (one atomic load). */
  pending(): boolean {
    return Atomics.load(this.#seq, 0) !== this.#applied;
  }

  /** Applies every queued message. */
  drain = (): void => {
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      this.#applied++;
      this.apply(m.message as ToWorker);
    }
  };

  apply(m: ToWorker): void {
    switch (m.type) {
      case "register":
        return this.#register(m);
      case "unregister":
        return this.#unregister(m.pid);
      case "commit-check": {
        const ov = this.#overlays.get(m.id)?.overlay;
        if (!ov) return this.reply(m.reqId, { ok: false, reason: "the runtime is not active" });
        return this.reply(m.reqId, { gen: ov.gen, copying: ov.copying });
      }
      case "rebase":
        return this.reply(m.reqId, this.#rebase(m));
      case "corrupt":
        return this.#corrupt(m.digest);
      case "copied":
        return this.copied(m.id, m.errno, m.how);
    }
  }

  /** A blob found corrupt: refused from now on, its fds closed, its inodes' cached pages dropped. */
  #corrupt(d: Digest): void {
    this.blobs.markCorrupt(d);
    this.files?.dropIf((f) => this.blobs.digestOf(f.fh) === d);
    if (!this.invalidate) return;
    const inos: number[] = [];
    for (const [ino, n] of this.vfs.nodes) if (n.digest === d) inos.push(ino);
    for (const ob of this.#overlays.values()) {
      for (const [ino, n] of ob.overlay.nodes) if (!n.upper && n.lower?.digest === d) inos.push(ino);
    }
    if (inos.length) this.invalidate(inos);
  }

  #register(m: Extract<ToWorker, { type: "register" }>): void {
    try {
      const view = this.vfs.view(m.layers);
      let overlay: OverlayBackend | undefined;
      if (m.edit) {
        overlay = new OverlayBackend({
          id: m.id,
          ...m.edit,
          vfs: this.vfs,
          layers: m.layers,
          rootSources: view.rootSources,
          blobs: this.blobs,
          onCopyUp: (how) => {
            this.counters[CTR.copyUps]++;
            if (how === "reflink") this.counters[CTR.reflinks]++;
          },
        });
        this.#overlays.set(m.id, overlay);
      }
      const backend = overlay ?? new ReadOnlyBackend(this.vfs, view, this.blobs);
      this.router.register(m.pid, m.startTime, { ...view, id: m.id, backend, overlay });
    } catch (e) {
      this.log("error", `registration of ${m.pid} failed: ${e}`, { root_pid: m.pid, runtime: m.id });
    }
  }

  #unregister(pid: number): void {
    const r = this.router.unregister(pid);
    const ov = r?.mount.overlay;
    if (!r || !ov) return;
    // lingering processes keep the runtime's layers, read-only: its scratch is going away
    r.mount.overlay = undefined;
    r.mount.backend = new ReadOnlyBackend(this.vfs, r.mount, this.blobs);
    this.files?.dropIf((f) => f.b === ov);
    ov.dispose();
    this.#overlays.delete(r.mount.id);
  }

  #rebase(m: Extract<ToWorker, { type: "rebase" }>): WorkerReply {
    const ob = this.#overlays.get(m.id), ov = ob?.overlay;
    if (!ov) return { ok: false, reason: "the runtime is not active" };
    if (ov.gen !== m.gen) return { ok: false, reason: "changed" };
    if (ov.copying > 0) return { ok: false, reason: `copying:${ov.copying}` };
    try {
      const view = this.vfs.view(m.layers);
      // fds into the old scratch would write where the commit already looked
      this.files?.dropIf((f) => f.b === ob);
      Deno.renameSync(ov.scratch, m.trash);
      Deno.mkdirSync(ov.scratch, { mode: 0o755 });
      Deno.chmodSync(ov.scratch, 0o755);
      const unlinked = ov.rebase(m.layers, view.rootSources, m.trash);
      for (const r of this.router.roots()) if (r.mount.overlay === ob) Object.assign(r.mount, view);
      return { ok: true, unlinked };
    } catch (e) {
      return { ok: false, reason: String(e) };
    }
  }
}
