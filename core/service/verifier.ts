/**
 * The background blob verifier. The FUSE worker serves a blob on its first open and posts its
 * digest here; this thread hashes it, one blob at a time, so no FUSE request waits on a hash (a
 * 1 GiB blob takes about 1.3 s). A mismatch is logged and reported back, and
 * the worker refuses the blob from then on.
 */
import type { Logger } from "../log.ts";
import { type Digest, digestFile, digestFileSync } from "../store/objects.ts";

/**
 * Blobs up to this size (bytes) are hashed with synchronous reads: a few µs of the event loop,
 * where async reads cost a thread-pool round trip each. Bigger ones read in async 1 MiB chunks.
 */
const SYNC_MAX = 64 * 1024;

/** Hashes blobs in arrival order and reports those that do not match their digest. */
export class BlobVerifier {
  #queue: Digest[] = [];
  #head = 0;
  /** Read buffers, allocated once: a zeroed 1 MiB per blob cost more than hashing a small one. */
  readonly #small = new Uint8Array(SYNC_MAX + 1);
  readonly #large = new Uint8Array(1 << 20);
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
    return this.#queue.length - this.#head;
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
    let since = performance.now();
    while (this.#head < this.#queue.length) {
      // synchronous hashes run back to back; let RPCs in every few ms
      if (performance.now() - since > 4) {
        await new Promise((r) => setTimeout(r, 0));
        since = performance.now();
      }
      const d = this.#queue[this.#head++];
      if (this.#head === this.#queue.length) [this.#queue, this.#head] = [[], 0];
      try {
        const path = this.path(d);
        const got = Deno.statSync(path).size <= SYNC_MAX
          ? digestFileSync(path, this.#small)
          : await digestFile(path, this.#large);
        if (got === d) {
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
