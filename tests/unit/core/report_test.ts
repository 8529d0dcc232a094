/** What leaves the machine in an error report: scrubbing of homes and secrets, and which errors count. */
import assert from "node:assert/strict";
import { isBug, scrub } from "../../../core/report.ts";
import { SpfsError } from "../../../core/errors.ts";
import { loadConfig } from "../../../core/config.ts";

Deno.test("scrub removes home paths, secret env values, URL userinfo and auth headers", () => {
  const env = {
    HOME: "/home/alice",
    SPFS_REGISTRY_PASSWORD: "pa55word!",
    GITHUB_TOKEN: "ghp_abcdefgh",
    PATH: "/usr/bin",
    SHORT_KEY: "abc", // too short to scrub safely
  };
  const text = [
    "open /home/alice/.local/share/spfs/objects failed",
    "other user /home/bob/x and /Users/carol/y",
    "login pa55word! and ghp_abcdefgh",
    "GET oci://alice:pa55word@registry.example/ns/repo",
    "Authorization: Bearer eyJhbGciOi.abc-def and Basic YWxpY2U6cGFzcw==",
    "PATH /usr/bin stays",
  ].join("\n");
  assert.equal(
    scrub(text, env),
    [
      "open ~/.local/share/spfs/objects failed",
      "other user /home/<user>/x and /Users/<user>/y",
      "login [redacted] and [redacted]",
      "GET oci://[redacted]@registry.example/ns/repo",
      "Authorization: Bearer [redacted] and Basic [redacted]",
      "PATH /usr/bin stays",
    ].join("\n"),
  );
  assert.equal(scrub("/ stays /", { HOME: "/" }), "/ stays /", "HOME=/ is not a prefix to strip");
});

Deno.test("only bugs are reported, never an SpfsError", () => {
  assert.ok(isBug(new TypeError("x is undefined")));
  assert.ok(isBug("a thrown string"));
  for (const code of ["UsageError", "UnknownRef", "RemoteUnreachable", "StorageError"] as const) {
    assert.ok(!isBug(new SpfsError(code, "the user's to fix")));
  }
});

Deno.test("sentry_dsn in the config file, SPFS_SENTRY_DSN over it, and a bad DSN refused", async () => {
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/config.toml`;
  const saved = { c: Deno.env.get("SPFS_CONFIG"), d: Deno.env.get("SPFS_SENTRY_DSN") };
  try {
    Deno.env.set("SPFS_CONFIG", file);
    Deno.env.delete("SPFS_SENTRY_DSN");
    assert.equal((await loadConfig()).sentryDsn, undefined, "off by default");
    Deno.writeTextFileSync(file, 'sentry_dsn = "https://key@o1.ingest.sentry.io/123"\n');
    assert.equal((await loadConfig()).sentryDsn, "https://key@o1.ingest.sentry.io/123");
    Deno.env.set("SPFS_SENTRY_DSN", "http://other@127.0.0.1:9000/7");
    assert.equal((await loadConfig()).sentryDsn, "http://other@127.0.0.1:9000/7");
    for (const bad of ["not a url", "https://sentry.io/123", "https://key@sentry.io/", "ftp://k@h/1"]) {
      Deno.env.set("SPFS_SENTRY_DSN", bad);
      await assert.rejects(
        () => loadConfig(),
        (e: SpfsError) => e.code === "UsageError" && !e.message.includes(bad),
      );
    }
  } finally {
    for (const [k, v] of [["SPFS_CONFIG", saved.c], ["SPFS_SENTRY_DSN", saved.d]] as const) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
    Deno.removeSync(dir, { recursive: true });
  }
});
