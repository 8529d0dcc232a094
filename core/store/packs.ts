/**
 * Packs: tars of small objects kept whole in the store, as an OCI pull receives them or as a commit
 * writes them (encodePack, in tree order), so storing a tree of thousands of small files writes two
 * files instead of thousands (one file create costs 40 µs to 1 ms on this ext4, against a few µs to
 * index an entry), and a cold read of the tree reads a pack front to back.
 *
 * `<root>/packs/<hex>.tar` is the pack under its own sha256; `<hex>.idx` is its index, JSON
 * `{"v":1,"entries":[[objectHex, offset, size], …]}` (bytes). The index is written after the pack
 * and names only entries whose bytes were verified against their digest, so an index always points
 * into a complete, fsynced pack; a pack without an index is invisible and swept by `spfs clean`.
 * Objects in a pack are read in place (an fd plus an offset), never extracted.
 */
import { join } from "node:path";
import { lstat } from "../../ffi/fsops.ts";
import type { Digest } from "./objects.ts";
import { MultiPackIndex, type PackEntry } from "./pack_index.ts";

/** Where an object's bytes are: a whole loose file (offset 0) or a range of a pack. Bytes. */
export interface Slice {
  path: string;
  offset: number;
  size: number;
  /** True for a range of a pack (the file holds other objects too). */
  packed: boolean;
}

/** A pack on disk and what its index lists. */
export interface PackInfo {
  hex: string;
  tar: string;
  entries: PackEntry[];
}

/**
 * Objects smaller than this (bytes) may be packed, by a pull or a commit; larger ones are always
 * loose files, so a copy-up can clone them (overlay.ts slowCopyUp relies on it).
 */
export const PACKED_BELOW = 1 << 20;
/** A pack is cut once it holds this many bytes of object data. */
export const PACK_BYTES = 16 << 20;

/** A directory's mtime this close to now (ms) may hide a later change in the same tick. */
const RACY_MS = 2000;

/** The multi-pack index file in the packs dir (pack_index.ts). */
const MIDX = "index.midx";
/**
 * A process that finds this many packs missing from the multi-pack index writes a new one, so
 * the next process parses at most this many `.idx` files.
 */
const MIDX_AFTER = 16;

/**
 * The packs of one store, indexed in memory and re-read when the directory changes: the
 * multi-pack index, plus the `.idx` of each pack it does not cover.
 */
export class Packs {
  readonly dir: string;
  readonly #tmpPath: () => string;
  /** object hex → [pack hex, offset, size], for the packs the multi-pack index does not cover */
  #byHex = new Map<string, [string, number, number]>();
  #loaded = new Map<string, PackEntry[]>();
  #midx: MultiPackIndex | undefined;
  /** identity (inode, mtime, size) of the multi-pack index file #midx was read from */
  #midxId = "";
  /** 1 per pack number of #midx while that pack is indexed on disk */
  #alive = new Uint8Array(0);
  #midxUnwritable = false;
  #mtimeMs = -1;
  #loadedAtMs = 0;

  /** `tmpPath` gives a fresh tmp path on the same filesystem (the store's tmp dir). */
  constructor(dir: string, tmpPath: () => string) {
    this.dir = dir;
    this.#tmpPath = tmpPath;
  }

  /**
   * Where a packed object is, or undefined. It first re-reads the indexes when a pack came or went
   * (one lstat when none did), unless `refresh` is false: a caller asking about many objects
   * refreshes once, first, and one that finds the pack gone asks again with `refresh`.
   */
  find(d: Digest, refresh = true): Slice | undefined {
    if (refresh) this.#refresh();
    const hit = this.#lookup(d.slice(7));
    if (!hit) return undefined;
    return { path: join(this.dir, `${hit[0]}.tar`), offset: hit[1], size: hit[2], packed: true };
  }

  /** Re-reads the indexes if a pack came or went; see find(d, false). */
  refresh(): void {
    this.#refresh();
  }

