/**
 * The JSON-RPC 2.0 server on the service's Unix socket: one JSON object (or batch) per line,
 * params validated against proto/schemas.ts, typed errors for SpfsError, and a frame over
 * MAX_FRAME_BYTES answered with an error before the connection closes. One bad client never stops
 * the others.
 */
import { SpfsError } from "../errors.ts";
import { forcedCrash, reportBug } from "../report.ts";
import { readFrames } from "../../proto/framing.ts";
import { MAX_FRAME_BYTES, type MethodName, RpcCode, type RpcResponse } from "../../proto/protocol.ts";
import { paramSchemas, requestSchema } from "../../proto/schemas.ts";
import type { Service } from "./state.ts";
import { METHODS } from "./methods/table.ts";

const enc = new TextEncoder();

/** Answers one request object; undefined for a notification. */
export async function handle(s: Service, raw: unknown): Promise<RpcResponse | undefined> {
  const id = raw && typeof raw === "object" && "id" in raw &&
      (typeof raw.id === "number" || typeof raw.id === "string")
    ? raw.id as number | string
    : null;
  const err = (code: number, message: string, data?: unknown): RpcResponse => ({
    jsonrpc: "2.0",
    id,
    error: { code, message, data },
  });
  const req = requestSchema.safeParse(raw);
  if (!req.success) {
    return err(RpcCode.invalidRequest, 'invalid request: expected {jsonrpc:"2.0", method, id?, params?}');
  }
  const { method, params } = req.data;
  const notify = !("id" in (raw as object));
  if (!Object.hasOwn(METHODS, method)) {
    return notify
      ? undefined
      : err(RpcCode.methodNotFound, `method not found: ${method}`, { methods: Object.keys(METHODS) });
  }
  const name = method as MethodName;
  const ps = paramSchemas[name].safeParse(params ?? {});
  if (!ps.success) {
    const why = ps.error.issues.map((i) => `${i.path.join(".") || "params"}: ${i.message}`).join("; ");
    return notify ? undefined : err(RpcCode.invalidParams, `invalid params for ${method}: ${why}`);
  }
  try {
    if (forcedCrash("service") && name !== "health" && name !== "shutdown") {
      throw new Error(`forced internal error (SPFS_DEBUG_CRASH=service) in ${method}`);
    }
    if (name !== "health") s.runtimes.reap(); // never answer from a runtime whose root has exited
    const result = await (METHODS[name] as (s: Service, p: unknown) => unknown)(s, ps.data);
    return notify ? undefined : { jsonrpc: "2.0", id, result };
  } catch (e) {
    if (e instanceof SpfsError) return err(RpcCode.spfsError, e.message, e.toJSON());
    s.log.error("{method} failed: {error}", { method, error: e instanceof Error ? e.stack : String(e) });
    void reportBug(e, { component: "service", command: method }, s.cfg.sentryDsn);
    return err(RpcCode.internalError, `internal error: ${e instanceof Error ? e.message : e}`);
  }
}

/** Answers one line: a request, a batch (at most 100), or a parse error. */
async function answerLine(s: Service, line: string): Promise<unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return {
      jsonrpc: "2.0",
      id: null,
      error: { code: RpcCode.parseError, message: "parse error: the frame is not valid JSON" },
    };
  }
  if (!Array.isArray(raw)) return await handle(s, raw);
  if (raw.length === 0) {
    return { jsonrpc: "2.0", id: null, error: { code: RpcCode.invalidRequest, message: "empty batch" } };
  }
  const out = (await Promise.all(raw.slice(0, 100).map((r) => handle(s, r)))).filter((r) => r !== undefined);
  return out.length ? out : undefined;
}

/** A listening RPC server. */
export class RpcServer {
  readonly #conns = new Set<Deno.Conn>();
  readonly #listener: Deno.UnixListener;
  #closing = false;
  /** Resolves when the accept loop has ended. */
  readonly accepting: Promise<void>;

  /** `address` is `socketAddress(socket)`: what bind(2) can take for that path. */
  constructor(readonly s: Service, socket: string, address: string) {
    try {
      Deno.removeSync(socket);
    } catch { /* none */ }
    this.#listener = Deno.listen({ transport: "unix", path: address });
    Deno.chmodSync(socket, 0o600);
    this.accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    // an accept error (EMFILE, ECONNABORTED) must not end the loop: back off and keep serving
    while (!this.#closing) {
      try {
        void this.#serve(await this.#listener.accept());
      } catch (e) {
        if (this.#closing || e instanceof Deno.errors.BadResource) break;
        this.s.log.warn("accept failed: {error}", { error: String(e) });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    const send = async (r: unknown) => {
      if (r !== undefined) await writer.write(enc.encode(JSON.stringify(r) + "\n"));
    };
    try {
      const outcome = await readFrames(
        reader,
        MAX_FRAME_BYTES,
        async (line) => send(await answerLine(this.s, line)),
      );
      if (outcome === "oversize") {
        await send({
          jsonrpc: "2.0",
          id: null,
          error: {
            code: RpcCode.frameTooLarge,
            message: `frame larger than ${MAX_FRAME_BYTES} bytes; closing the connection`,
          },
        });
        await drainThenClose(conn, reader);
      }
    } catch {
      /* client went away mid-frame */
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  /** Stops accepting new connections; open ones keep being answered (a shutdown reply among them). */
  stopAccepting(): void {
    this.#closing = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
  }

  /** Closes every open connection. */
  closeConnections(): void {
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}

/** Closing a Unix socket with unread input resets it, and the peer would lose our reply: read it first. */
async function drainThenClose(
  conn: Deno.Conn,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
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
}
