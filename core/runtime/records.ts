/**
 * Durable runtime records in the storage root's SQLite db (node:sqlite, WAL), plus the scratch
 * dirs they own under `<storage>/runtimes/<id>/`. Only durable runtimes get a row; a non-durable
 * runtime lives in the service's memory and its dir is deleted when its root process exits.
 */
import type { DatabaseSync } from "node:sqlite";
import { initSchema, openDb } from "../store/db.ts";
import { storagePaths } from "../config.ts";
import { SpfsError } from "../errors.ts";
import type { Digest } from "../store/objects.ts";
import { runtimeDirs } from "../store/scratch.ts";
import { markTopDir } from "../../ffi/fsops.ts";

/** A stored runtime. Times are Unix ms. */
export interface RuntimeRecord {
  id: string;
  name: string | null;
  env_spec: string;
  layers: Digest[];
  editable: boolean;
  durable: boolean;
  created_ms: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Throws UsageError unless `name` is a valid runtime name. */
export function validateRuntimeName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new SpfsError("UsageError", `invalid runtime name "${name}"`, {
      hint: "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
  }
}

/** A new runtime id: 12 lowercase hex digits. */
export function newRuntimeId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** The durable-runtime table of one storage root. */
export class RuntimeDb {
  readonly db: DatabaseSync;
  readonly root: string;

  constructor(storageRoot: string) {
    this.root = storagePaths(storageRoot).runtimes;
    Deno.mkdirSync(this.root, { recursive: true });
    // each runtime's scratch is a tree of its own: spread them (an untar of npm's tree into a new
    // runtime took 1.2 s instead of 4.0 s on ext4 without a journal); a no-op where unsupported
    markTopDir(this.root);
    this.db = openDb(storageRoot);
    initSchema(
      this.db,
      `
      CREATE TABLE IF NOT EXISTS runtimes (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE,
        env_spec TEXT NOT NULL,
        layers TEXT NOT NULL,
        editable INTEGER NOT NULL,
        durable INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
      );
    `,
    );
  }

  #row(r: any): RuntimeRecord {
    return {
      id: r.id,
      name: r.name ?? null,
      env_spec: r.env_spec,
      layers: JSON.parse(r.layers),
      editable: !!r.editable,
      durable: !!r.durable,
      created_ms: r.created_ms,
    };
  }

  /** Inserts or replaces a record (replaces after a commit moves its layers). */
  put(r: RuntimeRecord): void {
    this.db.prepare(
      `INSERT OR REPLACE INTO runtimes (id, name, env_spec, layers, editable, durable, created_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.id,
      r.name,
      r.env_spec,
      JSON.stringify(r.layers),
      r.editable ? 1 : 0,
      r.durable ? 1 : 0,
      r.created_ms,
    );
  }

  all(): RuntimeRecord[] {
    return this.db.prepare("SELECT * FROM runtimes ORDER BY created_ms").all().map((r) => this.#row(r));
  }

  /** The record whose id or name is `ref`. */
  find(ref: string): RuntimeRecord | undefined {
    const r = this.db.prepare("SELECT * FROM runtimes WHERE id = ? OR name = ?").get(ref, ref);
    return r ? this.#row(r) : undefined;
  }

  delete(id: string): void {
    this.db.prepare("DELETE FROM runtimes WHERE id = ?").run(id);
  }

  /** The scratch paths of runtime `id`. */
  dirs(id: string): { root: string; scratch: string; work: string } {
    return runtimeDirs(this.root, id);
  }

  /**
   * Creates the scratch and work dirs of a new runtime (mode 0700 on the runtime dir). With `base`
   * (another volume, such as a RAM disk) they live in `<base>/<id>` and `<storage>/runtimes/<id>` is
   * a symlink to it, so every other path stays the same; work/ and scratch/ share a volume, so
   * copy-up's rename stays atomic.
   */
  createDirs(id: string, base?: string): { root: string; scratch: string; work: string } {
    const d = this.dirs(id);
    if (base) {
      Deno.mkdirSync(`${base}/${id}`, { recursive: true, mode: 0o700 });
      Deno.symlinkSync(`${base}/${id}`, d.root);
    }
    Deno.mkdirSync(d.root, { recursive: true, mode: 0o700 });
    Deno.mkdirSync(d.scratch, { recursive: true });
    Deno.chmodSync(d.scratch, 0o755);
    Deno.mkdirSync(d.work, { recursive: true });
    return d;
  }

  /** Empties a runtime's work dir (half-done copy-ups of a crashed service). */
  sweepWork(id: string): void {
    const { work } = this.dirs(id);
    try {
      for (const e of Deno.readDirSync(work)) Deno.removeSync(`${work}/${e.name}`, { recursive: true });
    } catch { /* missing: recreated on use */ }
    Deno.mkdirSync(work, { recursive: true });
  }

  /** Deletes a runtime's dir tree. */
  async removeDirs(id: string): Promise<void> {
    const { root } = this.dirs(id);
    const gone = (e: unknown) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    };
    // scratch on another volume: remove the target first, then the link
    const target = await Deno.readLink(root).catch(() => undefined);
    if (target) await Deno.remove(target, { recursive: true }).catch(gone);
    await Deno.remove(root, { recursive: true }).catch(gone);
  }

  /** Ids of runtime dirs on disk (durable or left over). */
  dirIds(): string[] {
    try {
      return [...Deno.readDirSync(this.root)].filter((e) => e.isDirectory || e.isSymlink).map((e) => e.name);
    } catch {
      return [];
    }
  }
}
