/** The service's single-instance lock: an flock on the pid file, held for the process's life. */
import { type Config, ensureRuntimeDir, readPidFile, runtimePaths } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { tryFlock } from "../../ffi/sys.ts";

/**
 * Takes the lock, clears an old start-up error and records this pid.
 * @returns the fd holding the lock (close it last)
 * @throws SpfsError ServiceAlreadyRunning naming the running pid.
 */
export function acquireServiceLock(cfg: Config): number {
  ensureRuntimeDir(cfg);
  const paths = runtimePaths(cfg);
  const fd = tryFlock(paths.pidFile);
  if (fd === null) {
    const pid = readPidFile(cfg);
    throw new SpfsError(
      "ServiceAlreadyRunning",
      `the spfs service is already running (pid ${pid ?? "unknown"})`,
      {
        hint: "stop it with `spfs service --stop`",
        details: { pid },
      },
    );
  }
  try {
    Deno.removeSync(paths.startupError);
  } catch { /* none */ }
  Deno.writeTextFileSync(paths.pidFile, `${Deno.pid}\n`);
  return fd;
}
