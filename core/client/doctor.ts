/**
 * `spfs doctor`: every precondition spfs depends on, checked independently so one failure does not
 * hide the next. Each failed check names the typed error behind it and the exact command that fixes
 * it. Read-only: nothing is created or repaired.
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { fuse3Session } from "../../ffi/fuse/abi.ts";
import { statfs } from "../../ffi/fsops.ts";
import { mounts, mountsAt } from "../../ffi/sys.ts";
import { platform } from "../platform/facts.ts";
import { connectAnswering } from "./rpc.ts";
import { type Config, runtimePaths, storagePaths } from "../config.ts";
import { type ErrorCode, SpfsError } from "../errors.ts";
import {
  abortFile,
  allowOther,
  checkDevice,
  checkLibfuse,
  checkMountpoint,
  checkSyntheticConf,
  FUSE_CONF,
  probeFuseMount,
} from "../platform/checks.ts";

/** One check's outcome. `fix` is a command line (or short instruction) that repairs a failure. */
export interface DoctorCheck {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  code?: ErrorCode;
  fix?: string;
}

/** Below this much free space (bytes) on the storage volume, the storage check fails. */
export const MIN_FREE_BYTES = 256 * 1024 * 1024;

const ok = (name: string, detail: string): DoctorCheck => ({ name, status: "ok", detail });
const fail = (name: string, e: SpfsError): DoctorCheck => ({
  name,
  status: "fail",
  detail: e.message,
  code: e.code,
  fix: e.hint,
});
/** Runs `fn`; a thrown SpfsError becomes a failed check, anything else propagates (a bug). */
function guard(name: string, fn: () => DoctorCheck): DoctorCheck {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SpfsError) return fail(name, e);
    throw e;
  }
}

function libfuse(cfg: Config): DoctorCheck {
  return guard("libfuse", () => {
    const name = checkLibfuse(cfg);
    let version = "version unknown";
    try {
      const lib = Deno.dlopen(name, { fuse_pkgversion: fuse3Session.fuse_pkgversion });
      version = Deno.UnsafePointerView.getCString(lib.symbols.fuse_pkgversion()!);
      lib.close();
    } catch { /* libfuse 2 has no fuse_pkgversion */ }
    return ok("libfuse", `${name} ${version}`);
  });
}

function device(cfg: Config): DoctorCheck {
  return guard("fuse device", () => {
    checkDevice(cfg);
    return ok("fuse device", platform.fuseDeviceCheck ? `${cfg.fuseDevice} opens read-write` : "present");
  });
}

async function mountpoint(cfg: Config): Promise<DoctorCheck> {
  const name = "mount point", mp = cfg.mountpoint;
  try {
    checkSyntheticConf(cfg);
    const state = await checkMountpoint(cfg);
    if (state !== "ok") return fail(name, deadMount(mp, state));
    const top = mountsAt(mp).at(-1);
    if (top && top.fstype !== "fuse.spfs") {
      throw new SpfsError("MountFailed", `${mp} has a ${top.fstype} filesystem mounted on it`, {
        hint: `sudo umount ${mp}, or set SPFS_MOUNTPOINT to another empty directory`,
      });
    }
    return ok(name, top ? `${mp} (spfs mounted)` : `${mp} is a directory`);
  } catch (e) {
    if (e instanceof SpfsError) return fail(name, e);
    throw e;
  }
}

/** The error for a dead ("stale") or stuck ("hung") FUSE mount at `mp`, with its fix. */
function deadMount(mp: string, state: "stale" | "hung"): SpfsError {
  const m = mountsAt(mp).at(-1);
  if (state === "stale") {
    return new SpfsError("MountFailed", `${mp} is a stale FUSE mount (its service died)`, {
      hint: platform.unmountArgv(mp).join(" "),
    });
  }
  return new SpfsError("MountFailed", `hung FUSE mount at ${mp}: its server stopped answering`, {
    hint:
      `stop or kill its server; as root, \`echo 1 > ${
        m ? abortFile(m) : "/sys/fs/fuse/connections/N/abort"
      }\` ` +
      `aborts it, and the next spfs run removes it`,
  });
}

/** The nearest existing ancestor of `p` (itself when it exists). */
function existingAncestor(p: string): string {
  for (let d = p;; d = dirname(d)) {
    try {
      Deno.statSync(d);
      return d;
    } catch { /* go up */ }
    if (d === "/") return "/";
  }
}

function storage(cfg: Config): DoctorCheck {
  return guard("storage", () => {
    const root = cfg.storageRoot;
    const at = existingAncestor(root);
    if (!Deno.statSync(at).isDirectory) {
      throw new SpfsError("StorageError", `storage root ${at} is not a directory`, {
        hint: `move it away (mv ${at} ${at}.bak), or set SPFS_STORAGE_ROOT elsewhere`,
      });
    }
    const probe = `${at}/.spfs-doctor-${Deno.pid}`;
    try {
      Deno.writeTextFileSync(probe, "");
      Deno.removeSync(probe);
    } catch (e) {
      const fix = /read-only/i.test(String(e))
        ? `sudo mount -o remount,rw ${at}`
        : `sudo chown -R $(id -u):$(id -g) ${at}`;
      throw new SpfsError("StorageError", `storage root ${at} is not writable: ${(e as Error).message}`, {
        hint: `${fix}, or set SPFS_STORAGE_ROOT to a directory you can write`,
      });
    }
    const st = statfs(at);
    if (typeof st === "number") return ok("storage", `${root} is writable (free space unknown)`);
    const free = st.bavail * st.bsize;
    const mib = (n: number) => `${Math.floor(n / 1048576)} MiB`;
    if (free < MIN_FREE_BYTES) {
      throw new SpfsError("StorageFull", `only ${mib(free)} free on the storage volume of ${root}`, {
        hint: `free space there (df -h ${at}), or set SPFS_STORAGE_ROOT to a volume with ${
          mib(MIN_FREE_BYTES)
        } or more free`,
      });
    }
    const exists = at === root ? "" : " (created on first use)";
    return ok("storage", `${root}${exists}: ${st.typeName}, ${mib(free)} free`);
  });
}

