/** `oci://` remotes: push and pull layers and platforms through an OCI registry (see mapping.ts). */
import pLimit from "p-limit";
import type { Config } from "../../config.ts";
import type { PackEntry } from "../../store/pack_index.ts";
import { SpfsError } from "../../errors.ts";
import { decodeObject, type Digest, DIGEST_RE, digestBytes, type Manifest } from "../../store/objects.ts";
import { type ObjectStore, receiveVerified, verifiedPackEntries } from "../../store/store.ts";
import { type LayerClosure, manifestClosure, type Top } from "../../store/walk.ts";
import { parseRemote, type RemoteAddress } from "../address.ts";
import type { Progress, Remote } from "../remote.ts";
import { digestTag, encodeTag, historyNumber, historyTag } from "../tagname.ts";
import {
  buildTar,
  decodeOciManifest,
  type Descriptor,
  encodeOciManifest,
  LARGE_FILE,
  MAX_TAR,
  MEDIA,
  type OciManifest,
  planPacks,
} from "./mapping.ts";
import { backoff, Registry } from "./registry.ts";

/** Parallel blob transfers per registry (most registries throttle past about 8). */
const OCI_CONCURRENCY = 8;

export class OciRemote implements Remote {
  readonly address: RemoteAddress & { kind: "oci" };
  readonly reg: Registry;
  /** Other repositories of this registry among the configured remotes: cross-repo mount sources. */
  readonly mountFrom: string[];
  #limit = pLimit(OCI_CONCURRENCY);
  /** Each top's OCI manifest and config, fetched once: a pull reads them in readTop and again to move it. */
  #configs = new Map<Digest, Promise<{ m: OciManifest; bytes: Uint8Array }>>();
  /** OCI manifests read through a tag, by the top they name: no second GET by its digest tag. */
  #tagged = new Map<Digest, OciManifest>();
  /** A layer's manifests tars, fetched alongside its config (pullLayer needs both), until used. */
  #manifestTars = new Map<Digest, Promise<Uint8Array[]>>();

  constructor(cfg: Config, address: RemoteAddress & { kind: "oci" }) {
    this.address = address;
    this.reg = new Registry(address);
    this.mountFrom = Object.entries(cfg.remotes).flatMap(([n, r]) => {
      try {
        const a = parseRemote(n, r);
        return a.kind === "oci" && a.host === address.host && a.repository !== address.repository
          ? [a.repository]
          : [];
      } catch {
        return [];
      }
    });
  }

