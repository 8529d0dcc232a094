/**
 * Content-addressed object store: `objects/sha256/ab/cdef…`, mode 0444, plus packs of small
 * objects kept whole as pulled (packs.ts). Every write goes tmp → fsync → rename, so a crash never
 * leaves a partial object at its final path.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { processExited } from "../../ffi/sys.ts";
import { closeFd, fdPath, lstat, openRegular, utimens } from "../../ffi/fsops.ts";
import { errnoName } from "../../ffi/errno.ts";
import { storagePaths } from "../config.ts";
import { encodePackIndex, type PackEntry } from "./pack_index.ts";
import { encodePack, Packs, type Slice, TarScanner } from "./packs.ts";
import { SpfsError } from "../errors.ts";
import {
  decodeObject,
  type Digest,
  DIGEST_RE,
  digestBytes,
  digestFile,
  looksStructured,
  type StructuredObject,
} from "./objects.ts";

const CHUNK = 1 << 20;

/** Storage-level failure mapped to a user-facing error (disk full gets its own message). */
export function storageError(what: string, e: unknown): SpfsError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/No space left|ENOSPC/i.test(msg)) {
    return new SpfsError("StorageFull", `storage full while ${what}`, {
      hint: "free space on the storage volume (or set SPFS_STORAGE_ROOT elsewhere) and retry",
      cause: e,
    });
  }
  return new SpfsError("StorageError", `${what}: ${msg}`, { cause: e });
}

/** A file's identity: st_dev and st_ino. */
export interface FileId {
  dev: number;
  ino: number;
}

/** st_dev and st_ino of a stat result. */
export function idOf(st: Deno.FileInfo): FileId {
  return { dev: st.dev, ino: st.ino ?? 0 };
}

/** Whether `st` is the file `id`. */
export function sameFile(st: Deno.FileInfo, id: FileId): boolean {
  return st.dev === id.dev && (st.ino ?? 0) === id.ino;
}

/**
 * Opens for reading the regular file at `path`, never through a symlink at its last component,
 * and (given `id`, what a scan saw there) only if it is that very file: a program may have swapped
 * the name, or a dir above it, since the scan, and the service may run as root. Read it through
 * `fdPath`; close it with `closeFd`.
 * @returns the fd
 * @throws Deno.errors.NotFound when the name holds anything else now (the tree changed)
 */
export function openScanned(path: string, id?: FileId): number {
  const fd = openRegular(path);
  if (fd < 0) throw new Deno.errors.NotFound(`${path} is no longer a regular file (${errnoName(-fd)})`);
  if (id && !sameFile(Deno.statSync(fdPath(fd)), id)) {
    closeFd(fd);
    throw new Deno.errors.NotFound(`${path} was replaced`);
  }
  return fd;
}

/**
 * Where a loose object's file is below the objects dir: `ab/cdef…` (a 2-hex fan-out, then the rest
 * of the hex digest). Concatenated, not join()ed: the read path opens a blob through this.
 */
export function looseName(digest: Digest): string {
  return `${digest.slice(7, 9)}/${digest.slice(9)}`;
}

/** The object store under one storage root. */
export class ObjectStore {
  readonly root: string;
  readonly objectsDir: string;
  readonly tmpDir: string;
  /** Packs of small objects, read in place. */
  readonly packs: Packs;
  /** A directory other machines write too (a file:// remote): tmp names carry the host name. */
  readonly shared: boolean;
  #seq = 0;

  private constructor(root: string, shared: boolean) {
    this.root = root;
    this.shared = shared;
    const p = storagePaths(root);
    this.objectsDir = p.objects;
    this.tmpDir = p.tmp;
    this.packs = new Packs(p.packs, () => this.tmpPath());
  }

  /**
   * Opens (creating if needed) the store and sweeps tmp files left by dead writers.
   * @throws SpfsError StorageError when the root cannot be created or written.
   */
  static open(root: string, opts: { shared?: boolean } = {}): ObjectStore {
    const s = new ObjectStore(root, !!opts.shared);
    try {
      Deno.mkdirSync(s.objectsDir, { recursive: true });
      Deno.mkdirSync(s.tmpDir, { recursive: true });
    } catch (e) {
      throw storageError(`creating storage root ${root}`, e);
    }
    s.sweepTmp();
    return s;
  }

