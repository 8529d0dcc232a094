/** The object store and tag database of one storage root, opened together. */
import type { Config } from "../config.ts";
import { ObjectStore } from "./store.ts";
import { TagDb } from "./tags.ts";

export interface Repo {
  store: ObjectStore;
  tags: TagDb;
}

/** Opens (creating if needed) the repository at `cfg.storageRoot`. */
export function openRepo(cfg: Config): Repo {
  const store = ObjectStore.open(cfg.storageRoot);
  return { store, tags: new TagDb(cfg.storageRoot) };
}
