/**
 * Darwin and macFUSE struct codecs against byte fixtures written field by field at the header
 * offsets (xnu-11417.101.15, macFUSE 4.x libfuse2 and 5.x libfuse3.4 headers; reference/ffi-abi.md
 * §2, §3, §4, §6). arm64 and x86_64 share every layout; only symbol names differ.
 */
import assert from "node:assert/strict";
import {
  DARWIN_STATFS_SIZE,
  decodeDarwinStatfs,
  decodeProcBsdInfo,
  libSystemSymbols,
  PROC_BSDINFO_SIZE,
  PROC_PIDTBSDINFO,
} from "../../../../ffi/darwin/libsystem.ts";
import {
  chooseMacFuse,
  CONN_MAC2,
  CONN_MAC3,
  decodeConnInfoMac,
  decodeCtxMac,
  decodeFileInfoMac2,
  encodeFileInfoMac2,
  FI_MAC2,
  MAC_FUSE_LIBS,
  MACFUSE2_OPS,
  MACFUSE2_OPS_SIZE,
  MACFUSE2_XATTR_SIGNATURES,
  MACFUSE3_OPS,
  MACFUSE3_OPS_SIZE,
} from "../../../../ffi/fuse/macfuse.ts";
import { encodeEntryParam, entryParamLayout } from "../../../../ffi/fuse/lowlevel.ts";
import { type Attr, decodeStat, encodeStat, STAT_SIZE } from "../../../../ffi/stat.ts";

/** A zeroed buffer and a little-endian writer for fixtures. */
function fixture(size: number) {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  return {
    b,
    v,
    u16: (o: number, n: number) => v.setUint16(o, n, true),
    u32: (o: number, n: number) => v.setUint32(o, n, true),
    i32: (o: number, n: number) => v.setInt32(o, n, true),
    u64: (o: number, n: bigint) => v.setBigUint64(o, n, true),
    str: (o: number, s: string) => b.set(new TextEncoder().encode(s), o),
  };
}

