/** Registers FUSE tests: skipped (with the reason printed) only when FUSE is truly unavailable. */
import { fuseUnavailableReason } from "../scripts/harness.ts";

const reason = fuseUnavailableReason();
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