  /**
   * Removes tmp files whose writer process is gone (names start with the writer pid). In a shared
   * store a pid means nothing on another machine: only tmp files older than a day go.
   */
  sweepTmp(): number {
    let n = 0;
    for (const e of Deno.readDirSync(this.tmpDir)) {
      if (this.shared) {
        const age = Date.now() - (Deno.statSync(join(this.tmpDir, e.name)).mtime?.getTime() ?? Date.now());
        if (age > 86_400_000) Deno.removeSync(join(this.tmpDir, e.name), { recursive: true });
        continue;
      }
      const pid = Number(e.name.split(".")[0]);
      // a zombie counts as gone: a killed writer whose parent does not reap it never writes again
      if (pid === Deno.pid || (Number.isInteger(pid) && pid > 0 && !processExited(pid))) continue;
      try {
        Deno.removeSync(join(this.tmpDir, e.name), { recursive: true });
        n++;
      } catch { /* raced with another sweeper */ }
    }
    return n;
  }

  /** Final path of an object. Throws on a malformed digest. */
  path(digest: Digest): string {
    if (!DIGEST_RE.test(digest)) throw new SpfsError("UnknownRef", `not a digest: ${digest}`);
    return `${this.objectsDir}/${looseName(digest)}`;
  }

  /** True when the object is in the store, loose or packed. */
  has(digest: Digest): boolean {
    // lstat through libc: a miss costs no exception (a pull or commit asks thousands of times)
    return typeof lstat(this.path(digest)) !== "number" || this.packs.find(digest) !== undefined;
  }

  /**
   * Like has(), and when present marks the object as just used (mtime now; for a packed object,
   * its pack's), so `spfs clean`'s grace period protects an object a commit or pull is reusing
   * while its parent is not yet written.
   */
  reuse(digest: Digest): boolean {
    return this.#reuse(digest, true, true);
  }

  /**
   * reuse() for many objects at once; returns the ones present. One look at the packs and at the
   * fan-out dirs serves every digest, so asking about thousands of objects an empty or new store
   * lacks costs no system call each (a pull of npm's tree asks about 2,000).
   */
  reuseAll(digests: Iterable<Digest>): Set<Digest> {
    let fanouts: Set<string>;
    try {
      fanouts = new Set([...Deno.readDirSync(this.objectsDir)].map((e) => e.name));
    } catch {
      fanouts = new Set();
    }
    this.packs.refresh();
    const touched = new Map<string, boolean>();
    const out = new Set<Digest>();
    for (const d of digests) if (this.#reuse(d, fanouts.has(d.slice(7, 9)), false, touched)) out.add(d);
    return out;
  }

  /**
   * reuse() of one object. `maybeLoose` false skips the loose-file probe (its fan-out dir is
   * absent); `refresh` lets a pack-index miss re-read the indexes; `touched` remembers, per pack
   * path, whether marking it worked, so a batch touches each pack once.
   */
  #reuse(digest: Digest, maybeLoose: boolean, refresh: boolean, touched?: Map<string, boolean>): boolean {
    if (maybeLoose && utimens(this.path(digest), "now", "now") === 0) return true;
    const s = this.packs.find(digest, refresh);
    if (!s) return false;
    let kept = touched?.get(s.path);
    if (kept === undefined) {
      kept = utimens(s.path, "now", "now") === 0;
      touched?.set(s.path, kept);
    }
    // a pack removed by a clean meanwhile: then only a loose copy counts
    return kept || this.has(digest);
  }

  /** Where an object's bytes are (a loose file, or a range of a pack), or undefined when absent. */
  locate(digest: Digest): Slice | undefined {
    const path = this.path(digest);
    const st = lstat(path);
    return typeof st !== "number"
      ? { path, offset: 0, size: st.size, packed: false }
      : this.packs.find(digest);
  }