for (const arch of ["arm64", "x86_64"] as const) {
  Deno.test(`darwin ${arch}: struct proc_bsdinfo (136 B) from a header-offset fixture`, () => {
    const f = fixture(136);
    f.u32(4, 2); // pbi_status SRUN
    f.u32(12, 4242); // pbi_pid
    f.u32(16, 4000); // pbi_ppid
    f.u32(20, 501); // pbi_uid
    f.str(48, "python3.12"); // pbi_comm char[16]
    f.str(64, "python3.12-long-name"); // pbi_name char[32]
    f.u64(120, 1700000000n); // pbi_start_tvsec
    f.u64(128, 123456n); // pbi_start_tvusec
    assert.equal(PROC_BSDINFO_SIZE, 136);
    assert.equal(PROC_PIDTBSDINFO, 3);
    assert.deepEqual(decodeProcBsdInfo(f.b), {
      status: 2,
      pid: 4242,
      ppid: 4000,
      uid: 501,
      comm: "python3.12",
      startUs: 1700000000_123456n,
    });
    assert.throws(() => decodeProcBsdInfo(new Uint8Array(64)), RangeError);
  });

  Deno.test(`darwin ${arch}: struct statfs (2168 B, 64-bit inode) with f_fstypename@72`, () => {
    const f = fixture(2168);
    f.u32(0, 4096); // f_bsize
    f.i32(4, 1048576); // f_iosize
    f.u64(8, 1000n); // f_blocks
    f.u64(16, 700n); // f_bfree
    f.u64(24, 600n); // f_bavail
    f.u64(32, 5000n); // f_files
    f.u64(40, 4200n); // f_ffree
    f.u32(60, 0x1a); // f_type: dynamic, never used
    f.u32(64, 0x1000 | 0x800000); // f_flags MNT_LOCAL|MNT_JOURNALED
    f.str(72, "apfs");
    f.str(88, "/Volumes/fast");
    f.str(1112, "/dev/disk4s1");
    assert.equal(DARWIN_STATFS_SIZE, 2168);
    assert.deepEqual(decodeDarwinStatfs(f.b), {
      bsize: 4096,
      blocks: 1000,
      bfree: 700,
      bavail: 600,
      files: 5000,
      ffree: 4200,
      flags: 0x801000,
      fstypename: "apfs",
      mntonname: "/Volumes/fast",
      mntfromname: "/dev/disk4s1",
    });
  });

  Deno.test(`darwin ${arch}: struct stat (144 B, mode_t u16) and fuse_entry_param (176 B)`, () => {
    const a: Attr = {
      ino: 0x0102030405,
      mode: 0o100644,
      nlink: 3,
      uid: 501,
      gid: 20,
      size: 987654321,
      blocks: 1929013,
      blksize: 4096,
      time: 1700000000,
    };
    const f = fixture(144);
    f.u16(4, 0o100644); // st_mode u16
    f.u16(6, 3); // st_nlink u16
    f.u64(8, 0x0102030405n); // st_ino
    f.u32(16, 501);
    f.u32(20, 20);
    for (const o of [32, 48, 64, 80]) f.u64(o, 1700000000n); // atime, mtime, ctime, birthtime tv_sec
    f.u64(96, 987654321n); // st_size
    f.u64(104, 1929013n); // st_blocks
    f.i32(112, 4096); // st_blksize
    const enc = new Uint8Array(STAT_SIZE.darwin);
    encodeStat("darwin", a, new DataView(enc.buffer));
    assert.deepEqual(enc, f.b, "encoder writes exactly the fixture");
    assert.equal(decodeStat("darwin", f.v).mode, 0o100644);
    assert.deepEqual(entryParamLayout("darwin"), { size: 176, attrTimeout: 160, entryTimeout: 168 });
    const e = new DataView(encodeEntryParam("darwin", a, 2, 0.5).buffer);
    assert.equal(e.getBigUint64(0, true), 0x0102030405n);
    assert.equal(e.getUint16(16 + 4, true), 0o100644, "attr starts at 16");
    assert.equal(e.getFloat64(160, true), 2);
    assert.equal(e.getFloat64(168, true), 0.5);
  });

  Deno.test(`darwin ${arch}: macFUSE fuse_file_info, fuse_ctx (umask u16@12), fuse_conn_info 2.x/3.x`, () => {
    const fi = fixture(40);
    fi.i32(0, 0x0002); // flags O_RDWR
    fi.u64(8, 0xdeadn); // fh_old
    fi.u32(20, 0b11); // direct_io | keep_cache
    fi.u64(24, 77n); // fh
    assert.equal(FI_MAC2.size, 40);
    assert.deepEqual(decodeFileInfoMac2(fi.v), { flags: 2, fh: 77n, direct_io: true, keep_cache: true });
    const out = fixture(40);
    out.u32(20, 1 << 30); // purge_attr, must be kept
    encodeFileInfoMac2(out.v, 9n, { keep_cache: true });
    assert.equal(out.v.getBigUint64(24, true), 9n);
    assert.equal(out.v.getUint32(20, true), (1 << 30) | 0b10);

    const ctx = fixture(16);
    ctx.u32(0, 501);
    ctx.u32(4, 20);
    ctx.i32(8, 4242);
    ctx.u16(12, 0o022);
    assert.deepEqual(decodeCtxMac(ctx.v), { uid: 501, gid: 20, pid: 4242, umask: 0o022 });

    const c2 = fixture(128);
    c2.u32(0, 7);
    c2.u32(4, 19);
    c2.u32(12, 1 << 20); // max_write
    c2.u32(20, 0b111); // enable bitfield (Linux 2.9 has capable here)
    c2.u32(24, 0xabc); // capable
    c2.u32(28, 0x1); // want
    assert.equal(CONN_MAC2.size, 128);
    assert.deepEqual(decodeConnInfoMac("macfuse2", c2.v), {
      proto_major: 7,
      proto_minor: 19,
      max_write: 1 << 20,
      capable: 0xabc,
      want: 1,
    });
    const c3 = fixture(144);
    c3.u32(0, 7);
    c3.u32(4, 31);
    c3.u32(8, 1 << 17); // max_write
    c3.u32(20, 0x1234); // capable
    c3.u32(24, 0x10); // want
    c3.u64(64, 0xffn); // capable_darwin
    assert.equal(CONN_MAC3.size, 144);
    assert.equal(CONN_MAC3.want_darwin, 72);
    assert.deepEqual(decodeConnInfoMac("macfuse3", c3.v), {
      proto_major: 7,
      proto_minor: 31,
      max_write: 1 << 17,
      capable: 0x1234,
      want: 0x10,
    });
  });
}

