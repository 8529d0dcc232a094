/**
 * Opening blobs for the read path. A blob is hashed once per service lifetime before it is first
 * served; one whose bytes do not match its digest is never served (EIO, logged).
 */
import { cstr, errno, libc, O_CLOEXEC, O_RDONLY } from "../../ffi/sys.ts";
import { E } from "../../ffi/errno.ts";
import { type Digest, digestFileSync } from "../store/objects.ts";

/** Opens verified blobs read-only. */
export class BlobOpener {
  readonly #verified = new Set<Digest>();
  readonly #path: (d: Digest) => string;
  readonly #onCorrupt: (d: Digest) => void;

  /**
   * @param path the object path of a blob (ObjectStore.path)
   * @param onCorrupt told once per failed verification (the worker logs it)
   */
  constructor(path: (d: Digest) => string, onCorrupt: (d: Digest) => void) {
    this.#path = path;
    this.#onCorrupt = onCorrupt;
  }

  /** True when the blob hashes to its digest (cached after the first success). */
  verify(d: Digest): boolean {
    if (this.#verified.has(d)) return true;
    if (digestFileSync(this.#path(d)) !== d) {
      this.#onCorrupt(d);
      return false;
    }
    this.#verified.add(d);
    return true;
  }

  /** An O_RDONLY fd of the blob, or a negative errno (EIO when it is corrupt). */
  open = (d: Digest): number => {
    if (!this.verify(d)) return -E.EIO;
    const fd = libc().open(cstr(this.#path(d)), O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -(errno() || E.EIO) : fd;
  };
}
