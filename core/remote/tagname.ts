/**
 * spfs tag names on remotes. OCI tags are `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`: no `/`. The
 * encoding is reversible: `_` → `__`, `/` → `_s`; history entries add `_h<N>` (N counts from 1,
 * the oldest, so an entry never changes); objects get `_<algo>-<hex>` digest tags. An encoded name
 * starts with a letter or digit, so it never collides with a digest tag.
 */
import { SpfsError } from "../errors.ts";
import type { Digest } from "../store/objects.ts";
import { validateTagName } from "../store/tags.ts";

/** Longest OCI tag (distribution spec). */
export const MAX_OCI_TAG = 128;

/**
 * Encodes an spfs tag name.
 * @throws SpfsError InvalidTagName; UsageError when the encoding passes 128 chars with history room.
 */
export function encodeTag(name: string): string {
  validateTagName(name);
  const enc = name.replaceAll("_", "__").replaceAll("/", "_s");
  if (enc.length > MAX_OCI_TAG - 12) {
    throw new SpfsError("UsageError", `tag "${name}" is too long for a registry (OCI tags hold 128 chars)`, {
      hint: "use a shorter name or version",
    });
  }
  return enc;
}

/** Decodes `encodeTag` output; undefined for digest and history tags and foreign tags. */
export function decodeTag(tag: string): string | undefined {
  if (!/^[A-Za-z0-9]/.test(tag)) return undefined; // digest tags start with "_"
  let out = "";
  for (let i = 0; i < tag.length; i++) {
    if (tag[i] !== "_") {
      out += tag[i];
      continue;
    }
    const next = tag[++i];
    if (next === "_") out += "_";
    else if (next === "s") out += "/";
    else return undefined;
  }
  return out;
}

/** The history entry `n` (1 = oldest) of an encoded tag. */
export const historyTag = (enc: string, n: number) => `${enc}_h${n}`;

/** The history number of `tag` if it is an entry of `enc`, else undefined. */
export function historyNumber(enc: string, tag: string): number | undefined {
  const m = /^_h([1-9][0-9]*)$/.exec(tag.slice(enc.length));
  return tag.startsWith(enc) && m ? Number(m[1]) : undefined;
}

/** The immutable tag naming an object by digest: `_sha256-<hex>`. */
export const digestTag = (d: Digest) => `_${d.replace(":", "-")}`;
