/**
 * The spfs service main thread: single-instance lock, pre-mount checks, the FUSE worker, the
 * JSON-RPC server on the Unix socket, the runtime table, and the root-process exit watch.
 */
import { MessageChannel, Worker } from "node:worker_threads";
import { type Config, runtimePaths } from "./config.ts";
import { SpfsError } from "./errors.ts";
import {
  checkDevice,
  checkLibfuse,
  checkMountpoint,
  cleanupStaleMount,
  libfuseCandidates,
} from "./fusecheck.ts";
import type { FromWorker, FuseWorkerData, ToWorker } from "./fuse_worker.ts";
import { logger } from "./log.ts";
import { resolveSpec } from "./refs.ts";
import { ObjectStore } from "./store.ts";
import { TagDb } from "./tags.ts";
import { VERSION } from "./version.ts";
import { procInfo } from "../ffi/proc.ts";
import { libc, tryFlock } from "../ffi/libc.ts";
import { platform } from "../ffi/platform.ts";
import { runner } from "./runner.ts";
import {
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  RpcCode,
  type RpcResponse,
  type RuntimeInfo,
  type StatusResult,
} from "../proto/protocol.ts";
import { readFrames } from "../proto/framing.ts";

const log = logger("service");
/** How often registered root processes are checked for exit (ms). */
const ROOT_WATCH_MS = 250;

interface Runtime extends RuntimeInfo {
  startTime: number;
}

