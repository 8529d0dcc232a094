/**
 * Every path default lives here. Precedence: flag > environment (`SPFS_*`) > config file
 * (`config.toml`) > platform default.
 */
import { os } from "../ffi/os.ts";
import { SpfsError } from "./errors.ts";

/** One `[remote.NAME]` table of the config file. */
export interface RemoteConfig {
  /** `oci://host[:port]/namespace/repo` or `file:///abs/path`. */
  address: string;
  /** Allow plain HTTP to a registry that is not on loopback. */
  insecure?: boolean;
}

/** Resolved settings and the paths derived from them (all absolute). */
export interface Config {
  storageRoot: string;
  runtimeDir: string;
  mountpoint: string;
  /** Overrides the FUSE library looked up by dlopen (`SPFS_LIBFUSE`). */
  libfuse?: string;
  /** FUSE device checked before mounting (`SPFS_FUSE_DEVICE`, default /dev/fuse). */
  fuseDevice: string;
  /** Seconds the service stays up with no runtimes (`SPFS_SERVICE_IDLE_TIMEOUT`); 0 = forever. */
  idleTimeoutS: number;
  /** Lowest log level (`-v` / `SPFS_LOG`). */
  logLevel: "debug" | "info" | "warning" | "error";
  /** Console log format (`--log-format` / `SPFS_LOG_FORMAT`); the service's log file is always JSON. */
  logFormat: "text" | "json";
  /** host:port for the Prometheus `/metrics` endpoint, loopback only (`SPFS_METRICS_LISTEN`). */
  metricsListen?: string;
  /** The config file read (it may not exist): `SPFS_CONFIG` or the platform's config dir. */
  configFile: string;
  /** `[remote.NAME]` tables; `origin` is the default remote. */
  remotes: Record<string, RemoteConfig>;
  /** Sentry DSN for reporting bugs (`SPFS_SENTRY_DSN` / `sentry_dsn`); unset = no reporting. */
  sentryDsn?: string;
}

const LEVELS = ["debug", "info", "warning", "error"] as const;
function oneOf<T extends string>(what: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) {
    throw new SpfsError("UsageError", `${what} must be one of ${allowed.join(", ")}, not "${v}"`, {
      hint: `e.g. ${what}=${allowed[0]}`,
    });
  }
  return v as T;
}

/** Default idle timeout: 30 minutes. */
export const DEFAULT_IDLE_TIMEOUT_S = 30 * 60;

/** Flags that override the environment. */
export interface ConfigFlags {
  storage?: string;
  mountpoint?: string;
  runtimeDir?: string;
  idleTimeoutS?: number;
  /** Number of -v flags: 1 = debug. */
  verbose?: number;
  logFormat?: string;
  metricsListen?: string;
}

/**
 * POSIX `path.resolve(base, p)`: `p` made absolute against `base` and normalised (no `.`, `..`
 * or empty segments, no trailing slash). Kept here rather than importing node:path because the
 * first `node:` import costs `spfs run` about 9 ms of Node-compat start-up (measured, Deno 2.9.6).
 */
export function resolvePath(base: string, p: string): string {
  const out: string[] = [];
  for (const part of (p.startsWith("/") ? p : `${base}/${p}`).split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

function home(): string {
  return Deno.env.get("HOME") ?? "/";
}

function seconds(v: string | undefined): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new SpfsError(
      "UsageError",
      `SPFS_SERVICE_IDLE_TIMEOUT must be a number of seconds >= 0, not "${v}"`,
      {
        hint: "use 0 to never idle-exit, e.g. SPFS_SERVICE_IDLE_TIMEOUT=1800",
      },
    );
  }
  return n;
}

/** Default storage root (ARCHITECTURE.md "Storage"). */
function storageRootDefault(env: Record<string, string | undefined>, home: string): string {
  return os === "darwin"
    ? `${home}/Library/Application Support/spfs`
    : `${env.XDG_DATA_HOME || `${home}/.local/share`}/spfs`;
}

/** Default runtime dir for the socket, pidfile and logs. */
function runtimeDirDefault(env: Record<string, string | undefined>, uid: number): string {
  if (os === "linux" && env.XDG_RUNTIME_DIR) return `${env.XDG_RUNTIME_DIR}/spfs`;
  return `${(env.TMPDIR || "/tmp").replace(/\/$/, "")}/spfs-${uid}`;
}

