/**
 * RPC client for the service, and the cold-start logic of `spfs run`: connect, or start the service
 * detached (under a start lock so concurrent cold starts leave exactly one), then wait for `health`.
 */
import {
  type Config,
  configEnv,
  ensureRuntimeDir,
  readPidFile,
  resolvePath,
  runtimePaths,
} from "../config.ts";
import { SpfsError, spfsErrorFrom } from "../errors.ts";
import { socketAddress } from "../platform/socket.ts";
import {
  type HealthResult,
  MAX_FRAME_BYTES,
  type MethodName,
  PROTOCOL_VERSION,
  protocolMajor,
  type RpcResponse,
  type RuntimeInfo,
} from "../../proto/protocol.ts";
import { connChunks, readFrames } from "../../proto/framing.ts";

/** How long a client waits for a freshly started service to answer `health` (ms). */
const START_TIMEOUT_MS = 20_000;

/**
 * One connection to the service. Calls may be issued without awaiting the previous one: frames
 * go out whole and in order, and the service answers them in order.
 */
export class RpcClient {
  readonly #conn: Deno.UnixConn;
  readonly #pending: ((r: RpcResponse) => void)[] = [];
  /** The last frame's write; the next one starts after it, so frames never interleave. */
  #writing: Promise<void> = Promise.resolve();
  #nextId = 1;
  #closed = false;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    void readFrames(connChunks(conn), 64 * MAX_FRAME_BYTES, (line) => {
      this.#pending.shift()?.(JSON.parse(line));
    }).catch(() => {}).finally(() => {
      this.#closed = true;
      for (const p of this.#pending.splice(0)) {
        p({ jsonrpc: "2.0", id: null, error: { code: -1, message: "the service closed the connection" } });
      }
    });
  }

  /**
   * Connects to the service socket.
   * @throws SpfsError ServiceNotRunning when nothing listens, ServiceConnectionFailed otherwise.
   */
  static async connect(cfg: Config): Promise<RpcClient> {
    const path = runtimePaths(cfg).socket;
    try {
      return new RpcClient(await Deno.connect({ transport: "unix", path: await socketAddress(path) }));
    } catch (e) {
      if (e instanceof SpfsError) throw e;
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.ConnectionRefused) {
        throw new SpfsError("ServiceNotRunning", `the spfs service is not running (no listener at ${path})`, {
          hint: "start it with `spfs service` (spfs run starts it for you)",
          details: { address: path },
        });
      }
      throw new SpfsError("ServiceConnectionFailed", `cannot connect to the spfs service at ${path}: ${e}`, {
        hint: "check the runtime dir permissions, or restart it: `spfs service --stop; spfs service`",
        details: { address: path, cause: String(e) },
      });
    }
  }

  /**
   * Calls a method and returns its result.
   * @throws SpfsError rebuilt from the service's error data, or RpcError for protocol errors.
   */
  async call<T = unknown>(method: MethodName, params?: unknown): Promise<T> {
    if (this.#closed) throw new SpfsError("ServiceConnectionFailed", "the service connection is closed");
    const id = this.#nextId++;
    const reply = new Promise<RpcResponse>((r) => this.#pending.push(r));
    const frame = JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
    const bytes = new TextEncoder().encode(frame + "\n");
    const write = this.#writing.then(async () => {
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
    });
    this.#writing = write.catch(() => {});
    await write;
    const r = await reply;
    if (r.error) {
      throw spfsErrorFrom(r.error.data) ??
        new SpfsError("RpcError", `service error ${r.error.code}: ${r.error.message}`);
    }
    return r.result as T;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/** Checks a health result's protocol major against ours. */
export function checkProtocol(h: HealthResult): void {
  if (protocolMajor(h.protocol) !== protocolMajor(PROTOCOL_VERSION)) {
    throw new SpfsError(
      "ProtocolMismatch",
      `the running service speaks protocol ${h.protocol} (version ${h.version}); this client speaks ${PROTOCOL_VERSION}`,
      { hint: "restart the service: `spfs service --stop && spfs service`" },
    );
  }
}

/** argv that starts this spfs (compiled binary or `deno run` of main.ts) with `args`. */
export function selfArgv(args: string[]): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), ...args];
  const main = resolvePath(import.meta.dirname!, "../../main.ts");
  return [Deno.execPath(), "run", "-A", "--quiet", main, ...args];
}

