import assert from "node:assert/strict";
import { IN_HEADER_SIZE, MUTATING_OPCODES, mutationTargets } from "../../../../ffi/fuse/request.ts";

/** A request as the kernel writes it: fuse_in_header, then `body` u64s (include/uapi/linux/fuse.h). */
function request(opcode: number, nodeid: number, body: bigint[] = []): Uint8Array {
  const b = new Uint8Array(IN_HEADER_SIZE + body.length * 8), v = new DataView(b.buffer);
  v.setUint32(0, b.length, true);
  v.setUint32(4, opcode, true);
  v.setBigUint64(8, 77n, true); // unique
  v.setBigUint64(16, BigInt(nodeid), true);
  v.setUint32(32, 4242, true); // pid
  body.forEach((x, i) => v.setBigUint64(IN_HEADER_SIZE + i * 8, x, true));
  return b;
}

Deno.test("mutationTargets: the inodes a changing request names, from the kernel's bytes", () => {
  const LOOKUP = 1, READ = 15, FORGET = 2;
  for (const op of [LOOKUP, READ, FORGET]) assert.equal(mutationTargets(request(op, 5)), undefined);
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.WRITE, 5, [0n, 0n])), [5]);
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.SETATTR, 6, [0n])), [6]);
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.CREATE, 1, [0n])), [1]);
  // fuse_rename_in / fuse_rename2_in: newdir @0
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.RENAME, 7, [1n])), [7, 1]);
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.RENAME2, 7, [9n, 1n])), [7, 9]);
  // LINK: the header names the new parent, fuse_link_in.oldnodeid the file
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.LINK, 9, [12n])), [9, 12]);
  // fuse_copy_file_range_in {fh_in, off_in, nodeid_out, fh_out, off_out, len, flags}
  assert.deepEqual(
    mutationTargets(request(MUTATING_OPCODES.COPY_FILE_RANGE, 3, [0n, 0n, 4n, 0n, 0n, 10n, 0n])),
    [3, 4],
  );
  assert.equal(mutationTargets(new Uint8Array(12)), undefined);
  // a body cut short names only what it holds
  assert.deepEqual(mutationTargets(request(MUTATING_OPCODES.RENAME, 7)), [7]);
});
