/**
 * The FUSE worker: runs libfuse's session loop synchronously in a dedicated Worker whose own
 * UnsafeCallbacks answer each request (ARCHITECTURE.md "FUSE threading": ~2x faster than a
 * nonblocking loop). The main thread sends registrations through a MessagePort that every callback
 * drains first, so a registration is always seen before the registered process's first request.
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { createHash } from "node:crypto";
import {
  BUFVEC_SIZE,
  CTX,
  encodeEntryParam,
  encodeFdBufvec,
  encodeFuseArgs,
  encodeStatvfs,
  FI,
  FI_BITS,
  type FuseLib,
  OP_SIGNATURES,
  openFuse,
  OPS,
  OPS_SLOTS,
} from "../ffi/fuse3.ts";
import { cstr, errno, libc, O_CLOEXEC, O_RDONLY } from "../ffi/libc.ts";
import { procInfo, tgidOf } from "../ffi/proc.ts";
import { type Attr, encodeStat, hostStatLayout, STAT_SIZE } from "../ffi/stat.ts";
import type { Digest } from "./objects.ts";
import { Router } from "./router.ts";
import { ObjectStore } from "./store.ts";
import { E, type Node, ROOT_INO, Vfs, type View } from "./vfs.ts";

/** Data the main thread passes when it starts the worker. */
export interface FuseWorkerData {
  storageRoot: string;
  mountpoint: string;
  libfuse: string[];
  uid: number;
  gid: number;
  port: MessagePort;
  /** Int32 counters shared with the main thread: [requests, errors, opens, lookups]. */
  counters: SharedArrayBuffer;
}

/** Messages main → worker. */
export type ToWorker =
  | { type: "register"; id: string; pid: number; startTime: number; layers: Digest[] }
  | { type: "unregister"; pid: number };

/** Messages worker → main. */
export type FromWorker =
  | { type: "mounted"; libfuse: string; version: string }
  | { type: "error"; message: string }
  | {
    type: "log";
    level: "debug" | "info" | "warning" | "error";
    message: string;
    fields?: Record<string, unknown>;
  }
  | { type: "exited"; code: number };

const ENODATA = 61, EACCES = 13;
const O_ACCMODE = 3, O_TRUNC = 0o1000;
/**
 * Kernel cache timeouts in seconds. Root entries: 0, so every path walk asks again with the
 * caller's pid (the dentry cache is keyed by path, not process). Entries below the root live in
 * stack-bound directory inodes and attributes belong to content-keyed inodes (vfs.ts), so
 * caching them cannot show one environment's data to another.
 */
const ATTR_TIMEOUT = 60, ROOT_ENTRY_TIMEOUT = 0, ENTRY_TIMEOUT = 60;

type MountRec = View & { id: string };

function post(m: FromWorker): void {
  parentPort!.postMessage(m);
}

