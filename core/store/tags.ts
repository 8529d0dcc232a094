/**
 * Tags with history in SQLite (node:sqlite, WAL). `name~0` is the current target, `name~1` the one
 * before it. A tag name is `name[/version]`: segments of [A-Za-z0-9._-], starting alphanumeric.
 */
import type { DatabaseSync } from "node:sqlite";
import { initSchema, openDb } from "./db.ts";
import { SpfsError } from "../errors.ts";
import type { Digest } from "./objects.ts";

export const SCHEMA_VERSION = 1;
const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

/** One row of tag history. `createdMs` is Unix time in ms. */
export interface TagEntry {
  name: string;
  digest: Digest;
  createdMs: number;
}

/** Throws InvalidTagName unless `name` is `name[/version]`. */
export function validateTagName(name: string): void {
  if (!TAG_RE.test(name)) {
    throw new SpfsError("InvalidTagName", `invalid tag name "${name}"`, {
      hint:
        "use name or name/version with letters, digits, '.', '_' or '-' (no '+' or '~'), e.g. python/3.12",
    });
  }
}

/** The tag database of one storage root. */
export class TagDb {
  readonly db: DatabaseSync;

  constructor(storageRoot: string) {
    this.db = openDb(storageRoot);
    initSchema(
      this.db,
      `
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tag_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        created_ms INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS tag_history_name ON tag_history (name, id);
      INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '${SCHEMA_VERSION}');
    `,
    );
  }

  /** Points `name` at `digest`, keeping the previous target as history. No-op if unchanged. */
  set(name: string, digest: Digest): void {
    validateTagName(name);
    // one write transaction, so two processes setting the same target add one history entry
    this.db.exec("BEGIN IMMEDIATE");
    try {
      if (this.get(name, 0) !== digest) {
        this.db.prepare("INSERT INTO tag_history (name, digest, created_ms) VALUES (?, ?, ?)").run(
          name,
          digest,
          Date.now(),
        );
      }
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** Target of `name~back` (0 = current), or undefined. */
  get(name: string, back = 0): Digest | undefined {
    const row = this.db.prepare(
      "SELECT digest FROM tag_history WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
    ).get(name, back) as { digest: string } | undefined;
    return row?.digest;
  }

  /** Current target of every tag, sorted by name. */
  list(): TagEntry[] {
    const rows = this.db.prepare(`
      SELECT name, digest, created_ms FROM tag_history
      WHERE id IN (SELECT MAX(id) FROM tag_history GROUP BY name) ORDER BY name`).all() as {
      name: string;
      digest: string;
      created_ms: number;
    }[];
    return rows.map((r) => ({ name: r.name, digest: r.digest, createdMs: r.created_ms }));
  }

  /** Full history of one tag, newest first. */
  history(name: string): TagEntry[] {
    const rows = this.db.prepare(
      "SELECT name, digest, created_ms FROM tag_history WHERE name = ? ORDER BY id DESC",
    ).all(name) as { name: string; digest: string; created_ms: number }[];
    return rows.map((r) => ({ name: r.name, digest: r.digest, createdMs: r.created_ms }));
  }

  /** Every digest any tag points or pointed at (history included): what clean keeps. */
  allTargets(): Digest[] {
    const rows = this.db.prepare("SELECT DISTINCT digest FROM tag_history").all() as { digest: string }[];
    return rows.map((r) => r.digest);
  }

  close(): void {
    this.db.close();
  }
}
