/**
 * `spfs run`'s quick parser must read argv exactly as commander does, or refuse it: each argv is
 * parsed both ways, commander through the real program with the `run` action swapped for a recorder.
 */
import assert from "node:assert/strict";
import { buildProgram, parseQuickRun, type RunFlags } from "../../../cli/main.ts";
import { loadConfig } from "../../../core/config.ts";

type Parsed = { spec: string | undefined; command: string[]; o: RunFlags };

/** What commander hands the `run` action for `argv`, or "refused" when it throws (help, bad flag). */
async function viaCommander(argv: string[]): Promise<Parsed | "refused"> {
  let got: Parsed | undefined;
  const out = { code: 0, json: false, command: "spfs", cfg: (extra = {}) => loadConfig(extra) };
  const program = await buildProgram(argv, out, (_cfg, spec, command, o) => {
    got = { spec, command, o: { ...o } };
    return Promise.resolve(0);
  });
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch {
    return "refused";
  }
  if (!got) return "refused";
  // commander gives `--no-pull` a default of true; the quick parser leaves it unset: both mean "pull"
  if (got.o.pull === true) delete got.o.pull;
  return got;
}

const SAME = [
  ["run", "t", "--", "true"],
  ["run", "t", "true", "-x", "--y"],
  ["run", "t"],
  ["run", "--edit", "t", "--", "sh", "-c", "echo hi"],
  ["run", "--name", "n", "--edit", "t", "--", "true"],
  ["run", "--name=n", "t", "true"],
  ["run", "--no-pull", "--keep-runtime", "a+b", "--", "true"],
  ["run", "--rerun", "rt", "true"],
  ["run", "--scratch", "ramdisk:fast", "t", "--", "true"],
  ["run", "--mountpoint", "/m", "t", "--", "true"],
  ["run", "--name", "-odd", "t", "--", "true"],
  ["run", "t", "--edit", "--", "ls"],
];
const TO_COMMANDER = [
  ["run"],
  ["run", "--help"],
  ["run", "-h"],
  ["run", "--edit=1", "t", "--", "true"],
  ["run", "--bogus", "t", "--", "true"],
  ["run", "--name"],
  ["run", "--edit", "--", "t", "true"],
  ["--storage", "/s", "run", "t", "--", "true"],
  ["shell", "t"],
  ["status"],
];

Deno.test("spfs run's quick parser reads argv as commander does", async () => {
  for (const argv of SAME) {
    const quick = parseQuickRun(argv);
    assert.ok(quick, `quick parser takes ${argv.join(" ")}`);
    assert.deepEqual(quick, await viaCommander(argv), argv.join(" "));
  }
});

Deno.test("spfs run's quick parser leaves everything else to commander", () => {
  for (const argv of TO_COMMANDER) assert.equal(parseQuickRun(argv), undefined, argv.join(" "));
});
