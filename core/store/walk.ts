/**
 * Object graphs: what a layer or platform reaches. Push, pull and clean walk these, children before
 * parents, so "the parent exists" implies "everything below exists".
 */
import { SpfsError } from "../errors.ts";
import type { Digest, Layer, Manifest, PlatformObject, StructuredObject } from "./objects.ts";
import type { ObjectStore } from "./store.ts";

/** What one layer reaches below its layer object. `blobs` maps digest → size in bytes. */
export interface LayerClosure {
  layer: Layer;
  /** Every manifest, the root first. */
  manifests: Digest[];
  blobs: Map<Digest, number>;
}

/**
 * Every manifest and blob below the manifest `root`, found by reading the manifests (each read is
 * verified against its digest). `have` answers for manifests already known to be complete.
 * @throws SpfsError UnknownRef / CorruptObject for a manifest missing or damaged in `store`.
 */
export function manifestClosure(
  store: ObjectStore,
  root: Digest,
  read: (d: Digest) => Manifest = (d) => store.readObject(d) as Manifest,
): { manifests: Digest[]; blobs: Map<Digest, number> } {
  const manifests: Digest[] = [];
  const blobs = new Map<Digest, number>();
  const seen = new Set<Digest>();
  const stack = [root];
  while (stack.length) {
    const d = stack.pop()!;
    if (seen.has(d)) continue;
    seen.add(d);
    manifests.push(d);
    for (const e of read(d).entries) {
      if (e.kind === "dir") stack.push(e.digest);
      else if (e.kind !== "mask" && e.digest) blobs.set(e.digest, e.size);
    }
  }
  return { manifests, blobs };
}

/** The closure of a layer object. */
export function layerClosure(store: ObjectStore, layer: Digest): LayerClosure {
  const obj = store.readObject(layer) as Layer;
  return { layer: obj, ...manifestClosure(store, obj.manifest) };
}

/** Layer or platform: the kinds a tag may point at and push/pull move. */
export type Top = { kind: "layer"; digest: Digest; obj: Layer } | {
  kind: "platform";
  digest: Digest;
  obj: PlatformObject;
};

/**
 * Reads a layer or platform object.
 * @throws SpfsError UsageError when the digest names a blob or manifest.
 */
export function readTop(store: ObjectStore, digest: Digest, what: string): Top {
  const kind = store.kindOf(digest);
  if (kind === "layer") return { kind, digest, obj: store.readObject(digest) as Layer };
  if (kind === "platform") return { kind, digest, obj: store.readObject(digest) as PlatformObject };
  throw new SpfsError("UsageError", `${what} (${digest}) is a ${kind}, not a layer or platform`, {
    hint: "push, pull and run move layers and platforms: use a tag or a digest printed by `spfs commit`",
  });
}

/** The digests a structured object references: a platform's layers, a layer's manifest, a manifest's entries. */
export function childrenOf(obj: StructuredObject): Digest[] {
  if (obj.type === "spfs/platform@1") return obj.layers;
  if (obj.type === "spfs/layer@1") return [obj.manifest];
  return obj.entries.flatMap((e) => (e.digest ? [e.digest] : []));
}

/** An object's kind, or undefined when it is not in the store (or unreadable). */
export function kindOrUndefined(
  store: ObjectStore,
  digest: Digest,
): "blob" | "manifest" | "layer" | "platform" | undefined {
  try {
    return store.kindOf(digest);
  } catch {
    return undefined;
  }
}