  /** Size of an object in bytes. @throws SpfsError UnknownRef when absent. */
  size(digest: Digest): number {
    const s = this.locate(digest);
    if (!s) throw new SpfsError("UnknownRef", `object ${digest} is not in the store at ${this.root}`);
    return s.size;
  }

  /** A fresh tmp path owned by this process. */
  tmpPath(): string {
    const host = this.shared ? `.${Deno.hostname()}` : "";
    return join(this.tmpDir, `${Deno.pid}.${Date.now().toString(36)}.${(this.#seq++).toString(36)}${host}`);
  }

  /** Moves a fully written, fsynced tmp file to its object path (0444). Idempotent. */
  #publish(tmp: string, digest: Digest): void {
    const dst = this.path(digest);
    Deno.chmodSync(tmp, 0o444);
    try {
      Deno.renameSync(tmp, dst);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      Deno.mkdirSync(join(dst, ".."), { recursive: true });
      Deno.renameSync(tmp, dst);
    }
  }

  /**
   * Stores bytes as an object and returns its digest. Skips the write when it already exists.
   * @throws SpfsError StorageError (including "storage full") with no partial object left.
   */
  putBytes(bytes: Uint8Array): Digest {
    const digest = digestBytes(bytes);
    if (!this.reuse(digest)) this.#write(bytes, digest);
    return digest;
  }

  /** tmp → fsync → rename of bytes known to hash to `digest`. */
  #write(bytes: Uint8Array, digest: Digest): void {
    const tmp = this.tmpPath();
    try {
      writeDurable(tmp, bytes);
      this.#publish(tmp, digest);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* already gone */ }
      throw storageError("writing an object", e);
    }
  }

  /**
   * Stores bytes received for `digest` (from a remote), refusing bytes that do not match.
   * @throws SpfsError CorruptObject naming `from`; StorageError.
   */
  putVerified(bytes: Uint8Array, digest: Digest, from: string): void {
    if (this.reuse(digest)) return;
    const got = digestBytes(bytes);
    if (got !== digest) throw receivedMismatch(digest, got, from);
    this.#write(bytes, digest);
  }

  /**
   * Keeps a tar of objects named by their hex digest (an OCI pack or manifests tar, already
   * verified against `packDigest`) whole as a pack, after checking every entry against its name
   * (`entries`: what `verifiedPackEntries` already returned for these bytes). Entries the store
   * already has are indexed too (reading either copy is fine). Returns the digests the pack holds.
   * The check runs while another thread fsyncs the tar; the index is renamed only after both files
   * are durable.
   * @throws SpfsError CorruptObject naming `from` (nothing is published); StorageError.
   */
  async putPack(
    bytes: Uint8Array,
    packDigest: Digest,
    from: string,
    entries?: PackEntry[],
  ): Promise<Digest[]> {
    const hex = packDigest.slice(7);
    if (this.packs.has(hex)) {
      const known = entries ?? verifiedPackEntries(bytes, packDigest, from);
      if (known.length) this.reuse(`sha256:${known[0][0]}`);
      return known.map(([h]) => `sha256:${h}`);
    }
    return await this.#writePack(hex, (write) => {
      write(bytes);
      return Promise.resolve(bytes);
    }, (b) => entries ?? verifiedPackEntries(b, packDigest, from));
  }

  /**
   * Stores small objects (each under PACKED_BELOW bytes; `digest` is the sha256 of `bytes`, as the
   * caller computed it) as one new pack, in the order given, so reading them in that order reads
   * the pack front to back. Objects the store may already have are the caller's to skip. Returns
   * the pack's digest, or undefined for no objects.
   * @throws SpfsError StorageError, with nothing published.
   */
  async putObjects(objects: { digest: Digest; bytes: Uint8Array }[]): Promise<Digest | undefined> {
    if (!objects.length) return undefined;
    const { bytes, entries } = encodePack(objects.map((o) => ({ hex: o.digest.slice(7), bytes: o.bytes })));
    const digest = digestBytes(bytes);
    await this.putPack(bytes, digest, this.root, entries);
    return digest;
  }

  /**
   * putPack() of a pack as it arrives (`pack`: its descriptor, size in bytes): each chunk is hashed
   * and written when received, and the disk starts on it early (WriteBack), so after the last
   * byte only the entry check and the tail's fsync are left. `onBytes` reports progress.
   * @throws SpfsError CorruptObject naming `from` (more bytes than `pack.size`, a wrong digest, a bad
   *   entry; nothing is published); StorageError; the stream's own error, as thrown (a dropped
   *   connection is the caller's to retry).
   */
  async putPackStream(
    stream: ReadableStream<Uint8Array>,
    pack: { digest: Digest; size: number },
    from: string,
    onBytes?: (n: number) => void,
  ): Promise<Digest[]> {
    const entries: PackEntry[] = [];
    const tar = new TarScanner();
    return await this.#writePack(pack.digest.slice(7), (write) =>
      // entries are checked as soon as their bytes are in, while the next chunk is on its way
      receiveVerified(stream, pack, from, (c, bytes, n) => {
        write(c);
        onBytes?.(c.length);
        if (n < pack.size) {
          for (const e of verifiedEntries(bytes, tar, n, pack.digest, from)) entries.push(e);
        }
      }), (bytes) => {
      for (const e of verifiedEntries(bytes, tar, bytes.length, pack.digest, from)) entries.push(e);
      return entries;
    });
  }

  /**
   * Writes pack `hex` through `fill` (which passes the tar to `write` and returns its bytes), checks
   * its entries with `verify` while the disk flushes the tar, writes the index, fsyncs it alongside,
   * and publishes both. Throws what `fill` throws as is (nothing published, tmp files removed).
   * @throws SpfsError from `verify`; StorageError.
   */
  async #writePack(
    hex: string,
    fill: (write: (chunk: Uint8Array) => void) => Promise<Uint8Array>,
    verify: (bytes: Uint8Array) => PackEntry[],
  ): Promise<Digest[]> {
    const tmpTar = this.tmpPath(), tmpIdx = this.tmpPath();
    let checked: PackEntry[];
    let fillFailed = false;
    try {
      using tar = openNew(tmpTar);
      const wb = new WriteBack(tar);
      const write = (chunk: Uint8Array) => {
        try {
          writeFile(tar, chunk);
        } catch (e) {
          throw storageError("writing a pack", e);
        }
        wb.wrote(chunk.length);
      };
      let bytes: Uint8Array;
      try {
        bytes = await fill(write);
      } catch (e) {
        fillFailed = true;
        await wb.settle(); // never close the fd under a running fsync
        throw e;
      }
      const tarSynced = wb.finish().then(() => undefined, (e: unknown) => ({ e }));
      try {
        checked = verify(bytes);
        using idx = openNew(tmpIdx);
        writeFile(idx, encodePackIndex(checked));
        idx.syncSync(); // alongside the tar's fsync
      } catch (e) {
        await tarSynced;
        throw e;
      }
      const failed = await tarSynced;
      if (failed) throw failed.e;
      // the index names only verified entries, and is renamed only after both files are durable
      this.packs.publish(hex, tmpTar, tmpIdx);
    } catch (e) {
      for (const t of [tmpTar, tmpIdx]) {
        try {
          Deno.removeSync(t);
        } catch { /* published or never made */ }
      }
      throw e instanceof SpfsError || fillFailed ? e : storageError("writing a pack", e);
    }
    return checked.map(([h]) => `sha256:${h}`);
  }

  /** A stream of an object's bytes (loose or packed). @throws SpfsError UnknownRef when absent. */
  openStream(digest: Digest): ReadableStream<Uint8Array> {
    const s = this.locate(digest);
    if (!s) throw new SpfsError("UnknownRef", `object ${digest} is not in the store at ${this.root}`);
    if (s.packed) return ReadableStream.from([readSlice(s)]);
    return Deno.openSync(s.path, { read: true }).readable;
  }

  /**
   * Streams bytes received for `digest` into the store, hashing while writing; publishes only when
   * the hash matches, so an interrupted or corrupt transfer leaves no object.
   * `onBytes` reports progress (bytes since the last call).
   * @throws SpfsError CorruptObject naming `from`; StorageError; the stream's own error.
   */
  async putStream(
    stream: ReadableStream<Uint8Array>,
    digest: Digest,
    from: string,
    onBytes?: (n: number) => void,
  ): Promise<void> {
    const tmp = this.tmpPath();
    const hash = createHash("sha256");
    try {
      const out = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
      try {
        for await (const chunk of stream) {
          hash.update(chunk);
          let off = 0;
          while (off < chunk.length) off += await out.write(chunk.subarray(off));
          onBytes?.(chunk.length);
        }
        await out.sync();
      } finally {
        out.close();
      }
      const got = `sha256:${hash.digest("hex")}`;
      if (got !== digest) throw receivedMismatch(digest, got, from);
      if (this.reuse(digest)) Deno.removeSync(tmp);
      else this.#publish(tmp, digest);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* never created */ }
      if (
        e instanceof SpfsError || !(e instanceof Deno.errors.NotFound || /ENOSPC|No space/.test(String(e)))
      ) {
        throw e;
      }
      throw storageError(`writing ${digest}`, e);
    }
  }

  /**
   * Streams a file into the store, hashing while copying. Returns its digest and size in bytes.
   * `onBytes` reports progress (bytes since the last call).
   * @throws SpfsError StorageError with no partial object left.
   */
  async putFile(
    src: string,
    onBytes?: (n: number) => void,
    id?: FileId,
  ): Promise<{ digest: Digest; size: number }> {
    const tmp = this.tmpPath();
    const hash = createHash("sha256");
    let size = 0;
    let fd = -1;
    try {
      fd = openScanned(src, id);
      const input = await Deno.open(fdPath(fd), { read: true });
      const out = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
      try {
        const buf = new Uint8Array(CHUNK);
        while (true) {
          const n = await input.read(buf);
          if (n === null) break;
          const chunk = buf.subarray(0, n);
          hash.update(chunk);
          let off = 0;
          while (off < n) off += await out.write(chunk.subarray(off));
          size += n;
          onBytes?.(n);
        }
        await out.sync();
      } finally {
        input.close();
        out.close();
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (this.reuse(digest)) Deno.removeSync(tmp);
      else this.#publish(tmp, digest);
      return { digest, size };
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* never created */ }
      throw storageError(`importing ${src}`, e);
    } finally {
      if (fd >= 0) closeFd(fd);
    }
  }

  /** fsyncs every fan-out dir so the renames themselves are durable. */
  syncDirs(): void {
    for (const d of Deno.readDirSync(this.objectsDir)) {
      try {
        const f = Deno.openSync(join(this.objectsDir, d.name), { read: true });
        f.syncSync();
        f.close();
      } catch { /* best effort: some filesystems refuse fsync on dirs */ }
    }
  }

  /**
   * Reads an object and verifies its digest.
   * @throws SpfsError UnknownRef when missing, CorruptObject when the bytes do not match.
   */
  readVerified(digest: Digest): Uint8Array {
    let bytes: Uint8Array | undefined;
    for (let attempt = 0; !bytes; attempt++) {
      const s = this.locate(digest);
      if (!s) throw new SpfsError("UnknownRef", `object ${digest} is not in the store at ${this.root}`);
      try {
        bytes = readSlice(s);
      } catch (e) {
        // a pack removed by a clean while this object is loose again: look once more
        if (!(e instanceof Deno.errors.NotFound) || attempt > 0) throw storageError(`reading ${digest}`, e);
      }
    }
    if (digestBytes(bytes) !== digest) {
      throw new SpfsError("CorruptObject", `object ${digest} does not match its digest`, {
        hint: "run `spfs check`; re-import the source to repair it",
      });
    }
    return bytes;
  }

  /** Reads and decodes a manifest, layer or platform. */
  readObject(digest: Digest): StructuredObject {
    return decodeObject(this.readVerified(digest), digest);
  }

  /** Object kind without full decoding: "blob" or the structured type. */
  kindOf(digest: Digest): "blob" | "manifest" | "layer" | "platform" {
    const s = this.locate(digest);
    if (!s) throw new Deno.errors.NotFound(`object ${digest}`);
    if (!looksStructured(readSlice({ ...s, size: Math.min(32, s.size) }))) return "blob";
    return this.readObject(digest).type.slice(5, -2) as "manifest" | "layer" | "platform";
  }

  /** Every digest starting with a hex prefix (at least 2 hex chars). */
  findByPrefix(hexPrefix: string): Digest[] {
    const dir = join(this.objectsDir, hexPrefix.slice(0, 2));
    const rest = hexPrefix.slice(2);
    const out: Digest[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.name.startsWith(rest)) out.push(`sha256:${hexPrefix.slice(0, 2)}${e.name}`);
      }
    } catch { /* no such fan-out dir */ }
    for (const h of this.packs.hexes(hexPrefix)) out.push(`sha256:${h}`);
    return [...new Set(out)].sort();
  }

  /** Every loose object's digest. */
  *loose(): Generator<Digest> {
    for (const d of Deno.readDirSync(this.objectsDir)) {
      if (!d.isDirectory) continue;
      for (const e of Deno.readDirSync(join(this.objectsDir, d.name))) yield `sha256:${d.name}${e.name}`;
    }
  }

  /** Every object digest in the store, loose or packed, once each. */
  *all(): Generator<Digest> {
    const seen = new Set<string>();
    for (const d of this.loose()) {
      seen.add(d);
      yield d;
    }
    for (const h of this.packs.hexes()) if (!seen.has(`sha256:${h}`)) yield `sha256:${h}`;
  }

  /** Verifies every object's bytes against its digest; returns the corrupt ones. */
  async verifyAll(progress?: (done: number) => void): Promise<Digest[]> {
    const bad: Digest[] = [];
    let done = 0;
    for (const d of this.all()) {
      progress?.(++done);
      const s = this.locate(d);
      if (!s) continue; // removed by a clean meanwhile
      try {
        if ((s.packed ? digestBytes(readSlice(s)) : await digestFile(s.path)) !== d) bad.push(d);
      } catch {
        bad.push(d);
      }
    }
    return bad;
  }
}

