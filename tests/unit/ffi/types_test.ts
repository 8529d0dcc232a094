import assert from "node:assert/strict";
import { lazySymbols } from "../../../ffi/types.ts";

const LIBC = Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6";

Deno.test("lazySymbols: a symbol is bound on first use, then is a plain property that calls libc", () => {
  const defs = {
    getpid: { parameters: [], result: "i32" },
    getppid: { parameters: [], result: "i32" },
  } as const;
  const s = lazySymbols(LIBC, defs);
  assert.deepEqual(Object.keys(s).sort(), ["getpid", "getppid"]);
  assert.equal(typeof Object.getOwnPropertyDescriptor(s, "getpid")?.get, "function", "not bound yet");
  assert.equal(s.getpid(), Deno.pid);
  const bound = Object.getOwnPropertyDescriptor(s, "getpid");
  assert.equal(bound?.get, undefined, "bound once: now a value");
  assert.equal(typeof bound?.value, "function");
  assert.equal(s.getpid, s.getpid, "the same function every time");
  assert.equal(typeof Object.getOwnPropertyDescriptor(s, "getppid")?.get, "function", "untouched: unbound");
  assert.equal(s.getppid(), Deno.ppid);
});

Deno.test("lazySymbols: a symbol the library lacks fails on its first use, not when the table is made", () => {
  const s = lazySymbols(
    LIBC,
    {
      getpid: { parameters: [], result: "i32" },
      spfs_no_such_symbol: { parameters: [], result: "void" },
    } as const,
  );
  assert.equal(s.getpid(), Deno.pid);
  assert.throws(() => s.spfs_no_such_symbol(), /spfs_no_such_symbol/);
});
