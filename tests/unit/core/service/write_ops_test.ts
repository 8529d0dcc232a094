/**
 * The FUSE write path of every library flavour, called the way libfuse calls it: each op is the
 * worker's own instrumented native callback, invoked through a function pointer with the
 * flavour's C signature and arguments laid out at that flavour's header offsets (`struct stat`
 * of xnu-11417 bsd/sys/stat.h or glibc, `fuse_file_info` of libfuse 3.14 or macFUSE libfuse2,
 * renamex_np and Darwin setxattr flag values). The ops run against a real overlay on a real
 * scratch dir, and the result is read back from the disk, not from spfs.
 *
 * On Linux this proves the macFUSE flavours' decoding; the native calls underneath are Linux's
 * (the macOS CI job runs the overlay suite on APFS for those).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importDir } from "../../../../core/store/importer.ts";
import { encodeLayer } from "../../../../core/store/objects.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { ROOT_INO, Vfs } from "../../../../core/fs/vfs.ts";
import { BlobOpener } from "../../../../core/fs/blobs.ts";
import { OverlayBackend } from "../../../../core/fs/overlay/backend.ts";
import { Router } from "../../../../core/fs/router.ts";
import { type MountRec, WorkerContext } from "../../../../core/service/worker/context.ts";
import { instrument } from "../../../../core/service/worker/instrument.ts";
import { OPS_TABLE } from "../../../../core/service/worker/ops/table.ts";
import { CTR, CTR_BYTES, LAT_BUCKETS } from "../../../../core/metrics.ts";
import { FUSE_ABIS, type FuseAbi, type FuseReplies, type OpName } from "../../../../ffi/fuse/abi.ts";
import { OPS_SLOTS } from "../../../../ffi/fuse/lowlevel.ts";
import { DARWIN_ST_FLAGS } from "../../../../ffi/fuse/writeargs.ts";
import type { StatLayout } from "../../../../ffi/stat.ts";
import { E } from "../../../../ffi/errno.ts";
import { libc, O_APPEND, O_RDWR, O_TRUNC, O_WRONLY } from "../../../../ffi/sys.ts";
import { getxattr } from "../../../../ffi/fsops.ts";
import { OffThreadCopies } from "../../../../core/service/worker/copies.ts";
import { copyForWorker } from "../../../../core/service/copier.ts";
import { OFF_THREAD_COPY_MIN } from "../../../../core/fs/overlay/backend.ts";
import { packLoose } from "../../../support/packs.ts";

const enc = new TextEncoder(), dec = new TextDecoder();
/** A lower file just big enough to be copied up off the FUSE thread, with a byte pattern. */
const BIG = new Uint8Array(OFF_THREAD_COPY_MIN).map((_, i) => (i * 7) % 251);
const z = (s: string) => enc.encode(s + "\0");
const ptr = (b: Uint8Array) => Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>);

/** A `struct stat` for setattr at the header offsets of `layout` (only what setattr reads). */
function statFixture(
  layout: StatLayout,
  s: {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    atime: [number, number];
    mtime: [number, number];
  },
  stFlags = 0,
): Uint8Array {
  const b = new Uint8Array(144), v = new DataView(b.buffer);
  const time = (o: number, [sec, ns]: [number, number]) => {
    v.setBigInt64(o, BigInt(sec), true);
    v.setBigInt64(o + 8, BigInt(ns), true);
  };
  if (layout === "darwin") {
    // __DARWIN_STRUCT_STAT64: dev i32@0 mode u16@4 nlink u16@6 ino@8 uid@16 gid@20 rdev@24
    // atimespec@32 mtimespec@48 ctimespec@64 birthtimespec@80 size@96 blocks@104 blksize@112 flags@116
    v.setUint16(4, s.mode, true);
    v.setUint32(16, s.uid, true);
    v.setUint32(20, s.gid, true);
    time(32, s.atime);
    time(48, s.mtime);
    v.setBigInt64(96, BigInt(s.size), true);
    v.setUint32(DARWIN_ST_FLAGS, stFlags, true);
  } else if (layout === "linux-x86_64") {
    // glibc x86_64: dev@0 ino@8 nlink@16 mode u32@24 uid@28 gid@32 rdev@40 size@48 atim@72 mtim@88
    v.setUint32(24, s.mode, true);
    v.setUint32(28, s.uid, true);
    v.setUint32(32, s.gid, true);
    v.setBigInt64(48, BigInt(s.size), true);
    time(72, s.atime);
    time(88, s.mtime);
  } else {
    // glibc aarch64 (asm-generic): mode u32@16 uid@24 gid@28 size@48 atim@72 mtim@88
    v.setUint32(16, s.mode, true);
    v.setUint32(24, s.uid, true);
    v.setUint32(28, s.gid, true);
    v.setBigInt64(48, BigInt(s.size), true);
    time(72, s.atime);
    time(88, s.mtime);
  }
  return b;
}

