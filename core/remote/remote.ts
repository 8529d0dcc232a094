/**
 * What push and pull need from a remote, whatever carries it (an OCI registry or a shared dir).
 * Every method moves children before parents, so "the remote has X" implies it has all below X.
 */
import type { Digest } from "../store/objects.ts";
import type { ObjectStore } from "../store/store.ts";
import type { LayerClosure, Top } from "../store/walk.ts";
import type { RemoteAddress } from "./address.ts";

/** Counters a transfer updates as it goes; the CLI draws them. Bytes are payload bytes. */
export class Progress {
  layers = 0;
  layersDone = 0;
  objects = 0;
  bytes = 0;
  /** Bytes known to be coming (grows as layers are looked at). */
  bytesTotal = 0;
  /** Objects and bytes the destination already had. */
  skippedObjects = 0;
  skippedLayers = 0;
  onChange: () => void = () => {};
  add(o: { objects?: number; bytes?: number }): void {
    this.objects += o.objects ?? 0;
    this.bytes += o.bytes ?? 0;
    this.onChange();
  }
}

/** One remote. Implementations: `FileRemote` (file://), `OciRemote` (oci://). */
export interface Remote {
  readonly address: RemoteAddress;
  /** Current target of a tag there, or undefined. */
  getTag(name: string): Promise<Digest | undefined>;
  /** Points a tag at `digest`, keeping the previous target in its history. No-op when unchanged. */
  setTag(name: string, digest: Digest): Promise<void>;
  /** True when the remote holds this layer or platform and everything below it. */
  hasTop(digest: Digest): Promise<boolean>;
  /** Reads a layer or platform object there (verified). @throws SpfsError UnknownRef. */
  readTop(digest: Digest): Promise<Top>;
  /** Sends everything below a layer, then the layer. Skips what the remote has. */
  pushLayer(local: ObjectStore, digest: Digest, closure: LayerClosure, p: Progress): Promise<void>;
  /** Sends a platform object (its layers are already there). */
  pushPlatform(local: ObjectStore, digest: Digest): Promise<void>;
  /** Receives everything below a layer, then the layer, into `local`. Skips what `local` has. */
  pullLayer(local: ObjectStore, digest: Digest, p: Progress): Promise<void>;
  /** Receives a platform object (its layers are already in `local`). */
  pullPlatform(local: ObjectStore, digest: Digest): Promise<void>;
}