function serve(data: FuseWorkerData): void {
  let fuse: { lib: FuseLib; name: string };
  try {
    fuse = openFuse(data.libfuse);
  } catch (e) {
    post({ type: "error", message: `cannot load libfuse (${data.libfuse.join(", ")}): ${e}` });
    return;
  }
  const S = fuse.lib.symbols;
  const C = libc();
  const layout = hostStatLayout();
  const store = ObjectStore.open(data.storageRoot);
  const vfs = new Vfs(store, data.uid, data.gid);
  const router = new Router<MountRec>({ info: procInfo, tgid: tgidOf });
  const counters = new Int32Array(data.counters);
  const log = (
    level: "debug" | "info" | "warning" | "error",
    message: string,
    fields?: Record<string, unknown>,
  ) => post({ type: "log", level, message, fields });

  const apply = (m: ToWorker) => {
    if (m.type === "register") {
      try {
        router.register(m.pid, m.startTime, { ...vfs.view(m.layers), id: m.id });
      } catch (e) {
        log("error", `registration of ${m.pid} failed: ${e}`, { root_pid: m.pid, runtime: m.id });
      }
    } else {
      router.unregister(m.pid);
    }
  };
  const drain = () => {
    for (let m = receiveMessageOnPort(data.port); m; m = receiveMessageOnPort(data.port)) apply(m.message);
  };

  // reusable buffers: the worker is single-threaded, one request at a time
  const entryBuf = encodeEntryParam(layout, vfs.attr(ROOT_INO)!, 0, 0);
  const statBuf = new Uint8Array(STAT_SIZE[layout]);
  const statView = new DataView(statBuf.buffer);
  const bufvec = new Uint8Array(BUFVEC_SIZE);
  const bufvecView = new DataView(bufvec.buffer);
  const statvfs = encodeStatvfs({
    bsize: 4096,
    blocks: 0,
    bfree: 0,
    bavail: 0,
    files: 0,
    ffree: 0,
    namemax: 255,
    readonly: true,
  });
  let dirBuf = new Uint8Array(64 * 1024);
  const dirHandles = new Map<number, [string, number, number][]>();
  let nextDirHandle = 1;
  const verified = new Set<Digest>();

  const viewOf = (req: Deno.PointerValue): MountRec | null => {
    const tid = new Deno.UnsafePointerView(S.fuse_req_ctx(req)!).getInt32(CTX.pid);
    return router.resolve(tid)?.mount ?? null;
  };
  const replyAttr = (req: Deno.PointerValue, a: Attr) => {
    statBuf.fill(0);
    encodeStat(layout, a, statView);
    S.fuse_reply_attr(req, statBuf, ATTR_TIMEOUT);
  };
  const fiView = (fi: Deno.PointerValue) => new DataView(Deno.UnsafePointerView.getArrayBuffer(fi!, FI.size));

  /** Hashes a blob once per service lifetime; a blob that fails is never served (EIO). */
  const verify = (n: Node): boolean => {
    if (verified.has(n.digest!)) return true;
    const h = createHash("sha256");
    const f = Deno.openSync(vfs.blobPath(n.digest!), { read: true });
    try {
      const chunk = new Uint8Array(1 << 20);
      for (let r = f.readSync(chunk); r !== null; r = f.readSync(chunk)) h.update(chunk.subarray(0, r));
    } finally {
      f.close();
    }
    if (`sha256:${h.digest("hex")}` !== n.digest) {
      log("error", `blob ${n.digest} does not match its digest; refusing to serve it`, {
        op: "open",
        errno: E.EIO,
      });
      return false;
    }
    verified.add(n.digest!);
    return true;
  };

  const handlers: Partial<Record<keyof typeof OP_SIGNATURES, (...a: any[]) => void>> = {
    init: () => {},
    destroy: () => {},
    lookup: (req, parent, namePtr) => {
      counters[3]++;
      const atRoot = Number(parent) === ROOT_INO;
      const n = vfs.lookup(
        atRoot ? viewOf(req) : null,
        Number(parent),
        Deno.UnsafePointerView.getCString(namePtr),
      );
      if (typeof n === "number") return S.fuse_reply_err(req, n);
      encodeEntryParam(
        layout,
        vfs.attr(n.ino)!,
        ATTR_TIMEOUT,
        atRoot ? ROOT_ENTRY_TIMEOUT : ENTRY_TIMEOUT,
        entryBuf,
      );
      S.fuse_reply_entry(req, entryBuf);
    },
    forget: (req, ino, nlookup) => {
      vfs.forget(Number(ino), Number(nlookup));
      S.fuse_reply_none(req);
    },
    forget_multi: (req, count, ptr) => {
      const v = new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr, Number(count) * 16));
      for (let i = 0; i < Number(count); i++) {
        vfs.forget(Number(v.getBigUint64(i * 16, true)), Number(v.getBigUint64(i * 16 + 8, true)));
      }
      S.fuse_reply_none(req);
    },
    getattr: (req, ino) => {
      const a = vfs.attr(Number(ino));
      if (!a) return S.fuse_reply_err(req, E.ENOENT);
      replyAttr(req, a);
    },
    readlink: (req, ino) => {
      const n = vfs.nodes.get(Number(ino));
      if (!n || n.kind !== "symlink") return S.fuse_reply_err(req, E.ENOENT);
      const target = Deno.readFileSync(vfs.blobPath(n.digest!));
      const z = new Uint8Array(target.length + 1);
      z.set(target);
      S.fuse_reply_readlink(req, z);
    },
    open: (req, ino, fi) => {
      counters[2]++;
      const n = vfs.nodes.get(Number(ino));
      if (!n) return S.fuse_reply_err(req, E.ENOENT);
      if (n.kind !== "file") return S.fuse_reply_err(req, EACCES);
      const v = fiView(fi);
      const flags = v.getInt32(FI.flags, true);
      if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC)) return S.fuse_reply_err(req, E.EROFS);
      if (!verify(n)) return S.fuse_reply_err(req, E.EIO);
      const fd = C.open(cstr(vfs.blobPath(n.digest!)), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return S.fuse_reply_err(req, errno() || E.EIO);
      v.setBigUint64(FI.fh, BigInt(fd), true);
      v.setUint32(FI.bits, v.getUint32(FI.bits, true) | FI_BITS.keep_cache, true);
      S.fuse_reply_open(req, fi);
    },
    read: (req, _ino, size, off, fi) => {
      const fd = Number(fiView(fi).getBigUint64(FI.fh, true));
      encodeFdBufvec(bufvecView, fd, Number(size), Number(off));
      S.fuse_reply_data(req, bufvec, 0);
    },
    release: (req, _ino, fi) => {
      C.close(Number(fiView(fi).getBigUint64(FI.fh, true)));
      S.fuse_reply_err(req, 0);
    },
    opendir: (req, ino, fi) => {
      const atRoot = Number(ino) === ROOT_INO;
      const list = vfs.list(atRoot ? viewOf(req) : null, Number(ino));
      if (typeof list === "number") return S.fuse_reply_err(req, list);
      const DT_DIR = 0o040000, DT_REG = 0o100000, DT_LNK = 0o120000;
      const entries: [string, number, number][] = [[".", Number(ino), DT_DIR], ["..", ROOT_INO, DT_DIR]];
      for (const [name, n] of list) {
        entries.push([name, n.ino, n.kind === "dir" ? DT_DIR : n.kind === "file" ? DT_REG : DT_LNK]);
      }
      const h = nextDirHandle++;
      dirHandles.set(h, entries);
      const v = fiView(fi);
      v.setBigUint64(FI.fh, BigInt(h), true);
      // a stack-bound directory never changes, so the kernel may keep its listing
      if (!atRoot) {
        v.setUint32(FI.bits, v.getUint32(FI.bits, true) | FI_BITS.cache_readdir | FI_BITS.keep_cache, true);
      }
      S.fuse_reply_open(req, fi);
    },
    readdir: (req, _ino, size, off, fi) => {
      const entries = dirHandles.get(Number(fiView(fi).getBigUint64(FI.fh, true)));
      if (!entries) return S.fuse_reply_err(req, E.EIO);
      const max = Number(size);
      if (dirBuf.length < max) dirBuf = new Uint8Array(max);
      let pos = 0;
      for (let i = Number(off); i < entries.length; i++) {
        const [name, ino, type] = entries[i];
        statBuf.fill(0);
        encodeStat(layout, {
          ino,
          mode: type,
          nlink: 0,
          uid: 0,
          gid: 0,
          size: 0,
          blocks: 0,
          blksize: 0,
          time: 0,
        }, statView);
        const rest = dirBuf.subarray(pos, max);
        const n = Number(
          S.fuse_add_direntry(req, rest, BigInt(rest.length), cstr(name), statBuf, BigInt(i + 1)),
        );
        if (n > rest.length) break;
        pos += n;
      }
      S.fuse_reply_buf(req, dirBuf, BigInt(pos));
    },
    releasedir: (req, _ino, fi) => {
      dirHandles.delete(Number(fiView(fi).getBigUint64(FI.fh, true)));
      S.fuse_reply_err(req, 0);
    },
    statfs: (req) => S.fuse_reply_statfs(req, statvfs),
    access: (req, _ino, mask) => S.fuse_reply_err(req, mask & 2 ? E.EROFS : 0),
    getxattr: (req) => S.fuse_reply_err(req, ENODATA),
    listxattr: (req, _ino, size) =>
      Number(size) === 0 ? S.fuse_reply_xattr(req, 0n) : S.fuse_reply_buf(req, null as any, 0n),
  };
  const readOnly = [
    "setattr",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "write",
    "create",
    "setxattr",
    "removexattr",
    "fallocate",
  ] as const;
  for (const op of readOnly) handlers[op] = (req) => S.fuse_reply_err(req, E.EROFS);

  const callbacks: Deno.UnsafeCallback<any>[] = [];
  const ops = new BigUint64Array(OPS_SLOTS);
  for (const [op, fn] of Object.entries(handlers) as [keyof typeof OP_SIGNATURES, (...a: any[]) => void][]) {
    const hasReq = op !== "init" && op !== "destroy";
    const def = { parameters: OP_SIGNATURES[op] as readonly Deno.NativeType[], result: "void" } as const;
    const cb = new Deno.UnsafeCallback(def, (...args: any[]) => {
      counters[0]++;
      drain();
      try {
        fn(...args);
      } catch (e) {
        counters[1]++;
        log("error", `${op} failed: ${e instanceof Error ? e.stack : e}`, { op, errno: E.EIO });
        if (hasReq && op !== "forget" && op !== "forget_multi") S.fuse_reply_err(args[0], E.EIO);
      }
    });
    callbacks.push(cb);
    ops[OPS[op]] = BigInt(Deno.UnsafePointer.value(cb.pointer));
  }

  const argv = encodeFuseArgs(["spfs", "-o", "fsname=spfs,subtype=spfs,default_permissions"]);
  const se = S.fuse_session_new(argv.args, new Uint8Array(ops.buffer), BigInt(ops.byteLength), null);
  if (!se) {
    post({ type: "error", message: "fuse_session_new failed (see the service log for libfuse's message)" });
    return;
  }
  if (S.fuse_session_mount(se, cstr(data.mountpoint)) !== 0) {
    S.fuse_session_destroy(se);
    post({ type: "error", message: `fuse_session_mount on ${data.mountpoint} failed` });
    return;
  }
  const version = Deno.UnsafePointerView.getCString(S.fuse_pkgversion()!);
  drain();
  post({ type: "mounted", libfuse: fuse.name, version });
  const rc = S.fuse_session_loop(se);
  S.fuse_session_unmount(se);
  S.fuse_session_destroy(se);
  for (const cb of callbacks) cb.close();
  void argv.keep;
  post({ type: "exited", code: rc });
}

if (parentPort && workerData) serve(workerData as FuseWorkerData);
