/**
 * The host OS and CPU, read once from `Deno.build`. The only module that tests the OS by name;
 * everything else asks `ffi/sys.ts` (native calls) or `core/platform/` (policy).
 */

export type Os = "linux" | "darwin";
export type Arch = "x86_64" | "aarch64";

/** The OS spfs runs on. Unsupported OSes fail at start-up with a clear message. */
export const os: Os = (() => {
  if (Deno.build.os === "linux" || Deno.build.os === "darwin") return Deno.build.os;
  throw new Error(`spfs supports Linux and macOS, not ${Deno.build.os}`);
})();

/** The CPU architecture (both are LP64; struct layouts differ only where the headers say). */
export const arch: Arch = Deno.build.arch === "x86_64" ? "x86_64" : "aarch64";
