/**
 * The FUSE worker: runs libfuse's session loop synchronously in a dedicated Worker whose own
 * UnsafeCallbacks answer each request (ARCHITECTURE.md "FUSE threading": ~2x faster than a
 * nonblocking loop). The main thread sends registrations through a MessagePort that every callback
 * drains first, so a registration is always seen before the registered process's first request.
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import {
  BUFVEC_SIZE,
  encodeEntryParam,
  encodeFdBufvec,
  OPS as LINUX_SLOT,
  SETATTR,
} from "../../../ffi/fuse/lowlevel.ts";
import {
  type FuseAbi,
  type FuseReplies,
  type FuseSession,
  mountSession,
  type OpName,
} from "../../../ffi/fuse/abi.ts";
import {
  cstr,
  errno,
  errnoOfException,
  libc,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_TRUNC,
} from "../../../ffi/sys.ts";
import { check, statfs } from "../../../ffi/fsops.ts";
import { procInfo, tgidOf } from "../../../ffi/sys.ts";
import { type Attr, decodeStat, encodeStat, STAT_SIZE } from "../../../ffi/stat.ts";
import { type Digest, digestFileSync } from "../../store/objects.ts";
import { type Caller, type ONode, Overlay } from "../../fs/overlay/overlay.ts";
import { Router } from "../../fs/router.ts";
import { ObjectStore } from "../../store/store.ts";
import { E, ROOT_INO, Vfs, type View } from "../../fs/vfs.ts";
import { bucketOf, CTR, LAT_BUCKETS } from "../../metrics.ts";

/** Data the main thread passes when it starts the worker. */
export interface FuseWorkerData {
  storageRoot: string;
  mountpoint: string;
  libfuse: string[];
  uid: number;
  gid: number;
  port: MessagePort;
  /** Int32 counters shared with the main thread, indexed by metrics.ts `CTR`. */
  counters: SharedArrayBuffer;
  /** Int32 latency histograms, LAT_BUCKETS per OPS slot (metrics.ts). */
  latency: SharedArrayBuffer;
  /** Ops slower than this are logged with their duration (µs). */
  slowUs: number;
}

/** Messages main → worker. */
export type ToWorker =
  | {
    type: "register";
    id: string;
    pid: number;
    startTime: number;
    layers: Digest[];
    /** Editable runtimes: where scratch lives and whether copy-up may reflink. */
    edit?: { scratch: string; work: string; reflink: boolean };
  }
  | { type: "unregister"; pid: number }
  /** Commit support: read the change counter, then swap scratch for a new top layer. */
  | { type: "commit-check"; reqId: number; id: string }
  | { type: "rebase"; reqId: number; id: string; layers: Digest[]; gen: number; trash: string };

/** Answers to requests that carry a `reqId`. */
export type WorkerReply =
  | { gen: number; writers: number }
  | { ok: true }
  | { ok: false; reason: string };

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
  | { type: "exited"; code: number }
  | { type: "reply"; reqId: number; result: WorkerReply };

/**
 * Kernel cache timeouts in seconds. Root entries: 0, so every path walk asks again with the
 * caller's pid (the dentry cache is keyed by path, not process). Entries below the root live in
 * stack-bound directory inodes and attributes belong to content-keyed inodes (vfs.ts), so
 * caching them cannot show one environment's data to another.
 */
const ATTR_TIMEOUT = 60, ROOT_ENTRY_TIMEOUT = 0, ENTRY_TIMEOUT = 60;
/**
 * Editable inodes belong to one runtime and change only through this mount, so the kernel may keep
 * their entries; attributes are kept briefly because scratch times and sizes move.
 */
const EDIT_ATTR_TIMEOUT = 1;

type MountRec = View & { id: string; overlay?: Overlay };

function post(m: FromWorker): void {
  parentPort!.postMessage(m);
}

