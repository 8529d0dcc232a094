/** C value helpers and the plain shapes shared by per-OS bindings (no symbols, no OS test). */

const enc = new TextEncoder();
/** NUL-terminated UTF-8 bytes for a C string argument. */
export function cstr(s: string): Uint8Array {
  return enc.encode(s + "\0");
}

/**
 * Filesystem statistics (Linux `struct statfs`, reference/ffi-abi.md §3; Darwin from its own
 * statfs). Sizes in bytes (`bsize`) and blocks of `bsize` bytes.
 */
export interface FsStats {
  /** Linux f_type magic; 0 on Darwin. */
  type: number;
  /** The filesystem's name: Linux from f_type (linux/magic.h), Darwin f_fstypename ("apfs"). */
  typeName: string;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** What `fuse_reply_statfs` reports: the statistics plus the read-only flag (ST_RDONLY). */
export type StatVfs = Omit<FsStats, "type" | "typeName"> & { readonly: boolean };

/** A failed native call whose errno should reach the FUSE caller as is (EMFILE, ENOMEM…). */
export class ErrnoError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: errno ${errno}`);
  }
}