/** Default config file: `$XDG_CONFIG_HOME/spfs/config.toml`; macOS Application Support. */
function configFileDefault(env: Record<string, string | undefined>, home: string): string {
  return os === "darwin"
    ? `${home}/Library/Application Support/spfs/config.toml`
    : `${env.XDG_CONFIG_HOME || `${home}/.config`}/spfs/config.toml`;
}

/** The settings a config file may carry; each mirrors a flag or an `SPFS_*` variable. */
interface FileSettings {
  storage_root?: string;
  runtime_dir?: string;
  mountpoint?: string;
  libfuse?: string;
  fuse_device?: string;
  idle_timeout?: number;
  log_level?: string;
  log_format?: string;
  metrics_listen?: string;
  sentry_dsn?: string;
  remote?: Record<string, RemoteConfig>;
}

const FILE_KEYS: Record<keyof FileSettings, "string" | "number" | "object"> = {
  storage_root: "string",
  runtime_dir: "string",
  mountpoint: "string",
  libfuse: "string",
  fuse_device: "string",
  idle_timeout: "number",
  log_level: "string",
  log_format: "string",
  metrics_listen: "string",
  sentry_dsn: "string",
  remote: "object",
};

/**
 * Reads and checks a config file; a missing file is an empty one. The TOML parser is imported
 * only when there is a file: an npm import costs `spfs run` about 3 ms (measured, Deno 2.9.6).
 * @throws SpfsError UsageError naming the file and the bad key or TOML syntax.
 */
export async function readConfigFile(path: string): Promise<FileSettings> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new SpfsError("UsageError", `cannot read the config file ${path}: ${(e as Error).message}`);
  }
  const bad = (why: string) =>
    new SpfsError("UsageError", `config file ${path}: ${why}`, {
      hint: 'fix the file (see README "Configuration"), or point SPFS_CONFIG at another one',
    });
  const { parse } = await import("smol-toml");
  let v: Record<string, unknown>;
  try {
    v = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw bad((e as Error).message.split("\n")[0]);
  }
  for (const [k, val] of Object.entries(v)) {
    const want = FILE_KEYS[k as keyof FileSettings];
    if (!want) throw bad(`unknown key "${k}" (known: ${Object.keys(FILE_KEYS).join(", ")})`);
    const got: string = typeof val;
    if (got !== want) throw bad(`"${k}" must be a ${want}`);
  }
  for (const [name, r] of Object.entries((v.remote ?? {}) as Record<string, any>)) {
    if (typeof r?.address !== "string") {
      throw bad(`[remote.${name}] needs address = "oci://…" or "file:///…"`);
    }
    if (r.insecure !== undefined && typeof r.insecure !== "boolean") {
      throw bad(`[remote.${name}] insecure must be true or false`);
    }
    for (const k of Object.keys(r)) {
      if (k !== "address" && k !== "insecure") throw bad(`[remote.${name}] has an unknown key "${k}"`);
    }
  }
  return v as FileSettings;
}

/**
 * Adds, replaces (`remote` set) or removes (`remote` undefined) one `[remote.NAME]` table and
 * rewrites the file; the other settings are kept (comments are not).
 * @throws SpfsError UsageError when the file is not valid.
 */
export async function writeRemote(
  path: string,
  name: string,
  remote: RemoteConfig | undefined,
): Promise<void> {
  const v = await readConfigFile(path);
  const remotes = { ...v.remote };
  if (remote) remotes[name] = remote;
  else delete remotes[name];
  const out: FileSettings = { ...v, remote: remotes };
  if (!Object.keys(remotes).length) delete out.remote;
  Deno.mkdirSync(resolvePath(path, ".."), { recursive: true });
  const tmp = `${path}.${Deno.pid}.tmp`;
  const { stringify } = await import("smol-toml");
  Deno.writeTextFileSync(tmp, stringify(out) + "\n");
  Deno.renameSync(tmp, path);
}

/**
 * Reads the config from flags, the environment and the config file (only that file is read).
 * @throws SpfsError UsageError for a bad setting or config file.
 */
