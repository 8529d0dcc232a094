/**
 * Builds the worker's request handlers for one FUSE ABI: the context, the mailbox, and one
 * instrumented callback per op at the ABI's slot of an `abi.slots` × 8-byte ops table.
 */
import { parentPort } from "node:worker_threads";
import type { FuseAbi, FuseReplies, OpName } from "../../../ffi/fuse/abi.ts";
import { processPins, procInfo, tgidOf } from "../../../ffi/sys.ts";
import { BlobOpener } from "../../fs/blobs.ts";
import { Router } from "../../fs/router.ts";
import { Vfs } from "../../fs/vfs.ts";
import { ObjectStore } from "../../store/store.ts";
import { type MountRec, WorkerContext } from "./context.ts";
import { instrument, type Op } from "./instrument.ts";
import { Mailbox } from "./mailbox.ts";
import { OffThreadCopies } from "./copies.ts";
import type { FromWorker, FuseWorkerData, LogLevel } from "./messages.ts";
import { OPS_TABLE } from "./ops/table.ts";

/** Posts to the main thread (a no-op where there is none, as in the ABI table test). */
export function post(m: FromWorker): void {
  parentPort?.postMessage(m);
}

/** The ops table handed to libfuse, the callbacks it points at, and the mailbox. */
export interface Server {
  table: Uint8Array;
  callbacks: Deno.UnsafeCallback[];
  mailbox: Mailbox;
}

/**
 * Builds the handlers for `abi`. Exported for the per-flavour table test.
 * @throws SpfsError when the store cannot be opened.
 */
export function buildServer(data: FuseWorkerData, abi: FuseAbi, S: FuseReplies): Server {
  const vfs = new Vfs(ObjectStore.open(data.storageRoot), data.uid, data.gid);
  const router = new Router<MountRec>({ info: procInfo, tgid: tgidOf, pins: processPins });
  const counters = new Int32Array(data.counters);
  const log = (level: LogLevel, message: string, fields?: Record<string, unknown>) =>
    post({ type: "log", level, message, fields });
  const blobs = new BlobOpener(
    vfs.objectsDir,
    (digest) => post({ type: "verify", digest }),
    (d) => log("error", `blob ${d} is missing from the store; run \`spfs check\``, { op: "open", errno: 5 }),
    (d, refresh) => vfs.packedBlob(d, refresh),
  );
  const bugsSeen = new Set<string>();
  const bug = (op: string, e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    if (bugsSeen.has(`${op} ${err.message}`)) return;
    bugsSeen.add(`${op} ${err.message}`);
    post({ type: "bug", op, name: err.name, message: err.message, stack: err.stack });
  };
  const copies = new OffThreadCopies((m) => post({ type: "copy", ...m }), (e) => bug("open", e));
  const ctx = new WorkerContext(
    S,
    abi,
    vfs,
    router,
    blobs,
    counters,
    log,
    bug,
    copies,
  );
  const reply = (reqId: number, result: Parameters<Mailbox["reply"]>[1]) =>
    post({ type: "reply", reqId, result });
  const mailbox = new Mailbox(
    data.port,
    vfs,
    router,
    blobs,
    counters,
    reply,
    log,
    data.mailboxSeq,
    copies.done,
    ctx.files,
    abi.noOpen ? (inos) => post({ type: "inval", inos }) : undefined,
    (ov) => {
      const entries = ctx.endedRootEntries(ov);
      if (entries.length) post({ type: "inval-entries", entries });
    },
  );

  const latency = new Int32Array(data.latency);
  const callbacks: Deno.UnsafeCallback[] = [];
  const ops = new BigUint64Array(abi.slots);
  for (const [op, fn] of Object.entries(OPS_TABLE) as [OpName, Op<OpName>][]) {
    const slot = abi.slot[op];
    if (slot === undefined) continue; // an op this flavour lacks (renamex outside macFUSE libfuse2)
    const cb = instrument(ctx, abi, op, fn, latency, data.slowUs);
    callbacks.push(cb);
    ops[slot] = BigInt(Deno.UnsafePointer.value(cb.pointer));
  }
  return { table: new Uint8Array(ops.buffer), callbacks, mailbox };
}