function database(cfg: Config): DoctorCheck {
  return guard("database", () => {
    const db = storagePaths(cfg.storageRoot).db;
    try {
      Deno.statSync(db);
    } catch {
      return ok("database", `${db} does not exist yet (created on first use)`);
    }
    const fix =
      `stop the service (spfs service --stop), then rebuild it: mv ${db} ${db}.bad && sqlite3 ${db}.bad .recover | sqlite3 ${db}`;
    let result: string;
    try {
      const h = new DatabaseSync(db, { readOnly: true });
      try {
        result = (h.prepare("PRAGMA quick_check").all() as { quick_check: string }[])
          .map((r) => r.quick_check).join("; ");
      } finally {
        h.close();
      }
    } catch (e) {
      throw new SpfsError("DatabaseCorrupt", `${db} cannot be read: ${(e as Error).message}`, { hint: fix });
    }
    if (result !== "ok") {
      throw new SpfsError("DatabaseCorrupt", `${db} failed PRAGMA quick_check: ${result.slice(0, 200)}`, {
        hint: fix,
      });
    }
    return ok("database", `${db}: quick_check ok`);
  });
}

async function service(cfg: Config): Promise<DoctorCheck> {
  const name = "service";
  const sock = runtimePaths(cfg).socket;
  try {
    Deno.lstatSync(sock);
  } catch {
    return ok(name, "not running (spfs run starts it on demand)");
  }
  try {
    const { client, health: h } = await connectAnswering(cfg);
    client.close();
    return ok(name, `pid ${h.pid}, version ${h.version}, protocol ${h.protocol}, up ${h.uptime_s} s`);
  } catch (e) {
    if (!(e instanceof SpfsError)) throw e;
    if (e.code === "ServiceNotRunning") {
      return fail(
        name,
        new SpfsError("ServiceNotRunning", `stale socket ${sock}: nothing listens on it`, {
          hint: `rm ${sock}  (or just run spfs: a new service replaces it)`,
        }),
      );
    }
    return fail(name, e);
  }
}

/**
 * Dead or hung spfs mounts, probed concurrently. One at this config's mount point fails (spfs cannot
 * mount there); others (another storage root, another user's test) only warn: they block nothing
 * here, but each holds a FUSE connection until unmounted.
 */
async function staleMounts(cfg: Config): Promise<DoctorCheck> {
  const name = "stale mounts";
  if (!platform.mountTable) return ok(name, "not checked on this platform");
  const spfs = mounts().filter((m) => m.fstype === "fuse.spfs");
  const states = await Promise.all(spfs.map((m) => probeFuseMount(m.mountpoint)));
  const bad = spfs.map((m, i) => [m.mountpoint, states[i]] as const)
    .filter((b): b is [string, "stale" | "hung"] => b[1] === "stale" || b[1] === "hung");
  if (!bad.length) return ok(name, `none (${spfs.length} live spfs mount${spfs.length === 1 ? "" : "s"})`);
  const errs = bad.map(([mp, state]) => deadMount(mp, state));
  const n = bad.filter((b) => b[1] === "stale").length, h = bad.length - n;
  const what = [n && `${n} spfs mount${n === 1 ? " is" : "s are"} stale (service killed)`, h && `${h} hung`]
    .filter(Boolean).join(", ");
  const ours = bad.some((b) => b[0] === cfg.mountpoint);
  return {
    name,
    status: ours ? "fail" : "warn",
    code: "MountFailed",
    detail: `${what}: ${bad.map((b) => b[0]).join(", ")}${
      ours ? "" : ` (not ${cfg.mountpoint}, so spfs still works)`
    }`,
    fix: errs.map((e) => e.hint).join(" && "),
  };
}

/** allow_other: without it, processes of other uids inside a runtime are locked out (EACCES). */
function otherUsers(): DoctorCheck {
  const name = "other users";
  const a = allowOther();
  if (a.ok) return ok(name, `allow_other (${a.why}): other uids inside a runtime get mode-bit permissions`);
  return {
    name,
    status: "warn",
    detail: `${a.why}: processes of other uids inside a runtime (su, sudo -u, dropped privileges) get EACCES`,
    fix: `echo user_allow_other | sudo tee -a ${FUSE_CONF}  # then restart: spfs service --stop`,
  };
}

/**
 * Runs every check and returns them in order. Checks that may wait (a probe of a hung mount, a
 * service that does not answer) run concurrently, so doctor finishes within a few seconds.
 */
export async function runDoctor(cfg: Config): Promise<DoctorCheck[]> {
  const sync = [libfuse(cfg), device(cfg)];
  const [mp, svc, stale] = await Promise.all([mountpoint(cfg), service(cfg), staleMounts(cfg)]);
  return [...sync, mp, otherUsers(), storage(cfg), database(cfg), svc, stale];
}
