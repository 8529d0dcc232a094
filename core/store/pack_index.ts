/**
 * Pack indexes. Each pack has its own, `<hex>.idx` (packs.ts). The multi-pack index,
 * `packs/index.midx`, holds the entries of many packs in one file, sorted by object digest, so a
 * process finds a packed object by a binary search of one file it reads whole instead of parsing
 * every pack's JSON index into a map (about 3 µs an entry: 100,000 packed objects cost each CLI
 * command 0.3–0.4 s before its first lookup; 20 ms with this file).
 *
 * It is a cache: each pack's `.idx` stays the truth. A pack the file does not list is read from
 * its `.idx`; an entry whose pack is gone is skipped, so an object kept in two packs appears twice.
 *
 * Layout, in the host's byte order (little-endian on every platform spfs runs on); every section
 * starts 8-byte aligned so typed arrays view it in place:
 *
 *     "SPFSMIDX" | u32 version (1) | u32 packs P | u32 entries E | u32 0 | 8 bytes 0
 *     u32 fanout[256]   entries whose digest's first byte is ≤ i
 *     P × 32 bytes      pack digests, sorted
 *     E × 32 bytes      object digests, sorted
 *     E × f64           byte offset of the object in its pack
 *     E × u32           size in bytes
 *     E × u32           pack number (into the pack list)
 */

/** One entry of a pack's own index: object hex digest, byte offset in the pack, size in bytes. */
export type PackEntry = [hex: string, offset: number, size: number];

/** The bytes of a pack's own index file (`<hex>.idx`, packs.ts). */
export function encodePackIndex(entries: PackEntry[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, entries }));
}

const MAGIC = "SPFSMIDX";
const HEADER = 32;
const FANOUT = 256 * 4;

/** A decoded multi-pack index, read in place from its bytes. */
export class MultiPackIndex {
  /** Pack hex digests, sorted; an entry names its pack by position here. */
  readonly packs: string[];
  readonly #fanout: Uint32Array;
  readonly #digests: Uint8Array;
  readonly #offsets: Float64Array;
  readonly #sizes: Uint32Array;
  readonly #packNo: Uint32Array;

  private constructor(bytes: Uint8Array, packs: number, entries: number) {
    const b = bytes.buffer, at = bytes.byteOffset;
    let pos = at + HEADER;
    this.#fanout = new Uint32Array(b, pos, 256);
    pos += FANOUT;
    this.packs = [];
    for (let i = 0; i < packs; i++) {
      this.packs.push(bytes.subarray(pos - at + i * 32, pos - at + i * 32 + 32).toHex());
    }
    pos += packs * 32;
    this.#digests = new Uint8Array(b, pos, entries * 32);
    pos += entries * 32;
    this.#offsets = new Float64Array(b, pos, entries);
    pos += entries * 8;
    this.#sizes = new Uint32Array(b, pos, entries);
    pos += entries * 4;
    this.#packNo = new Uint32Array(b, pos, entries);
  }

  /** Number of entries. */
  get length(): number {
    return this.#sizes.length;
  }