function serve(data: FuseWorkerData): void {
  let fuse: FuseSession;
  let server: Server | undefined;
  try {
    fuse = mountSession(
      data.libfuse,
      (abi, reply) => (server = buildServer(data, abi, reply)).table,
      data.mountpoint,
    );
  } catch (e) {
    post({ type: "error", message: `cannot mount with libfuse (${data.libfuse.join(", ")}): ${e}` });
    return;
  }
  server!.drain();
  post({ type: "mounted", libfuse: fuse.name, version: fuse.version });
  const rc = fuse.loop();
  fuse.close();
  for (const cb of server!.callbacks) cb.close();
  post({ type: "exited", code: rc });
}

/** The ops table handed to libfuse, the callbacks it points at, and the registration drain. */
export interface Server {
  table: Uint8Array;
  callbacks: Deno.UnsafeCallback<any>[];
  drain(): void;
}

/**
 * Builds the request handlers for `abi`: one UnsafeCallback per implemented op, at the abi's slot
 * of a table `abi.slots` × 8 bytes long. Exported for the per-flavour table test.
 */
export function buildServer(data: FuseWorkerData, abi: FuseAbi, S: FuseReplies): Server {
  const C = libc();
  const layout = abi.statLayout;
  const { fi: FI, fiBits: FI_BITS, ctx: CTX } = abi;
  const store = ObjectStore.open(data.storageRoot);
  const vfs = new Vfs(store, data.uid, data.gid);
  const router = new Router<MountRec>({ info: procInfo, tgid: tgidOf });
  const counters = new Int32Array(data.counters);
  const log = (
    level: "debug" | "info" | "warning" | "error",
    message: string,
    fields?: Record<string, unknown>,
  ) => post({ type: "log", level, message, fields });

  const overlays = new Map<string, Overlay>();
  const reply = (reqId: number, result: WorkerReply) => post({ type: "reply", reqId, result });
  const apply = (m: ToWorker) => {
    switch (m.type) {
      case "register":
        try {
          const view = vfs.view(m.layers);
          let overlay: Overlay | undefined;
          if (m.edit) {
            overlay = new Overlay({
              id: m.id,
              ...m.edit,
              vfs,
              layers: m.layers,
              rootSources: view.rootSources,
              onCopyUp: (how) => {
                counters[CTR.copyUps]++;
                if (how === "reflink") counters[CTR.reflinks]++;
              },
            });
            overlays.set(m.id, overlay);
          }
          router.register(m.pid, m.startTime, { ...view, id: m.id, overlay });
        } catch (e) {
          log("error", `registration of ${m.pid} failed: ${e}`, { root_pid: m.pid, runtime: m.id });
        }
        break;
      case "unregister": {
        const r = router.unregister(m.pid);
        if (r?.mount.overlay) {
          // lingering processes keep the runtime's layers, read-only: its scratch is going away
          const ov = r.mount.overlay;
          r.mount.overlay = undefined;
          ov.dispose();
          overlays.delete(r.mount.id);
        }
        break;
      }
      case "commit-check": {
        const ov = overlays.get(m.id);
        if (!ov) return reply(m.reqId, { ok: false, reason: "the runtime is not active" });
        return reply(m.reqId, { gen: ov.gen, writers: ov.writers });
      }
      case "rebase": {
        const ov = overlays.get(m.id);
        if (!ov) return reply(m.reqId, { ok: false, reason: "the runtime is not active" });
        if (ov.gen !== m.gen) return reply(m.reqId, { ok: false, reason: "changed" });
        if (ov.writers > 0) return reply(m.reqId, { ok: false, reason: `writers:${ov.writers}` });
        try {
          const view = vfs.view(m.layers);
          Deno.renameSync(ov.scratch, m.trash);
          Deno.mkdirSync(ov.scratch, { mode: 0o755 });
          Deno.chmodSync(ov.scratch, 0o755);
          ov.rebase(m.layers, view.rootSources);
          for (const r of router.roots()) if (r.mount.overlay === ov) Object.assign(r.mount, view);
          reply(m.reqId, { ok: true });
        } catch (e) {
          reply(m.reqId, { ok: false, reason: String(e) });
        }
        break;
      }
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
  const statvfs = abi.encodeStatvfs({
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
  const callerOf = (req: Deno.PointerValue): Caller => {
    const v = new Deno.UnsafePointerView(S.fuse_req_ctx(req)!);
    return { uid: v.getUint32(CTX.uid), gid: v.getUint32(CTX.gid) };
  };
  /** The editable runtime that owns an inode (never the shared root). */
  const ownerOf = (ino: number) => vfs.owners.get(ino) as Overlay | undefined;
  /** The editable runtime an inode belongs to: the root through the caller, others by owner. */
  const overlayOf = (req: Deno.PointerValue, ino: number): Overlay | undefined =>
    ino === ROOT_INO ? viewOf(req)?.overlay : ownerOf(ino);
  /** Open file handles of editable runtimes, by fd. */
  const handles = new Map<number, { ov: Overlay; node: ONode; write: boolean }>();
  const editEntry = (req: Deno.PointerValue, ov: Overlay, n: ONode | number, parent: number) => {
    if (typeof n === "number") return S.fuse_reply_err(req, n);
    const a = ov.attr(n);
    if (typeof a === "number") return S.fuse_reply_err(req, a);
    encodeEntryParam(
      layout,
      a,
      EDIT_ATTR_TIMEOUT,
      parent === ROOT_INO ? ROOT_ENTRY_TIMEOUT : ENTRY_TIMEOUT,
      entryBuf,
    );
    S.fuse_reply_entry(req, entryBuf);
  };
  const blobOpen = (d: Digest): number => {
    if (!verify(d)) return -E.EIO;
    const fd = C.open(cstr(vfs.blobPath(d)), O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -(errno() || E.EIO) : fd;
  };
  const name = (p: Deno.PointerValue) => Deno.UnsafePointerView.getCString(p!);
  const replyAttrT = (req: Deno.PointerValue, a: Attr, timeout: number) => {
    statBuf.fill(0);
    encodeStat(layout, a, statView);
    S.fuse_reply_attr(req, statBuf, timeout);
  };
  const replyAttr = (req: Deno.PointerValue, a: Attr) => replyAttrT(req, a, ATTR_TIMEOUT);
  const fiView = (fi: Deno.PointerValue) => new DataView(Deno.UnsafePointerView.getArrayBuffer(fi!, FI.size));

  /** Hashes a blob once per service lifetime; a blob that fails is never served (EIO). */
  const verify = (digest: Digest): boolean => {
    if (verified.has(digest)) return true;
    if (digestFileSync(vfs.blobPath(digest)) !== digest) {
      log("error", `blob ${digest} does not match its digest; refusing to serve it`, {
        op: "open",
        errno: E.EIO,
      });
      return false;
    }
    verified.add(digest);
    return true;
  };

  const DT: Record<string, number> = { dir: 0o040000, file: 0o100000, symlink: 0o120000 };
  const replyBytes = (req: Deno.PointerValue, size: number, r: Uint8Array | number) => {
    if (typeof r === "number") return S.fuse_reply_err(req, r);
    if (size === 0) return S.fuse_reply_xattr(req, BigInt(r.length));
    if (r.length > size) return S.fuse_reply_err(req, E.ERANGE);
    S.fuse_reply_buf(req, r, BigInt(r.length));
  };
  const fdOf = (fi: Deno.PointerValue) => Number(fiView(fi).getBigUint64(FI.fh, true));

  const handlers: Partial<Record<OpName, (...a: any[]) => void>> = {
    init: () => {},
    destroy: () => {},
    lookup: (req, parent, namePtr) => {
      counters[CTR.lookups]++;
      const p = Number(parent);
      const atRoot = p === ROOT_INO;
      const view = atRoot ? viewOf(req) : null;
      const ov = atRoot ? view?.overlay : ownerOf(p);
      if (ov) return editEntry(req, ov, ov.lookup(p, name(namePtr)), p);
      const n = vfs.lookup(view, p, name(namePtr));
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
      const ov = ownerOf(Number(ino));
      if (ov) ov.forget(Number(ino), Number(nlookup));
      else vfs.forget(Number(ino), Number(nlookup));
      S.fuse_reply_none(req);
    },
    forget_multi: (req, count, ptr) => {
      const v = new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr, Number(count) * 16));
      for (let i = 0; i < Number(count); i++) {
        const ino = Number(v.getBigUint64(i * 16, true)), n = Number(v.getBigUint64(i * 16 + 8, true));
        const ov = ownerOf(ino);
        if (ov) ov.forget(ino, n);
        else vfs.forget(ino, n);
      }
      S.fuse_reply_none(req);
    },
    getattr: (req, inoB, fi) => {
      const ino = Number(inoB);
      const ov = ino === ROOT_INO ? undefined : ownerOf(ino);
      if (ov) {
        if (fi) {
          // an open handle: its fd is the truth (the file may be unlinked)
          statBuf.fill(0);
          if (handles.has(fdOf(fi)) && C.fstat(fdOf(fi), statBuf) === 0) {
            return replyAttrT(req, { ...decodeStat(layout, statView), ino }, EDIT_ATTR_TIMEOUT);
          }
        }
        const n = ov.node(ino);
        if (!n) return S.fuse_reply_err(req, E.ENOENT);
        if (n.detached && n.openFds > 0) {
          // unlinked but open: an open fd still has live attributes
          for (const [fd, h] of handles) {
            statBuf.fill(0);
            if (h.node === n && C.fstat(fd, statBuf) === 0) {
              return replyAttrT(req, { ...decodeStat(layout, statView), ino }, EDIT_ATTR_TIMEOUT);
            }
          }
        }
        const a = ov.attr(n);
        if (typeof a === "number") return S.fuse_reply_err(req, a);
        return replyAttrT(req, a, EDIT_ATTR_TIMEOUT);
      }
      const a = vfs.attr(ino);
      if (!a) return S.fuse_reply_err(req, E.ENOENT);
      replyAttr(req, a);
    },
    setattr: (req, inoB, attrPtr, toSet, fi) => {
      const ino = Number(inoB);
      const ov = overlayOf(req, ino);
      if (!ov || ino === ROOT_INO) return S.fuse_reply_err(req, ov ? E.EPERM : E.EROFS);
      const n = ov.node(ino);
      if (!n) return S.fuse_reply_err(req, E.ENOENT);
      const a = decodeStat(
        layout,
        new DataView(Deno.UnsafePointerView.getArrayBuffer(attrPtr, STAT_SIZE[layout])),
      );
      const t = Number(toSet);
      const set: Parameters<Overlay["setattr"]>[1] = {};
      if (t & SETATTR.MODE) set.mode = a.mode;
      if (t & SETATTR.UID) set.uid = a.uid;
      if (t & SETATTR.GID) set.gid = a.gid;
      if (t & SETATTR.SIZE) set.size = a.size;
      if (t & SETATTR.ATIME) set.atime = t & SETATTR.ATIME_NOW ? "now" : a.atimeNs;
      if (t & SETATTR.MTIME) set.mtime = t & SETATTR.MTIME_NOW ? "now" : a.mtimeNs;
      const r = ov.setattr(n, set, fi ? fdOf(fi) : undefined);
      if (typeof r === "number") return S.fuse_reply_err(req, r);
      replyAttrT(req, r, EDIT_ATTR_TIMEOUT);
    },
    readlink: (req, inoB) => {
      const ino = Number(inoB);
      const ov = ownerOf(ino);
      let target: Uint8Array | number;
      if (ov) target = ov.readlink(ov.node(ino)!);
      else {
        const n = vfs.nodes.get(ino);
        if (!n || n.kind !== "symlink") return S.fuse_reply_err(req, E.ENOENT);
        target = Deno.readFileSync(vfs.blobPath(n.digest!));
      }
      if (typeof target === "number") return S.fuse_reply_err(req, target);
      const z = new Uint8Array(target.length + 1);
      z.set(target);
      S.fuse_reply_readlink(req, z);
    },
    open: (req, inoB, fi) => {
      counters[CTR.opens]++;
      const ino = Number(inoB);
      const v = fiView(fi);
      const flags = v.getInt32(FI.flags, true);
      const ov = ownerOf(ino);
      if (ov) {
        const n = ov.node(ino)!;
        const r = ov.open(n, flags, blobOpen);
        if (typeof r === "number") return S.fuse_reply_err(req, r);
        handles.set(r.fd, { ov, node: n, write: r.write });
        counters[CTR.openHandles]++;
        v.setBigUint64(FI.fh, BigInt(r.fd), true);
        return S.fuse_reply_open(req, fi);
      }
      const n = vfs.nodes.get(ino);
      if (!n) return S.fuse_reply_err(req, E.ENOENT);
      if (n.kind !== "file") return S.fuse_reply_err(req, E.EACCES);
      if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC)) return S.fuse_reply_err(req, E.EROFS);
      const fd = blobOpen(n.digest!);
      if (fd < 0) return S.fuse_reply_err(req, -fd);
      counters[CTR.openHandles]++;
      v.setBigUint64(FI.fh, BigInt(fd), true);
      v.setUint32(FI.bits, (v.getUint32(FI.bits, true) | FI_BITS.keep_cache) >>> 0, true);
      S.fuse_reply_open(req, fi);
    },
    create: (req, parent, namePtr, mode, fi) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov) return S.fuse_reply_err(req, E.EROFS);
      const v = fiView(fi);
      const r = ov.create(
        Number(parent),
        name(namePtr),
        Number(mode),
        v.getInt32(FI.flags, true),
        callerOf(req),
      );
      if (typeof r === "number") return S.fuse_reply_err(req, r);
      const a = ov.attr(r.node);
      if (typeof a === "number") return S.fuse_reply_err(req, a);
      handles.set(r.fd, { ov, node: r.node, write: (v.getInt32(FI.flags, true) & O_ACCMODE) !== 0 });
      counters[CTR.openHandles]++;
      v.setBigUint64(FI.fh, BigInt(r.fd), true);
      encodeEntryParam(
        layout,
        a,
        EDIT_ATTR_TIMEOUT,
        Number(parent) === ROOT_INO ? ROOT_ENTRY_TIMEOUT : ENTRY_TIMEOUT,
        entryBuf,
      );
      S.fuse_reply_create(req, entryBuf, fi);
    },
    read: (req, _ino, size, off, fi) => {
      encodeFdBufvec(bufvecView, fdOf(fi), Number(size), Number(off));
      S.fuse_reply_data(req, bufvec, 0);
    },
    write: (req, _ino, buf, size, off, fi) => {
      const h = handles.get(fdOf(fi));
      if (!h) return S.fuse_reply_err(req, E.EBADF);
      const n = Number(C.pwrite(fdOf(fi), buf, size, off));
      if (n < 0) return S.fuse_reply_err(req, errno());
      h.ov.gen++;
      S.fuse_reply_write(req, BigInt(n));
    },
    flush: (req) => S.fuse_reply_err(req, 0),
    fsync: (req, _ino, datasync, fi) => {
      const fd = fdOf(fi);
      S.fuse_reply_err(req, check(datasync ? C.fdatasync(fd) : C.fsync(fd)));
    },
    release: (req, _ino, fi) => {
      const fd = fdOf(fi);
      const h = handles.get(fd);
      if (h) {
        handles.delete(fd);
        h.ov.released(h.node, h.write);
      }
      C.close(fd);
      counters[CTR.openHandles]--;
      S.fuse_reply_err(req, 0);
    },
    opendir: (req, inoB, fi) => {
      const ino = Number(inoB);
      const atRoot = ino === ROOT_INO;
      const view = atRoot ? viewOf(req) : null;
      const ov = atRoot ? view?.overlay : ownerOf(ino);
      const entries: [string, number, number][] = [[".", ino, DT.dir], ["..", ROOT_INO, DT.dir]];
      if (ov) {
        const list = ov.list(ino);
        if (typeof list === "number") return S.fuse_reply_err(req, list);
        for (const [nm, n] of list) {
          let type = DT[n.kind];
          if (type === undefined) {
            const a = ov.attr(n);
            type = typeof a === "number" ? 0 : a.mode & 0o170000;
          }
          entries.push([nm, n.ino, type]);
        }
      } else {
        const list = vfs.list(view, ino);
        if (typeof list === "number") return S.fuse_reply_err(req, list);
        for (const [nm, n] of list) entries.push([nm, n.ino, DT[n.kind]]);
      }
      const h = nextDirHandle++;
      dirHandles.set(h, entries);
      const v = fiView(fi);
      v.setBigUint64(FI.fh, BigInt(h), true);
      // a stack-bound read-only directory never changes, so the kernel may keep its listing
      if (!atRoot && !ov) {
        v.setUint32(
          FI.bits,
          (v.getUint32(FI.bits, true) | FI_BITS.cache_readdir | FI_BITS.keep_cache) >>> 0,
          true,
        );
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
        const [nm, ino, type] = entries[i];
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
          S.fuse_add_direntry(req, rest, BigInt(rest.length), cstr(nm), statBuf, BigInt(i + 1)),
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
    statfs: (req, ino) => {
      const ov = overlayOf(req, Number(ino));
      if (!ov) return S.fuse_reply_statfs(req, statvfs);
      const st = statfs(ov.scratch);
      if (typeof st === "number") return S.fuse_reply_err(req, st);
      S.fuse_reply_statfs(req, abi.encodeStatvfs({ ...st, readonly: false }));
    },
    access: (req, ino, mask) => {
      if (overlayOf(req, Number(ino))) return S.fuse_reply_err(req, 0);
      S.fuse_reply_err(req, mask & 2 ? E.EROFS : 0);
    },
    getxattr: (req, ino, namePtr, size) => {
      const ov = ownerOf(Number(ino));
      if (!ov) return S.fuse_reply_err(req, E.ENOATTR);
      replyBytes(req, Number(size), ov.getxattr(ov.node(Number(ino))!, name(namePtr), Number(size)));
    },
    listxattr: (req, ino, size) => {
      const ov = ownerOf(Number(ino));
      replyBytes(
        req,
        Number(size),
        ov ? ov.listxattr(ov.node(Number(ino))!, Number(size)) : new Uint8Array(0),
      );
    },
    setxattr: (req, ino, namePtr, value, size, flags) => {
      const ov = ownerOf(Number(ino));
      if (!ov) return S.fuse_reply_err(req, Number(ino) === ROOT_INO ? E.ENOTSUP : E.EROFS);
      S.fuse_reply_err(req, ov.setxattr(ov.node(Number(ino))!, name(namePtr), value, Number(size), flags));
    },
    removexattr: (req, ino, namePtr) => {
      const ov = ownerOf(Number(ino));
      if (!ov) return S.fuse_reply_err(req, Number(ino) === ROOT_INO ? E.ENOATTR : E.EROFS);
      S.fuse_reply_err(req, ov.removexattr(ov.node(Number(ino))!, name(namePtr)));
    },
    mknod: (req, parent, namePtr, mode, rdev) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov) return S.fuse_reply_err(req, E.EROFS);
      editEntry(
        req,
        ov,
        ov.mknod(Number(parent), name(namePtr), mode, BigInt(rdev), callerOf(req)),
        Number(parent),
      );
    },
    mkdir: (req, parent, namePtr, mode) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov) return S.fuse_reply_err(req, E.EROFS);
      editEntry(req, ov, ov.mkdir(Number(parent), name(namePtr), mode, callerOf(req)), Number(parent));
    },
    symlink: (req, linkPtr, parent, namePtr) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov) return S.fuse_reply_err(req, E.EROFS);
      const target = new TextEncoder().encode(name(linkPtr));
      editEntry(req, ov, ov.symlink(Number(parent), name(namePtr), target, callerOf(req)), Number(parent));
    },
    link: (req, ino, parent, namePtr) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov || vfs.owners.get(Number(ino)) !== ov) return S.fuse_reply_err(req, ov ? E.EXDEV : E.EROFS);
      editEntry(req, ov, ov.link(Number(ino), Number(parent), name(namePtr)), Number(parent));
    },
    unlink: (req, parent, namePtr) => {
      const ov = overlayOf(req, Number(parent));
      S.fuse_reply_err(req, ov ? ov.unlink(Number(parent), name(namePtr)) : E.EROFS);
    },
    rmdir: (req, parent, namePtr) => {
      const ov = overlayOf(req, Number(parent));
      S.fuse_reply_err(req, ov ? ov.rmdir(Number(parent), name(namePtr)) : E.EROFS);
    },
    rename: (req, parent, namePtr, newparent, newnamePtr, flags) => {
      const ov = overlayOf(req, Number(parent));
      if (!ov) return S.fuse_reply_err(req, E.EROFS);
      if (overlayOf(req, Number(newparent)) !== ov) return S.fuse_reply_err(req, E.EXDEV);
      S.fuse_reply_err(
        req,
        ov.rename(Number(parent), name(namePtr), Number(newparent), name(newnamePtr), flags ?? 0),
      );
    },
    fallocate: (req, ino) => S.fuse_reply_err(req, vfs.owners.has(Number(ino)) ? E.ENOTSUP : E.EROFS),
  };

  const latency = new Int32Array(data.latency);
  /** Log fields naming what a request was about: its inode, and a path where one is known. */
  const describe = (op: string, args: any[]): Record<string, unknown> => {
    if (op === "init" || op === "destroy" || op === "forget_multi") return {};
    const ino = typeof args[1] === "bigint" ? Number(args[1]) : undefined;
    const out: Record<string, unknown> = { ino };
    try {
      const ov = ino !== undefined ? ownerOf(ino) : undefined;
      const dirPath = ino === ROOT_INO ? "" : ov?.node(ino!)?.path ?? vfs.nodes.get(ino!)?.path;
      const withName = ["lookup", "mknod", "mkdir", "unlink", "rmdir", "create", "rename"].includes(op);
      if (withName && args[2]) out.path = `${dirPath ?? `<ino ${ino}>`}/${name(args[2])}`;
      else if (dirPath !== undefined) out.path = dirPath || "/";
      else if (ino !== undefined) {
        const d = vfs.nodes.get(ino)?.digest;
        if (d) out.blob = d;
      }
    } catch { /* best effort */ }
    return out;
  };
  const callbacks: Deno.UnsafeCallback<any>[] = [];
  const ops = new BigUint64Array(abi.slots);
  for (const [op, fn] of Object.entries(handlers) as [OpName, (...a: any[]) => void][]) {
    const hasReq = op !== "init" && op !== "destroy";
    const def = { parameters: abi.signature[op] as Deno.NativeType[], result: "void" } as const;
    // histograms are indexed by the Linux slot so metrics read the same on every platform
    const hist = LINUX_SLOT[op] * LAT_BUCKETS;
    const cb = new Deno.UnsafeCallback(def, (...args: any[]) => {
      counters[CTR.requests]++;
      drain();
      const t0 = performance.now();
      try {
        fn(...args);
      } catch (e) {
        counters[CTR.errors]++;
        const err = errnoOfException(e);
        log(err === E.EIO ? "error" : "warning", `${op} failed: ${e instanceof Error ? e.stack : e}`, {
          op,
          errno: err,
          ...describe(op, args),
        });
        if (hasReq && op !== "forget" && op !== "forget_multi") S.fuse_reply_err(args[0], err);
      }
      const us = (performance.now() - t0) * 1000;
      latency[hist + bucketOf(us)]++;
      if (us > data.slowUs) {
        log("info", `slow ${op}`, { op, duration_us: Math.round(us), ...describe(op, args) });
      }
      counters[CTR.ancestryHits] = router.stats.hits;
      counters[CTR.ancestryMisses] = router.stats.misses;
      counters[CTR.listingHits] = vfs.stats.hits;
      counters[CTR.listingMisses] = vfs.stats.misses;
    });
    callbacks.push(cb);
    ops[abi.slot[op]] = BigInt(Deno.UnsafePointer.value(cb.pointer));
  }

  return { table: new Uint8Array(ops.buffer), callbacks, drain };
}

if (parentPort && workerData) serve(workerData as FuseWorkerData);