/**
 * Starts the service detached and returns its pid. It logs to `<runtime dir>/service.log`.
 * A failed start leaves its typed error in startup-error.json (read by waitForService).
 */
export function spawnService(cfg: Config, extraArgs: string[] = []): Deno.ChildProcess {
  const argv = selfArgv(["service", "--foreground", "--log-file", runtimePaths(cfg).log, ...extraArgs]);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
    cwd: "/",
    env: configEnv(cfg),
    detached: true,
  }).spawn();
  child.unref();
  return child;
}

function readStartupError(cfg: Config): SpfsError | undefined {
  try {
    return spfsErrorFrom(JSON.parse(Deno.readTextFileSync(runtimePaths(cfg).startupError)));
  } catch {
    return undefined;
  }
}

/** A call sent right behind `health`, in the same round trip. */
interface Pipelined {
  method: MethodName;
  params?: unknown;
}

/**
 * A client of the running service once it has answered `health` within HEALTH_TIMEOUT_MS, so no
 * command waits forever on a stopped or stuck service. With `next`, that call goes out right
 * behind `health` and `next` holds its reply (already marked handled: await it). On a protocol
 * mismatch the service may have run `next` too; callers send only calls whose effect dies with
 * this process (a `mount` for its pid).
 * @throws SpfsError ServiceNotRunning (nothing listens), ServiceConnectionFailed, ServiceStuck
 *   (no answer in time: the error names its pid and how to end it), ProtocolMismatch.
 */
export async function connectAnswering(
  cfg: Config,
  next?: Pipelined,
): Promise<{ client: RpcClient; health: HealthResult; next?: Promise<unknown> }> {
  const client = await RpcClient.connect(cfg);
  try {
    const asked = client.call<HealthResult>("health");
    const reply = next && client.call(next.method, next.params);
    reply?.catch(() => {});
    const health = await withTimeout(asked, HEALTH_TIMEOUT_MS, () => stuck(cfg));
    checkProtocol(health);
    return { client, health, next: reply };
  } catch (e) {
    client.close();
    throw e;
  }
}

/**
 * connectAnswering(), or undefined when no service answers (none runs, or it closed on us), so
 * the caller may start one.
 * @throws SpfsError ProtocolMismatch or ServiceStuck: starting another service would not help.
 */
export async function connectHealthy(
  cfg: Config,
  next?: Pipelined,
): Promise<{ client: RpcClient; health: HealthResult; next?: Promise<unknown> } | undefined> {
  try {
    return await connectAnswering(cfg, next);
  } catch (e) {
    if (e instanceof SpfsError && (e.code === "ProtocolMismatch" || e.code === "ServiceStuck")) throw e;
    return undefined;
  }
}

/** How long a service gets to answer `health` before it counts as stuck (ms). */
export const HEALTH_TIMEOUT_MS = 3000;

/**
 * Resolves like `p`, or rejects with `onTimeout()` after `ms`. `p` must keep the process alive
 * while it is pending (a socket read does): the timer is unref'd. It is an `AbortSignal.timeout`
 * because Deno 2.9.6 loads its Node-compatible timers on the first `setTimeout`, which costs every
 * `spfs run` about 6 ms; the signal's timer costs 0.6 ms (measured here).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  return new Promise<T>((resolve, reject) => {
    const late = () => reject(onTimeout());
    signal.addEventListener("abort", late, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", late));
  });
}

/** The error for a service that accepts connections but does not answer (stopped, or stuck on a hung mount). */
function stuck(cfg: Config): SpfsError {
  const pid = readPidFile(cfg);
  return new SpfsError(
    "ServiceStuck",
    `the spfs service (pid ${pid ?? "unknown"}) did not answer within ${HEALTH_TIMEOUT_MS / 1000} s: ` +
      `it is stopped or stuck (a hung FUSE mount at ${cfg.mountpoint}?)`,
    {
      hint: `see \`spfs doctor\`; \`kill -9 ${
        pid ?? "PID"
      }\` ends it, and the next spfs run cleans up its mount`,
      details: { pid, address: runtimePaths(cfg).socket },
    },
  );
}

