/** `spfs doctor [--json]`: exit 0 when every check passes, 1 when any fails. */
import type { Config } from "../core/config.ts";
import { runDoctor } from "../core/client/doctor.ts";
import { ExitCode } from "../core/errors.ts";
import { printJson } from "./output.ts";

export async function doctor(cfg: Config, o: { json?: boolean }): Promise<number> {
  const checks = await runDoctor(cfg);
  const failed = checks.filter((c) => c.status === "fail");
  if (o.json) printJson({ ok: failed.length === 0, checks });
  else {
    const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
    const width = Math.max(...checks.map((c) => c.name.length));
    for (const c of checks) {
      console.log(`${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`);
      if (c.fix) console.log(`      ${"".padEnd(width)}  fix: ${c.fix}`);
    }
    console.log(
      failed.length ? `\n${failed.length} of ${checks.length} checks failed` : "\nall checks passed",
    );
  }
  return failed.length ? ExitCode.failure : 0;
}
