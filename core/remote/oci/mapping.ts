/**
 * How an spfs layer or platform is stored in an OCI repository (README "Remotes: the OCI mapping").
 *
 * One OCI image manifest per layer or platform, tagged `_sha256-<hex>` with the object's digest.
 * Its config blob is the spfs layer or platform object itself (same digest). A layer's OCI layers:
 * - one tar of its directory manifests (entries named by digest hex);
 * - packs: deterministic tars of its small files (< 1 MiB), sorted by digest and cut at 16 MiB, so a
 *   tree of thousands of files takes a handful of requests; each pack says its digest range;
 * - each large file as its own blob under its spfs digest, shared by every layer that has it.
 */
import { concat } from "../../../proto/framing.ts";
import { SpfsError } from "../../errors.ts";
import type { Digest } from "../../store/objects.ts";
import { PACK_BYTES, PACKED_BELOW } from "../../store/packs.ts";
import { OCI_MANIFEST } from "./registry.ts";

export const MEDIA = {
  layer: "application/vnd.spfs.layer.v1+json",
  platform: "application/vnd.spfs.platform.v1+json",
  manifests: "application/vnd.spfs.manifests.v1.tar",
  pack: "application/vnd.spfs.pack.v1.tar",
  blob: "application/vnd.spfs.blob.v1",
} as const;

/** Files this size (bytes) or larger travel as their own blob: the size a store never packs. */
export const LARGE_FILE = PACKED_BELOW;
/** Largest manifests tar or pack a pull accepts into memory (bytes). */
export const MAX_TAR = 1 << 30;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

const enc = new TextEncoder();

/** Canonical manifest bytes (fixed key order), so a re-push produces the same digest. */
export function encodeOciManifest(config: Descriptor, layers: Descriptor[]): Uint8Array {
  const m: OciManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers };
  return enc.encode(JSON.stringify(m));
}

/**
 * Parses and checks an OCI manifest written by spfs.
 * @throws SpfsError RemoteError when it is not one.
 */
export function decodeOciManifest(bytes: Uint8Array, where: string): OciManifest {
  try {
    const m = JSON.parse(new TextDecoder().decode(bytes)) as OciManifest;
    if (
      m.schemaVersion === 2 && typeof m.config?.digest === "string" && Array.isArray(m.layers) &&
      (m.config.mediaType === MEDIA.layer || m.config.mediaType === MEDIA.platform)
    ) return m;
  } catch { /* fall through */ }
  throw new SpfsError("RemoteError", `${where} is not an spfs layer or platform`, {
    hint: "spfs pulls only what spfs pushed; check the remote's repository",
  });
}

/** One tar entry: name and bytes. */
export interface TarEntry {
  name: string;
  bytes: Uint8Array;
}

/**
 * A deterministic tar: entries in the given order, mode 0444, uid/gid 0, mtime 0. tar-stream is
 * imported here, not at the top: only a push builds tars, and its import (node:stream) costs a pull
 * about 20 ms of start-up.
 */
export async function buildTar(entries: TarEntry[]): Promise<Uint8Array> {
  const { default: tar } = await import("tar-stream");
  const pack = tar.pack();
  for (const e of entries) {
    pack.entry(
      { name: e.name, size: e.bytes.length, mode: 0o444, mtime: new Date(0), uid: 0, gid: 0 },
      e.bytes,
    );
  }
  pack.finalize();
  return concat(await Array.fromAsync(pack as AsyncIterable<Uint8Array>));
}

/** Splits small blobs (sorted by digest) into packs of about PACK_BYTES each. */
export function planPacks(small: [Digest, number][]): [Digest, number][][] {
  const sorted = [...small].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const packs: [Digest, number][][] = [];
  let cur: [Digest, number][] = [];
  let bytes = 0;
  for (const b of sorted) {
    cur.push(b);
    bytes += b[1];
    if (bytes >= PACK_BYTES) {
      packs.push(cur);
      cur = [];
      bytes = 0;
    }
  }
  if (cur.length) packs.push(cur);
  return packs;
}
