/**
 * The on-disk format of a runtime's scratch (upper) dir. Changes live in a real directory tree so
 * they survive service restarts; deletions use the OCI layer whiteout names:
 *
 * - `.wh.<name>`: a mask; the lower entry `name` is deleted.
 * - `.wh..wh..opq`: this dir is opaque; no lower entry below it shows.
 * - `.wh..wh..meta.<name>`: JSON {@link MetaOverride} for a lower file whose mode, owner or times
 *   changed without its data being copied up.
 * - A name too long for a prefix within NAME_MAX (255 bytes) gets a marker named by its sha256
 *   instead: `.wh..wh..lmask.<hex>` holds the name, `.wh..wh..lmeta.<hex>` the JSON with `name`.
 *
 * Names starting with `.wh.` are reserved inside editable runtimes.
 */
import { type Digest, digestBytes } from "./objects.ts";

export const WH_PREFIX = ".wh.";
export const OPAQUE_NAME = ".wh..wh..opq";
export const META_PREFIX = ".wh..wh..meta.";
const LONG_MASK_PREFIX = ".wh..wh..lmask.";
const LONG_META_PREFIX = ".wh..wh..lmeta.";
/** NAME_MAX of Linux and of APFS (limits.h, sys/syslimits.h), in bytes. */
const NAME_MAX = 255;
const enc = new TextEncoder();

/** `prefix + name` when that fits in NAME_MAX bytes, else `longPrefix + sha256(name)`. */
function markerName(prefix: string, longPrefix: string, name: string): string {
  const whole = prefix + name;
  if (whole.length * 3 <= NAME_MAX || enc.encode(whole).length <= NAME_MAX) return whole;
  return longPrefix + digestBytes(enc.encode(name)).slice(7);
}

/**
 * The scratch name of the mask of `name`. When it is a hashed marker (`long`), its content must be
 * `name` (UTF-8), written atomically.
 */
export function maskName(name: string): { file: string; long: boolean } {
  const file = markerName(WH_PREFIX, LONG_MASK_PREFIX, name);
  return { file, long: file.startsWith(LONG_MASK_PREFIX) };
}

/** The scratch name of the metadata sidecar of `name`; a hashed one's JSON carries `name` too. */
export function metaName(name: string): { file: string; long: boolean } {
  const file = markerName(META_PREFIX, LONG_META_PREFIX, name);
  return { file, long: file.startsWith(LONG_META_PREFIX) };
}

/** Metadata changes to a lower file that was not copied up. Times in ns since the epoch (strings). */
export interface MetaOverride {
  digest: Digest;
  size: number;
  mode: number;
  uid?: number;
  gid?: number;
  atimeNs?: string;
  mtimeNs?: string;
  /** When the metadata last changed (chmod, chown, utimensat): now, as on a local disk. */
  ctimeNs?: string;
}

/** What a scratch dir entry name means. */
export type ScratchName =
  | { kind: "entry"; name: string }
  | { kind: "mask"; name: string }
  | { kind: "opaque" }
  | { kind: "meta"; name: string }
  /** A hashed marker whose content does not name what its hash says: ignored. */
  | { kind: "torn" };

/**
 * Classifies a name found in a scratch dir. `read` returns that file's content; it is called only
 * for a hashed marker of a long name, which holds the name.
 * @throws what `read` throws.
 */
export function parseScratchName(name: string, read: () => string): ScratchName {
  if (!name.startsWith(WH_PREFIX)) return { kind: "entry", name };
  if (name === OPAQUE_NAME) return { kind: "opaque" };
  if (name.startsWith(META_PREFIX)) return { kind: "meta", name: name.slice(META_PREFIX.length) };
  if (name.startsWith(LONG_MASK_PREFIX) || name.startsWith(LONG_META_PREFIX)) {
    const mask = name.startsWith(LONG_MASK_PREFIX);
    let full: unknown;
    try {
      const text = read();
      full = mask ? text : JSON.parse(text)?.name;
    } catch (e) {
      if (e instanceof SyntaxError) return { kind: "torn" };
      throw e;
    }
    const want = (mask ? maskName : metaName)(typeof full === "string" ? full : "").file;
    if (typeof full !== "string" || want !== name) return { kind: "torn" };
    return { kind: mask ? "mask" : "meta", name: full };
  }
  return { kind: "mask", name: name.slice(WH_PREFIX.length) };
}

/** Paths of one runtime's files under `<storage>/runtimes/<id>/`. */
export function runtimeDirs(
  runtimesRoot: string,
  id: string,
): { root: string; scratch: string; work: string } {
  const root = `${runtimesRoot}/${id}`;
  return { root, scratch: `${root}/scratch`, work: `${root}/work` };
}
