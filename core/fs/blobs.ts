/**
 * Opening blobs for the read path. A blob is served at once; its first open in this service asks
 * for it to be hashed off the FUSE thread (core/service/verifier.ts). One whose bytes do not match
 * its digest is marked corrupt and never opened again (EIO). Blobs are also verified when written
 * and by `spfs check`. A blob kept in a pack is opened as its pack's fd plus a slice (offset, size)
 * that the read op applies.
 */
import { cstr, errno, libc, O_CLOEXEC, O_RDONLY } from "../../ffi/sys.ts";
import { E } from "../../ffi/errno.ts";
import type { Digest } from "../store/objects.ts";
import type { Slice } from "../store/packs.ts";

/** Opens blobs read-only, and refuses the ones found corrupt. */
export class BlobOpener {
  /** Blobs already handed to the verifier (verified, or being verified). */
  readonly #asked = new Set<Digest>();
  readonly #corrupt = new Set<Digest>();
  readonly #path: (d: Digest) => string;
  readonly #packed: (d: Digest) => Slice | undefined;
  /** fd of an open packed blob → [offset in its pack, size], both bytes. */
  readonly slices = new Map<number, [number, number]>();
  /** fd → the blob it was opened for. */
  readonly #digests = new Map<number, Digest>();
  readonly #verify: (d: Digest) => void;
  readonly #onMissing: (d: Digest) => void;

  /**
   * @param path the loose object path of a blob (ObjectStore.path)
   * @param verify asked once per blob, on its first successful open, to hash it elsewhere
   * @param onMissing told when a blob a layer names is not in the store (it is served as EIO)
   * @param packed where a blob is in a pack, asked when there is no loose file (Packs.find)
   */
  constructor(
    path: (d: Digest) => string,
    verify: (d: Digest) => void,
    onMissing: (d: Digest) => void = () => {},
    packed: (d: Digest) => Slice | undefined = () => undefined,
  ) {
    this.#path = path;
    this.#packed = packed;
    this.#verify = verify;
    this.#onMissing = onMissing;
  }

  /** Marks a blob corrupt: every later open gets EIO. */
  markCorrupt(d: Digest): void {
    this.#corrupt.add(d);
  }

  /**
   * An O_RDONLY fd of the blob, or a negative errno: EIO when it was found corrupt or is missing
   * from the store (the file is listed, so ENOENT would mislead), else open(2)'s own.
   */
  open = (d: Digest): number => {
    if (this.#corrupt.has(d)) return -E.EIO;
    let fd = libc().open(cstr(this.#path(d)), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const e = errno() || E.EIO;
      if (e !== E.ENOENT) return -e;
      const s = this.#packed(d);
      if (s) fd = libc().open(cstr(s.path), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        this.#onMissing(d);
        return -E.EIO;
      }
      this.slices.set(fd, [s!.offset, s!.size]);
    }
    this.#digests.set(fd, d);
    if (!this.#asked.has(d)) {
      this.#asked.add(d);
      this.#verify(d);
    }
    return fd;
  };

  /** The blob an open fd is of; undefined for an fd `open` did not return. */
  digestOf(fd: number): Digest | undefined {
    return this.#digests.get(fd);
  }

  /** Forgets what an fd's slice and blob were; call on every close of an fd `open` returned. */
  closed(fd: number): void {
    this.#digests.delete(fd);
    if (this.slices.size) this.slices.delete(fd);
  }
}
