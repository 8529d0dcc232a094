/**
 * RAM disks for scratch dirs: a tmpfs mount on Linux (root only), an APFS volume on a RAM device on
 * macOS (`hdiutil attach -nomount ram://SECTORS` + `diskutil erasevolume APFS NAME DEV`). The ones
 * spfs created are recorded in `spfs.db`, and `destroy`/`list` work from that record. Every
 * external program runs through the command runner.
 */
import type { DatabaseSync } from "node:sqlite";
import { mountsAt } from "../../ffi/sys.ts";
import { platform } from "../platform/facts.ts";
import { type Config, storagePaths } from "../config.ts";
import { initSchema, openDb } from "../store/db.ts";
import { SpfsError } from "../errors.ts";
import { lastLine, runner, type RunResult } from "../runner.ts";

/** A recorded RAM disk. `device` is the macOS /dev/diskN, or the tmpfs source name on Linux. */
export interface Ramdisk {
  name: string;
  mountpoint: string;
  device: string;
  size_bytes: number;
  created_ms: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$/;
const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses a size such as `256M`, `2G`, `1.5G` or `1048576` (1024-based units, optional `B`/`iB`).
 * @returns bytes, rounded down to a 512-byte sector; @throws SpfsError UsageError when malformed or < 1 MiB.
 */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(s.trim());
  if (!m) {
    throw new SpfsError("UsageError", `invalid size "${s}"`, {
      hint: "use a number with K, M, G or T, e.g. 2G",
    });
  }
  const bytes = Math.floor((Number(m[1]) * UNITS[m[2].toUpperCase()]) / 512) * 512;
  if (bytes < 1024 * 1024) {
    throw new SpfsError("UsageError", `size ${s} is too small`, { hint: "give at least 1M" });
  }
  return bytes;
}

/** Throws UsageError unless `name` is a valid RAM disk (volume) name. */
export function validateRamdiskName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new SpfsError("UsageError", `invalid RAM disk name "${name}"`, {
      hint: "use 1-30 letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
  }
}

/** The RAM disk table of one storage root. */
export class RamdiskDb {
  readonly db: DatabaseSync;
  constructor(storageRoot: string) {
    this.db = openDb(storageRoot);
    initSchema(
      this.db,
      `CREATE TABLE IF NOT EXISTS ramdisks (
      name TEXT PRIMARY KEY, mountpoint TEXT NOT NULL, device TEXT NOT NULL,
      size_bytes INTEGER NOT NULL, created_ms INTEGER NOT NULL)`,
    );
  }
  all(): Ramdisk[] {
    return this.db.prepare("SELECT * FROM ramdisks ORDER BY created_ms").all() as unknown as Ramdisk[];
  }
  get(name: string): Ramdisk | undefined {
    return this.db.prepare("SELECT * FROM ramdisks WHERE name = ?").get(name) as unknown as
      | Ramdisk
      | undefined;
  }
  put(r: Ramdisk): void {
    this.db.prepare("INSERT INTO ramdisks VALUES (?, ?, ?, ?, ?)").run(
      r.name,
      r.mountpoint,
      r.device,
      r.size_bytes,
      r.created_ms,
    );
  }
  delete(name: string): void {
    this.db.prepare("DELETE FROM ramdisks WHERE name = ?").run(name);
  }
}

const handles = new Map<string, RamdiskDb>();
/** One handle per storage root per process: the service resolves `--scratch` on every mount. */
function ramdiskDb(storageRoot: string): RamdiskDb {
  let db = handles.get(storageRoot);
  if (!db) handles.set(storageRoot, db = new RamdiskDb(storageRoot));
  return db;
}

/** What one platform does to make, remove and see a RAM disk. */
export interface RamdiskBackend {
  /** Creates and mounts a volume; returns its device and mount point. Leaves nothing on failure. */
  create(name: string, bytes: number, cfg: Config): Promise<{ device: string; mountpoint: string }>;
  /** Unmounts and frees it. `force` detaches even when files are open. */
  destroy(r: Ramdisk, force: boolean): Promise<void>;
  /** True while the volume is mounted at its recorded mount point. */
  mounted(r: Ramdisk): boolean;
}

