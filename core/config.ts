/**
 * Every path default lives here. Precedence: flag > environment (`SPFS_*`) > platform default.
 */
import { join } from "node:path";
import { os } from "../ffi/os.ts";
import { SpfsError } from "./errors.ts";

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

/** Reads the config from flags and the environment. Never touches the disk. */
export function loadConfig(flags: ConfigFlags = {}): Config {
  const env = Deno.env.toObject();
  const abs = (p: string) => (p.startsWith("/") ? p : join(Deno.cwd(), p));
  return {
    storageRoot: abs(flags.storage ?? env.SPFS_STORAGE_ROOT ?? storageRootDefault(env, home())),
    runtimeDir: abs(
      flags.runtimeDir ?? env.SPFS_RUNTIME_DIR ?? runtimeDirDefault(env, Deno.uid() ?? 0),
    ),
    mountpoint: abs(flags.mountpoint ?? env.SPFS_MOUNTPOINT ?? "/spfs"),
    libfuse: env.SPFS_LIBFUSE,
    fuseDevice: env.SPFS_FUSE_DEVICE ?? "/dev/fuse",
    idleTimeoutS: flags.idleTimeoutS ?? seconds(env.SPFS_SERVICE_IDLE_TIMEOUT) ?? DEFAULT_IDLE_TIMEOUT_S,
    logLevel: flags.verbose ? "debug" : oneOf("SPFS_LOG", env.SPFS_LOG || "info", LEVELS),
    logFormat: oneOf(
      "--log-format",
      flags.logFormat ?? (env.SPFS_LOG_FORMAT || "text"),
      ["text", "json"] as const,
    ),
    metricsListen: flags.metricsListen ?? (env.SPFS_METRICS_LISTEN || undefined),
  };
}

/** Paths inside the runtime dir. */
export function runtimePaths(cfg: Config) {
  return {
    socket: join(cfg.runtimeDir, "service.sock"),
    pidFile: join(cfg.runtimeDir, "service.pid"),
    startLock: join(cfg.runtimeDir, "start.lock"),
    log: join(cfg.runtimeDir, "service.log"),
    /** Where a failed start leaves its typed error for the client that launched it. */
    startupError: join(cfg.runtimeDir, "startup-error.json"),
  };
}

/** Paths inside the storage root. */
export function storagePaths(storageRoot: string) {
  return {
    objects: join(storageRoot, "objects", "sha256"),
    tmp: join(storageRoot, "tmp"),
    db: join(storageRoot, "spfs.db"),
    runtimes: join(storageRoot, "runtimes"),
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
  };
  if (cfg.metricsListen) out.SPFS_METRICS_LISTEN = cfg.metricsListen;
  if (cfg.libfuse) out.SPFS_LIBFUSE = cfg.libfuse;
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
