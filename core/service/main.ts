/**
 * The spfs service process, wiring only: lock, pre-mount checks, store, runtime table, FUSE
 * worker, RPC server, metrics, and the supervisor (signals, idle timeout, worker exit).
 */
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { logger } from "../log.ts";
import { reportBug } from "../report.ts";
import { CTR_BYTES, LAT_BUCKETS, parseLoopback } from "../metrics.ts";
import { checkDevice, checkLibfuse, checkMountpoint, cleanupStaleMount } from "../platform/checks.ts";
import { socketAddress } from "../platform/socket.ts";
import { ObjectStore } from "../store/store.ts";
import { TagDb } from "../store/tags.ts";
import { OPS_SLOTS } from "../../ffi/fuse/lowlevel.ts";
import { libc } from "../../ffi/sys.ts";
import { runtimePaths } from "../config.ts";
import { probeBackstore } from "./backstore.ts";
import { acquireServiceLock } from "./lock.ts";
import { serveMetrics } from "./metrics_http.ts";
import { status } from "./methods/status.ts";
import { RpcServer } from "./rpc.ts";
import { RuntimeTable } from "./runtimes.ts";
import type { Service } from "./state.ts";
import { WorkerHandle } from "./worker_handle.ts";

export { probeBackstore };

const log = logger("service");
/** How often root processes are polled for exit where pidfd is unavailable; the idle check period with pidfd (ms). */
const ROOT_POLL_MS = 250, SWEEP_MS = 1000;

/**
 * Runs the service in this process until shutdown. Resolves with the exit code.
 * @throws SpfsError for failures before serving (already running, FUSE checks, mount).
 */
export async function runService(cfg: Config): Promise<number> {
  let metricsAddr: { hostname: string; port: number } | undefined;
  try {
    if (cfg.metricsListen) metricsAddr = parseLoopback(cfg.metricsListen);
  } catch (e) {
    throw new SpfsError("UsageError", (e as Error).message, { hint: "use 127.0.0.1:PORT or [::1]:PORT" });
  }
  // never hold a cwd inside the mount this process is about to serve
  Deno.chdir("/");
  const lockFd = acquireServiceLock(cfg);
  await preflight(cfg);
  const s = await start(cfg);
  const socket = runtimePaths(cfg).socket;
  const rpc = new RpcServer(s, socket, await socketAddress(socket));
  const metrics = metricsAddr && serveMetrics(metricsAddr, () => status(s), log);
  const supervisor = supervise(s);
  let stopping: Promise<void> | undefined;
  const stopped = Promise.withResolvers<void>();
  s.stop = (why) =>
    stopping ??= (async () => {
      log.info("stopping ({why})", { why });
      clearInterval(supervisor);
      s.runtimes.exits.close();
      await metrics?.shutdown();
      rpc.stopAccepting();
      await s.worker.stop(log);
      rpc.closeConnections();
      try {
        Deno.removeSync(runtimePaths(cfg).socket);
      } catch { /* gone */ }
      libc().close(lockFd);
    })().finally(stopped.resolve);
  for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => void s.stop(sig));

  log.info("serving on {socket} (pid {pid})", { socket: runtimePaths(cfg).socket, pid: Deno.pid });
  const end = await Promise.race([
    s.worker.exited.then((c) => ({ crashed: c })),
    stopped.promise.then(() => ({ stopped: true })),
  ]);
  if ("crashed" in end && !stopping) {
    log.error("FUSE loop ended unexpectedly (code {code}); shutting down", { code: end.crashed });
    // code 0 is an unmount from outside (fusermount -u): the user's doing, not a bug
    if (end.crashed !== 0) {
      await reportBug(
        new Error(`FUSE loop ended unexpectedly (code ${end.crashed})`),
        { component: "service", command: "fuse loop" },
        cfg.sentryDsn,
      );
    }
    await s.stop("FUSE loop ended");
    await rpc.accepting;
    return 1;
  }
  await rpc.accepting;
  return 0;
}

/** The FUSE library and device are usable, a dead or hung mount is gone, the mount point is ready. */
async function preflight(cfg: Config): Promise<void> {
  checkLibfuse(cfg);
  checkDevice(cfg);
  if (await cleanupStaleMount(cfg)) {
    log.warn("removed a dead or hung FUSE mount at {mountpoint}", { mountpoint: cfg.mountpoint });
  }
  await checkMountpoint(cfg);
}

/** Opens storage, sweeps what a crash left, and mounts through a new worker. */
async function start(cfg: Config): Promise<Service> {
  const store = ObjectStore.open(cfg.storageRoot);
  const tags = new TagDb(cfg.storageRoot);
  const { RuntimeDb } = await import("../runtime/records.ts");
  const rdb = new RuntimeDb(cfg.storageRoot);
  const backstore = probeBackstore(cfg.storageRoot);
  log.info("backstore {path}: {fs_type}, copy-up by {copy_up}", { ...backstore });
  // a non-durable runtime never outlives its service: remove what a crash left behind
  const durableIds = new Set(rdb.all().map((r) => r.id));
  for (const id of rdb.dirIds()) {
    if (durableIds.has(id)) rdb.sweepWork(id);
    else void rdb.removeDirs(id).catch((e) => log.warn("cannot remove {id}: {e}", { id, e: String(e) }));
  }
  const started = performance.now();
  const shared = {
    counters: new SharedArrayBuffer(CTR_BYTES),
    latency: new SharedArrayBuffer(4 * LAT_BUCKETS * OPS_SLOTS),
  };
  const worker = await WorkerHandle.start(cfg, shared, log, (d) => store.locate(d));
  log.info("mounted {mountpoint} with {libfuse}", { mountpoint: cfg.mountpoint, libfuse: worker.libfuse });
  const runtimes = new RuntimeTable(rdb, worker, log);
  log.info("root-process exit watch: {kind}", { kind: runtimes.exits.kind });
  return {
    cfg,
    store,
    tags,
    rdb,
    runtimes,
    worker,
    backstore,
    started,
    counters: new Int32Array(shared.counters),
    latency: new Int32Array(shared.latency),
    log,
    stop: () => Promise.resolve(),
  };
}

/** The exit watch where pidfd is missing, and the idle timeout counted from the last runtime's end. */
function supervise(s: Service): ReturnType<typeof setInterval> {
  let idleSince = performance.now();
  const period = s.runtimes.exits.kind === "poll" ? ROOT_POLL_MS : SWEEP_MS;
  return setInterval(() => {
    s.runtimes.pollExits();
    if (s.runtimes.live.size > 0) idleSince = performance.now();
    else if (s.cfg.idleTimeoutS > 0 && performance.now() - idleSince > s.cfg.idleTimeoutS * 1000) {
      void s.stop(`idle for ${s.cfg.idleTimeoutS} s with no runtimes`);
    }
  }, period);
}