/**
 * Receives up to `want.size` bytes from `stream` into one buffer, hashing them as they come, and
 * returns what came once it hashes to `want.digest`. `onChunk` sees each chunk with the buffer and how much
 * of it is filled so far.
 * @throws SpfsError CorruptObject naming `from` (more bytes than announced, or the wrong digest);
 *   what `onChunk` throws; the stream's own error, as thrown.
 */
export async function receiveVerified(
  stream: ReadableStream<Uint8Array>,
  want: { digest: Digest; size: number },
  from: string,
  onChunk?: (chunk: Uint8Array, bytes: Uint8Array, filled: number) => void,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(want.size);
  const hash = createHash("sha256");
  let n = 0;
  for await (const c of stream) {
    if (n + c.length > want.size) {
      throw receivedMismatch(want.digest, `more than the ${want.size} bytes its descriptor says`, from);
    }
    bytes.set(c, n);
    n += c.length;
    hash.update(c);
    onChunk?.(c, bytes, n);
  }
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== want.digest) throw receivedMismatch(want.digest, got, from);
  return n === want.size ? bytes : bytes.subarray(0, n);
}

/** The error for bytes from `from` that do not hash to the digest they were asked for. */
export function receivedMismatch(want: Digest, got: Digest, from: string): SpfsError {
  return new SpfsError("CorruptObject", `${from} sent bytes for ${want} that hash to ${got}`, {
    hint: "the copy there is damaged: push it again from a good store; nothing was written here",
  });
}

