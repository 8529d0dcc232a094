/** `spfs service [--foreground] [--stop] [--mountpoint PATH]` */
import { RpcClient, spawnService, waitForService } from "../core/client.ts";
import { type Config, runtimePaths } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { procInfo } from "../ffi/proc.ts";
import type { HealthResult } from "../proto/protocol.ts";
import { printJson } from "./output.ts";

const STOP_TIMEOUT_MS = 15_000;

/** Options of `spfs service`. */
export interface ServiceOpts {
  foreground?: boolean;
  stop?: boolean;
  logFile?: string;
  json?: boolean;
  ifNotRunning?: boolean;
}

export async function service(cfg: Config, o: ServiceOpts): Promise<number> {
  if (o.stop) return await stop(cfg, o.json);
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
    await setupLogging({ file: o.logFile, console: !o.logFile, format: o.logFile ? "json" : "text" });
    const { runService, startupErrorPath } = await import("../core/service.ts");
    try {
      return await runService(cfg);
    } catch (e) {
      if (e instanceof SpfsError && o.logFile) {
        // the client that started us in the background reads this to show the typed error
        try {
          Deno.writeTextFileSync(startupErrorPath(cfg), JSON.stringify(e.toJSON()));
        } catch { /* runtime dir unusable: the exit code still says it failed */ }
      }
      throw e;
    }
  }
  // background start: refuse a second one with the pid of the first
  try {
    const c = await RpcClient.connect(cfg);
    const h = await c.call<HealthResult>("health");
    c.close();
    throw new SpfsError("ServiceAlreadyRunning", `the spfs service is already running (pid ${h.pid})`, {
      hint: "stop it with `spfs service --stop`",
      details: { pid: h.pid },
    });
  } catch (e) {
    if (e instanceof SpfsError && e.code === "ServiceAlreadyRunning") throw e;
  }
  const { ensureRuntimeDir } = await import("../core/service.ts");
  const { checkDevice, checkLibfuse, checkMountpoint } = await import("../core/fusecheck.ts");
  ensureRuntimeDir(cfg);
  checkLibfuse(cfg);
  checkDevice(cfg);
  checkMountpoint(cfg);
  const c = await waitForService(cfg, spawnService(cfg));
  const h = await c.call<HealthResult>("health");
  c.close();
  if (o.json) {
    printJson({
      pid: h.pid,
      mountpoint: cfg.mountpoint,
      socket: runtimePaths(cfg).socket,
      log: runtimePaths(cfg).log,
    });
  } else {console.log(
      `spfs service running (pid ${h.pid}) at ${cfg.mountpoint}; log: ${runtimePaths(cfg).log}`,
    );}
  return 0;
}

async function stop(cfg: Config, json?: boolean): Promise<number> {
  const c = await RpcClient.connect(cfg);
  const h = await c.call<HealthResult>("health");
  const start = procInfo(h.pid)?.startTime;
  await c.call("shutdown");
  c.close();
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const info = procInfo(h.pid);
    if (!info || info.startTime !== start || isZombie(h.pid)) {
      if (json) printJson({ stopped: true, pid: h.pid });
      else console.log(`spfs service (pid ${h.pid}) stopped`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new SpfsError(
    "ServiceConnectionFailed",
    `the spfs service (pid ${h.pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s`,
    {
      hint: `kill it: kill -9 ${h.pid} (the next start cleans up its mount)`,
    },
  );
}

function isZombie(pid: number): boolean {
  try {
    return / Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`).split(")")[1] ?? "");
  } catch {
    return true;
  }
}