/** What the op replied: the reply function's name and its interesting argument. */
type Reply = { fn: string; arg?: unknown };

interface Harness extends AsyncDisposable {
  abi: FuseAbi;
  scratch: string;
  work: string;
  /** Every reply since the harness started, in order. */
  replies: Reply[];
  /** Copy-ups the worker posted to the main thread (messages.ts "copy"). */
  posted: { id: number; src: string; dst: string; size: number }[];
  copies: OffThreadCopies;
  /** Ino of the lower dir `d` (owned by the overlay after the lookup). */
  d: number;
  /** Calls op `op` through its native callback; returns what it replied. */
  call(op: OpName, ...args: unknown[]): Reply;
  /** A `fuse_file_info` of this flavour with `flags` (and `fh`). */
  fi(flags: number, fh?: number): Uint8Array;
  /** The fh an open/create wrote into `fi`. */
  fhOf(fi: Uint8Array): number;
  /** fds the worker opened for inodes (CTR.opens); an fd kept from a create is not counted. */
  opens(): number;
  /** A new file as this flavour's kernel makes one: MKNOD on Linux (see `create`), else CREATE. */
  newFile(name: string, mode: number, fi: Uint8Array): Reply;
}

const me = { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };

async function harness(abi: FuseAbi, opts: { packed?: boolean } = {}): Promise<Harness> {
  const tmp = await Deno.makeTempDir({ prefix: "spfs-wops-" });
  const src = join(tmp, "src");
  await Deno.mkdir(join(src, "d"), { recursive: true });
  await Deno.writeTextFile(join(src, "d", "lower.txt"), "lower\n");
  // copied up off the FUSE thread
  await Deno.writeFile(join(src, "d", "big.bin"), BIG);
  await Deno.writeFile(join(src, "d", "big2.bin"), BIG);
  const store = ObjectStore.open(join(tmp, "store"));
  const { manifest } = await importDir(src, store);
  const layer = store.putBytes(encodeLayer(manifest));
  if (opts.packed) await packLoose(store, [layer]);
  const vfs = new Vfs(store, me.uid, me.gid);
  const scratch = join(tmp, "scratch"), work = join(tmp, "work");
  await Deno.mkdir(scratch);
  await Deno.mkdir(work);
  const blobs = new BlobOpener(vfs.objectsDir, () => {}, () => {}, (dg, r) => vfs.packedBlob(dg, r));
  const backend = new OverlayBackend({
    id: "w",
    scratch,
    work,
    vfs,
    layers: [layer],
    rootSources: vfs.view([layer]).rootSources,
    reflink: false,
    blobs,
  });
  const d = backend.lookup(ROOT_INO, "d");
  if (typeof d === "number") throw new Error(`lookup d: ${d}`);

  let last: Reply = { fn: "none" };
  const replies: Reply[] = [];
  const ctxBuf = new Uint8Array(16), ctxView = new DataView(ctxBuf.buffer);
  ctxView.setUint32(abi.ctx.uid, me.uid, true);
  ctxView.setUint32(abi.ctx.gid, me.gid, true);
  const S = new Proxy({}, {
    get: (_t, fn: string) => (...a: unknown[]) => {
      if (fn === "fuse_req_ctx") return ptr(ctxBuf);
      if (fn === "fuse_reply_entry" || fn === "fuse_reply_create") {
        last = { fn, arg: Number(new DataView((a[1] as Uint8Array).buffer).getBigUint64(0, true)) };
      } else if (fn === "fuse_reply_buf") {
        last = { fn, arg: dec.decode((a[1] as Uint8Array).subarray(0, Number(a[2]))) };
      } else last = { fn, arg: a[1] };
      replies.push(last);
      return 0;
    },
  }) as FuseReplies;
  const router = new Router<MountRec>({ info: () => null, tgid: () => null });
  const posted: Harness["posted"] = [];
  const copies = new OffThreadCopies((m) => posted.push(m));
  const counters = new Int32Array(new SharedArrayBuffer(CTR_BYTES));
  const ctx = new WorkerContext(
    S,
    abi,
    vfs,
    router,
    blobs,
    counters,
    () => {},
    (_op, e) => {
      throw e;
    },
    copies,
  );
  const latency = new Int32Array(4 * LAT_BUCKETS * OPS_SLOTS);
  const callbacks = new Map<OpName, Deno.UnsafeCallback>();
  const req = ptr(new Uint8Array(8));

  return {
    abi,
    scratch,
    work,
    replies,
    posted,
    copies,
    d: d.ino,
    opens: () => counters[CTR.opens],
    newFile(this: Harness, name: string, mode: number, fi: Uint8Array) {
      return abi.noOpen
        ? this.call("mknod", d.ino, z(name), mode, 0)
        : this.call("create", d.ino, z(name), mode, fi);
    },
    call(op, ...args) {
      const sig = abi.signature[op];
      if (!sig) throw new Error(`${abi.flavour} has no ${op}`);
      let cb = callbacks.get(op);
      if (!cb) {
        cb = instrument(ctx, abi, op, OPS_TABLE[op] as never, latency, 1e9);
        callbacks.set(op, cb);
      }
      assert.equal(args.length + 1, sig.length, `${abi.flavour} ${op} takes ${sig.length} arguments`);
      const native = args.map((a, i) => {
        const t = sig[i + 1];
        if (a instanceof Uint8Array) return ptr(a);
        return t === "u64" || t === "i64" || t === "usize" ? BigInt(a as number) : a;
      });
      last = { fn: "none" };
      const def = { parameters: sig as Deno.NativeType[], result: "void" } as const;
      const fn = new Deno.UnsafeFnPointer(cb.pointer as Deno.PointerObject<typeof def>, def);
      (fn.call as (...a: unknown[]) => void)(req, ...native);
      return last;
    },
    fi(flags, fh = 0) {
      const b = new Uint8Array(abi.fi.size), v = new DataView(b.buffer);
      v.setInt32(abi.fi.flags, flags, true);
      v.setBigUint64(abi.fi.fh, BigInt(fh), true);
      return b;
    },
    fhOf: (fi) => Number(new DataView(fi.buffer).getBigUint64(abi.fi.fh, true)),
    async [Symbol.asyncDispose]() {
      for (const cb of callbacks.values()) cb.close();
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

const ok = { fn: "fuse_reply_err", arg: 0 };
/** Fields of a setattr fixture whose `to_set` reads only size or flags. */
const BASE = {
  mode: 0o100600,
  uid: 0,
  gid: 0,
  atime: [0, 0] as [number, number],
  mtime: [0, 0] as [number, number],
};
const BIT31 = (2 ** 31) | 0; // to_set is a C int: FUSE_SET_ATTR_FLAGS is its sign bit
const err = (e: number) => ({ fn: "fuse_reply_err", arg: e });

/** Per flavour: the raw flag values its kernel side sends. */
const RAW = {
  linux3: { noreplace: 1, exchange: 2, badRename: 4, create: 1, replace: 2 },
  macfuse3: { noreplace: 0x4, exchange: 0x2, badRename: 0x1, create: 0x2, replace: 0x4 },
  macfuse2: { noreplace: 0x4, exchange: 0x2, badRename: 0x1, create: 0x2, replace: 0x4 },
} as const;

for (const abi of Object.values(FUSE_ABIS)) {
  const raw = RAW[abi.flavour];
  /** rename with flags: libfuse 3 `rename`, or macFUSE libfuse2's `renamex`. */
  const renameArgs = (h: Harness, from: string, to: string, flags: number): [OpName, ...unknown[]] =>
    abi.flavour === "macfuse2" && flags !== 0
      ? ["renamex", BigInt(h.d), z(from), BigInt(h.d), z(to), flags]
      : abi.flavour === "macfuse2"
      ? ["rename", BigInt(h.d), z(from), BigInt(h.d), z(to)]
      : ["rename", BigInt(h.d), z(from), BigInt(h.d), z(to), flags];
  const xattrTail = abi.flavour === "macfuse2" ? [0] : [];

  Deno.test(`${abi.flavour} write path: create, write, fsync, setattr, read back from the disk`, async () => {
    await using h = await harness(abi);
    const file = join(h.scratch, "d", "new.txt");
    const fi = h.fi(O_WRONLY);
    let created = h.call("create", h.d, z("new.txt"), 0o100640, fi);
    if (abi.noOpen) {
      // Linux: CREATE answers ENOSYS once; the kernel then makes new files with MKNOD and sends no
      // RELEASE for them
      assert.deepEqual(created, err(E.ENOSYS));
      created = h.call("mknod", h.d, z("new.txt"), 0o100640, 0);
      assert.equal(created.fn, "fuse_reply_entry");
    } else {
      assert.equal(created.fn, "fuse_reply_create");
      assert.equal(h.fhOf(fi), 0, "I/O goes by inode (worker/files.ts), not by handle");
    }
    const ino = created.arg as number;
    const data = enc.encode("hello world");
    const opens = h.opens();
    assert.deepEqual(h.call("write", ino, data, data.length, 0, fi), { fn: "fuse_reply_write", arg: 11n });
    assert.equal(h.opens(), opens, "the write went through the fd kept from the create, as on a local disk");
    assert.deepEqual(h.call("fsync", ino, 1, fi), ok);
    assert.deepEqual(h.call("fsync", ino, 0, fi), ok);
    assert.equal(h.call("release", ino, fi).arg, 0);
    assert.equal(Deno.readTextFileSync(file), "hello world");
    assert.equal(Deno.lstatSync(file).mode! & 0o7777, 0o640);

    // chmod + truncate + utimensat in one setattr: MODE | SIZE | ATIME | MTIME
    const stat = statFixture(abi.statLayout, {
      mode: 0o100600,
      uid: 0,
      gid: 0,
      size: 5,
      atime: [1_600_000_000, 5],
      mtime: [1_700_000_000, 123_456_789],
    });
    const r = h.call("setattr", ino, stat, 1 | 8 | 0x10 | 0x20, null);
    assert.equal(r.fn, "fuse_reply_attr");
    const st = Deno.lstatSync(file);
    assert.equal(st.mode! & 0o7777, 0o600);
    assert.equal(st.size, 5);
    assert.equal(Deno.readTextFileSync(file), "hello");
    assert.equal(st.mtime!.getTime(), 1_700_000_000_123);
    assert.equal(st.atime!.getTime(), 1_600_000_000_000);

    // bits this flavour does not have are refused, never answered with a silent success
    if (abi.flavour === "linux3") {
      assert.deepEqual(h.call("setattr", ino, stat, BIT31, null), err(E.EINVAL));
    } else {
      // chflags(2): flags 0 is a no-op; UF_HIDDEN (0x8000) cannot be kept
      assert.equal(h.call("setattr", ino, stat, BIT31, null).fn, "fuse_reply_attr");
      const hidden = statFixture(abi.statLayout, { ...BASE, size: 5 }, 0x8000);
      assert.deepEqual(h.call("setattr", ino, hidden, BIT31, null), err(E.ENOTSUP));
      // creation/backup times are accepted and dropped
      assert.equal(h.call("setattr", ino, stat, 1 << 30, null).fn, "fuse_reply_attr");
      assert.equal(Deno.lstatSync(file).size, 5);
    }
    // a truncate through the inode's fd, whatever `fi` the kernel passes
    const two = statFixture(abi.statLayout, { ...BASE, size: 2 });
    assert.equal(h.call("setattr", ino, two, 8, h.fi(O_RDWR)).fn, "fuse_reply_attr");
    assert.equal(Deno.readTextFileSync(file), "he");
    // an open: Linux answers ENOSYS once and is sent none again; macOS opens get fh 0
    const ofi = h.fi(O_RDWR, 77);
    if (abi.noOpen) assert.deepEqual(h.call("open", ino, ofi), err(E.ENOSYS));
    else {
      const o = h.call("open", ino, ofi);
      assert.equal(o.fn, "fuse_reply_open");
      assert.equal(new Deno.UnsafePointerView(o.arg as Deno.PointerObject).getBigUint64(abi.fi.fh), 0n);
    }
  });

  Deno.test(`${abi.flavour} write path: mkdir, mknod, symlink, link, unlink, rmdir`, async () => {
    await using h = await harness(abi);
    const at = (p: string) => join(h.scratch, "d", p);
    assert.equal(h.call("mkdir", h.d, z("sub"), 0o750).fn, "fuse_reply_entry");
    assert.ok(Deno.lstatSync(at("sub")).isDirectory);
    assert.equal(h.call("mknod", h.d, z("fifo"), 0o010644, 0).fn, "fuse_reply_entry");
    assert.ok(Deno.lstatSync(at("fifo")).isFifo);
    assert.equal(h.call("symlink", z("lower.txt"), h.d, z("ln")).fn, "fuse_reply_entry");
    assert.equal(Deno.readLinkSync(at("ln")), "lower.txt");
    const afi = h.fi(O_WRONLY);
    const f = h.newFile("a", 0o100644, afi);
    h.call("release", 0, afi);
    assert.equal(h.call("link", f.arg as number, h.d, z("b")).fn, "fuse_reply_entry");
    assert.equal(Deno.lstatSync(at("a")).nlink, 2);
    assert.deepEqual(h.call("unlink", h.d, z("b")), ok);
    assert.equal(Deno.lstatSync(at("a")).nlink, 1);
    assert.deepEqual(h.call("rmdir", h.d, z("sub")), ok);
    assert.throws(() => Deno.lstatSync(at("sub")), Deno.errors.NotFound);
    // the lower file: unlinked through a whiteout, so it is gone from the merged view
    assert.deepEqual(h.call("unlink", h.d, z("lower.txt")), ok);
    assert.deepEqual(h.call("unlink", h.d, z("lower.txt")), err(E.ENOENT));
  });

  Deno.test(`${abi.flavour} write path: rename, no-replace and exchange with this flavour's flags`, async () => {
    await using h = await harness(abi);
    const at = (p: string) => join(h.scratch, "d", p);
    for (const [name, text] of [["x", "ex"], ["y", "why"]]) {
      const fi = h.fi(O_WRONLY);
      const ino = h.newFile(name, 0o100644, fi).arg as number;
      const b = enc.encode(text);
      assert.equal(h.call("write", ino, b, b.length, 0, fi).fn, "fuse_reply_write");
      h.call("release", ino, fi);
    }
    const rn = (from: string, to: string, flags: number) => h.call(...renameArgs(h, from, to, flags));
    assert.deepEqual(rn("x", "x2", 0), ok);
    assert.equal(Deno.readTextFileSync(at("x2")), "ex");
    assert.deepEqual(rn("x2", "y", raw.noreplace), err(E.EEXIST));
    assert.equal(Deno.readTextFileSync(at("y")), "why");
    assert.deepEqual(rn("x2", "y", raw.exchange), ok);
    assert.equal(Deno.readTextFileSync(at("y")), "ex");
    assert.equal(Deno.readTextFileSync(at("x2")), "why");
    assert.deepEqual(rn("x2", "fresh", raw.noreplace), ok);
    assert.equal(Deno.readTextFileSync(at("fresh")), "why");
    // a flag this flavour does not define (Darwin RENAME_SECLUDE; Linux RENAME_WHITEOUT)
    assert.deepEqual(rn("fresh", "other", raw.badRename), err(E.EINVAL));
    assert.ok(Deno.lstatSync(at("fresh")).isFile);
    // a lower file renamed: copied up, the lower name hidden
    assert.deepEqual(rn("lower.txt", "moved.txt", 0), ok);
    assert.equal(Deno.readTextFileSync(at("moved.txt")), "lower\n");
  });

  Deno.test(`${abi.flavour} write path: setxattr create/replace, getxattr, removexattr`, async () => {
    await using h = await harness(abi);
    const ffi = h.fi(O_WRONLY);
    const f = h.newFile("f", 0o100644, ffi);
    h.call("release", 0, ffi);
    const ino = f.arg as number;
    const set = (name: string, value: string, flags: number) => {
      const v = enc.encode(value);
      return h.call("setxattr", ino, z(name), v, v.length, flags, ...xattrTail);
    };
    const get = (name: string, size: number) => h.call("getxattr", ino, z(name), size, ...xattrTail);
    assert.deepEqual(set("user.k", "v1", raw.create), ok);
    assert.deepEqual(set("user.k", "v2", raw.create), err(E.EEXIST));
    assert.deepEqual(set("user.none", "v", raw.replace), err(E.ENOATTR));
    assert.deepEqual(set("user.k", "v2", raw.replace), ok);
    assert.deepEqual(get("user.k", 0), { fn: "fuse_reply_xattr", arg: 2n });
    assert.deepEqual(get("user.k", 64), { fn: "fuse_reply_buf", arg: "v2" });
    assert.deepEqual(get("user.k", 1), err(E.ERANGE));
    // the value is on the scratch file itself
    const disk = new Uint8Array(8);
    const n = getxattr(join(h.scratch, "d", "f"), "user.k", disk);
    assert.equal(dec.decode(disk.subarray(0, n)), "v2");
    assert.deepEqual(h.call("removexattr", ino, z("user.k")), ok);
    assert.deepEqual(get("user.k", 0), err(E.ENOATTR));
    if (abi.flavour === "macfuse2" && Deno.build.os === "linux") {
      // a resource-fork position reaches the host call (which on Linux has none: EINVAL)
      const v = enc.encode("v");
      assert.deepEqual(h.call("setxattr", ino, z("user.k"), v, 1, 0, 4), err(E.EINVAL));
    }
  });
}

for (const abi of Object.values(FUSE_ABIS)) {
  /**
   * What makes the worker open a lower file for writing: on Linux the first WRITE (no OPEN comes),
   * on macOS the write-open. Returns the reply it got at once ("none" while a copy-up runs).
   */
  const startWrite = (h: Harness, ino: number, data: Uint8Array, off: number): Reply =>
    abi.noOpen
      ? h.call("write", ino, data, data.length, off, h.fi(O_WRONLY | O_APPEND))
      : h.call("open", ino, h.fi(O_WRONLY | O_APPEND));

  Deno.test(`${abi.flavour} write: a big copy-up runs off the FUSE thread, other requests go on`, async () => {
    await using h = await harness(abi);
    const ino = h.call("lookup", h.d, z("big.bin")).arg as number;
    const tail = enc.encode("tail"), more = enc.encode("more");
    // no reply yet: the copy is posted, and the worker serves on
    assert.equal(startWrite(h, ino, tail, BIG.length).fn, "none");
    assert.equal(h.posted.length, 1);
    const job = h.posted[0];
    assert.equal(job.size, BIG.length);
    assert.ok(job.dst.startsWith(h.work + "/"), job.dst);
    assert.equal(h.call("getattr", h.d, null).fn, "fuse_reply_attr");
    assert.equal(h.call("lookup", h.d, z("lower.txt")).fn, "fuse_reply_entry");
    // a read meanwhile is served from the lower blob at once (same bytes)
    const r = h.call("read", ino, 4096, 0, h.fi(0));
    assert.equal(r.fn, "fuse_reply_data");
    // a second write of the same inode waits for the same copy, not a copy of its own; its bytes
    // are kept (libfuse reuses its buffer for the next request)
    assert.equal(h.call("write", ino, more, more.length, BIG.length + 4, h.fi(O_WRONLY)).fn, "none");
    more.fill(0);
    assert.equal(h.posted.length, 1);
    assert.throws(() => Deno.lstatSync(join(h.scratch, "d", "big.bin")), Deno.errors.NotFound);

    // the main thread copies; the copy is published and both wait-ers reply
    const c = await copyForWorker(job.src, job.dst);
    assert.equal(c.errno, 0);
    const before = h.replies.length;
    h.copies.done(job.id, c.errno, c.how);
    const late = h.replies.slice(before);
    if (abi.noOpen) {
      assert.deepEqual(late, [{ fn: "fuse_reply_write", arg: 4n }, { fn: "fuse_reply_write", arg: 4n }]);
    } else {
      assert.deepEqual(late.map((o) => o.fn), ["fuse_reply_open", "fuse_reply_write"]);
      const fh = Number(
        new Deno.UnsafePointerView(late[0].arg as Deno.PointerObject).getBigUint64(abi.fi.fh),
      );
      assert.equal(fh, 0, "I/O goes by inode");
      assert.deepEqual(h.call("write", ino, tail, tail.length, BIG.length, h.fi(O_WRONLY)), {
        fn: "fuse_reply_write",
        arg: 4n,
      });
    }
    assert.equal(h.copies.size, 0);
    const onDisk = Deno.readFileSync(join(h.scratch, "d", "big.bin"));
    assert.deepEqual(onDisk.subarray(0, BIG.length), BIG);
    assert.equal(dec.decode(onDisk.subarray(BIG.length)), "tailmore");
    assert.equal(Deno.lstatSync(join(h.scratch, "d", "big.bin")).mode! & 0o777, 0o644);
    assert.deepEqual([...Deno.readDirSync(h.work)], [], "no temp file left in work/");
  });

  Deno.test(`${abi.flavour} write: a failed or overtaken off-thread copy leaves nothing behind`, async () => {
    await using h = await harness(abi);
    const ino = h.call("lookup", h.d, z("big.bin")).arg as number;
    const x = enc.encode("x");
    // the copy fails (a full disk): the writer gets its errno, and the file stays lower
    assert.equal(startWrite(h, ino, x, 0).fn, "none");
    let job = h.posted.at(-1)!;
    Deno.writeFileSync(job.dst, BIG.subarray(0, 10)); // a partial copy
    h.copies.done(job.id, E.ENOSPC, "copy");
    assert.deepEqual(h.replies.at(-1), err(E.ENOSPC));
    assert.deepEqual([...Deno.readDirSync(h.work)], []);
    assert.throws(() => Deno.lstatSync(join(h.scratch, "d", "big.bin")), Deno.errors.NotFound);

    // the name is unlinked while its copy runs: the copy is dropped, not resurrected in scratch;
    // the write lands in an unnamed copy, as a write through an fd of an unlinked file does
    assert.equal(startWrite(h, ino, x, 0).fn, "none");
    job = h.posted.at(-1)!;
    assert.deepEqual(h.call("unlink", h.d, z("big.bin")), ok);
    const r = await copyForWorker(job.src, job.dst);
    h.copies.done(job.id, r.errno, r.how);
    assert.equal(h.replies.at(-1)!.fn, abi.noOpen ? "fuse_reply_write" : "fuse_reply_open");
    assert.deepEqual([...Deno.readDirSync(h.work)], []);
    assert.throws(() => Deno.lstatSync(join(h.scratch, "d", "big.bin")), Deno.errors.NotFound);

    // a truncate copies no bytes: nothing is posted, and scratch gets an empty file. Linux sends an
    // O_TRUNC open as a setattr of size 0 (init turns atomic O_TRUNC off); macOS as the open
    const n0 = h.posted.length;
    const ino2 = h.call("lookup", h.d, z("big2.bin")).arg as number;
    if (abi.noOpen) {
      const zero = statFixture(abi.statLayout, { ...BASE, size: 0 });
      assert.equal(h.call("setattr", ino2, zero, 8, null).fn, "fuse_reply_attr");
    } else assert.equal(h.call("open", ino2, h.fi(O_WRONLY | O_TRUNC)).fn, "fuse_reply_open");
    assert.equal(h.posted.length, n0);
    assert.equal(Deno.lstatSync(join(h.scratch, "d", "big2.bin")).size, 0);
  });
}

Deno.test("read of a packed blob: the kernel is sent its range of the pack, cut at the blob's end", async () => {
  await using h = await harness(FUSE_ABIS.linux3, { packed: true });
  const ino = h.call("lookup", h.d, z("lower.txt")).arg as number;
  const fi = h.fi(0);
  /** The fd-backed fuse_bufvec a read replied with: [fd, size, pos] (lowlevel.ts encodeFdBufvec). */
  const sent = (size: number, off: number) => {
    const r = h.call("read", ino, size, off, fi);
    assert.equal(r.fn, "fuse_reply_data");
    const v = new DataView((r.arg as Uint8Array).buffer);
    return [v.getInt32(48, true), Number(v.getBigUint64(24, true)), Number(v.getBigInt64(56, true))];
  };
  const [fh, size, base] = sent(4096, 0);
  assert.equal(size, 6, `"lower\\n" only, not the next entry of the pack`);
  assert.ok(base >= 512, "past the entry's tar header");
  const got = new Uint8Array(6);
  libc().pread(fh, got, 6n, BigInt(base));
  assert.equal(dec.decode(got), "lower\n");
  assert.deepEqual(sent(4096, 4), [fh, 2, base + 4]);
  assert.deepEqual(sent(10, 6), [fh, 0, base + 6], "at the end: nothing");
  assert.deepEqual(sent(10, 100), [fh, 0, base + 100], "past the end: nothing");
  assert.deepEqual(h.call("release", ino, fi), ok);
});
