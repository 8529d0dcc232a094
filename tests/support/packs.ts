/** Moves a store's loose objects into one pack, as a pull from a registry would have kept them. */
import { buildTar } from "../../core/remote/oci/mapping.ts";
import { type Digest, digestBytes } from "../../core/store/objects.ts";
import type { ObjectStore } from "../../core/store/store.ts";

/**
 * Packs every loose object but `keep` (the layer objects, which a pull writes loose) and removes
 * their loose files. Returns the pack's digest.
 */
export async function packLoose(store: ObjectStore, keep: Digest[] = []): Promise<Digest> {
  const digests = [...store.loose()].filter((d) => !keep.includes(d)).sort();
  const tar = await buildTar(digests.map((d) => ({ name: d.slice(7), bytes: store.readVerified(d) })));
  const packDigest = digestBytes(tar);
  await store.putPack(tar, packDigest, "test");
  for (const d of digests) Deno.removeSync(store.path(d));
  return packDigest;
}
