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
  walMode(db);
  globalThis.addEventListener("unload", () => {
    try {
      if (db.isOpen) db.close();
    } catch { /* best effort */ }
  });
  return db;
}

/**
 * Runs schema statements (CREATE … IF NOT EXISTS) in one `BEGIN IMMEDIATE` transaction. Run bare,
 * each statement reads the schema and then writes; when another process created the tables in
 * between, SQLite answers SQLITE_BUSY at once (a read→write upgrade never waits on busy_timeout).
 * Taking the write lock first makes two processes opening a fresh store simply queue.
 */
export function initSchema(db: DatabaseSync, sql: string): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(sql);
    db.exec("COMMIT");
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}

/**
 * Switches to WAL. On a fresh file two processes can race here, and SQLite answers that change with
 * SQLITE_BUSY at once, without its busy handler: retry for up to 10 s, sleeping 10 ms between tries.
 */
function walMode(db: DatabaseSync): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0;; i++) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return;
    } catch (e) {
      if (i >= 1000 || !/locked|busy/i.test(String(e))) throw e;
      Atomics.wait(nap, 0, 0, 10);
    }
  }
}