  /**
   * Reads an index from its file's bytes (which must start 8-byte aligned in their buffer, as a
   * fresh read does); undefined when they are not a complete, consistent index of this version.
   */
  static decode(bytes: Uint8Array): MultiPackIndex | undefined {
    if (bytes.length < HEADER + FANOUT || bytes.byteOffset % 8 !== 0) return undefined;
    if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return undefined;
    const [version, packs, entries] = new Uint32Array(bytes.buffer, bytes.byteOffset + 8, 3);
    if (version !== 1 || bytes.length !== HEADER + FANOUT + packs * 32 + entries * 48) return undefined;
    const m = new MultiPackIndex(bytes, packs, entries);
    if (m.#fanout[255] !== entries) return undefined;
    for (let i = 0; i < entries; i++) if (m.#packNo[i] >= packs) return undefined;
    return m;
  }

  /**
   * The bytes of a new index: the entries of `old` whose pack is in `keep`, and every entry of the
   * packs in `add` (pack hex → its `.idx` entries). Merges the sorted entries in one pass, so
   * adding a few packs to an index of 300,000 entries costs tens of ms.
   */
  static build(
    old: MultiPackIndex | undefined,
    keep: Set<string>,
    add: Map<string, PackEntry[]>,
  ): Uint8Array {
    const oldPacks = old?.packs ?? [];
    const packs = [...new Set([...oldPacks.filter((h) => keep.has(h)), ...add.keys()])].sort();
    const packNo = new Map(packs.map((p, i) => [p, i]));
    // old pack number → new one, or -1 when dropped
    const remap = Int32Array.from(oldPacks, (h) => keep.has(h) ? packNo.get(h)! : -1);
    let kept = 0;
    for (let i = 0; i < (old?.length ?? 0); i++) if (remap[old!.#packNo[i]] >= 0) kept++;
    const added: [string, number, number, number][] = [];
    for (const [pack, entries] of add) {
      for (const [h, off, size] of entries) added.push([h, packNo.get(pack)!, off, size]);
    }
    added.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

    const e = kept + added.length, p = packs.length;
    const out = new Uint8Array(HEADER + FANOUT + p * 32 + e * 48);
    out.set(new TextEncoder().encode(MAGIC));
    const header = new Uint32Array(out.buffer, 8, 3);
    header.set([1, p, e]);
    let pos = HEADER + FANOUT;
    for (const h of packs) {
      out.set(Uint8Array.fromHex(h), pos);
      pos += 32;
    }
    const digests = out.subarray(pos, pos + e * 32);
    const offsets = new Float64Array(out.buffer, pos + e * 32, e);
    const sizes = new Uint32Array(out.buffer, pos + e * 40, e);
    const nos = new Uint32Array(out.buffer, pos + e * 44, e);
    const fanout = new Uint32Array(out.buffer, HEADER, 256);
    let i = 0, j = 0, key = added.length ? Uint8Array.fromHex(added[0][0]) : undefined;
    for (let k = 0; k < e; k++) {
      while (old && i < old.length && remap[old.#packNo[i]] < 0) i++;
      if (key && (!old || i >= old.length || old.#compare(i, key) > 0)) {
        digests.set(key, k * 32);
        [, nos[k], offsets[k], sizes[k]] = added[j++];
        key = j < added.length ? Uint8Array.fromHex(added[j][0]) : undefined;
      } else {
        digests.set(old!.#digests.subarray(i * 32, i * 32 + 32), k * 32);
        [nos[k], offsets[k], sizes[k]] = [remap[old!.#packNo[i]], old!.#offsets[i], old!.#sizes[i]];
        i++;
      }
      fanout[digests[k * 32]]++;
    }
    for (let b = 1; b < 256; b++) fanout[b] += fanout[b - 1];
    return out;
  }

  /**
   * The first entry for object `hex` whose pack `usable` accepts: [pack number, offset, size]
   * (bytes), or undefined.
   */
  find(hex: string, usable: (packNo: number) => boolean): [number, number, number] | undefined {
    let key: Uint8Array;
    try {
      key = Uint8Array.fromHex(hex);
    } catch {
      return undefined;
    }
    if (key.length !== 32) return undefined;
    let lo = key[0] === 0 ? 0 : this.#fanout[key[0] - 1], hi = this.#fanout[key[0]];
    while (lo < hi) { // lower bound
      const mid = (lo + hi) >>> 1;
      if (this.#compare(mid, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.length && this.#compare(i, key) === 0; i++) {
      if (usable(this.#packNo[i])) return [this.#packNo[i], this.#offsets[i], this.#sizes[i]];
    }
    return undefined;
  }

  /** Entry positions [from, to) whose digest's first byte is `byte` (0–255). */
  range(byte: number): [number, number] {
    return [byte === 0 ? 0 : this.#fanout[byte - 1], this.#fanout[byte]];
  }

  /** Object hex digest of entry `i`. */
  hexAt(i: number): string {
    return this.#digests.subarray(i * 32, i * 32 + 32).toHex();
  }

  /** Pack number of entry `i`. */
  packAt(i: number): number {
    return this.#packNo[i];
  }

  #compare(i: number, key: Uint8Array): number {
    const d = this.#digests, at = i * 32;
    for (let j = 0; j < 32; j++) {
      const c = d[at + j] - key[j];
      if (c !== 0) return c;
    }
    return 0;
  }
}
