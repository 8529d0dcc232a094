/** The one SQLite database of a storage root (`spfs.db`, WAL), shared by tags and runtimes. */
import { DatabaseSync } from "node:sqlite";
import { storagePaths } from "../config.ts";

/**
 * Opens `<storage root>/spfs.db` in WAL mode with a 10 s busy timeout. The handle is closed when the
 * process exits, so SQLite checkpoints the WAL into the main file: a copy of spfs.db alone is then
 * a complete backup.
 */
export function openDb(storageRoot: string): DatabaseSync {
  Deno.mkdirSync(storageRoot, { recursive: true });
  const db = new DatabaseSync(storagePaths(storageRoot).db);
  db.exec("PRAGMA busy_timeout = 10000");
  db.exec("PRAGMA journal_mode = WAL");
  globalThis.addEventListener("unload", () => {
    try {
      if (db.isOpen) db.close();
    } catch { /* best effort */ }
  });
  return db;
}