/**
 * The entries of a pack or manifests tar received from `from`, each checked against the digest it
 * is named by.
 * @throws SpfsError CorruptObject when the tar cannot be read or an entry does not match.
 */
export function verifiedPackEntries(bytes: Uint8Array, packDigest: Digest, from: string): PackEntry[] {
  return verifiedEntries(bytes, new TarScanner(), bytes.length, packDigest, from);
}

/** verifiedPackEntries() of the entries `tar` finds complete in `bytes[0, end)`. */
function verifiedEntries(
  bytes: Uint8Array,
  tar: TarScanner,
  end: number,
  packDigest: Digest,
  from: string,
): PackEntry[] {
  let found;
  try {
    found = tar.scan(bytes, end);
  } catch (e) {
    throw new SpfsError("CorruptObject", `${from} sent a pack ${packDigest} that is not a valid tar: ${e}`, {
      hint: "push the layer again from a good store",
    });
  }
  return found.map(({ name, offset, size }) => {
    const want = `sha256:${name}`;
    if (!DIGEST_RE.test(want)) throw receivedMismatch(want, "an entry that is not named by a digest", from);
    const got = digestBytes(bytes.subarray(offset, offset + size));
    if (got !== want) throw receivedMismatch(want, got, from);
    return [name, offset, size];
  });
}

