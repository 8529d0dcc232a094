/**
 * The on-disk format of a runtime's scratch (upper) dir. Changes live in a real directory tree so
 * they survive service restarts; deletions use the OCI layer whiteout names:
 *
 * - `.wh.<name>`: a mask; the lower entry `name` is deleted.
 * - `.wh..wh..opq`: this dir is opaque; no lower entry below it shows.
 * - `.wh..wh..meta.<name>`: JSON {@link MetaOverride} for a lower file whose mode, owner or times
 *   changed without its data being copied up.
 *
 * Names starting with `.wh.` are reserved inside editable runtimes.
 */
import type { Digest } from "./objects.ts";

export const WH_PREFIX = ".wh.";
export const OPAQUE_NAME = ".wh..wh..opq";
export const META_PREFIX = ".wh..wh..meta.";

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
  | { kind: "meta"; name: string };

/** Classifies a name found in a scratch dir. */
export function parseScratchName(name: string): ScratchName {
  if (!name.startsWith(WH_PREFIX)) return { kind: "entry", name };
  if (name === OPAQUE_NAME) return { kind: "opaque" };
  if (name.startsWith(META_PREFIX)) return { kind: "meta", name: name.slice(META_PREFIX.length) };
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
