/**
 * The background blob verifier. The FUSE worker serves a blob on its first open and posts its
 * digest here; this thread hashes it with async reads, one blob at a time, so no FUSE request
 * waits on a hash (a 1 GiB blob takes about 1.3 s). A mismatch is logged and reported back, and
 * the worker refuses the blob from then on.
 */
import type { Logger } from "../log.ts";
import { type Digest, digestFile } from "../store/objects.ts";

/** Hashes blobs in arrival order and reports those that do not match their digest. */
export class BlobVerifier {
  readonly #queue: Digest[] = [];
  #draining: Promise<void> | undefined;
  /** Blobs hashed and found intact. */
  verified = 0;
  /** Blobs found corrupt. */
  corrupt = 0;

  /**
   * @param path the object path of a blob (ObjectStore.path)
   * @param onCorrupt told once per blob that does not hash to its digest
   */
  constructor(
    readonly path: (d: Digest) => string,
    readonly onCorrupt: (d: Digest) => void,
    readonly log: Logger,
  ) {}

  /** Blobs waiting to be hashed. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues a blob; hashing starts at once when idle. */
  enqueue(d: Digest): void {
    this.#queue.push(d);
    this.#draining ??= this.#drain().finally(() => this.#draining = undefined);
  }

  /** Resolves when the queue is empty (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    for (let d = this.#queue.shift(); d; d = this.#queue.shift()) {
      try {
        if (await digestFile(this.path(d)) === d) {
          this.verified++;
          continue;
        }
        this.corrupt++;
        this.log.error("blob {digest} does not match its digest; refusing to serve it", {
          digest: d,
          errno: 5,
        });
        this.onCorrupt(d);
      } catch (e) {
        // removed meanwhile, or unreadable: its next open fails on its own
        this.log.warn("cannot verify blob {digest}: {error}", { digest: d, error: String(e) });
      }
    }
  }
}
