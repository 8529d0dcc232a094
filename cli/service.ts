/** `spfs service [--foreground] [--stop] [--mountpoint PATH]` */
import { connectHealthy, startService, stopService } from "../core/client/rpc.ts";
import { type Config, runtimePaths } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { printJson } from "./output.ts";

/** Options of `spfs service`. */
export interface ServiceOpts {
  foreground?: boolean;
  stop?: boolean;
  /** With `stop`: stop even while runtimes are running. */
  force?: boolean;
  logFile?: string;
  json?: boolean;
  ifNotRunning?: boolean;
}

export async function service(cfg: Config, o: ServiceOpts): Promise<number> {
  if (o.force && !o.stop) {
    throw new SpfsError("UsageError", "--force only goes with --stop", {
      hint: "spfs service --stop --force",
    });
  }
  if (o.stop) return await stop(cfg, o.json, o.force);
  try {
    return await start(cfg, o);
  } catch (e) {
    if (o.ifNotRunning && e instanceof SpfsError && e.code === "ServiceAlreadyRunning") {
      if (o.json) printJson({ running: true, pid: e.details?.pid ?? null });
      else console.error(`spfs: ${e.message}`);
      return 0;
    }
    throw e;
  }
}

async function start(cfg: Config, o: ServiceOpts): Promise<number> {
  if (o.foreground) {
    const { setupLogging } = await import("../core/log.ts");
    await setupLogging({
      file: o.logFile,
      console: !o.logFile,
      format: o.logFile ? "json" : cfg.logFormat,
      level: cfg.logLevel,
    });
    const { runService } = await import("../core/service/main.ts");
    try {
      return await runService(cfg);
    } catch (e) {
      if (o.logFile) {
        // the client that started us in the background reads this to show the typed error;
        // an untyped one is logged too, so service.log never ends without a reason
        const err = e instanceof SpfsError
          ? e
          : new SpfsError("ServiceStartFailed", `the service failed to start: ${e}`, {
            details: { cause: String(e) },
          });
        if (!(e instanceof SpfsError)) {
          (await import("../core/log.ts")).logger("service").error("{error}", { error: String(e) });
        }
        try {
          Deno.writeTextFileSync(runtimePaths(cfg).startupError, JSON.stringify(err.toJSON()));
        } catch { /* runtime dir unusable: the exit code still says it failed */ }
      }
      throw e;
    }
  }
  // background start: refuse a second one with the pid of the first
  const running = await connectHealthy(cfg);
  if (running) {
    running.client.close();
    throw new SpfsError(
      "ServiceAlreadyRunning",
      `the spfs service is already running (pid ${running.health.pid})`,
      {
        hint: "stop it with `spfs service --stop`",
        details: { pid: running.health.pid },
      },
    );
  }
  const { client, health } = await startService(cfg);
  client.close();
  const { socket, log } = runtimePaths(cfg);
  if (o.json) printJson({ pid: health.pid, mountpoint: cfg.mountpoint, socket, log });
  else console.log(`spfs service running (pid ${health.pid}) at ${cfg.mountpoint}; log: ${log}`);
  return 0;
}

async function stop(cfg: Config, json?: boolean, force?: boolean): Promise<number> {
  const pid = await stopService(cfg, force);
  if (json) printJson({ stopped: true, pid });
  else console.log(`spfs service (pid ${pid}) stopped`);
  return 0;
}
