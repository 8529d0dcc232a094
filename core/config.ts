/**
 * Every path default lives here. Precedence: flag > environment (`SPFS_*`) > platform default.
 */
import { join } from "node:path";
import { platform } from "../ffi/platform.ts";

/** Resolved settings and the paths derived from them (all absolute). */
export interface Config {
  storageRoot: string;
  runtimeDir: string;
  mountpoint: string;
  /** Overrides the FUSE library looked up by dlopen (`SPFS_LIBFUSE`). */
  libfuse?: string;
  /** FUSE device checked before mounting (`SPFS_FUSE_DEVICE`, default /dev/fuse). */
  fuseDevice: string;
}

/** Flags that override the environment. */
export interface ConfigFlags {
  storage?: string;
  mountpoint?: string;
  runtimeDir?: string;
}

function home(): string {
  return Deno.env.get("HOME") ?? "/";
}

/** Reads the config from flags and the environment. Never touches the disk. */
export function loadConfig(flags: ConfigFlags = {}): Config {
  const env = Deno.env.toObject();
  const abs = (p: string) => (p.startsWith("/") ? p : join(Deno.cwd(), p));
  return {
    storageRoot: abs(flags.storage ?? env.SPFS_STORAGE_ROOT ?? platform.storageRootDefault(env, home())),
    runtimeDir: abs(
      flags.runtimeDir ?? env.SPFS_RUNTIME_DIR ?? platform.runtimeDirDefault(env, Deno.uid() ?? 0),
    ),
    mountpoint: abs(flags.mountpoint ?? env.SPFS_MOUNTPOINT ?? "/spfs"),
    libfuse: env.SPFS_LIBFUSE,
    fuseDevice: env.SPFS_FUSE_DEVICE ?? "/dev/fuse",
  };
}

/** Paths inside the runtime dir. */
export function runtimePaths(cfg: Config) {
  return {
    socket: join(cfg.runtimeDir, "service.sock"),
    pidFile: join(cfg.runtimeDir, "service.pid"),
    startLock: join(cfg.runtimeDir, "start.lock"),
    log: join(cfg.runtimeDir, "service.log"),
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
  };
  if (cfg.libfuse) out.SPFS_LIBFUSE = cfg.libfuse;
  return out;
}
