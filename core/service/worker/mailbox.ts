/**
 * The worker's side of the main thread's commands: register and unregister runtimes, and the
 * steps of a commit (check or freeze, rebase, thaw). Drained after each wake-up and before each
 * request, so a registration is seen before the registered process's first request.
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
import { mutationTargets } from "../../../ffi/fuse/request.ts";
import { ROOT_INO } from "../../fs/vfs.ts";

/**
 * Longest a runtime's changing requests are held (ms) should the main thread never say "thaw": a
 * hold then ends by itself, and the commit sees the runtime changed instead.
 */
const MAX_HOLD_MS = 60_000;

/** Applies main-thread commands to the router and the editable runtimes. */
export class Mailbox {
  readonly #overlays = new Map<string, OverlayBackend>();
  readonly #seq: Int32Array;
  #applied = 0;
  /** Runtimes whose changing requests are held: what was held, oldest first, and since when. */
  readonly #held = new Map<string, { requests: Uint8Array[]; since: number }>();
  /** True while any runtime's changing requests are held (serveLoop asks before each request). */
  holding = false;
  /** Serves a held request's bytes through libfuse; set once the session is mounted. */
  replay: (request: Uint8Array) => void = () => {};

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
    /** Told when an editable runtime ends, before its overlay goes: drops its root dentries. */
    readonly ended: (b: OverlayBackend) => void = () => {},
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
      case "commit-check":
      case "freeze": {
        const ov = this.#overlays.get(m.id)?.overlay;
        if (!ov) return this.reply(m.reqId, { ok: false, reason: "the runtime is not active" });
        if (m.type === "freeze" && !this.#held.has(m.id)) {
          this.#held.set(m.id, { requests: [], since: performance.now() });
          this.holding = true;
        }
        return this.reply(m.reqId, { gen: ov.gen, copying: ov.copying });
      }
      case "thaw":
        return this.#thaw(m.id);
      case "rebase":
        return this.reply(m.reqId, this.#rebase(m));
      case "corrupt":
        return this.#corrupt(m.digest);
      case "copied":
        return this.copied(m.id, m.errno, m.how);
    }
  }

  /**
   * Holds `request` back when it would change a frozen runtime (a commit is reading its scratch),
   * keeping a copy to serve at the thaw. Never a request naming the root: its lock is every
   * runtime's, and holding it would stop them all. True when it was held.
   */
  hold(request: Uint8Array): boolean {
    const inos = mutationTargets(request);
    if (!inos || inos.includes(ROOT_INO)) return false;
    const owner = this.vfs.owners.get(inos[0]);
    for (const [id, h] of this.#held) {
      if (this.#overlays.get(id) !== owner) continue;
      if (performance.now() - h.since > MAX_HOLD_MS) {
        this.log("warning", `runtime ${id} was held for a commit over ${MAX_HOLD_MS} ms; serving it again`);
        this.#thaw(id);
        return false;
      }
      h.requests.push(request.slice());
      return true;
    }
    return false;
  }

  /** Ends a hold: serves what was held, in the order it came. */
  #thaw(id: string): void {
    const h = this.#held.get(id);
    if (!h) return;
    this.#held.delete(id);
    this.holding = this.#held.size > 0;
    for (const r of h.requests) this.replay(r);
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
    this.ended(ov);
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
      return { ok: true, unlinked, known: ov.kernelInodes() };
    } catch (e) {
      return { ok: false, reason: String(e) };
    }
  }
}
