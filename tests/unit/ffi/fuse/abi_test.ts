/**
 * The per-flavour FUSE ABIs the worker serves through (ffi/fuse/abi.ts), and the other platform
 * tables chosen once at load: errno values, open(2) flags, Darwin statvfs and kevent. Fixtures are
 * written at the header offsets (xnu-11417 bsd/sys/{errno,fcntl,statvfs,event}.h; libfuse 3.14 /
 * 3.17.4 and macFUSE 4.x headers; reference/ffi-abi.md §6–7). Linux serving through the same
 * abstraction is exercised for real by every FUSE test.
 */
import assert from "node:assert/strict";
import { MessageChannel } from "node:worker_threads";
import { join } from "node:path";
import { DARWIN_ERRNOS, E, LINUX_ERRNOS } from "../../../../ffi/errno.ts";
import { O_CLOEXEC, O_TRUNC } from "../../../../ffi/sys.ts";
import { LINUX_O_FLAGS } from "../../../../ffi/linux/libc.ts";
import {
  DARWIN_O_FLAGS,
  DARWIN_STATVFS_SIZE,
  decodeKevent,
  encodeKevent,
  encodeStatvfsDarwin,
  KEVENT_SIZE,
  KQ,
  libSystemSymbols,
} from "../../../../ffi/darwin/libsystem.ts";
import { encodeLibfuseVersion, flavourOf, FUSE_ABIS, type FuseReplies } from "../../../../ffi/fuse/abi.ts";
import { MAC_FUSE_LIBS } from "../../../../ffi/fuse/macfuse.ts";
import { buildServer } from "../../../../core/service/worker/main.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { CTR_BYTES, LAT_BUCKETS } from "../../../../core/metrics.ts";
import { invalEntryNotice, invalInodeNotice, OPS_SLOTS } from "../../../../ffi/fuse/lowlevel.ts";
import {
  DARWIN_RENAME,
  DARWIN_ST_FLAGS,
  decodeSetattr,
  renameFlagsDarwin,
  renameFlagsLinux,
  SETATTR_BITS,
  xattrFlagsDarwin,
  xattrFlagsLinux,
} from "../../../../ffi/fuse/writeargs.ts";
import { darwinXattrFlags } from "../../../../ffi/fsops.ts";

Deno.test("errno tables: Darwin differs where bsd/sys/errno.h does; the host table is Linux here", () => {
  assert.deepEqual(
    { ...DARWIN_ERRNOS },
    {
      ...LINUX_ERRNOS,
      EAGAIN: 35,
      ENAMETOOLONG: 63,
      ELOOP: 62,
      ENOSYS: 78,
      ENOTEMPTY: 66,
      ENOATTR: 93,
      ENOTSUP: 45,
      EDQUOT: 69,
      EILSEQ: 92,
    },
  );
  assert.equal(LINUX_ERRNOS.ENOTEMPTY, 39);
  assert.equal(LINUX_ERRNOS.ENAMETOOLONG, 36);
  assert.equal(LINUX_ERRNOS.ENOATTR, 61); // ENODATA
  assert.equal(LINUX_ERRNOS.ENOTSUP, 95);
  assert.equal(LINUX_ERRNOS.EDQUOT, 122);
  assert.equal(LINUX_ERRNOS.EILSEQ, 84);
  assert.equal(LINUX_ERRNOS.ELOOP, 40);
  assert.deepEqual([LINUX_ERRNOS.ENXIO, DARWIN_ERRNOS.ENXIO], [6, 6]);
  if (Deno.build.os === "linux") assert.deepEqual({ ...E }, LINUX_ERRNOS);
});

