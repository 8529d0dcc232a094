/**
 * The spfs service main thread: single-instance lock, pre-mount checks, the FUSE worker, the
 * JSON-RPC server on the Unix socket, the runtime table, and the root-process exit watch.
 */
import { MessageChannel, Worker } from "node:worker_threads";
import { type Config, ensureRuntimeDir, readPidFile, runtimePaths, storagePaths } from "../config.ts";
import { SpfsError } from "../errors.ts";
import {
  checkDevice,
  checkLibfuse,
  checkMountpoint,
  cleanupStaleMount,
  libfuseCandidates,
} from "../platform/checks.ts";
import type { FromWorker, FuseWorkerData, ToWorker, WorkerReply } from "./worker/main.ts";
import { importDir } from "../store/importer.ts";
import { encodeLayer } from "../store/objects.ts";
import { newRuntimeId, type RuntimeDb, validateRuntimeName } from "../runtime/records.ts";
import { validateTagName } from "../store/tags.ts";
import { fsTypeName, probeReflink, statfs } from "../../ffi/fsops.ts";
import { OPS, OPS_SLOTS } from "../../ffi/fuse/lowlevel.ts";
import { CTR, CTR_BYTES, LAT_BUCKETS, parseLoopback, summarize, toPrometheus } from "../metrics.ts";
import { logger } from "../log.ts";
import { resolveSpec } from "../store/refs.ts";
import { ObjectStore } from "../store/store.ts";
import { TagDb } from "../store/tags.ts";
import { VERSION } from "../version.ts";
import { procInfo } from "../../ffi/sys.ts";
import { createExitWatcher } from "../../ffi/exitwatch.ts";
import { libc, tryFlock } from "../../ffi/sys.ts";
import { platform } from "../platform/facts.ts";
import { errnoName } from "../../ffi/errno.ts";
import { runner } from "../runner.ts";
import { scratchBase } from "../runtime/ramdisk.ts";
import {
  type BackstoreInfo,
  type CommitResult,
  MAX_FRAME_BYTES,
  type MountParams,
  type MountResult,
  PROTOCOL_VERSION,
  RpcCode,
  type RpcResponse,
  type RuntimeInfo,
  type StatusResult,
} from "../../proto/protocol.ts";
import { readFrames } from "../../proto/framing.ts";

const log = logger("service");
/** How often root processes are polled for exit where pidfd is unavailable; the idle check period with pidfd (ms). */
const ROOT_POLL_MS = 250, SWEEP_MS = 1000;
/** FUSE ops slower than this are logged with their duration (µs). */
const SLOW_OP_US = 100_000;

interface Runtime extends RuntimeInfo {
  startTime: number;
  created_ms: number;
}

/**
 * Probes the backstore once: the filesystem type of `<storage>/runtimes` (statfs f_type) and
 * whether FICLONE works from the object store into it (copy-up then reflinks).
 */
