/** `spfs check [--json]`: exit 0 when every object verifies, 6 when something is damaged. */
import { checkStore } from "../core/store/check.ts";
import type { Config } from "../core/config.ts";
import { ExitCode } from "../core/errors.ts";
import { openRepo } from "../core/store/repo.ts";
import { formatBytes, printJson } from "./output.ts";

export async function check(cfg: Config, o: { json?: boolean }): Promise<number> {
  const { store, tags } = openRepo(cfg);
  const { default: $ } = await import("dax");
  let bar: ReturnType<typeof $.progress> | undefined;
  const r = await checkStore(store, tags, (done, total) => {
    if (!o.json && Deno.stderr.isTerminal() && total > 500) {
      bar ??= $.progress("Verifying objects", { length: total });
      bar.position(done);
    }
  });
  bar?.finish();
  const ok = r.corrupt.length === 0 && r.missing.length === 0;
  if (o.json) printJson({ ok, ...r });
  else {
    console.log(`${r.objects} objects, ${formatBytes(r.bytes)}: ${ok ? "all verified" : "DAMAGED"}`);
    for (const d of r.corrupt) console.log(`corrupt  ${d}`);
    for (const m of r.missing) console.log(`missing  ${m}`);
    if (!ok) {
      console.error("  hint: re-commit the affected trees; corrupt objects are never served (EIO)");
    }
  }
  return ok ? 0 : ExitCode.storage;
}