export async function loadConfig(flags: ConfigFlags = {}): Promise<Config> {
  const env = Deno.env.toObject();
  const abs = (p: string) => resolvePath(Deno.cwd(), p);
  const configFile = abs(env.SPFS_CONFIG || configFileDefault(env, home()));
  const f = await readConfigFile(configFile);
  const idle = flags.idleTimeoutS ?? seconds(env.SPFS_SERVICE_IDLE_TIMEOUT) ??
    (f.idle_timeout === undefined ? undefined : seconds(String(f.idle_timeout)));
  return {
    storageRoot: abs(
      flags.storage ?? env.SPFS_STORAGE_ROOT ?? f.storage_root ?? storageRootDefault(env, home()),
    ),
    runtimeDir: abs(
      flags.runtimeDir ?? env.SPFS_RUNTIME_DIR ?? f.runtime_dir ?? runtimeDirDefault(env, Deno.uid() ?? 0),
    ),
    mountpoint: abs(flags.mountpoint ?? env.SPFS_MOUNTPOINT ?? f.mountpoint ?? "/spfs"),
    libfuse: env.SPFS_LIBFUSE ?? f.libfuse,
    fuseDevice: env.SPFS_FUSE_DEVICE ?? f.fuse_device ?? "/dev/fuse",
    idleTimeoutS: idle ?? DEFAULT_IDLE_TIMEOUT_S,
    logLevel: flags.verbose ? "debug" : oneOf("SPFS_LOG", env.SPFS_LOG || f.log_level || "info", LEVELS),
    logFormat: oneOf(
      "--log-format",
      flags.logFormat ?? (env.SPFS_LOG_FORMAT || f.log_format || "text"),
      ["text", "json"] as const,
    ),
    metricsListen: flags.metricsListen ?? (env.SPFS_METRICS_LISTEN || f.metrics_listen || undefined),
    configFile,
    remotes: f.remote ?? {},
    sentryDsn: sentryDsn(env.SPFS_SENTRY_DSN || f.sentry_dsn || undefined),
  };
}

/**
 * Checks the shape of a Sentry DSN, `https://KEY@HOST[:PORT]/PROJECT_ID`.
 * @throws SpfsError UsageError naming what is wrong (without echoing the key).
 */
function sentryDsn(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch { /* reported below */ }
  if (!u || !/^https?:$/.test(u.protocol) || !u.username || !/^\/(.*\/)?\d+$/.test(u.pathname)) {
    throw new SpfsError("UsageError", "SPFS_SENTRY_DSN / sentry_dsn is not a Sentry DSN", {
      hint: "copy it from your Sentry project's settings: https://KEY@HOST/PROJECT_ID, or unset it",
    });
  }
  return v;
}

/** Paths inside the runtime dir. */
export function runtimePaths(cfg: Config) {
  return {
    socket: `${cfg.runtimeDir}/service.sock`,
    pidFile: `${cfg.runtimeDir}/service.pid`,
    startLock: `${cfg.runtimeDir}/start.lock`,
    log: `${cfg.runtimeDir}/service.log`,
    /** Where a failed start leaves its typed error for the client that launched it. */
    startupError: `${cfg.runtimeDir}/startup-error.json`,
  };
}

/** Paths inside the storage root. */
export function storagePaths(storageRoot: string) {
  return {
    objects: `${storageRoot}/objects/sha256`,
    tmp: `${storageRoot}/tmp`,
    packs: `${storageRoot}/packs`,
    db: `${storageRoot}/spfs.db`,
    runtimes: `${storageRoot}/runtimes`,
  };
}

/** Environment variables a spawned service must inherit so it sees the same config. */
export function configEnv(cfg: Config): Record<string, string> {
  const out: Record<string, string> = {
    SPFS_STORAGE_ROOT: cfg.storageRoot,
    SPFS_RUNTIME_DIR: cfg.runtimeDir,
    SPFS_MOUNTPOINT: cfg.mountpoint,
    SPFS_FUSE_DEVICE: cfg.fuseDevice,
    SPFS_SERVICE_IDLE_TIMEOUT: String(cfg.idleTimeoutS),
    SPFS_LOG: cfg.logLevel,
    SPFS_LOG_FORMAT: cfg.logFormat,
    SPFS_CONFIG: cfg.configFile,
  };
  if (cfg.metricsListen) out.SPFS_METRICS_LISTEN = cfg.metricsListen;
  if (cfg.libfuse) out.SPFS_LIBFUSE = cfg.libfuse;
  if (cfg.sentryDsn) out.SPFS_SENTRY_DSN = cfg.sentryDsn;
  return out;
}

/** Creates the runtime dir with mode 0700. */
export function ensureRuntimeDir(cfg: Config): void {
  Deno.mkdirSync(cfg.runtimeDir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(cfg.runtimeDir, 0o700);
}

/** Reads the pid recorded in the pid file, if any. */
export function readPidFile(cfg: Config): number | undefined {
  try {
    const n = Number(Deno.readTextFileSync(runtimePaths(cfg).pidFile).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
