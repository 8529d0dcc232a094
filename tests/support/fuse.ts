/** Registers FUSE tests: skipped (with the reason printed) only when FUSE is truly unavailable. */
import { selfArgv } from "../../core/client/rpc.ts";
import { fuseUnavailableReason } from "./sandbox.ts";
export { exists } from "../../ffi/fsops.ts";

const reason = await fuseUnavailableReason();
const required = Deno.env.get("SPFS_REQUIRE_FUSE") === "1";

export function fuseTest(name: string, fn: () => Promise<void>): void {
  if (reason && required) {
    Deno.test(name, () => {
      throw new Error(`SPFS_REQUIRE_FUSE=1 but FUSE is unavailable: ${reason}`);
    });
  } else if (reason) {
    console.log(`SKIP ${name}: ${reason}`);
    Deno.test({ name: `${name} [skipped: ${reason}]`, ignore: true, fn });
  } else {
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
  }
}

/** Writes a tree of {path: content} (content "->target" makes a symlink). */
export function writeTree(
  root: string,
  files: Record<string, string>,
  modes: Record<string, number> = {},
): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = `${root}/${rel}`;
    Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    if (content.startsWith("->")) Deno.symlinkSync(content.slice(2), p);
    else Deno.writeTextFileSync(p, content);
    if (modes[rel] !== undefined) Deno.chmodSync(p, modes[rel]);
  }
}

/** A string quoted for sh. */
export const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** A shell command line running spfs with `args` (for use inside a runtime). */
export const spfsLine = (args: string[]) => selfArgv(args).map(q).join(" ");

/** Polls `cond` every 25 ms, for at most 15 s; throws naming `what` when it never holds. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