Deno.test("macFUSE ops tables: libfuse2 49 slots (Apple 41-48), libfuse3.4 376 B (setvolname@360, monitor@368)", () => {
  const bytes = (t: Record<string, number>, k: string) => t[k] * 8;
  assert.equal(Object.keys(MACFUSE2_OPS).length * 8, MACFUSE2_OPS_SIZE);
  assert.equal(MACFUSE2_OPS_SIZE, 392);
  for (
    const [k, off] of Object.entries({
      lookup: 16,
      setxattr: 200,
      getxattr: 208,
      create: 240,
      forget_multi: 304,
      fallocate: 320,
      reserved00: 328,
      renamex: 352,
      setvolname: 360,
      exchange: 368,
      getxtimes: 376,
      setattr_x: 384,
    })
  ) assert.equal(bytes(MACFUSE2_OPS, k), off, k);
  assert.equal(MACFUSE3_OPS_SIZE, 376);
  assert.equal((Math.max(...Object.values(MACFUSE3_OPS)) + 1) * 8, MACFUSE3_OPS_SIZE);
  for (
    const [k, off] of Object.entries({
      rename: 96,
      readdirplus: 328,
      lseek: 344,
      tmpfile: 352,
      setvolname: 360,
      monitor: 368,
    })
  ) assert.equal(bytes(MACFUSE3_OPS, k), off, k);
  // the xattr position argument comes last, as a u32
  assert.equal(MACFUSE2_XATTR_SIGNATURES.setxattr.at(-1), "u32");
  assert.equal(MACFUSE2_XATTR_SIGNATURES.getxattr.length, 5);
});

Deno.test("libSystem symbols: statfs$INODE64 on x86_64, plain statfs on arm64", () => {
  assert.equal(libSystemSymbols("x86_64").statfs.name, "statfs$INODE64");
  assert.equal(libSystemSymbols("aarch64").statfs.name, "statfs");
  assert.deepEqual(libSystemSymbols("aarch64").proc_pidinfo.parameters, [
    "i32",
    "i32",
    "u64",
    "buffer",
    "i32",
  ]);
});

Deno.test("macFUSE flavour: libfuse3.4 preferred, libfuse.2 next, FUSE-T alone refused with the reason", () => {
  const only = (...p: string[]) => (x: string) => p.includes(x);
  assert.deepEqual(chooseMacFuse(only(MAC_FUSE_LIBS.macfuse3, MAC_FUSE_LIBS.macfuse2)), {
    flavour: "macfuse3",
    path: "/usr/local/lib/libfuse3.4.dylib",
  });
  assert.deepEqual(chooseMacFuse(only(MAC_FUSE_LIBS.macfuse2, MAC_FUSE_LIBS["fuse-t"])).flavour, "macfuse2");
  const t = chooseMacFuse(only(MAC_FUSE_LIBS["fuse-t"]));
  assert.equal(t.flavour, null);
  assert.match("reason" in t ? t.reason : "", /FUSE-T.*caller pid 0.*brew install --cask macfuse/);
  const none = chooseMacFuse(only());
  assert.match("reason" in none ? none.reason : "", /macFUSE is not installed/);
});
