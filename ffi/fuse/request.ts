/**
 * Raw FUSE requests as the kernel sends them, read before libfuse sees them: which ones change a
 * filesystem, and which inodes they name. The service holds back such requests of one runtime
 * while a commit reads its scratch, and hands the same bytes to libfuse afterwards.
 *
 * Source: Linux include/uapi/linux/fuse.h (protocol 7.38): `struct fuse_in_header` {len u32 @0,
 * opcode u32 @4, unique u64 @8, nodeid u64 @16, uid @24, gid @28, pid @32, total_extlen u16 @36,
 * padding u16 @38} = 40 bytes, then the op's own struct. macFUSE 4/5 (fuse_kernel.h) use the same
 * header and the same numbers for these opcodes.
 */

/** `struct fuse_in_header` size in bytes. */
export const IN_HEADER_SIZE = 40;

/** Opcodes (enum fuse_opcode) of the requests that change a filesystem. */
export const MUTATING_OPCODES = {
  SETATTR: 4,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  WRITE: 16,
  SETXATTR: 21,
  REMOVEXATTR: 24,
  CREATE: 35,
  FALLOCATE: 43,
  RENAME2: 45,
  COPY_FILE_RANGE: 47,
  TMPFILE: 51,
} as const;

const MUTATING = new Set<number>(Object.values(MUTATING_OPCODES));

/**
 * The inodes a request that changes the filesystem names, or undefined for one that does not (or
 * for bytes too short to be a request). The header's `nodeid` comes first; RENAME and RENAME2 add
 * `newdir` (fuse_rename_in / fuse_rename2_in @0), LINK `oldnodeid` (fuse_link_in @0; its header
 * nodeid is the new parent), COPY_FILE_RANGE `nodeid_out` (fuse_copy_file_range_in @16).
 * OPEN counts as changing: on macOS a write-open copies a lower file up.
 */
export function mutationTargets(bytes: Uint8Array): number[] | undefined {
  if (bytes.length < IN_HEADER_SIZE) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const opcode = v.getUint32(4, true);
  if (!MUTATING.has(opcode)) return undefined;
  const inos = [Number(v.getBigUint64(16, true))];
  const bodyU64 = (at: number) => {
    if (bytes.length >= IN_HEADER_SIZE + at + 8) inos.push(Number(v.getBigUint64(IN_HEADER_SIZE + at, true)));
  };
  if (
    opcode === MUTATING_OPCODES.RENAME || opcode === MUTATING_OPCODES.RENAME2 ||
    opcode === MUTATING_OPCODES.LINK
  ) bodyU64(0);
  else if (opcode === MUTATING_OPCODES.COPY_FILE_RANGE) bodyU64(16);
  return inos;
}