  async #manifestOf(ref: string): Promise<OciManifest | undefined> {
    const got = await this.reg.getManifest(ref);
    return got && decodeOciManifest(got.bytes, `${this.reg.label} ${ref}`);
  }

  async getTag(name: string): Promise<Digest | undefined> {
    const m = await this.#manifestOf(encodeTag(name));
    if (m && !DIGEST_RE.test(m.config.digest)) {
      throw new SpfsError("RemoteError", `bad config digest at ${name}`);
    }
    // a tag is pushed with its top's own manifest bytes (setTag); every blob it names is verified
    if (m) this.#tagged.set(m.config.digest, m);
    return m?.config.digest;
  }

  async setTag(name: string, digest: Digest): Promise<void> {
    if (await this.getTag(name) === digest) return;
    const got = await this.reg.getManifest(digestTag(digest));
    if (!got) throw new SpfsError("RemoteError", `${this.reg.label} lost ${digest} while tagging ${name}`);
    const enc = encodeTag(name);
    const last = Math.max(0, ...(await this.reg.listTags()).map((t) => historyNumber(enc, t) ?? 0));
    // history first: the current tag may move, an entry never does, so nothing is left untagged
    await this.reg.putManifest(historyTag(enc, last + 1), got.bytes);
    await this.reg.putManifest(enc, got.bytes);
  }

  hasTop(digest: Digest): Promise<boolean> {
    return this.reg.hasManifest(digestTag(digest), "pull,push");
  }

  #config(digest: Digest): Promise<{ m: OciManifest; bytes: Uint8Array }> {
    let got = this.#configs.get(digest);
    if (!got) {
      got = this.#fetchConfig(digest);
      this.#configs.set(digest, got);
      got.catch(() => this.#configs.delete(digest));
    }
    return got;
  }

  async #fetchConfig(digest: Digest): Promise<{ m: OciManifest; bytes: Uint8Array }> {
    const m = this.#tagged.get(digest) ?? await this.#manifestOf(digestTag(digest));
    if (!m) throw new SpfsError("UnknownRef", `${digest} is not on remote ${this.address.name}`);
    if (m.config.digest !== digest) {
      throw new SpfsError("RemoteError", `${this.reg.label}: ${digestTag(digest)} names ${m.config.digest}`);
    }
    if (m.config.mediaType === MEDIA.layer) {
      // the config of a layer is fetched only to pull it, which reads its manifests next
      const tars = Promise.all(this.#manifestDescs(m).map((d) => this.#fetchSmall(d)));
      tars.catch(() => {}); // awaited (and its error thrown) by pullLayer
      this.#manifestTars.set(digest, tars);
    }
    const bytes = await this.#fetchSmall(m.config);
    return { m, bytes };
  }

  #manifestDescs(m: OciManifest): Descriptor[] {
    return m.layers.filter((l) => l.mediaType === MEDIA.manifests);
  }

  async readTop(digest: Digest): Promise<Top> {
    const { bytes } = await this.#config(digest);
    const obj = decodeObject(bytes, digest);
    if (obj.type === "spfs/layer@1") return { kind: "layer", digest, obj };
    if (obj.type === "spfs/platform@1") return { kind: "platform", digest, obj };
    throw new SpfsError(
      "RemoteError",
      `${digest} on ${this.reg.label} is a manifest, not a layer or platform`,
    );
  }

  /** Fetches a blob into memory, refusing one over MAX_TAR or one that does not match its digest. */
  async #fetchSmall(d: Descriptor): Promise<Uint8Array> {
    if (d.size > MAX_TAR) throw new SpfsError("RemoteError", `${this.reg.label}: ${d.digest} is too large`);
    // hashed as the chunks arrive, so the hash overlaps the transfer
    return await this.#retrying(async () =>
      receiveVerified(await this.reg.getBlob(d.digest), d, this.reg.label)
    );
  }

  /** Retries a whole transfer when the connection drops mid-body (the request layer retried the start). */
  async #retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const dropped = !(e instanceof SpfsError) && e instanceof Error;
        if (!dropped || attempt >= this.reg.retry.attempts) {
          if (dropped) {
            throw new SpfsError("RemoteUnreachable", `${this.reg.label}: transfer failed: ${e.message}`, {
              cause: e,
              hint: "retry: the next pull continues where this one stopped",
            });
          }
          throw e;
        }
        await backoff(this.reg.retry, attempt);
      }
    }
  }

  async #upload(bytes: Uint8Array, mediaType: string, p?: Progress): Promise<Descriptor> {
    const digest = digestBytes(bytes);
    const sent = await this.reg.putBlob(digest, bytes.length, () => bytes as BodyInit, this.mountFrom);
    if (sent) p?.add({ bytes: bytes.length });
    return { mediaType, digest, size: bytes.length };
  }

  async pushLayer(local: ObjectStore, digest: Digest, c: LayerClosure, p: Progress): Promise<void> {
    const manifestsTar = await buildTar(
      c.manifests.map((d) => ({ name: d.slice(7), bytes: local.readVerified(d) })),
    );
    const large = [...c.blobs].filter(([, size]) => size >= LARGE_FILE);
    const packs = planPacks([...c.blobs].filter(([, size]) => size < LARGE_FILE));
    const layers: Descriptor[] = [await this.#upload(manifestsTar, MEDIA.manifests, p)];
    const packDescs = packs.map((pack) =>
      this.#limit(async () => {
        const tarBytes = await buildTar(
          pack.map(([d]) => ({ name: d.slice(7), bytes: local.readVerified(d) })),
        );
        const desc = await this.#upload(tarBytes, MEDIA.pack, p);
        p.add({ objects: pack.length });
        return { ...desc, annotations: { "dev.spfs.first": pack[0][0], "dev.spfs.last": pack.at(-1)![0] } };
      })
    );
    const largeDescs = large.map(([d, size]) =>
      this.#limit(async () => {
        const sent = await this.reg.putBlob(d, size, () => local.openStream(d), this.mountFrom);
        p.add({ objects: 1, bytes: sent ? size : 0 });
        return { mediaType: MEDIA.blob, digest: d, size };
      })
    );
    layers.push(...await Promise.all(packDescs), ...await Promise.all(largeDescs));
    const config = await this.#upload(local.readVerified(digest), MEDIA.layer);
    await this.reg.putManifest(digestTag(digest), encodeOciManifest(config, layers));
  }

  async pushPlatform(local: ObjectStore, digest: Digest): Promise<void> {
    const config = await this.#upload(local.readVerified(digest), MEDIA.platform);
    await this.reg.putManifest(digestTag(digest), encodeOciManifest(config, []));
  }

  /**
   * Streams pack `d` into `local`, written and checked as it arrives (putPackStream); resolves with
   * the digests it holds. A dropped connection starts it over.
   */
  #pullPack(local: ObjectStore, d: Descriptor, p: Progress): Promise<Digest[]> {
    if (d.size > MAX_TAR) {
      return Promise.reject(new SpfsError("RemoteError", `${this.reg.label}: ${d.digest} is too large`));
    }
    return this.#limit(() =>
      this.#retrying(async () =>
        local.putPackStream(await this.reg.getBlob(d.digest), d, this.reg.label, (n) => p.add({ bytes: n }))
      )
    );
  }

  async pullLayer(local: ObjectStore, digest: Digest, p: Progress): Promise<void> {
    const { m, bytes: layerBytes } = await this.#config(digest);
    const layer = decodeObject(layerBytes, digest);
    if (layer.type !== "spfs/layer@1") throw new SpfsError("RemoteError", `${digest} is not a layer`);
    const from = this.reg.label;
    // manifests are held in memory and kept after the files they list: children before parents
    const manifests = new Map<Digest, Uint8Array>();
    const manifestTars: [Uint8Array, Digest, PackEntry[]][] = [];
    const descs = this.#manifestDescs(m);
    const tars = await (this.#manifestTars.get(digest) ??
      Promise.all(descs.map((d) => this.#fetchSmall(d)))).finally(() => this.#manifestTars.delete(digest));
    for (const [i, d] of descs.entries()) {
      p.bytesTotal += d.size;
      const tarBytes = tars[i];
      p.add({ bytes: tarBytes.length });
      const entries = verifiedPackEntries(tarBytes, d.digest, from);
      manifestTars.push([tarBytes, d.digest, entries]);
      for (const [hex, off, size] of entries) {
        manifests.set(`sha256:${hex}`, tarBytes.subarray(off, off + size));
      }
    }
    const read = (d: Digest) => {
      const bytes = manifests.get(d) ?? (local.has(d) ? local.readVerified(d) : undefined);
      if (!bytes) throw new SpfsError("RemoteError", `${from}: layer ${digest} lacks manifest ${d}`);
      return decodeObject(bytes, d) as Manifest;
    };
    const closure = manifestClosure(local, layer.manifest, read);
    const blobs = closure.blobs;
    const present = local.reuseAll(blobs.keys());
    const missing = new Set([...blobs.keys()].filter((d) => !present.has(d)));
    p.skippedObjects += blobs.size - missing.size;
    const packs = m.layers.filter((l) =>
      l.mediaType === MEDIA.pack && [...missing].some((d) => inRange(d, l.annotations))
    );
    const large = m.layers.filter((l) => l.mediaType === MEDIA.blob && missing.has(l.digest));
    p.bytesTotal += [...packs, ...large].reduce((a, l) => a + l.size, 0);
    // small files stay in their pack (two files written, not thousands); large ones stream in
    await Promise.all([
      ...packs.map(async (d) => {
        const got = (await this.#pullPack(local, d, p)).filter((o) => missing.delete(o));
        p.add({ objects: got.length });
      }),
      ...large.map((d) =>
        this.#limit(() =>
          this.#retrying(async () => {
            await local.putStream(
              await this.reg.getBlob(d.digest),
              d.digest,
              from,
              (n) => p.add({ bytes: n }),
            );
            missing.delete(d.digest);
            p.add({ objects: 1 });
          })
        )
      ),
    ]);
    for (const [tarBytes, d, entries] of manifestTars) await local.putPack(tarBytes, d, from, entries);
    // what no pack or blob brought (a push from an incomplete store, or a file pulled meanwhile)
    const still = [...missing].filter((d) => !local.has(d));
    if (still.length) {
      throw new SpfsError(
        "RemoteError",
        `${from}: layer ${digest} lacks ${still.length} file(s), e.g. ${still[0]}`,
        {
          hint: "push the layer again from a complete store",
        },
      );
    }
    local.putVerified(layerBytes, digest, from);
  }

  async pullPlatform(local: ObjectStore, digest: Digest): Promise<void> {
    const { bytes } = await this.#config(digest);
    local.putVerified(bytes, digest, this.reg.label);
  }
}

/** True when a pack's digest range (annotations) may hold `d`; packs without one always may. */
function inRange(d: Digest, a?: Record<string, string>): boolean {
  const first = a?.["dev.spfs.first"];
  const last = a?.["dev.spfs.last"];
  return !first || !last || (d >= first && d <= last);
}
