/**
 * `deno task build [--target T]…`: compiles the single spfs binary for x86_64/aarch64 × linux/darwin
 * into dist/, with the permissions it needs baked in (-A: FFI, fs, run, net for the loopback metrics
 * endpoint, env), and writes dist/SHA256SUMS. `deno compile` downloads a runtime per target from
 * dl.deno.land; where that host cannot be reached the task says so in one line and exits 1.
 */
import { createHash } from "node:crypto";
import { runner } from "../core/runner.ts";

export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
] as const;

/** Release asset name of a target, e.g. spfs-aarch64-apple-darwin. */
export const assetName = (t: string) => `spfs-${t}`;

/** The `deno compile` argv for one target. */
export function compileArgv(target: string, out: string): string[] {
  return [
    Deno.execPath(),
    "compile",
    "-A",
    "--quiet",
    "--target",
    target,
    // the FUSE worker is loaded by URL at run time, so it must be embedded explicitly
    "--include",
    "core/service/worker/main.ts",
    "--output",
    out,
    "main.ts",
  ];
}

/** One line saying why a compile failed, from deno's stderr. */
export function whyFailed(stderr: string): string {
  if (
    /dl\.deno\.land|dns error|failed to lookup|Could not resolve|error sending request|Connection refused/i
      .test(stderr)
  ) {
    return "deno compile could not download its runtime from dl.deno.land (no network access to it here); run the build where it can, e.g. in the release workflow";
  }
  const line = stderr.split("\n").map((l) => l.trim()).find((l) => /error/i.test(l)) ??
    stderr.trim().split("\n")[0];
  return `deno compile failed: ${line}`;
}

if (import.meta.main) {
  const picked = Deno.args.flatMap((a, i) => Deno.args[i - 1] === "--target" ? [a] : []);
  const targets = picked.length ? picked : [...TARGETS];
  Deno.mkdirSync("dist", { recursive: true });
  const sums: string[] = [];
  for (const t of targets) {
    const out = `dist/${assetName(t)}`;
    console.error(`build: ${t} -> ${out}`);
    const r = await runner().run(compileArgv(t, out));
    if (r.code !== 0) {
      console.error(`build: ${whyFailed(r.stderr)}`);
      Deno.exit(1);
    }
    const hash = createHash("sha256").update(Deno.readFileSync(out)).digest("hex");
    sums.push(`${hash}  ${assetName(t)}`);
  }
  Deno.writeTextFileSync("dist/SHA256SUMS", sums.join("\n") + "\n");
  console.error(`build: ${targets.length} binaries and dist/SHA256SUMS`);
}
