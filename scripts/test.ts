/**
 * Runs the test suite (`deno test`) and ends with the plain summary line "N passed, N failed"
 * that CI reads. Extra arguments go to `deno test` (e.g. a filter).
 */
import { stripVTControlCharacters } from "node:util";

const args = ["test", "-A", "--quiet", ...Deno.args];
if (!Deno.args.some((a) => a.startsWith("tests") || a.endsWith(".ts"))) args.push("tests/");
const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" }).spawn();
const dec = new TextDecoder();
let tail = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + dec.decode(chunk)).slice(-4000);
}
const status = await child.status;
// deno's own summary: "ok | 12 passed (3 steps) | 0 failed (5s)" or "FAILED | 3 passed | 1 failed (2s)"
const plain = stripVTControlCharacters(tail);
const m = /(\d+) passed[^|]*\|\s*(\d+) failed/.exec(plain);
const ignored = /(\d+) ignored/.exec(plain);
if (m) console.log(`\n${m[1]} passed, ${m[2]} failed${ignored ? `, ${ignored[1]} skipped` : ""}`);
else console.log(`\n0 passed, 1 failed  (deno test ended with code ${status.code} and no summary)`);
Deno.exit(status.code);
