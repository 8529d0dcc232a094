/** C value helpers and the plain shapes shared by per-OS bindings (no symbols, no OS test). */

const enc = new TextEncoder();
/** NUL-terminated UTF-8 bytes for a C string argument. */
export function cstr(s: string): Uint8Array {
  return enc.encode(s + "\0");
}

/**
 * A NULL-terminated `char *[]` of `argv` (8-byte pointers: LP64). The caller keeps `keep` alive
 * while C may read the array.
 */
export function cStringArray(argv: string[]): { ptrs: BigUint64Array; keep: Uint8Array[] } {
  const keep = argv.map(cstr);
  const ptrs = new BigUint64Array(argv.length + 1);
  keep.forEach((s, i) => ptrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
  return { ptrs, keep };
}

/**
 * `Deno.dlopen(path, defs).symbols`, each symbol bound on its first use. Deno builds a call stub for
 * every symbol at dlopen time, about 0.3 ms each (measured with Deno 2.9.6): binding all 42 libc
 * symbols cost a CLI command 13 ms when it made one call. A bound symbol then becomes a plain
 * property (a micro-benchmark of FFI calls through it showed no difference from an eager dlopen).
 * @throws Error from Deno.dlopen (library or symbol missing) on the symbol's first use.
 */
export function lazySymbols<S extends Deno.ForeignLibraryInterface>(
  path: string,
  defs: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(defs)) {
    Object.defineProperty(out, name, {
      configurable: true,
      enumerable: true,
      get: () => {
        const fn = Deno.dlopen(path, { [name]: defs[name] }).symbols[name];
        Object.defineProperty(out, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return out as Deno.DynamicLibrary<S>["symbols"];
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
