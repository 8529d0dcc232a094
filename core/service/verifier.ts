/**
 * The background blob verifier. The FUSE worker serves a blob on its first open and posts its
 * digest here; this thread hashes it, one blob at a time, so no FUSE request waits on a hash (a
 * 1 GiB blob takes about 1.3 s). A mismatch is logged and reported back, and
 * the worker refuses the blob from then on.
 */
import type { Logger } from "../log.ts";
import { type Digest, digestBytes, digestFile, digestFileSync } from "../store/objects.ts";
import type { Slice } from "../store/packs.ts";
import { readSlice } from "../store/store.ts";

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
   * @param locate where a blob's bytes are (ObjectStore.locate)
   * @param onCorrupt told once per blob that does not hash to its digest
   */
  constructor(
    readonly locate: (d: Digest) => Slice | undefined,
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
    this.#kick();
  }

  /** Starts draining unless a drain runs; one enqueued as a drain ends starts the next. */
  #kick(): void {
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.queued) this.#kick();
    });
  }

  /** Resolves when the queue is empty (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    // start after enqueue returns: small blobs hash synchronously, and a drain that ended inside
    // the caller's turn would leave #draining set with a later blob never picked up
    await null;
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
        const s = this.locate(d);
        if (!s) throw new Deno.errors.NotFound(`${d} is not in the store`);
        const got = s.packed
          ? digestBytes(readSlice(s))
          : s.size <= SYNC_MAX
          ? digestFileSync(s.path, this.#small)
          : await digestFile(s.path, this.#large);
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