/** Polls `health` until it answers, the child exits, or the timeout passes. */
export async function waitForService(
  cfg: Config,
  child?: Deno.ChildProcess,
  timeoutMs = START_TIMEOUT_MS,
): Promise<{ client: RpcClient; health: HealthResult }> {
  let exited: Deno.CommandStatus | undefined;
  void child?.status.then((s) => exited = s);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const up = await connectHealthy(cfg);
    if (up) return up;
    if (exited) {
      throw readStartupError(cfg) ??
        new SpfsError("ServiceNotRunning", `the spfs service exited during start-up (code ${exited.code})`, {
          hint: `see ${runtimePaths(cfg).log}`,
        });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new SpfsError("ServiceNotRunning", `the spfs service did not answer within ${timeoutMs / 1000} s`, {
    hint: `see ${runtimePaths(cfg).log}`,
  });
}

/**
 * Starts the service detached and waits for it. The FUSE checks run here first, so a problem the
 * user can fix is reported by this process, not lost in the service log.
 * @throws SpfsError from the checks, or from the service's start-up.
 */
export async function startService(cfg: Config): Promise<{ client: RpcClient; health: HealthResult }> {
  const { preflight } = await import("../platform/checks.ts");
  ensureRuntimeDir(cfg);
  preflight(cfg);
  return await waitForService(cfg, spawnService(cfg));
}

/**
 * `ensureService`, then `method(params)`. With a service up, the call rides in the health
 * check's round trip: `spfs run` pays one round trip before its command starts, not two.
 * @throws SpfsError as ensureService; the call's own errors come through `result`.
 */
export async function ensureServiceThen<T>(
  cfg: Config,
  method: MethodName,
  params: unknown,
): Promise<{ client: RpcClient; result: Promise<T> }> {
  const up = await connectHealthy(cfg, { method, params });
  if (up) return { client: up.client, result: up.next as Promise<T> };
  const client = await ensureService(cfg);
  return { client, result: client.call<T>(method, params) };
}

/**
 * Returns a client of a healthy service, starting one when none answers. Concurrent callers
 * serialise on `<runtime dir>/start.lock`, so exactly one service starts.
 */
export async function ensureService(cfg: Config): Promise<RpcClient> {
  const up = await connectHealthy(cfg);
  if (up) return up.client;
  ensureRuntimeDir(cfg);
  const lock = await Deno.open(runtimePaths(cfg).startLock, { create: true, write: true });
  await lock.lock(true);
  try {
    return ((await connectHealthy(cfg)) ?? (await startService(cfg))).client;
  } finally {
    await lock.unlock();
    lock.close();
  }
}

/** How long `stopService` waits for the service process to exit (ms). */
const STOP_TIMEOUT_MS = 15_000;

/**
 * Asks the service to shut down and waits until its process has exited. Returns its pid. Unless
 * `force`, refuses while a runtime's command is still running.
 * @throws SpfsError ServiceNotRunning when none runs, ServiceStuck when it does not answer,
 *   RuntimeInUse when runtimes are running, ServiceConnectionFailed when it does not exit in time.
 */
export async function stopService(cfg: Config, force = false): Promise<number> {
  const { processExited, procInfo } = await import("../../ffi/sys.ts");
  const { client: c, health: h } = await connectAnswering(cfg);
  if (!force) {
    // their commands would find an empty /spfs mid-run, and a non-durable runtime's changes go
    // (a service too broken to list them is stopped all the same)
    const { runtimes } = await c.call<{ runtimes: RuntimeInfo[] }>("runtimes").catch(() => ({
      runtimes: [],
    }));
    const live = runtimes.filter((r) => r.active && r.root_pid > 0);
    if (live.length) {
      c.close();
      const list = live.map((r) => `${r.name ?? r.id} (pid ${r.root_pid}, ${r.env_spec})`).join(", ");
      throw new SpfsError(
        "RuntimeInUse",
        `${live.length} runtime(s) still running: ${list}; stopping the service would take /spfs away from them`,
        { hint: "wait for them to exit, or stop anyway with `spfs service --stop --force`" },
      );
    }
  }
  const startTime = procInfo(h.pid)?.startTime;
  await c.call("shutdown");
  c.close();
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (processExited(h.pid, startTime)) return h.pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new SpfsError(
    "ServiceConnectionFailed",
    `the spfs service (pid ${h.pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s`,
    { hint: `kill it: kill -9 ${h.pid} (the next start cleans up its mount)` },
  );
}
