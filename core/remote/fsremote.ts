/**
 * `file://` remotes: a directory other machines share (NFS, SMB). Objects use the local store's
 * layout (`objects/sha256/ab/cdef…`, tmp → fsync → rename). Tags are create-only files, not SQLite,
 * whose locking does not hold on network filesystems: `tags/<encoded name>/<N>` holds the N-th
 * target (N from 1), written to tmp and then hard-linked into place, which fails if N exists —
 * so two machines pushing at once both land, one after the other.
 */
import { join } from "node:path";
import pLimit from "p-limit";
import { SpfsError } from "../errors.ts";
import { type Digest, DIGEST_RE } from "../store/objects.ts";
import { ObjectStore } from "../store/store.ts";
import { type LayerClosure, layerClosure, readTop, type Top } from "../store/walk.ts";
import type { RemoteAddress } from "./address.ts";
import type { Progress, Remote } from "./remote.ts";
import { encodeTag } from "./tagname.ts";

/** Parallel object copies; a shared dir takes more than a registry. */
const FILE_CONCURRENCY = 16;

export class FileRemote implements Remote {
  readonly address: RemoteAddress & { kind: "file" };
  readonly store: ObjectStore;
  readonly tagsDir: string;

  /** @throws SpfsError RemoteUnreachable when the directory cannot be created or written. */
  constructor(address: RemoteAddress & { kind: "file" }) {
    this.address = address;
    try {
      this.store = ObjectStore.open(address.path, { shared: true });
    } catch (e) {
      throw new SpfsError("RemoteUnreachable", `remote ${address.name}: cannot use ${address.path}`, {
        cause: e,
        hint: "check that the shared directory is mounted and writable",
      });
    }
    this.tagsDir = join(address.path, "tags");
  }

  #history(name: string): { dir: string; last: number } {
    const dir = join(this.tagsDir, encodeTag(name));
    let last = 0;
    try {
      for (const e of Deno.readDirSync(dir)) {
        const n = Number(e.name);
        if (Number.isInteger(n) && n > last) last = n;
      }
    } catch { /* no such tag yet */ }
    return { dir, last };
  }

  getTag(name: string): Promise<Digest | undefined> {
    const { dir, last } = this.#history(name);
    if (!last) return Promise.resolve(undefined);
    const d = Deno.readTextFileSync(join(dir, String(last))).trim();
    if (!DIGEST_RE.test(d)) {
      throw new SpfsError("RemoteError", `remote ${this.address.name}: tag file ${dir}/${last} is damaged`);
    }
    return Promise.resolve(d);
  }

  async setTag(name: string, digest: Digest): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await this.getTag(name) === digest) return;
      const { dir, last } = this.#history(name);
      Deno.mkdirSync(dir, { recursive: true });
      const tmp = this.store.tmpPath();
      Deno.writeTextFileSync(tmp, digest + "\n");
      try {
        Deno.linkSync(tmp, join(dir, String(last + 1)));
        return;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        // another machine took N: look again
      } finally {
        Deno.removeSync(tmp);
      }
    }
    throw new SpfsError("RemoteError", `remote ${this.address.name}: could not add to tag ${name}'s history`);
  }

  hasTop(digest: Digest): Promise<boolean> {
    return Promise.resolve(this.store.has(digest));
  }

  readTop(digest: Digest): Promise<Top> {
    if (!this.store.has(digest)) {
      throw new SpfsError("UnknownRef", `${digest} is not on remote ${this.address.name}`);
    }
    return Promise.resolve(readTop(this.store, digest, digest));
  }

  async pushLayer(local: ObjectStore, digest: Digest, c: LayerClosure, p: Progress): Promise<void> {
    // blobs, then manifests deepest first (the closure lists parents before children), then the layer
    const from = "the local store";
    await copyAll(local, this.store, [...c.blobs.keys()], from, p);
    await copyAll(local, this.store, [...c.manifests].reverse(), from, p);
    await copyAll(local, this.store, [digest], from, p);
  }

  pushPlatform(local: ObjectStore, digest: Digest): Promise<void> {
    return copyAll(local, this.store, [digest], "the local store");
  }

  async pullLayer(local: ObjectStore, digest: Digest, p: Progress): Promise<void> {
    const c = layerClosure(this.store, digest);
    const from = `remote ${this.address.name}`;
    await copyAll(this.store, local, [...c.blobs.keys()], from, p);
    await copyAll(this.store, local, [...c.manifests].reverse(), from, p);
    await copyAll(this.store, local, [digest], from, p);
  }

  pullPlatform(local: ObjectStore, digest: Digest): Promise<void> {
    return copyAll(this.store, local, [digest], `remote ${this.address.name}`);
  }
}

/** Copies the objects `dst` lacks, verifying each against its digest on the way. */
async function copyAll(
  src: ObjectStore,
  dst: ObjectStore,
  digests: Digest[],
  from: string,
  p?: Progress,
): Promise<void> {
  const limit = pLimit(FILE_CONCURRENCY);
  await Promise.all(digests.map((d) =>
    limit(async () => {
      if (dst.reuse(d)) {
        if (p) p.skippedObjects++;
        return;
      }
      let stream: ReadableStream<Uint8Array>;
      try {
        stream = src.openStream(d);
      } catch (e) {
        throw new SpfsError("UnknownRef", `${d} is missing from ${from}`, {
          cause: e,
          hint: "its store is incomplete: run `spfs check` there",
        });
      }
      await dst.putStream(stream, d, from, (n) => p?.add({ bytes: n }));
      p?.add({ objects: 1 });
    })
  ));
}