const busy = (r: RunResult) => /busy/i.test(r.stderr + r.stdout);
function busyError(r: Ramdisk, res: RunResult): SpfsError {
  return new SpfsError("RamdiskBusy", `RAM disk ${r.name} is in use: ${lastLine(res)}`, {
    hint:
      `stop the runtimes whose scratch is on it (spfs runtime list), or force it: spfs ramdisk destroy ${r.name} --force`,
  });
}

/** Linux: a tmpfs mounted under the runtime dir. Mounting needs root (CAP_SYS_ADMIN). */
export const tmpfsBackend: RamdiskBackend = {
  async create(name, bytes, cfg) {
    if (Deno.uid() !== 0) {
      throw new SpfsError("PermissionDenied", "creating a tmpfs RAM disk needs root", {
        hint: `run it as root (sudo -E spfs ramdisk create --size ${
          bytes / 1048576
        }M --name ${name}), or put scratch on an existing tmpfs with --scratch DIR`,
      });
    }
    const mountpoint = `${cfg.runtimeDir}/ramdisks/${name}`;
    Deno.mkdirSync(mountpoint, { recursive: true, mode: 0o700 });
    const r = await runner().run([
      "mount",
      "-t",
      "tmpfs",
      "-o",
      `size=${bytes},mode=0700`,
      `spfs-${name}`,
      mountpoint,
    ]);
    if (r.code !== 0) {
      Deno.removeSync(mountpoint);
      throw new SpfsError("MountFailed", `cannot mount a tmpfs at ${mountpoint}: ${lastLine(r)}`, {
        hint: "check `dmesg` and that the size fits in memory",
      });
    }
    return { device: `spfs-${name}`, mountpoint };
  },
  async destroy(rd, force) {
    if (this.mounted(rd)) {
      const r = await runner().run(force ? ["umount", "-l", rd.mountpoint] : ["umount", rd.mountpoint]);
      if (r.code !== 0) {
        if (busy(r)) throw busyError(rd, r);
        throw new SpfsError("MountFailed", `cannot unmount ${rd.mountpoint}: ${lastLine(r)}`);
      }
    }
    try {
      Deno.removeSync(rd.mountpoint);
    } catch { /* already gone */ }
  },
  mounted: (rd) => mountsAt(rd.mountpoint).some((m) => m.fstype === "tmpfs"),
};

/** macOS: a RAM device (512-byte sectors) erased as an APFS volume, mounted at /Volumes/NAME. */
export const apfsBackend: RamdiskBackend = {
  async create(name, bytes) {
    const attach = await runner().run(["hdiutil", "attach", "-nomount", `ram://${bytes / 512}`]);
    const device = attach.stdout.trim().split(/\s+/)[0];
    if (attach.code !== 0 || !/^\/dev\/disk\d+$/.test(device)) {
      throw new SpfsError("MountFailed", `hdiutil could not create a RAM device: ${lastLine(attach)}`, {
        hint: "check free memory (vm_stat) and try a smaller --size",
      });
    }
    const erase = await runner().run(["diskutil", "erasevolume", "APFS", name, device]);
    if (erase.code !== 0) {
      await runner().run(["hdiutil", "detach", device]);
      throw new SpfsError("MountFailed", `diskutil could not format ${device} as APFS: ${lastLine(erase)}`, {
        hint: "the RAM device was detached again; retry with another --name",
      });
    }
    return { device, mountpoint: `/Volumes/${name}` };
  },
  async destroy(rd, force) {
    const r = await runner().run(
      force ? ["hdiutil", "detach", "-force", rd.device] : ["hdiutil", "detach", rd.device],
    );
    if (r.code !== 0) {
      if (busy(r)) throw busyError(rd, r);
      // already detached (reboot, Finder eject): nothing left to free
      if (!/No such file|not (currently )?(attached|mounted)|does not exist/i.test(r.stderr + r.stdout)) {
        throw new SpfsError("MountFailed", `cannot detach ${rd.device}: ${lastLine(r)}`);
      }
    }
  },
  mounted(rd) {
    try {
      return Deno.statSync(rd.mountpoint).isDirectory;
    } catch {
      return false;
    }
  },
};

/** The backend of this platform. */
export const ramdiskBackend: RamdiskBackend = platform.ramdisk === "apfs" ? apfsBackend : tmpfsBackend;

/**
 * Creates and records a RAM disk.
 * @throws SpfsError UsageError (bad name/size, name taken), PermissionDenied, MountFailed.
 */
