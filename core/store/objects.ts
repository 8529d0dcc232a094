/**
 * Object encodings. Blobs are raw file bytes. Manifests, layers and platforms are canonical JSON:
 * fixed key order, no whitespace, manifest entries sorted by name (JS string order, UTF-16 code
 * units), so equal trees always encode to equal bytes and therefore equal digests.
 */
import { createHash } from "node:crypto";
import { SpfsError } from "../errors.ts";

/** `sha256:<64 lowercase hex>`, OCI style. */
export type Digest = string;
export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export type EntryKind = "file" | "dir" | "symlink" | "mask";

/**
 * One manifest entry. `mode` holds permission bits only (& 0o7777). `size` is bytes (for a symlink,
 * the target's length; for a dir, 0). `digest` is the blob (file, symlink target) or child
 * manifest (dir); "" for a mask.
 */
export interface Entry {
  name: string;
  kind: EntryKind;
  mode: number;
  size: number;
  digest: Digest | "";
  /** Dirs only: hides every lower entry below this name (a dir deleted and re-created). */
  opaque?: boolean;
}

export interface Manifest {
  type: "spfs/manifest@1";
  entries: Entry[];
}
export interface Layer {
  type: "spfs/layer@1";
  manifest: Digest;
  annotations: Record<string, string>;
}
export interface PlatformObject {
  type: "spfs/platform@1";
  /** Bottom to top. */
  layers: Digest[];
}
export type StructuredObject = Manifest | Layer | PlatformObject;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
const PREFIX = enc.encode('{"type":"spfs/');

/** sha256 digest of bytes, as `sha256:<hex>`. */
export function digestBytes(bytes: Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** sha256 digest of a file's bytes, read synchronously in chunks of `chunk` (default 1 MiB). */
export function digestFileSync(path: string, chunk: Uint8Array = new Uint8Array(1 << 20)): Digest {
  const h = createHash("sha256");
  const f = Deno.openSync(path, { read: true });
  try {
    for (let r = f.readSync(chunk); r !== null; r = f.readSync(chunk)) h.update(chunk.subarray(0, r));
  } finally {
    f.close();
  }
  return `sha256:${h.digest("hex")}`;
}

/**
 * sha256 digest of a file's bytes, read in 1 MiB chunks with async reads, so a thread that hashes
 * a large blob keeps serving its event loop between chunks. `chunk` is the read buffer (a caller that
 * hashes many files passes one, so each call does not allocate and zero 1 MiB).
 * @throws Deno.errors.NotFound and other read errors.
 */
export async function digestFile(path: string, chunk: Uint8Array = new Uint8Array(1 << 20)): Promise<Digest> {
  const h = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  for (let r = await f.read(chunk); r !== null; r = await f.read(chunk)) h.update(chunk.subarray(0, r));
  return `sha256:${h.digest("hex")}`;
}

/** Manifest order: by name, in JS string order (UTF-16 code units). */
export function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Canonical bytes of a manifest. Sorts a copy of the entries; throws on duplicate names. */
export function encodeManifest(entries: Entry[]): Uint8Array {
  const sorted = [...entries].sort(byName);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].name === sorted[i - 1].name) throw new Error(`duplicate manifest entry ${sorted[i].name}`);
  }
  const parts = sorted.map((e) =>
    `{"name":${
      JSON.stringify(e.name)
    },"kind":"${e.kind}","mode":${e.mode},"size":${e.size},"digest":"${e.digest}"${
      e.opaque ? ',"opaque":true' : ""
    }}`
  );
  return enc.encode(`{"type":"spfs/manifest@1","entries":[${parts.join(",")}]}`);
}

/** Canonical bytes of a layer object; annotation keys sorted. */
export function encodeLayer(manifest: Digest, annotations: Record<string, string> = {}): Uint8Array {
  const keys = Object.keys(annotations).sort();
  const ann = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(annotations[k])}`).join(",");
  return enc.encode(`{"type":"spfs/layer@1","manifest":"${manifest}","annotations":{${ann}}}`);
}

/** Canonical bytes of a platform object (layers bottom to top). */
export function encodePlatform(layers: Digest[]): Uint8Array {
  return enc.encode(`{"type":"spfs/platform@1","layers":[${layers.map((l) => `"${l}"`).join(",")}]}`);
}

/** True when the bytes are a structured object rather than a plain blob. */
export function looksStructured(bytes: Uint8Array): boolean {
  if (bytes.length < PREFIX.length) return false;
  for (let i = 0; i < PREFIX.length; i++) if (bytes[i] !== PREFIX[i]) return false;
  return true;
}

/**
 * Decodes a structured object and checks its shape.
 * @throws SpfsError CorruptObject when the bytes are not a valid manifest/layer/platform.
 */
export function decodeObject(bytes: Uint8Array, digest: Digest): StructuredObject {
  let v: any;
  try {
    v = JSON.parse(dec.decode(bytes));
  } catch (e) {
    throw new SpfsError("CorruptObject", `object ${digest} is not valid JSON`, {
      cause: e,
      hint: "run `spfs check`",
    });
  }
  const bad = (why: string) =>
    new SpfsError("CorruptObject", `object ${digest}: ${why}`, { hint: "run `spfs check`" });
  switch (v?.type) {
    case "spfs/manifest@1":
      if (!Array.isArray(v.entries)) throw bad("manifest without entries");
      for (const e of v.entries) {
        if (typeof e?.name !== "string" || !["file", "dir", "symlink", "mask"].includes(e.kind)) {
          throw bad("bad manifest entry");
        }
      }
      return v as Manifest;
    case "spfs/layer@1":
      if (typeof v.manifest !== "string" || !DIGEST_RE.test(v.manifest)) throw bad("layer without manifest");
      return v as Layer;
    case "spfs/platform@1":
      if (
        !Array.isArray(v.layers) ||
        !v.layers.every((l: unknown) => typeof l === "string" && DIGEST_RE.test(l))
      ) {
        throw bad("platform without layers");
      }
      return v as PlatformObject;
    default:
      throw bad("unknown object type");
  }
}