Deno.test("open(2) flags: Darwin bsd/sys/fcntl.h values; the host's are Linux here", () => {
  assert.deepEqual(DARWIN_O_FLAGS, {
    O_RDONLY: 0,
    O_WRONLY: 1,
    O_RDWR: 2,
    O_ACCMODE: 3,
    O_CREAT: 0x200,
    O_EXCL: 0x800,
    O_NOCTTY: 0x20000,
    O_TRUNC: 0x400,
    O_APPEND: 0x8,
    O_NOATIME: 0,
    O_CLOEXEC: 0x1000000,
    O_NOFOLLOW: 0x100,
    O_NONBLOCK: 0x4,
    O_DIRECTORY: 0x100000,
    O_PATH: 0,
  });
  assert.equal(LINUX_O_FLAGS.O_CLOEXEC, 0o2000000);
  if (Deno.build.os === "linux") {
    assert.equal(O_CLOEXEC, 0o2000000);
    assert.equal(O_TRUNC, 0o1000);
  }
});

Deno.test("Darwin statvfs: 64 bytes, u32 counts at 16…36, ulong flag@48 namemax@56; big volumes scale frsize", () => {
  const b = encodeStatvfsDarwin({
    bsize: 4096,
    blocks: 1000,
    bfree: 600,
    bavail: 500,
    files: 70,
    ffree: 30,
    namemax: 255,
    readonly: true,
  });
  const want = new Uint8Array(DARWIN_STATVFS_SIZE), v = new DataView(want.buffer);
  v.setBigUint64(0, 4096n, true);
  v.setBigUint64(8, 4096n, true);
  v.setUint32(16, 1000, true);
  v.setUint32(20, 600, true);
  v.setUint32(24, 500, true);
  v.setUint32(28, 70, true);
  v.setUint32(32, 30, true);
  v.setUint32(36, 30, true);
  v.setBigUint64(48, 1n, true);
  v.setBigUint64(56, 255n, true);
  assert.deepEqual(b, want);

  const big = new DataView(
    encodeStatvfsDarwin({
      bsize: 4096,
      blocks: 3 * 2 ** 32,
      bfree: 2 ** 32,
      bavail: 2 ** 32,
      files: 1,
      ffree: 1,
      namemax: 255,
      readonly: false,
    }).buffer,
  );
  const frsize = Number(big.getBigUint64(8, true));
  assert.equal(frsize, 4096 * 4);
  // total bytes are kept to within one fragment
  assert.ok(Math.abs(big.getUint32(16, true) * frsize - 3 * 2 ** 32 * 4096) <= frsize);
  assert.equal(big.getBigUint64(48, true), 0n);
});

Deno.test("struct kevent: 32 bytes, ident@0 filter@8 flags@10 fflags@12 data@16 udata@24", () => {
  const b = new Uint8Array(KEVENT_SIZE), v = new DataView(b.buffer);
  encodeKevent(v, 0, {
    ident: 4242,
    filter: KQ.EVFILT_PROC,
    flags: KQ.EV_ADD | KQ.EV_ONESHOT,
    fflags: KQ.NOTE_EXIT,
    data: -1n,
    udata: 7n,
  });
  const want = new Uint8Array(KEVENT_SIZE), w = new DataView(want.buffer);
  w.setBigUint64(0, 4242n, true);
  w.setUint16(8, 0xfffb, true); // EVFILT_PROC (-5)
  w.setUint16(10, 0x11, true);
  w.setUint32(12, 0x80000000, true);
  w.setBigUint64(16, 0xffff_ffff_ffff_ffffn, true);
  w.setBigUint64(24, 7n, true);
  assert.deepEqual(b, want);
  assert.deepEqual(decodeKevent(w, 0), {
    ident: 4242,
    filter: -5,
    flags: 0x11,
    fflags: 0x80000000,
    data: -1n,
    udata: 7n,
  });
  assert.equal(KQ.EVFILT_USER, -10);
  assert.equal(KQ.NOTE_TRIGGER, 0x01000000);
  // the blocking wait is the same symbol, run off-thread
  const syms = libSystemSymbols("aarch64");
  assert.equal(syms.kevent_wait.name, "kevent");
  assert.equal(syms.kevent_wait.nonblocking, true);
  assert.equal(libSystemSymbols("x86_64").fstat.name, "fstat$INODE64");
  assert.deepEqual(syms.open.parameters, ["buffer", "i32"]); // fixed args only: never O_CREAT
});