export async function createRamdisk(
  cfg: Config,
  name: string,
  bytes: number,
  backend = ramdiskBackend,
): Promise<Ramdisk> {
  validateRamdiskName(name);
  const db = ramdiskDb(cfg.storageRoot);
  if (db.get(name)) {
    throw new SpfsError("UsageError", `a RAM disk named ${name} already exists`, {
      hint: `pick another --name, or destroy it first: spfs ramdisk destroy ${name}`,
    });
  }
  const { device, mountpoint } = await backend.create(name, bytes, cfg);
  const rd = { name, mountpoint, device, size_bytes: bytes, created_ms: Date.now() };
  db.put(rd);
  return rd;
}

/**
 * Unmounts, frees and forgets a recorded RAM disk.
 * @throws SpfsError RamdiskNotFound, RamdiskBusy (files open; use `force`), MountFailed.
 */
export async function destroyRamdisk(cfg: Config, name: string, force = false, backend = ramdiskBackend) {
  const db = ramdiskDb(cfg.storageRoot);
  const rd = db.get(name);
  if (!rd) throw notFound(name);
  const users = runtimesOn(cfg, rd);
  if (users.length && !force) {
    throw new SpfsError("RamdiskBusy", `RAM disk ${name} holds the scratch of runtime ${users.join(", ")}`, {
      hint: `remove ${users.length === 1 ? "it" : "them"} first (spfs runtime remove ${
        users.join(" ")
      }), or --force to lose ${users.length === 1 ? "its" : "their"} changes`,
    });
  }
  await backend.destroy(rd, force);
  db.delete(name);
  return rd;
}

/** Ids of runtimes whose dir (a symlink in the storage root) points into the RAM disk. */
function runtimesOn(cfg: Config, rd: Ramdisk): string[] {
  const root = storagePaths(cfg.storageRoot).runtimes;
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(root)) {
      if (!e.isSymlink) continue;
      const target = Deno.readLinkSync(`${root}/${e.name}`);
      if (target.startsWith(`${rd.mountpoint}/`)) out.push(e.name);
    }
  } catch { /* no runtimes dir yet */ }
  return out;
}

function notFound(name: string): SpfsError {
  return new SpfsError("RamdiskNotFound", `no RAM disk named ${name} was created by spfs`, {
    hint: "list them with `spfs ramdisk list`",
  });
}

/** Recorded RAM disks, each with whether it is still mounted. */
export function listRamdisks(cfg: Config, backend = ramdiskBackend): (Ramdisk & { mounted: boolean })[] {
  return ramdiskDb(cfg.storageRoot).all().map((r) => ({ ...r, mounted: backend.mounted(r) }));
}

/**
 * Resolves a `--scratch` value to the directory that will hold runtime dirs: `ramdisk:NAME` is a
 * recorded, mounted RAM disk; anything else must be an existing absolute directory.
 * @throws SpfsError RamdiskNotFound, MountFailed (recorded but not mounted), UsageError.
 */
export function scratchBase(cfg: Config, spec: string, backend = ramdiskBackend): string {
  if (spec.startsWith("ramdisk:")) {
    const name = spec.slice(8);
    const rd = ramdiskDb(cfg.storageRoot).get(name);
    if (!rd) throw notFound(name);
    if (!backend.mounted(rd)) {
      throw new SpfsError("MountFailed", `RAM disk ${name} is not mounted at ${rd.mountpoint} any more`, {
        hint: `forget it (spfs ramdisk destroy ${name}) and create it again`,
      });
    }
    return `${rd.mountpoint}/spfs-runtimes`;
  }
  if (!spec.startsWith("/")) {
    throw new SpfsError(
      "UsageError",
      `--scratch must be ramdisk:NAME or an absolute directory, not "${spec}"`,
      {
        hint: "e.g. --scratch ramdisk:fast, or --scratch /mnt/fast/spfs",
      },
    );
  }
  let st: Deno.FileInfo | undefined;
  try {
    st = Deno.statSync(spec);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be read (${(e as Error).message})`;
    throw new SpfsError("UsageError", `--scratch ${spec} ${why}`, {
      hint: `create it first: mkdir -p ${spec}`,
    });
  }
  if (!st.isDirectory) {
    throw new SpfsError("UsageError", `--scratch ${spec} is not a directory`, {
      hint: "pass a directory (scratch goes in its spfs-runtimes/)",
    });
  }
  return `${spec}/spfs-runtimes`;
}