/** Where a failed start leaves its typed error for the client that launched it. */
export function startupErrorPath(cfg: Config): string {
  return `${cfg.runtimeDir}/startup-error.json`;
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

/**
 * Runs the service in this process until shutdown. Resolves with the exit code.
 * @throws SpfsError for failures before serving (already running, FUSE checks, mount).
 */
export async function runService(cfg: Config): Promise<number> {
  ensureRuntimeDir(cfg);
  const paths = runtimePaths(cfg);
  const lockFd = tryFlock(paths.pidFile);
  if (lockFd === null) {
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
    Deno.removeSync(startupErrorPath(cfg));
  } catch { /* none */ }
  Deno.writeTextFileSync(paths.pidFile, `${Deno.pid}\n`);

  checkLibfuse(cfg);
  checkDevice(cfg);
  if (await cleanupStaleMount(cfg)) {
    log.warn("removed a stale FUSE mount at {mountpoint}", { mountpoint: cfg.mountpoint });
  }
  checkMountpoint(cfg);

  const store = ObjectStore.open(cfg.storageRoot);
  const tags = new TagDb(cfg.storageRoot);
  const started = performance.now();
  const runtimes = new Map<string, Runtime>();
  const counters = new SharedArrayBuffer(16);
  const counterView = new Int32Array(counters);

  // FUSE worker
  const channel = new MessageChannel();
  const data: FuseWorkerData = {
    storageRoot: cfg.storageRoot,
    mountpoint: cfg.mountpoint,
    libfuse: libfuseCandidates(cfg),
    uid: Deno.uid() ?? 0,
    gid: Deno.gid() ?? 0,
    port: channel.port2,
    counters,
  };
  const worker = new Worker(new URL("./fuse_worker.ts", import.meta.url), {
    workerData: data,
    transferList: [channel.port2 as any],
  });
  const toWorker = (m: ToWorker) => channel.port1.postMessage(m);
  let libfuseName = "";
  let workerExit: (code: number) => void;
  const workerExited = new Promise<number>((r) => workerExit = r);
  const mounted = new Promise<void>((resolve, reject) => {
    worker.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "mounted":
          libfuseName = `${m.libfuse} ${m.version}`;
          resolve();
          break;
        case "error":
          reject(
            new SpfsError("MountFailed", `cannot mount ${cfg.mountpoint}: ${m.message}`, {
              hint: "run `spfs service --foreground` to see libfuse's own message",
            }),
          );
          break;
        case "log":
          log[m.level === "warning" ? "warn" : m.level](m.message, m.fields ?? {});
          break;
        case "exited":
          workerExit(m.code);
          break;
      }
    });
    worker.on("error", (e: unknown) => {
      log.error("FUSE worker crashed: {error}", { error: String(e) });
      reject(new SpfsError("MountFailed", `FUSE worker failed: ${e}`));
      workerExit(-1);
    });
    worker.on("exit", () => workerExit(-1));
  });
  await mounted;
  log.info("mounted {mountpoint} with {libfuse}", { mountpoint: cfg.mountpoint, libfuse: libfuseName });

  // runtime table
  const unregister = (rt: Runtime, why: string) => {
    runtimes.delete(rt.id);
    toWorker({ type: "unregister", pid: rt.root_pid });
    log.info("unregistered runtime {runtime} ({why})", { runtime: rt.id, root_pid: rt.root_pid, why });
  };
  const health = () => ({
    healthy: true,
    version: VERSION,
    protocol: PROTOCOL_VERSION,
    uptime_s: Math.round((performance.now() - started) / 100) / 10,
    pid: Deno.pid,
  });
  let stopping: Promise<void> | undefined;
  const stopped = Promise.withResolvers<void>();
  const methods: Record<string, (p: any) => unknown> = {
    health,
    status: (): StatusResult => ({
      ...health(),
      mountpoint: cfg.mountpoint,
      storage_root: cfg.storageRoot,
      libfuse: libfuseName,
      runtimes: [...runtimes.values()].map(({ startTime: _, ...r }) => r),
      fuse: {
        requests: Atomics.load(counterView, 0),
        errors: Atomics.load(counterView, 1),
        opens: Atomics.load(counterView, 2),
        lookups: Atomics.load(counterView, 3),
      },
    }),
    mount: (p: { pid: number; spec: string }) => {
      const info = procInfo(p.pid);
      if (!info) {
        throw new SpfsError("UsageError", `process ${p.pid} does not exist`, {
          hint: "register a running process",
        });
      }
      const resolved = resolveSpec(p.spec, store, tags);
      for (const rt of runtimes.values()) if (rt.root_pid === p.pid) unregister(rt, "re-registered");
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const rt: Runtime = {
        id,
        root_pid: p.pid,
        env_spec: p.spec,
        layers: resolved.layers,
        started_ms: Date.now(),
        startTime: info.startTime,
      };
      runtimes.set(id, rt);
      toWorker({ type: "register", id, pid: p.pid, startTime: info.startTime, layers: resolved.layers });
      log.info("registered runtime {runtime} for {root_pid}: {env_spec}", {
        runtime: id,
        root_pid: p.pid,
        env_spec: p.spec,
      });
      return { id, layers: resolved.layers };
    },
    unmount: (p: { pid?: number; id?: string }) => {
      let removed = 0;
      for (const rt of [...runtimes.values()]) {
        if ((p.id && rt.id === p.id) || (p.pid && rt.root_pid === p.pid)) {
          unregister(rt, "unmount");
          removed++;
        }
      }
      return { removed };
    },
    shutdown: () => {
      queueMicrotask(() => void stop("rpc shutdown"));
      return { stopping: true };
    },
  };

  // root-process exit watch, and the idle timeout (counted from the last runtime's end)
  let idleSince = performance.now();
  const watch = setInterval(() => {
    for (const rt of [...runtimes.values()]) {
      const info = procInfo(rt.root_pid);
      if (!info || info.startTime !== rt.startTime) unregister(rt, "root process exited");
    }
    if (runtimes.size > 0) idleSince = performance.now();
    else if (cfg.idleTimeoutS > 0 && performance.now() - idleSince > cfg.idleTimeoutS * 1000) {
      void stop(`idle for ${cfg.idleTimeoutS} s with no runtimes`);
    }
  }, ROOT_WATCH_MS);

  // RPC server
  try {
    Deno.removeSync(paths.socket);
  } catch { /* none */ }
  const listener = Deno.listen({ transport: "unix", path: paths.socket });
  Deno.chmodSync(paths.socket, 0o600);
  const { paramSchemas, requestSchema } = await import("../proto/schemas.ts");
  const conns = new Set<Deno.Conn>();

  const handle = async (raw: unknown): Promise<RpcResponse | undefined> => {
    const req = requestSchema.safeParse(raw);
    const id = (raw && typeof raw === "object" && "id" in raw &&
        (typeof raw.id === "number" || typeof raw.id === "string"))
      ? raw.id as number | string
      : null;
    const err = (code: number, message: string, data?: unknown): RpcResponse => ({
      jsonrpc: "2.0",
      id,
      error: { code, message, data },
    });
    if (!req.success) {
      return err(RpcCode.invalidRequest, 'invalid request: expected {jsonrpc:"2.0", method, id?, params?}');
    }
    const { method, params } = req.data;
    const notify = !("id" in (raw as object));
    const fn = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!fn) {
      return notify
        ? undefined
        : err(RpcCode.methodNotFound, `method not found: ${method}`, { methods: Object.keys(methods) });
    }
    const ps = paramSchemas[method as keyof typeof paramSchemas].safeParse(params ?? {});
    if (!ps.success) {
      return notify ? undefined : err(
        RpcCode.invalidParams,
        `invalid params for ${method}: ${
          ps.error.issues.map((i) => `${i.path.join(".") || "params"}: ${i.message}`).join("; ")
        }`,
      );
    }
    try {
      const result = await fn(ps.data);
      return notify ? undefined : { jsonrpc: "2.0", id, result };
    } catch (e) {
      if (e instanceof SpfsError) return err(RpcCode.spfsError, e.message, e.toJSON());
      log.error("{method} failed: {error}", { method, error: e instanceof Error ? e.stack : String(e) });
      return err(RpcCode.internalError, `internal error: ${e instanceof Error ? e.message : e}`);
    }
  };

  const serveConn = async (conn: Deno.Conn) => {
    conns.add(conn);
    const enc = new TextEncoder();
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    const drainThenClose = async () => {
      // closing a Unix socket with unread input resets it, and the peer would lose our reply
      await conn.closeWrite().catch(() => {});
      let left = 16 * MAX_FRAME_BYTES;
      const deadline = setTimeout(() => reader.cancel().catch(() => {}), 2000);
      try {
        while (left > 0) {
          const { value, done } = await reader.read();
          if (done) break;
          left -= value.length;
        }
      } finally {
        clearTimeout(deadline);
      }
    };
    const send = async (r: unknown) => {
      if (r !== undefined) await writer.write(enc.encode(JSON.stringify(r) + "\n"));
    };
    try {
      const outcome = await readFrames(reader, MAX_FRAME_BYTES, async (line) => {
        let raw: unknown;
        try {
          raw = JSON.parse(line);
        } catch {
          return send({
            jsonrpc: "2.0",
            id: null,
            error: { code: RpcCode.parseError, message: "parse error: the frame is not valid JSON" },
          });
        }
        if (Array.isArray(raw)) {
          if (raw.length === 0) {
            return send({
              jsonrpc: "2.0",
              id: null,
              error: { code: RpcCode.invalidRequest, message: "empty batch" },
            });
          }
          const out = (await Promise.all(raw.slice(0, 100).map(handle))).filter((r) => r !== undefined);
          return send(out.length ? out : undefined);
        }
        await send(await handle(raw));
      });
      if (outcome === "oversize") {
        await send({
          jsonrpc: "2.0",
          id: null,
          error: {
            code: RpcCode.frameTooLarge,
            message: `frame larger than ${MAX_FRAME_BYTES} bytes; closing the connection`,
          },
        });
        await drainThenClose();
      }
    } catch {
      /* client went away mid-frame */
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) void serveConn(conn);
    } catch { /* listener closed */ }
  })();

  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping ({why})", { why });
      clearInterval(watch);
      try {
        listener.close();
      } catch { /* closed */ }
      const r = await runner().run(platform.unmountArgv(cfg.mountpoint));
      if (r.code !== 0) log.warn("unmount: {stderr}", { stderr: r.stderr.trim() });
      const timeout = new Promise<number>((res) => setTimeout(() => res(-2), 5000));
      if (await Promise.race([workerExited, timeout]) === -2) log.warn("FUSE worker did not exit in 5 s");
      await worker.terminate();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      try {
        Deno.removeSync(paths.socket);
      } catch { /* gone */ }
      libc().close(lockFd);
    })().finally(stopped.resolve);
    return stopping;
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => void stop(sig));

  log.info("serving on {socket} (pid {pid})", { socket: paths.socket, pid: Deno.pid });
  const code = await Promise.race([
    workerExited.then((c) => ({ crashed: c })),
    stopped.promise.then(() => ({ stopped: true })),
  ]);
  if ("crashed" in code && !stopping) {
    log.error("FUSE loop ended unexpectedly (code {code}); shutting down", { code: code.crashed });
    await stop("FUSE loop ended");
    await accepting;
    return 1;
  }
  await accepting;
  return 0;
}
