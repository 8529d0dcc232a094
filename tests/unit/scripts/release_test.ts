/** Release tooling: the build task's argv and one-line failure, and the Homebrew formula render. */
import assert from "node:assert/strict";
import { assetName, compileArgv, TARGETS, whyFailed } from "../../../scripts/build.ts";
import { renderFormula } from "../../../scripts/formula.ts";

Deno.test("build: deno compile argv per target, all four targets", () => {
  assert.deepEqual(TARGETS, [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
  ]);
  assert.deepEqual(compileArgv("aarch64-apple-darwin", "dist/spfs-aarch64-apple-darwin").slice(1), [
    "compile",
    "-A",
    "--quiet",
    "--target",
    "aarch64-apple-darwin",
    "--include",
    "core/service/worker/main.ts",
    "--output",
    "dist/spfs-aarch64-apple-darwin",
    "main.ts",
  ]);
  // an embedded module that moved would be missing from the binary only at run time
  const argv = compileArgv("x86_64-unknown-linux-gnu", "out");
  for (const [i, a] of argv.entries()) {
    if (a === "--include") {
      assert.ok(Deno.statSync(new URL(`../../../${argv[i + 1]}`, import.meta.url)).isFile);
    }
  }
  assert.match(
    whyFailed(
      "error: Writing deno compile executable to temporary file\n\nCaused by:\n  dns error: failed to lookup address information",
    ),
    /^deno compile could not download its runtime from dl\.deno\.land/,
  );
});

Deno.test("deno task build: builds, or says in one line why it cannot (no stack trace)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "scripts/build.ts", "--target", "x86_64-unknown-linux-gnu"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim().split("\n");
  try {
    if (out.code === 0) {
      const bin = `dist/${assetName("x86_64-unknown-linux-gnu")}`;
      const v = await new Deno.Command(bin, { args: ["--version"], stdout: "piped" }).output();
      assert.equal(v.code, 0);
      assert.match(new TextDecoder().decode(v.stdout), /\d+\.\d+/);
      assert.match(
        Deno.readTextFileSync("dist/SHA256SUMS"),
        /^[0-9a-f]{64} {2}spfs-x86_64-unknown-linux-gnu\n$/,
      );
      console.log("  built and ran the compiled binary");
    } else {
      assert.equal(out.code, 1);
      assert.equal(err.length, 2, `a progress line and one reason:\n${err.join("\n")}`);
      assert.match(err[1], /^build: deno compile (could not download its runtime|failed: )/);
      assert.doesNotMatch(err.join("\n"), /\n\s+at /, "no stack trace");
      console.log(`  ${err[1]}`);
    }
  } finally {
    await Deno.remove("dist", { recursive: true }).catch(() => {});
  }
});

Deno.test("Homebrew formula: on_macos/on_linux × on_arm/on_intel with each checksum, caveats", () => {
  const tmpl = Deno.readTextFileSync(new URL("../../../scripts/homebrew/spfs.rb.tmpl", import.meta.url));
  const sums = TARGETS.map((t, i) => `${String(i + 1).repeat(64)}  ${assetName(t)}`).join("\n");
  const rb = renderFormula(tmpl, "v1.2.3", "spfs-dev/spfs", sums);
  assert.match(rb, /version "1\.2\.3"/);
  assert.match(
    rb,
    /on_macos do\n\s+on_arm do\n\s+url ".*\/v1\.2\.3\/spfs-aarch64-apple-darwin"\n\s+sha256 "4{64}"/,
  );
  assert.match(rb, /on_intel do\n\s+url ".*\/spfs-x86_64-apple-darwin"\n\s+sha256 "3{64}"/);
  assert.match(rb, /on_linux do\n\s+on_arm do\n\s+url ".*spfs-aarch64-unknown-linux-gnu"\n\s+sha256 "2{64}"/);
  assert.match(rb, /sha256 "1{64}"/);
  assert.match(rb, /brew install --cask macfuse/);
  assert.match(rb, /\/etc\/synthetic\.conf/);
  assert.doesNotMatch(rb, /\{\{/);
  assert.throws(
    () => renderFormula(tmpl, "1.0.0", "a/b", sums.split("\n").slice(1).join("\n")),
    /no checksum for spfs-x86_64-unknown-linux-gnu/,
  );
});
