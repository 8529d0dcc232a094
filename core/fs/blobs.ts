/**
 * Opening blobs for the read path. A blob is served at once; its first open in this service asks
 * for it to be hashed off the FUSE thread (core/service/verifier.ts). One whose bytes do not match
 * its digest is marked corrupt and never opened again (EIO). Blobs are also verified when written
 * and by `spfs check`. A blob kept in a pack is opened as a dup of its pack's fd plus a slice
 * (offset, size) that the read op applies. Measured on the 10,000-file read row: opening a blob
 * by its full path, with a new C string each time, took 8.5–9.5 µs; openat from the objects dir
 * with a reused name buffer, 4 µs.
 */
import { errno, libc, O_CLOEXEC, O_RDONLY } from "../../ffi/sys.ts";
import { fstat, openDirAnchor, openFile } from "../../ffi/fsops.ts";
import { E } from "../../ffi/errno.ts";
import { type Digest, DIGEST_RE } from "../store/objects.ts";
import type { Slice } from "../store/packs.ts";
import { looseName } from "../store/store.ts";

/** Packs kept open at most; each later open of a blob in one is a dup(2), not an open(2). */
const MAX_PACK_FDS = 32;

/** Opens blobs read-only, and refuses the ones found corrupt. */
export class BlobOpener {
  /** Blobs already handed to the verifier (verified, or being verified). */
  readonly #asked = new Set<Digest>();
  readonly #corrupt = new Set<Digest>();
  readonly #objectsDir: string;
  /** The objects dir, opened once: a blob is then one short openat(2) walk (2 names, not ~8). */
  #dirFd = -1;
  /** `looseName(d)` as a C string, rebuilt in place for each open (no allocation). */
  readonly #name = new Uint8Array(80);
  readonly #packed: (d: Digest, refresh: boolean) => Slice | undefined;
  /** Pack path → an fd kept open on it, least recently opened first. */
  readonly #packFds = new Map<string, number>();
  /** fd of an open packed blob → [offset in its pack, size], both bytes. */
  readonly slices = new Map<number, [number, number]>();
  /** fd → the blob it was opened for. */
  readonly #digests = new Map<number, Digest>();
  readonly #verify: (d: Digest) => void;
  readonly #onMissing: (d: Digest) => void;

  /**
   * @param objectsDir the store's loose objects dir (ObjectStore.objectsDir)
   * @param verify asked once per blob, on its first successful open, to hash it elsewhere
   * @param onMissing told when a blob a layer names is not in the store (it is served as EIO)
   * @param packed where a blob is in a pack (Packs.find): asked first without `refresh` (the
   *   indexes in memory), and once more with it when there is no loose file either
   */
  constructor(
    objectsDir: string,
    verify: (d: Digest) => void,
    onMissing: (d: Digest) => void = () => {},
    packed: (d: Digest, refresh: boolean) => Slice | undefined = () => undefined,
  ) {
    this.#objectsDir = objectsDir;
    this.#packed = packed;
    this.#verify = verify;
    this.#onMissing = onMissing;
  }

  /** Marks a blob corrupt: every later open gets EIO. */
  markCorrupt(d: Digest): void {
    this.#corrupt.add(d);
  }

  /**
   * An O_RDONLY fd of the blob, or a negative errno: EIO when it was found corrupt, is missing
   * from the store (the file is listed, so ENOENT would mislead) or `d` is no digest, else
   * open(2)'s own. A packed blob's fd is a dup(2) of its pack's, with its range in `slices`.
   */
  open = (d: Digest): number => {
    if (this.#corrupt.has(d) || !DIGEST_RE.test(d)) return -E.EIO;
    // a pack the index already lists costs no failed openat; a new one is looked for last
    let s = this.#packed(d, false);
    let fd = s ? this.#openPacked(s.path) : this.#openLoose(d);
    if (fd === -E.ENOENT && s) { // its pack was removed since the index was read: a copy may be loose
      s = undefined;
      fd = this.#openLoose(d);
    }
    if (fd === -E.ENOENT) { // or in a pack that came or went since
      s = this.#packed(d, true);
      fd = s ? this.#openPacked(s.path) : -E.ENOENT;
      // out of descriptors is the caller's to handle (files.ts gives some back), not a lost blob
      if (fd === -E.ENOENT) {
        this.#onMissing(d);
        return -E.EIO;
      }
    }
    if (fd < 0) return fd;
    if (s) this.slices.set(fd, [s.offset, s.size]);
    this.#digests.set(fd, d);
    if (!this.#asked.has(d)) {
      this.#asked.add(d);
      this.#verify(d);
    }
    return fd;
  };

  #openLoose(d: Digest): number {
    if (this.#dirFd < 0) {
      const dir = openDirAnchor(this.#objectsDir);
      if (dir < 0) return dir;
      this.#dirFd = dir;
    }
    const name = looseName(d); // ASCII hex: one byte per UTF-16 unit
    for (let i = 0; i < name.length; i++) this.#name[i] = name.charCodeAt(i);
    this.#name[name.length] = 0;
    const fd = libc().openat(this.#dirFd, this.#name, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -(errno() || E.EIO) : fd;
  }

  /**
   * A new fd on the pack at `path`: a dup of the one kept open. A pack `spfs clean` removed is
   * dropped when the next pack is first opened (its fd would keep the space in use).
   */
  #openPacked(path: string): number {
    let base = this.#packFds.get(path);
    if (base === undefined) {
      for (const [p, kept] of this.#packFds) {
        const st = fstat(kept);
        if (typeof st === "number" || st.nlink === 0) this.#dropPack(p);
      }
      base = openFile(path, O_RDONLY);
      if (base < 0) return base;
      this.#packFds.set(path, base);
      if (this.#packFds.size > MAX_PACK_FDS) this.#dropPack(this.#packFds.keys().next().value!);
    }
    const fd = libc().dup(base);
    return fd < 0 ? -(errno() || E.EIO) : fd;
  }

  #dropPack(path: string): void {
    libc().close(this.#packFds.get(path)!);
    this.#packFds.delete(path);
  }

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