  /** Hex digests of every packed object starting with `hexPrefix`, once each. */
  *hexes(hexPrefix = ""): Generator<string> {
    this.#refresh();
    const m = this.#midx;
    if (m) {
      let [from, to] = [0, m.length];
      if (/^[0-9a-f]{2}/.test(hexPrefix)) [from, to] = m.range(parseInt(hexPrefix.slice(0, 2), 16));
      let last = "";
      for (let i = from; i < to; i++) {
        if (!this.#alive[m.packAt(i)]) continue;
        const h = m.hexAt(i);
        if (h !== last && h.startsWith(hexPrefix)) yield h;
        last = h;
      }
    }
    for (const h of this.#byHex.keys()) {
      if (h.startsWith(hexPrefix) && !m?.find(h, this.#usable)) yield h;
    }
  }

  /**
   * Every indexed pack with its entries (read from its `.idx`), and the pack files that have no
   * index (an interrupted write).
   */
  list(): { packs: PackInfo[]; orphans: string[] } {
    const names = this.#names();
    const packs: PackInfo[] = [];
    const indexed = new Set<string>();
    for (const name of names) {
      if (!name.endsWith(".idx")) continue;
      const hex = name.slice(0, -4);
      const entries = this.#readIdx(hex);
      if (!entries) continue;
      indexed.add(hex);
      packs.push({ hex, tar: join(this.dir, `${hex}.tar`), entries });
    }
    const orphans = names.filter((n) => n.endsWith(".tar") && !indexed.has(n.slice(0, -4)))
      .map((n) => join(this.dir, n));
    return { packs, orphans };
  }

  /** True when pack `hex` is indexed on disk. */
  has(hex: string): boolean {
    return typeof lstat(join(this.dir, `${hex}.idx`)) !== "number";
  }

  /**
   * Publishes a pack: `tmpTar` (fsynced, its entries verified) becomes `<hex>.tar`, then `tmpIdx`
   * (fsynced, `encodePackIndex`) becomes `<hex>.idx`. Idempotent: a concurrent writer of the same
   * pack writes the same bytes.
   * @throws Deno errors from the file system; the caller removes its tmp files.
   */
  publish(hex: string, tmpTar: string, tmpIdx: string): void {
    Deno.mkdirSync(this.dir, { recursive: true });
    for (const [tmp, ext] of [[tmpTar, "tar"], [tmpIdx, "idx"]]) {
      Deno.chmodSync(tmp, 0o444);
      Deno.renameSync(tmp, join(this.dir, `${hex}.${ext}`));
    }
    syncDir(this.dir);
  }

  /** Removes a pack, index first so no reader is sent into a missing tar. */
  remove(hex: string): void {
    for (const ext of ["idx", "tar"]) {
      try {
        Deno.removeSync(join(this.dir, `${hex}.${ext}`));
      } catch { /* already gone */ }
    }
  }

  readonly #usable = (packNo: number) => this.#alive[packNo] === 1;

  #lookup(hex: string): [string, number, number] | undefined {
    const hit = this.#byHex.get(hex);
    if (hit || !this.#midx) return hit;
    const m = this.#midx.find(hex, this.#usable);
    return m && [this.#midx.packs[m[0]], m[1], m[2]];
  }

  #names(): string[] {
    try {
      return [...Deno.readDirSync(this.dir)].map((e) => e.name);
    } catch {
      return [];
    }
  }

  /** A pack's entries from its `.idx`, or undefined when it is gone or unreadable. */
  #readIdx(hex: string): PackEntry[] | undefined {
    try {
      const idx = JSON.parse(Deno.readTextFileSync(join(this.dir, `${hex}.idx`))) as { entries: PackEntry[] };
      return Array.isArray(idx.entries) ? idx.entries : undefined;
    } catch {
      return undefined;
    }
  }

  /** Re-reads indexes when the directory changed; true when anything was re-read. */
  #refresh(): boolean {
    // lstat through libc: a miss costs no exception, and misses are most lookups during a pull
    const st = lstat(this.dir);
    const mtime = typeof st === "number"
      ? -1
      : Number((st.mtimeNs ?? BigInt(st.time) * 1_000_000_000n) / 1_000_000n);
    // no directory, no packs: nothing can hide behind its mtime
    const racy = mtime >= 0 && this.#loadedAtMs - this.#mtimeMs < RACY_MS;
    if (mtime === this.#mtimeMs && !racy) return false;
    this.#loadedAtMs = Date.now();
    this.#mtimeMs = mtime;
    const changed = this.#index();
    if ((this.#loaded.size >= MIDX_AFTER || this.#alive.includes(0)) && !this.#midxUnwritable) {
      this.#writeMidx();
      this.#index();
    }
    return changed;
  }

  /**
   * Indexes the packs on disk: the multi-pack index, and the `.idx` of each pack it does not
   * cover. True when anything was (re-)read.
   */
  #index(): boolean {
    const present = new Set(this.#names().filter((n) => n.endsWith(".idx")).map((n) => n.slice(0, -4)));
    let changed = this.#readMidx();
    const packs = this.#midx?.packs ?? [];
    const alive = Uint8Array.from(packs, (h) => present.has(h) ? 1 : 0);
    if (alive.length !== this.#alive.length || alive.some((a, i) => a !== this.#alive[i])) changed = true;
    this.#alive = alive;
    const uncovered = new Set(present);
    for (const h of packs) uncovered.delete(h);
    let dropped = false;
    for (const hex of this.#loaded.keys()) {
      if (!uncovered.has(hex)) {
        this.#loaded.delete(hex);
        dropped = true;
      }
    }
    if (dropped) this.#byHex.clear();
    for (const hex of uncovered) {
      let entries = this.#loaded.get(hex);
      if (entries && !dropped) continue;
      if (!entries) {
        entries = this.#readIdx(hex);
        if (!entries) continue; // removed meanwhile
        this.#loaded.set(hex, entries);
      }
      changed = true;
      for (const [h, off, size] of entries) this.#byHex.set(h, [hex, off, size]);
    }
    return changed || dropped;
  }

  /** Reads the multi-pack index if its file changed; true when it did. */
  #readMidx(): boolean {
    const path = join(this.dir, MIDX);
    const st = lstat(path);
    const id = typeof st === "number" ? "" : `${st.ino}:${st.mtimeNs ?? st.time}:${st.size}`;
    if (id === this.#midxId) return false;
    this.#midxId = id;
    this.#midx = undefined;
    if (id) {
      try {
        this.#midx = MultiPackIndex.decode(Deno.readFileSync(path));
      } catch { /* removed meanwhile: the .idx files still answer */ }
    }
    return true;
  }

  /**
   * Writes a multi-pack index of every pack this process has indexed (tmp → fsync → rename). Best
   * effort: a store this process cannot write keeps answering from the `.idx` files.
   */
  #writeMidx(): void {
    const m = this.#midx;
    const keep = new Set(m?.packs.filter((_, i) => this.#alive[i]));
    const tmp = this.#tmpPath();
    try {
      const bytes = MultiPackIndex.build(m, keep, this.#loaded);
      using f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o444 });
      for (let at = 0; at < bytes.length;) at += f.writeSync(bytes.subarray(at));
      f.syncSync();
      Deno.renameSync(tmp, join(this.dir, MIDX));
    } catch {
      this.#midxUnwritable = true;
      try {
        Deno.removeSync(tmp);
      } catch { /* never created */ }
    }
  }
}

/** fsync of a directory so the renames in it are durable; best effort (some filesystems refuse). */
function syncDir(dir: string): void {
  try {
    using f = Deno.openSync(dir, { read: true });
    f.syncSync();
  } catch { /* best effort */ }
}

/** One regular file of a tar: its name, and where its bytes are (offset and size in bytes). */
export interface TarEntry {
  name: string;
  offset: number;
  size: number;
}

const USTAR = [0x75, 0x73, 0x74, 0x61, 0x72]; // "ustar" at byte 257 of a header

/**
 * Reads the headers of a ustar archive as its bytes arrive in one buffer, as written by tar-stream
 * for packs (names of at most 100 bytes, no extended headers). tar-stream gives names but not
 * offsets, which reading in place needs. Entry data starts 512 bytes after its header and is
 * padded to 512.
 */
export class TarScanner {
  #pos = 0;
  /** True once the end-of-archive block was read. */
  done = false;

  /**
   * The entries not returned before whose data lies wholly in `bytes[0, end)`. With `end` equal to
   * `bytes.length` the archive must be complete.
   * @throws Error on a header that is not ustar, an entry that is not a plain file, or (at the end)
   *   a cut-off tar or one without its end-of-archive block.
   */
  scan(bytes: Uint8Array, end: number): TarEntry[] {
    const out: TarEntry[] = [];
    const last = end >= bytes.length;
    while (!this.done) {
      const pos = this.#pos;
      if (pos + 512 > end) {
        if (last) throw new Error("tar ends without its end-of-archive block");
        break;
      }
      if (bytes[pos] === 0) {
        this.done = true; // end-of-archive blocks
        break;
      }
      const name = cString(bytes, pos, 100);
      if (USTAR.some((c, i) => bytes[pos + 257 + i] !== c)) {
        throw new Error(`tar header at ${pos} is not ustar`);
      }
      const size = octal(bytes, pos + 124, 12);
      const type = bytes[pos + 156] || 0x30;
      const offset = pos + 512;
      if (!Number.isSafeInteger(size) || offset + size > bytes.length) {
        throw new Error(`tar entry ${name} is cut off`);
      }
      if (offset + size > end) break;
      if (type === 0x30) out.push({ name, offset, size });
      else if (type !== 0x35) {
        throw new Error(
          `tar entry ${name} has type ${String.fromCharCode(type)}; packs hold plain files only`,
        );
      }
      this.#pos = offset + Math.ceil(size / 512) * 512;
    }
    return out;
  }
}

/**
 * A pack's bytes: a ustar archive of `objects` in the order given (each named by its hex digest,
 * mode 0444, owner 0, mtime 0), and the index entries (offsets in bytes) that TarScanner would
 * find in it. The same objects in the same order always give the same bytes.
 * Layout per POSIX.1-2017 `pax` "ustar Interchange Format": a 512-byte header, the data padded
 * to 512, and two zero blocks at the end.
 */
export function encodePack(objects: { hex: string; bytes: Uint8Array }[]): {
  bytes: Uint8Array;
  entries: PackEntry[];
} {
  const size = packSize(objects.map((o) => o.bytes.length));
  const out = new Uint8Array(size);
  const entries: PackEntry[] = [];
  let pos = 0;
  for (const { hex, bytes } of objects) {
    const h = out.subarray(pos, pos + 512);
    const field = (at: number, text: string) => {
      for (let i = 0; i < text.length; i++) h[at + i] = text.charCodeAt(i);
    };
    const num = (at: number, len: number, n: number) => field(at, n.toString(8).padStart(len - 1, "0"));
    field(0, hex);
    num(100, 8, 0o444);
    num(108, 8, 0);
    num(116, 8, 0);
    num(124, 12, bytes.length);
    num(136, 12, 0);
    field(148, "        "); // the checksum counts its own field as spaces
    h[156] = 0x30; // regular file
    field(257, "ustar\x0000");
    num(329, 8, 0);
    num(337, 8, 0);
    field(148, h.reduce((a, b) => a + b, 0).toString(8).padStart(6, "0") + "\x00 ");
    out.set(bytes, pos + 512);
    entries.push([hex, pos + 512, bytes.length]);
    pos += 512 + Math.ceil(bytes.length / 512) * 512;
  }
  return { bytes: out, entries };
}

/** Size in bytes of the pack encodePack writes for objects of these sizes (bytes). */
export function packSize(sizes: number[]): number {
  return sizes.reduce((a, n) => a + 512 + Math.ceil(n / 512) * 512, 1024);
}

/** The regular files of a whole ustar archive held in memory (see TarScanner). @throws as scan. */
export function tarEntries(bytes: Uint8Array): TarEntry[] {
  return new TarScanner().scan(bytes, bytes.length);
}

const utf8 = new TextDecoder();

/** A NUL-terminated header field. */
function cString(bytes: Uint8Array, at: number, len: number): string {
  const b = bytes.subarray(at, at + len);
  const end = b.indexOf(0);
  return utf8.decode(end < 0 ? b : b.subarray(0, end));
}

/** An octal number field (digits, then spaces or NULs); NaN when it holds anything else. */
function octal(bytes: Uint8Array, at: number, len: number): number {
  let n = 0, i = at;
  while (i < at + len && bytes[i] === 0x20) i++;
  for (; i < at + len && bytes[i] >= 0x30 && bytes[i] <= 0x37; i++) n = n * 8 + bytes[i] - 0x30;
  for (; i < at + len; i++) if (bytes[i] !== 0 && bytes[i] !== 0x20) return NaN;
  return n;
}