/** Writes bytes to a new file (mode 0644) and fsyncs it. @throws Deno errors; the file may remain. */
function writeDurable(path: string, bytes: Uint8Array): void {
  using f = openNew(path);
  writeFile(f, bytes);
  f.syncSync();
}

/** Bytes received into a file between two early flushes (WriteBack). */
const WRITEBACK_BYTES = 4 << 20;

/**
 * Gets the disk writing a file's dirty pages while more bytes arrive: an fdatasync on Deno's
 * blocking pool each WRITEBACK_BYTES (one at a time), so the fsync after the last byte has only the
 * tail left (measured 22 → 2.5 ms for 12 MiB on this ext4). Use with writeSync only: Deno runs an
 * async write behind a pending sync on the same file. The fd must stay open until `settle` or
 * `finish` resolved.
 */
class WriteBack {
  #f: Deno.FsFile;
  #since = 0;
  #inflight?: Promise<void>;
  #error?: { e: unknown };

  constructor(f: Deno.FsFile) {
    this.#f = f;
  }

  /** Counts `n` more bytes written; starts an early flush when enough piled up. */
  wrote(n: number): void {
    this.#since += n;
    if (this.#since < WRITEBACK_BYTES || this.#inflight) return;
    this.#since = 0;
    this.#inflight = this.#f.syncData().then(
      () => {
        this.#inflight = undefined;
      },
      (e) => {
        this.#error ??= { e };
        this.#inflight = undefined;
      },
    );
  }