export function probeBackstore(storageRoot: string): BackstoreInfo {
  const sp = storagePaths(storageRoot);
  Deno.mkdirSync(sp.runtimes, { recursive: true });
  Deno.mkdirSync(sp.tmp, { recursive: true });
  const st = statfs(sp.runtimes);
  const r = probeReflink(sp.tmp, sp.runtimes);
  return {
    path: sp.runtimes,
    fs_type: typeof st === "number" ? "unknown" : fsTypeName(st.type),
    reflink: r === true,
    reflink_error: r === true ? undefined : errnoName(r),
    copy_up: r === true ? "reflink" : "copy_file_range",
    free_bytes: typeof st === "number" ? 0 : st.bavail * st.bsize,
  };
}

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
    Deno.removeSync(runtimePaths(cfg).startupError);
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
  const { RuntimeDb } = await import("../runtime/records.ts");
  const rdb: RuntimeDb = new RuntimeDb(cfg.storageRoot);
  const backstore = probeBackstore(cfg.storageRoot);
  log.info("backstore {path}: {fs_type}, copy-up by {copy_up}", { ...backstore });
  // a non-durable runtime never outlives its service: remove what a crash left behind
  const durableIds = new Set(rdb.all().map((r) => r.id));
  for (const id of rdb.dirIds()) {
    if (durableIds.has(id)) rdb.sweepWork(id);
    else void rdb.removeDirs(id).catch((e) => log.warn("cannot remove {id}: {e}", { id, e: String(e) }));
  }
  const started = performance.now();
  const runtimes = new Map<string, Runtime>();
  const counters = new SharedArrayBuffer(CTR_BYTES);
  const latency = new SharedArrayBuffer(4 * LAT_BUCKETS * OPS_SLOTS);
  const latencyView = new Int32Array(latency);
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
    latency,
    slowUs: SLOW_OP_US,
  };
  const worker = new Worker(new URL("./worker/main.ts", import.meta.url), {
    workerData: data,
    transferList: [channel.port2 as any],
  });
  const toWorker = (m: ToWorker) => channel.port1.postMessage(m);
  // The worker reads its port only inside FUSE callbacks; a root lookup (never cached) wakes it.
  const kick = () => Deno.lstat(`${cfg.mountpoint}/.spfs-wake`).catch(() => {});
  let nextReq = 1;
  const pending = new Map<number, (r: WorkerReply) => void>();
  const ask = <R extends WorkerReply>(m: ToWorker & { reqId: number }): Promise<R> => {
    const p = new Promise<R>((res) => pending.set(m.reqId, res as (r: WorkerReply) => void));
    toWorker(m);
    void kick();
    return p;
  };
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
        case "reply":
          pending.get(m.reqId)?.(m.result);
          pending.delete(m.reqId);
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
  const exits = createExitWatcher();
  const unregister = (rt: Runtime, why: string) => {
    if (runtimes.get(rt.id) !== rt) return;
    runtimes.delete(rt.id);
    exits.unwatch(rt.root_pid);
    toWorker({ type: "unregister", pid: rt.root_pid });
    void kick();
    log.info("unregistered runtime {runtime} ({why})", { runtime: rt.id, root_pid: rt.root_pid, why });
    if (rt.editable && !rt.durable) {
      void rdb.removeDirs(rt.id).catch((e) =>
        log.error("cannot remove scratch of {runtime}: {error}", { runtime: rt.id, error: String(e) })
      );
    }
  };
  const info = ({ startTime: _, ...r }: Runtime): RuntimeInfo => r;
  const findRuntime = (ref: string) => {
    for (const rt of runtimes.values()) if (rt.id === ref || rt.name === ref) return rt;
    return undefined;
  };
  const notFound = (ref: string) =>
    new SpfsError("RuntimeNotFound", `no runtime with id or name "${ref}"`, {
      hint: "list them with `spfs runtime list`",
    });
  const inactive = (): RuntimeInfo[] =>
    rdb.all().filter((r) => !runtimes.has(r.id)).map((r) => ({
      ...r,
      root_pid: 0,
      started_ms: 0,
      scratch: r.editable ? rdb.dirs(r.id).scratch : undefined,
      active: false,
    }));
  const health = () => ({
    healthy: true,
    version: VERSION,
    protocol: PROTOCOL_VERSION,
    uptime_s: Math.round((performance.now() - started) / 100) / 10,
    pid: Deno.pid,
  });
  const rate = (hits: number, misses: number) => ({
    hits,
    misses,
    hit_rate: hits + misses ? Math.round((hits / (hits + misses)) * 1000) / 1000 : 0,
  });
  const freeBytes = () => {
    const st = statfs(backstore.path);
    return typeof st === "number" ? 0 : st.bavail * st.bsize;
  };
  /**
   * Turns a runtime's scratch into a new top layer: import scratch while the runtime keeps running,
   * then have the worker swap it out, but only if nothing changed meanwhile (else retry).
   */
  const commit = async (p: { runtime: string; tag?: string }): Promise<CommitResult> => {
    if (p.tag) validateTagName(p.tag);
    const rt = findRuntime(p.runtime);
    if (!rt) {
      if (rdb.find(p.runtime)) {
        throw new SpfsError("RuntimeNotFound", `runtime ${p.runtime} is not running`, {
          hint: `re-enter it with \`spfs run --rerun ${p.runtime} -- spfs commit -t NAME\``,
        });
      }
      throw notFound(p.runtime);
    }
    if (!rt.editable) {
      throw new SpfsError("NotEditable", `runtime ${rt.id} is read-only; there is nothing to commit`, {
        hint: "start runs with --edit to change and commit them",
      });
    }
    const d = rdb.dirs(rt.id);
    for (let attempt = 1;; attempt++) {
      const c = await ask<Extract<WorkerReply, { gen: number }>>({
        type: "commit-check",
        reqId: nextReq++,
        id: rt.id,
      });
      if ("ok" in c) throw new SpfsError("RuntimeNotFound", `runtime ${rt.id} is gone`);
      if (c.writers > 0) {
        throw new SpfsError("RuntimeBusy", `${c.writers} file(s) are open for writing in runtime ${rt.id}`, {
          hint: "close them (or stop the programs writing) and commit again",
        });
      }
      if ([...Deno.readDirSync(d.scratch)].length === 0) {
        throw new SpfsError("NothingToCommit", `runtime ${rt.id} has no changes to commit`, {
          hint: "see changes with `spfs diff`",
        });
      }
      const result = await importDir(d.scratch, store, {}, { scratch: true });
      const layer = store.putBytes(encodeLayer(result.manifest, { "spfs.runtime": rt.id }));
      store.syncDirs();
      const layers = [...rt.layers, layer];
      const trash = `${d.root}/trash-${Date.now()}`;
      const r = await ask<WorkerReply>({
        type: "rebase",
        reqId: nextReq++,
        id: rt.id,
        layers,
        gen: c.gen,
        trash,
      });
      if ("ok" in r && !r.ok) {
        if (r.reason === "changed" && attempt < 3) continue;
        throw new SpfsError("RuntimeBusy", `runtime ${rt.id} kept changing during the commit (${r.reason})`, {
          hint: "stop the programs writing to /spfs and commit again",
        });
      }
      rt.layers = layers;
      if (rt.durable) rdb.put(rt);
      if (p.tag) tags.set(p.tag, layer);
      void Deno.remove(trash, { recursive: true }).catch(() => {});
      log.info("committed runtime {runtime} as {layer}", { runtime: rt.id, layer, tag: p.tag });
      return {
        layer,
        manifest: result.manifest,
        layers,
        files: result.files,
        dirs: result.dirs,
        symlinks: result.symlinks,
        bytes: result.bytes,
        tag: p.tag ?? null,
        skipped: result.skipped,
      };
    }
  };
  let stopping: Promise<void> | undefined;
  const stopped = Promise.withResolvers<void>();
  const methods: Record<string, (p: any) => unknown> = {
    health,
    status: (): StatusResult => ({
      ...health(),
      mountpoint: cfg.mountpoint,
      storage_root: cfg.storageRoot,
      libfuse: libfuseName,
      runtimes: [...runtimes.values()].map(info),
      backstore: { ...backstore, free_bytes: freeBytes() },
      fuse: {
        requests: Atomics.load(counterView, CTR.requests),
        errors: Atomics.load(counterView, CTR.errors),
        opens: Atomics.load(counterView, CTR.opens),
        lookups: Atomics.load(counterView, CTR.lookups),
        copy_ups: Atomics.load(counterView, CTR.copyUps),
        reflink_copy_ups: Atomics.load(counterView, CTR.reflinks),
      },
      ops: Object.fromEntries(
        Object.entries(OPS).map(([op, slot]) => [op, summarize(latencyView, slot)]).filter(([, s]) =>
          (s as { count: number }).count > 0
        ),
      ),
      caches: {
        ancestry: rate(
          Atomics.load(counterView, CTR.ancestryHits),
          Atomics.load(counterView, CTR.ancestryMisses),
        ),
        manifest: rate(
          Atomics.load(counterView, CTR.listingHits),
          Atomics.load(counterView, CTR.listingMisses),
        ),
      },
      open_handles: Atomics.load(counterView, CTR.openHandles),
    }),
    mount: (
      p: MountParams,
    ) => {
      const proc = procInfo(p.pid);
      if (!proc) {
        throw new SpfsError(
          "ProcessNotFound",
          `process ${p.pid} does not exist (it may have exited already)`,
          {
            hint: "register a running process: pass the pid of the process tree's root",
            details: { pid: p.pid },
          },
        );
      }
      const editable = !!(p.edit || p.keep || p.scratch);
      if ((editable || p.rerun) && !platform.editableRuntimes) {
        throw new SpfsError(
          "UnsupportedOnPlatform",
          `editable runtimes (--edit, --keep-runtime, --scratch, --rerun) are not available on ${platform.name} yet`,
          { hint: 'run the environment read-only (without those flags); see README.md "macOS notes"' },
        );
      }
      for (const rt of runtimes.values()) if (rt.root_pid === p.pid) unregister(rt, "re-registered");
      let rt: Runtime;
      if (p.rerun) {
        const rec = rdb.find(p.rerun);
        if (!rec) {
          const live = findRuntime(p.rerun);
          if (live) {
            throw new SpfsError(
              "RuntimeInUse",
              `runtime ${p.rerun} is not durable and is in use by pid ${live.root_pid}`,
              {
                hint: "start it with --keep-runtime to re-enter it later",
              },
            );
          }
          throw notFound(p.rerun);
        }
        const live = runtimes.get(rec.id);
        if (live) {
          throw new SpfsError(
            "RuntimeInUse",
            `runtime ${p.rerun} is already running (root pid ${live.root_pid})`,
            {
              hint:
                "one process tree at a time; wait for it to exit, or use `spfs run --edit` for another runtime",
            },
          );
        }
        rdb.sweepWork(rec.id);
        rt = { ...rec, root_pid: p.pid, started_ms: Date.now(), startTime: proc.startTime, active: true };
      } else {
        const resolved = resolveSpec(p.spec!, store, tags);
        if (p.name) {
          validateRuntimeName(p.name);
          if (rdb.find(p.name) || findRuntime(p.name)) {
            throw new SpfsError("RuntimeInUse", `a runtime named ${p.name} already exists`, {
              hint:
                `re-enter it with \`spfs run --rerun ${p.name} -- CMD\`, or remove it with \`spfs runtime remove ${p.name}\``,
            });
          }
        }
        const id = newRuntimeId();
        rt = {
          id,
          name: p.name ?? null,
          root_pid: p.pid,
          env_spec: p.spec!,
          layers: resolved.layers,
          started_ms: Date.now(),
          created_ms: Date.now(),
          startTime: proc.startTime,
          editable,
          durable: !!p.keep,
          active: true,
        };
        if (editable) {
          rdb.createDirs(id, p.scratch ? scratchBase(cfg, p.scratch) : undefined);
        }
        if (rt.durable) rdb.put(rt);
      }
      if (rt.editable) rt.scratch = rdb.dirs(rt.id).scratch;
      runtimes.set(rt.id, rt);
      const entry = rt;
      exits.watch(p.pid, () => unregister(entry, "root process exited"));
      // the pidfd pins one process: if the pid was reused before it was opened, the root is gone
      if (procInfo(p.pid)?.startTime !== proc.startTime) unregister(entry, "root process exited");
      const d = rdb.dirs(rt.id);
      toWorker({
        type: "register",
        id: rt.id,
        pid: p.pid,
        startTime: proc.startTime,
        layers: rt.layers,
        edit: rt.editable ? { scratch: d.scratch, work: d.work, reflink: backstore.reflink } : undefined,
      });
      log.info("registered runtime {runtime} for {root_pid}: {env_spec}", {
        runtime: rt.id,
        root_pid: p.pid,
        env_spec: rt.env_spec,
        editable: rt.editable,
        durable: rt.durable,
      });
      const r: MountResult = {
        id: rt.id,
        name: rt.name,
        layers: rt.layers,
        editable: rt.editable,
        durable: rt.durable,
      };
      return r;
    },
    commit: (p: { runtime: string; tag?: string }) => commit(p),
    runtimes: () => ({ runtimes: [...[...runtimes.values()].map(info), ...inactive()] }),
    runtime_remove: async (p: { runtime: string; force?: boolean }) => {
      const live = findRuntime(p.runtime);
      if (live) {
        throw new SpfsError("RuntimeInUse", `runtime ${p.runtime} is running (root pid ${live.root_pid})`, {
          hint: `let it exit first (kill ${live.root_pid}), then remove it`,
        });
      }
      const rec = rdb.find(p.runtime);
      if (!rec) throw notFound(p.runtime);
      rdb.delete(rec.id);
      await rdb.removeDirs(rec.id);
      log.info("removed runtime {runtime}", { runtime: rec.id });
      return { removed: [rec.id] };
    },
    runtime_prune: async (p?: { dry_run?: boolean }) => {
      const gone = inactive();
      const known = new Set([...runtimes.keys(), ...rdb.all().map((r) => r.id)]);
      const stray = rdb.dirIds().filter((id) => !known.has(id));
      if (!p?.dry_run) {
        for (const r of gone) {
          rdb.delete(r.id);
          await rdb.removeDirs(r.id);
        }
        for (const id of stray) await rdb.removeDirs(id);
      }
      return { removed: [...gone.map((r) => r.id), ...stray], dry_run: !!p?.dry_run };
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
    // without pidfd, polling /proc is the exit detection; with it, exits arrive as events
    if (exits.kind === "poll") {
      for (const rt of [...runtimes.values()]) {
        const info = procInfo(rt.root_pid);
        if (!info || info.startTime !== rt.startTime) unregister(rt, "root process exited");
      }
    }
    if (runtimes.size > 0) idleSince = performance.now();
    else if (cfg.idleTimeoutS > 0 && performance.now() - idleSince > cfg.idleTimeoutS * 1000) {
      void stop(`idle for ${cfg.idleTimeoutS} s with no runtimes`);
    }
  }, exits.kind === "poll" ? ROOT_POLL_MS : SWEEP_MS);
  log.info("root-process exit watch: {kind}", { kind: exits.kind });

  // RPC server
  try {
    Deno.removeSync(paths.socket);
  } catch { /* none */ }
  const listener = Deno.listen({ transport: "unix", path: paths.socket });
  Deno.chmodSync(paths.socket, 0o600);
  const { paramSchemas, requestSchema } = await import("../../proto/schemas.ts");
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
    // an accept error (EMFILE, ECONNABORTED) must not end the loop: back off and keep serving
    while (!stopping) {
      try {
        void serveConn(await listener.accept());
      } catch (e) {
        if (stopping || e instanceof Deno.errors.BadResource) break;
        log.warn("accept failed: {error}", { error: String(e) });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  let metricsServer: Deno.HttpServer | undefined;
  if (metricsAddr) {
    try {
      metricsServer = Deno.serve(
        { ...metricsAddr, onListen: () => {} },
        (req) =>
          new URL(req.url).pathname === "/metrics"
            ? new Response(toPrometheus(methods.status({}) as StatusResult), {
              headers: { "content-type": "text/plain; version=0.0.4" },
            })
            : new Response("not found: try /metrics\n", { status: 404 }),
      );
      log.info("metrics on http://{addr}/metrics", { addr: cfg.metricsListen });
    } catch (e) {
      log.error("cannot serve metrics on {addr}: {error}", { addr: cfg.metricsListen, error: String(e) });
    }
  }

  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping ({why})", { why });
      clearInterval(watch);
      exits.close();
      await metricsServer?.shutdown();
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