Deno.test("libfuse_version for fuse_session_new_versioned: {3, 17, 4, darwin bit 0} as 4 LE u32", () => {
  assert.deepEqual([...encodeLibfuseVersion(3, 17, 4)], [3, 0, 0, 0, 17, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(encodeLibfuseVersion(3, 17, 4, true)[12], 1);
});

Deno.test("FUSE flavour from the library that loaded", () => {
  assert.equal(flavourOf("libfuse3.so.3", "linux"), "linux3");
  assert.equal(flavourOf(MAC_FUSE_LIBS.macfuse3, "darwin"), "macfuse3");
  assert.equal(flavourOf(MAC_FUSE_LIBS.macfuse2, "darwin"), "macfuse2");
  assert.equal(flavourOf("/opt/homebrew/lib/libfuse.2.dylib", "darwin"), "macfuse2");
});

Deno.test("FUSE ABIs: table sizes, slots, file-info offsets, Darwin callback types, mount options", () => {
  const { linux3, macfuse3, macfuse2 } = FUSE_ABIS;
  assert.deepEqual([linux3.slots * 8, macfuse3.slots * 8, macfuse2.slots * 8], [352, 376, 392]);
  for (const abi of [linux3, macfuse3, macfuse2]) {
    const at = (op: keyof typeof abi.slot) => (abi.slot[op] ?? -1) * 8;
    // slots 0–40 agree in every flavour (libfuse 2.9.9 order)
    assert.equal(at("lookup"), 16, abi.flavour);
    assert.equal(at("read"), 120, abi.flavour);
    assert.equal(at("readdir"), 168, abi.flavour);
    assert.equal(at("setxattr"), 200, abi.flavour);
    assert.equal(at("getxattr"), 208, abi.flavour);
    assert.equal(at("create"), 240, abi.flavour);
    assert.equal(at("forget_multi"), 304, abi.flavour);
    assert.equal(at("fallocate"), 320, abi.flavour);
    assert.deepEqual(abi.ctx, { ...abi.ctx, uid: 0, gid: 4, pid: 8 });
  }
  // fuse_file_info: 3.x flags@0 bits@4 fh@16 (keep_cache bit 2); macFUSE libfuse2 fh@24 bits@20 (bit 1)
  assert.deepEqual([macfuse3.fi.fh, macfuse3.fi.bits, macfuse3.fiBits.keep_cache], [16, 4, 0x4]);
  assert.deepEqual([macfuse2.fi.fh, macfuse2.fi.bits, macfuse2.fiBits.keep_cache], [24, 20, 0x2]);
  assert.equal(macfuse2.fiBits.cache_readdir, 0); // libfuse 2.9 has no cache_readdir
  // Darwin: mode_t u16, dev_t i32; libfuse2 xattrs take a trailing u32 position; rename has no flags
  for (const abi of [macfuse3, macfuse2]) {
    assert.deepEqual(abi.signature.mkdir, ["pointer", "u64", "pointer", "u16"]);
    assert.deepEqual(abi.signature.mknod, ["pointer", "u64", "pointer", "u16", "i32"]);
    assert.deepEqual(abi.signature.create, ["pointer", "u64", "pointer", "u16", "pointer"]);
    assert.equal(abi.statLayout, "darwin");
    assert.doesNotMatch(abi.mountOptions, /subtype/);
    assert.match(abi.mountOptions, /volname=spfs/);
  }
  assert.deepEqual(macfuse2.signature.getxattr, ["pointer", "u64", "pointer", "usize", "u32"]);
  assert.deepEqual(macfuse2.signature.setxattr, [
    "pointer",
    "u64",
    "pointer",
    "pointer",
    "usize",
    "i32",
    "u32",
  ]);
  assert.deepEqual(macfuse2.signature.rename, ["pointer", "u64", "pointer", "u64", "pointer"]);
  assert.deepEqual(macfuse3.signature.getxattr, linux3.signature.getxattr); // vanilla mode
  assert.deepEqual(linux3.signature.mkdir, ["pointer", "u64", "pointer", "u32"]);
  assert.deepEqual([linux3.session, macfuse3.session, macfuse2.session], [
    "fuse3",
    "fuse3-versioned",
    "fuse2",
  ]);
  assert.equal(macfuse2.encodeStatvfs === encodeStatvfsDarwin, true);
});

Deno.test("the worker's ops table for each flavour: one callback per handler, at that flavour's slot only", () => {
  const root = Deno.makeTempDirSync({ prefix: "spfs-abi-" });
  const channel = new MessageChannel();
  try {
    ObjectStore.open(join(root, "store"));
    const noReply = new Proxy({}, { get: () => () => 0 }) as FuseReplies;
    for (const abi of Object.values(FUSE_ABIS)) {
      const server = buildServer(
        {
          storageRoot: join(root, "store"),
          mountpoint: join(root, "mnt"),
          libfuse: [],
          uid: 0,
          gid: 0,
          port: channel.port2,
          wakeFd: -1,
          mailboxSeq: new SharedArrayBuffer(4),
          allowOther: false,
          counters: new SharedArrayBuffer(CTR_BYTES),
          latency: new SharedArrayBuffer(4 * LAT_BUCKETS * OPS_SLOTS),
          slowUs: 1e9,
        },
        abi,
        noReply,
      );
      try {
        assert.equal(server.table.byteLength, abi.slots * 8, abi.flavour);
        const slots = new BigUint64Array(server.table.buffer);
        const filled = [...slots.keys()].filter((i) => slots[i] !== 0n);
        const expected = Object.values(abi.slot).sort((a, b) => a - b);
        assert.deepEqual(filled, expected, abi.flavour);
        assert.equal(server.callbacks.length, expected.length);
        if (abi.flavour === "macfuse2") {
          // of Apple's slots 41-48 only renamex (44) is set; setattr_x (48) stays empty
          assert.deepEqual(filled.filter((i) => i > 40), [44]);
        } else assert.equal(abi.slot.renamex, undefined);
      } finally {
        for (const cb of server.callbacks) cb.close();
      }
    }
  } finally {
    channel.port1.close();
    channel.port2.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("write-side flag values: FUSE_SET_ATTR_* per flavour, renamex_np and Darwin setxattr options", () => {
  // macFUSE 4.x fuse_lowlevel.h: CRTIME 28, CHGTIME 29, BKUPTIME 30, FLAGS 31; macFUSE 5: BTIME 28, BKUPTIME 30
  assert.equal(SETATTR_BITS.macfuse2.FLAGS, 0x80000000);
  assert.equal(SETATTR_BITS.macfuse2.IGNORED, 0x70000000);
  assert.equal(SETATTR_BITS.macfuse3.IGNORED, 0x50000000);
  assert.equal(SETATTR_BITS.linux3.FLAGS, 0);
  for (const b of Object.values(SETATTR_BITS)) {
    assert.deepEqual([b.MODE, b.UID, b.GID, b.SIZE, b.ATIME, b.MTIME, b.ATIME_NOW, b.MTIME_NOW], [
      1,
      2,
      4,
      8,
      0x10,
      0x20,
      0x80,
      0x100,
    ]);
  }
  // xnu bsd/sys/stdio.h, bsd/sys/xattr.h
  assert.deepEqual(DARWIN_RENAME, { SECLUDE: 1, SWAP: 2, EXCL: 4, NOFOLLOW_ANY: 0x10 });
  assert.equal(renameFlagsDarwin(DARWIN_RENAME.SWAP | DARWIN_RENAME.EXCL), "EINVAL");
  assert.equal(renameFlagsDarwin(DARWIN_RENAME.EXCL | DARWIN_RENAME.NOFOLLOW_ANY), 1);
  assert.equal(renameFlagsLinux(4), "EINVAL"); // RENAME_WHITEOUT
  assert.equal(xattrFlagsDarwin(0x1 | 0x2), 1); // NOFOLLOW | CREATE
  assert.equal(xattrFlagsDarwin(0x40), "EINVAL");
  assert.equal(xattrFlagsLinux(3), 3); // the kernel refuses both; the host call says EINVAL
  assert.equal(darwinXattrFlags(2), 0x1 | 0x4);
  // a Darwin stat with st_flags set asks for a chflags spfs cannot keep
  const st = new Uint8Array(144);
  new DataView(st.buffer).setUint32(DARWIN_ST_FLAGS, 0x8000, true);
  assert.equal(
    decodeSetattr(SETATTR_BITS.macfuse3, "darwin", new DataView(st.buffer), 0x80000000 | 0),
    "ENOTSUP",
  );
});

Deno.test("invalInodeNotice: fuse_out_header + fuse_notify_inval_inode_out as the kernel reads them", () => {
  // include/uapi/linux/fuse.h: out header {len u32, error i32, unique u64}; FUSE_NOTIFY_INVAL_INODE
  // is 2 and travels in `error` with unique 0; the body {ino u64, off i64, len i64}, len 0 = all pages
  const b = invalInodeNotice(0x0102030405);
  const v = new DataView(b.buffer);
  assert.equal(b.length, 40);
  assert.equal(v.getUint32(0, true), 40);
  assert.equal(v.getInt32(4, true), 2);
  assert.equal(v.getBigUint64(8, true), 0n);
  assert.equal(v.getBigUint64(16, true), 0x0102030405n);
  assert.equal(v.getBigInt64(24, true), 0n);
  assert.equal(v.getBigInt64(32, true), 0n);
  // attributes only: off -1 (fs/fuse/inode.c fuse_reverse_inval_inode drops pages when off >= 0)
  const a = new DataView(invalInodeNotice(7, true).buffer);
  assert.equal(a.getBigUint64(16, true), 7n);
  assert.equal(a.getBigInt64(24, true), -1n);
  assert.equal(a.getBigInt64(32, true), 0n);
});

Deno.test("invalEntryNotice: fuse_out_header + fuse_notify_inval_entry_out + the name and its NUL", () => {
  // include/uapi/linux/fuse.h: FUSE_NOTIFY_INVAL_ENTRY is 3; body {parent u64, namelen u32, flags
  // u32}; fs/fuse/dev.c fuse_notify_inval_entry copies namelen + 1 bytes of name after it
  const b = invalEntryNotice(1, new TextEncoder().encode("z1"));
  const v = new DataView(b.buffer);
  assert.equal(b.length, 16 + 16 + 2 + 1);
  assert.equal(v.getUint32(0, true), b.length);
  assert.equal(v.getInt32(4, true), 3);
  assert.equal(v.getBigUint64(8, true), 0n);
  assert.equal(v.getBigUint64(16, true), 1n);
  assert.equal(v.getUint32(24, true), 2);
  assert.equal(v.getUint32(28, true), 0);
  assert.deepEqual([...b.subarray(32)], [0x7a, 0x31, 0]);
});

Deno.test("noOpen: only Linux takes ENOSYS from OPEN as 'send no more'; init's want offset per flavour", () => {
  assert.equal(FUSE_ABIS.linux3.noOpen, true);
  assert.equal(FUSE_ABIS.macfuse3.noOpen, false);
  assert.equal(FUSE_ABIS.macfuse2.noOpen, false);
  // fuse_common.h 3.14 `struct fuse_conn_info`: want@24; macFUSE libfuse2 has `enable`@20 first
  assert.deepEqual([FUSE_ABIS.linux3.connWant, FUSE_ABIS.macfuse3.connWant, FUSE_ABIS.macfuse2.connWant], [
    24,
    24,
    28,
  ]);
});