  /** Resolves when no early flush is running (before closing the fd on an error path). */
  async settle(): Promise<void> {
    await this.#inflight;
  }

  /** Waits for any early flush, then fsyncs. @throws the first flush's error. */
  async finish(): Promise<void> {
    await this.#inflight;
    if (!this.#error) await this.#f.sync();
    if (this.#error) throw this.#error.e;
  }
}

/** A new file (mode 0644) for writing. @throws Deno.errors.AlreadyExists, other Deno errors. */
function openNew(path: string): Deno.FsFile {
  return Deno.openSync(path, { write: true, createNew: true, mode: 0o644 });
}

/** Writes all of `bytes` at `f`'s position. @throws Deno errors. */
function writeFile(f: Deno.FsFile, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
}

/**
 * Reads a slice of a file (a loose object, or an object inside a pack).
 * @throws Deno.errors.NotFound when the file is gone; other read errors.
 */
export function readSlice(s: { path: string; offset: number; size: number }): Uint8Array {
  const out = new Uint8Array(s.size);
  using f = Deno.openSync(s.path, { read: true });
  if (s.offset) f.seekSync(s.offset, Deno.SeekMode.Start);
  let n = 0;
  while (n < s.size) {
    const r = f.readSync(out.subarray(n));
    if (r === null) throw new Error(`${s.path} ends ${s.size - n} bytes early`);
    n += r;
  }
  return out;
}
