/**
 * Opt-in error reporting: a local HTTP server stands in for Sentry's ingest endpoint and sees
 * what the real SDK sends. One event for a forced bug, none for the user's own mistakes, and no
 * home path or secret in any body.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fuseTest, waitFor, writeTree } from "../support/fuse.ts";
import { Sandbox } from "../support/sandbox.ts";

const SECRET = "hunter2-not-for-sentry";

/** A stand-in for Sentry's ingest: records every envelope posted to /api/PROJECT/envelope/. */
class Ingest {
  readonly bodies: string[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      if (req.method === "POST" && /^\/api\/\d+\/envelope\/$/.test(new URL(req.url).pathname)) {
        this.bodies.push(await req.text());
      }
      return new Response("{}", { headers: { "content-type": "application/json" } });
    });
  }
  get dsn(): string {
    return `http://publickey@127.0.0.1:${this.#server.addr.port}/42`;
  }
  /** The event payloads received (an envelope's item after its `{"type":"event"}` header). */
  events(): Record<string, any>[] {
    return this.bodies.flatMap((b) => {
      const lines = b.split("\n");
      return lines.flatMap((l, i) => l.startsWith('{"type":"event"') ? [JSON.parse(lines[i + 1])] : []);
    });
  }
  close(): Promise<void> {
    return this.#server.shutdown();
  }
}

/** The deno cache in use, so children with another HOME do not download npm packages again. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** Env for a sandbox whose HOME is its own root, with a secret in the environment. */
async function reportingEnv(sb: Sandbox, ingest: Ingest): Promise<Record<string, string>> {
  return {
    HOME: sb.root,
    DENO_DIR: await denoDir(),
    SPFS_SENTRY_DSN: ingest.dsn,
    SPFS_REGISTRY_PASSWORD: SECRET,
  };
}

function assertClean(sb: Sandbox, bodies: string[]): void {
  for (const b of bodies) {
    assert.ok(!b.includes(sb.root), `a home path reached the report: ${b}`);
    assert.ok(!b.includes(SECRET), `a secret reached the report: ${b}`);
  }
}

Deno.test("a bug in the CLI is reported once; usage errors and unknown refs are not", async () => {
  const sb = Sandbox.create();
  const ingest = new Ingest();
  try {
    const env = await reportingEnv(sb, ingest);
    // the argv carries the secret twice: as URL userinfo and as the value of a secret env var
    const bug = await sb.spfs(
      ["remote", "add", "leak", `oci://bob:${SECRET}@127.0.0.1:5000/ns/repo`],
      { ...env, SPFS_DEBUG_CRASH: "cli" },
    );
    assert.equal(bug.code, 1, bug.stderr);
    assert.match(bug.stderr, /forced internal error/);
    assert.equal(ingest.events().length, 1, "the CLI flushes its report before exiting");

    for (
      const [args, code] of [
        [["run"], 2], // missing SPEC
        [["--no-such-flag"], 2],
        [["info", "no/such/tag"], 3],
        [["run", "no/such/tag", "--no-pull", "--", "true"], 3],
      ] as const
    ) {
      const r = await sb.spfs([...args], env);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    }
    const events = ingest.events();
    assert.equal(events.length, 1, `only the bug is reported, got ${JSON.stringify(events, null, 1)}`);
    const [e] = events;
    assert.equal(e.tags.component, "cli");
    assert.equal(e.tags.command, "remote add");
    assert.equal(e.tags.platform, `${Deno.build.os}-${Deno.build.arch}`);
    assert.match(e.tags.version, /^\d+\.\d+\.\d+/);
    const message = e.exception.values[0].value as string;
    assert.match(message, /with storage ~\/store$/, "the home dir is written as ~");
    assert.match(message, /oci:\/\/\[redacted\]@127\.0\.0\.1/);
    assert.equal(e.server_name, undefined, "no host name");
    assertClean(sb, ingest.bodies);

    // a DSN that is not one is a usage error that does not echo the key
    const bad = await sb.spfs(["tags"], { ...env, SPFS_SENTRY_DSN: `https://${SECRET}@sentry.example` });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /not a Sentry DSN/);
    assert.ok(!bad.stderr.includes(SECRET));
    // off by default: the same bug without a DSN sends nothing
    const { SPFS_SENTRY_DSN: _, ...noDsn } = env;
    assert.equal((await sb.spfs(["tags"], { ...noDsn, SPFS_DEBUG_CRASH: "cli" })).code, 1);
    assert.equal(ingest.events().length, 1);
  } finally {
    await ingest.close();
    await sb.dispose();
  }
});

fuseTest("a bug in the service is reported by the service, which keeps serving", async () => {
  const sb = Sandbox.create();
  const ingest = new Ingest();
  try {
    const env = await reportingEnv(sb, ingest);
    await sb.ok(["service"], { ...env, SPFS_DEBUG_CRASH: "service" });
    const r = await sb.spfs(["status", "--json"], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /internal error/);
    await waitFor("the service's report", () => ingest.events().length === 1);
    const [e] = ingest.events();
    assert.equal(e.tags.component, "service");
    assert.equal(e.tags.command, "status");
    assertClean(sb, ingest.bodies);
    // still serving: a second request is answered (and reported again)
    assert.notEqual((await sb.spfs(["status"], env)).code, 0);
    await waitFor("a second report", () => ingest.events().length === 2);
    assert.ok(sb.servicePid(), "the service is still up");
    await sb.ok(["service", "--stop"], env);
    const log = Deno.readTextFileSync(join(sb.runtime, "service.log"));
    assert.match(log, /forced internal error/);
  } finally {
    await ingest.close();
    await sb.dispose();
  }
});

fuseTest(
  "a bug in a FUSE op is reported from the worker; that request gets EIO and the mount serves on",
  async () => {
    const sb = Sandbox.create();
    const ingest = new Ingest();
    try {
      const env = await reportingEnv(sb, ingest);
      writeTree(join(sb.root, "src"), { "hello.txt": "hello\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "hello/1"], env);
      await sb.ok(["service"], { ...env, SPFS_DEBUG_CRASH: "fuse" });
      const r = await sb.spfs(["run", "hello/1", "--", "stat", "-f", sb.mountpoint], env);
      assert.notEqual(r.code, 0, "statfs failed");
      assert.match(r.stderr, /Input\/output error/);
      await waitFor("the worker's report", () => ingest.events().length === 1);
      const [e] = ingest.events();
      assert.equal(e.tags.component, "service");
      assert.equal(e.tags.command, "fuse statfs");
      assertClean(sb, ingest.bodies);
      // the same bug again is not reported twice; every other request is served
      assert.notEqual((await sb.spfs(["run", "hello/1", "--", "stat", "-f", sb.mountpoint], env)).code, 0);
      assert.equal(
        await sb.ok(["run", "hello/1", "--", "cat", join(sb.mountpoint, "hello.txt")], env),
        "hello\n",
      );
      assert.equal(ingest.events().length, 1);
      await sb.ok(["service", "--stop"], env);
    } finally {
      await ingest.close();
      await sb.dispose();
    }
  },
);
