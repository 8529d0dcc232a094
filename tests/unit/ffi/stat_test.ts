import assert from "node:assert/strict";
import {
  encodeEntryParam,
  encodeFdBufvec,
  encodeStatvfs,
  entryParamLayout,
  OPS,
} from "../../../ffi/fuse/lowlevel.ts";
import { type Attr, decodeStat, encodeStat, STAT_SIZE } from "../../../ffi/stat.ts";
import { parseMountinfo } from "../../../ffi/linux/mounts.ts";

const attr: Attr = {
  ino: 0x1122334455,
  mode: 0o100755,
  nlink: 1,
  uid: 1000,
  gid: 1001,
  size: 123456789,
  blocks: 241127,
  blksize: 65536,
  rdev: 0x0801,
  time: 1700000000,
};
const ns = 1700000000_000000000n;
/** What decodeStat gives back for `attr`: the exact times too. */
const decoded = { ...attr, atimeNs: ns, mtimeNs: ns, ctimeNs: ns };

Deno.test("struct stat: timespec nanoseconds at tv_nsec (x86_64 mtime @88/@96, darwin @48/@56)", () => {
  const t = {
    ...attr,
    atimeNs: 1n * 10n ** 18n + 1n,
    mtimeNs: 2n * 10n ** 18n + 2n,
    ctimeNs: 3n * 10n ** 18n + 3n,
  };
  const b = new Uint8Array(STAT_SIZE["linux-x86_64"]), v = new DataView(b.buffer);
  encodeStat("linux-x86_64", t, v);
  assert.equal(v.getBigInt64(88, true), 2000000000n);
  assert.equal(v.getBigInt64(96, true), 2n);
  assert.equal(decodeStat("linux-x86_64", v).ctimeNs, t.ctimeNs);
  const d = new Uint8Array(STAT_SIZE.darwin), dv = new DataView(d.buffer);
  encodeStat("darwin", t, dv);
  assert.equal(dv.getBigInt64(48, true), 2000000000n);
  assert.equal(dv.getBigInt64(56, true), 2n);
  assert.equal(decodeStat("darwin", dv).atimeNs, t.atimeNs);
});

Deno.test("struct stat (glibc x86_64): fields at the header offsets", () => {
  const b = new Uint8Array(STAT_SIZE["linux-x86_64"]), v = new DataView(b.buffer);
  encodeStat("linux-x86_64", attr, v);
  assert.equal(v.getBigUint64(8, true), 0x1122334455n); // st_ino
  assert.equal(v.getBigUint64(16, true), 1n); // st_nlink (u64)
  assert.equal(v.getUint32(24, true), 0o100755); // st_mode
  assert.equal(v.getUint32(28, true), 1000);
  assert.equal(v.getUint32(32, true), 1001);
  assert.equal(v.getBigUint64(40, true), 0x0801n); // st_rdev
  assert.equal(v.getBigInt64(48, true), 123456789n); // st_size
  assert.equal(v.getBigInt64(56, true), 65536n); // st_blksize (i64)
  assert.equal(v.getBigInt64(64, true), 241127n);
  assert.equal(v.getBigInt64(88, true), 1700000000n); // st_mtim.tv_sec
  assert.deepEqual(decodeStat("linux-x86_64", v), decoded);
});

Deno.test("struct stat (glibc aarch64): mode@16, nlink@20 (u32), blksize@56 (i32)", () => {
  const b = new Uint8Array(STAT_SIZE["linux-aarch64"]), v = new DataView(b.buffer);
  encodeStat("linux-aarch64", attr, v);
  assert.equal(v.getUint32(16, true), 0o100755);
  assert.equal(v.getUint32(20, true), 1);
  assert.equal(v.getInt32(56, true), 65536);
  assert.equal(v.getBigUint64(32, true), 0x0801n); // st_rdev
  assert.equal(v.getBigInt64(48, true), 123456789n);
  assert.deepEqual(decodeStat("linux-aarch64", v), decoded);
});

Deno.test("fuse_entry_param: 176 bytes on x86_64 (timeouts @160/@168), 160 on aarch64", () => {
  assert.deepEqual(entryParamLayout("linux-x86_64"), { size: 176, attrTimeout: 160, entryTimeout: 168 });
  assert.deepEqual(entryParamLayout("linux-aarch64"), { size: 160, attrTimeout: 144, entryTimeout: 152 });
  const e = encodeEntryParam("linux-x86_64", attr, 1.5, 0);
  const v = new DataView(e.buffer);
  assert.equal(v.getBigUint64(0, true), 0x1122334455n);
  assert.equal(v.getFloat64(160, true), 1.5);
  assert.equal(v.getFloat64(168, true), 0);
  assert.equal(v.getUint32(16 + 24, true), 0o100755);
});

Deno.test("ops table slots and fd bufvec match libfuse 3.14 headers", () => {
  assert.equal(OPS.lookup * 8, 16);
  assert.equal(OPS.readdir * 8, 168);
  assert.equal(OPS.forget_multi * 8, 304);
  assert.equal(OPS.lseek * 8, 344);
  const b = new Uint8Array(72), v = new DataView(b.buffer);
  encodeFdBufvec(v, 7, 4096, 8192);
  assert.equal(v.getBigUint64(0, true), 1n); // count
  assert.equal(v.getBigUint64(24, true), 4096n); // buf[0].size
  assert.equal(v.getInt32(32, true), 0x6); // IS_FD | FD_SEEK
  assert.equal(v.getInt32(48, true), 7); // fd
  assert.equal(v.getBigInt64(56, true), 8192n); // pos
  const s = new DataView(
    encodeStatvfs({
      bsize: 4096,
      blocks: 1,
      bfree: 2,
      bavail: 3,
      files: 4,
      ffree: 5,
      namemax: 255,
      readonly: true,
    }).buffer,
  );
  assert.equal(s.getBigUint64(80, true), 255n);
  assert.equal(s.getBigUint64(72, true), 1n);
});

Deno.test("mountinfo parsing unescapes octal and finds the fs type after ' - '", () => {
  const t = "36 35 0:40 / /tmp/a\\040b rw,relatime shared:1 - fuse.spfs spfs rw,user_id=0\n";
  assert.deepEqual(parseMountinfo(t), [{
    mountpoint: "/tmp/a b",
    fstype: "fuse.spfs",
    source: "spfs",
    dev: "0:40",
  }]);
});
