/**
 * Push, pull and auto-pull against a real OCI registry (Debian's docker-registry on 127.0.0.1) and
 * a file:// remote, and the faults users meet: a registry killed mid-pull, a damaged blob, missing
 * credentials, two pulls at once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { encodeTag } from "../../core/remote/tagname.ts";
import { fuseTest, q, writeTree } from "../support/fuse.ts";
import { TestRegistry, TOKEN_PASSWORD, TOKEN_USER } from "../support/registry.ts";
import { npmPackageDir, Sandbox } from "../support/sandbox.ts";

const sh = async (cmd: string) => {
  const r = await runner().run(["sh", "-c", cmd]);
  if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
};

/** A sandbox whose `origin` is `address`. */
async function withOrigin(address: string): Promise<Sandbox> {
  const sb = Sandbox.create();
  await sb.ok(["remote", "add", "origin", address]);
  return sb;
}

/** A tree of `big` random files of `mib` MiB each plus a few small ones. */
async function bigTree(dir: string, big: number, mib: number): Promise<void> {
  writeTree(dir, { "small/a.txt": "a\n", "small/b.txt": "b\n", "link": "->small/a.txt" });
  for (let i = 0; i < big; i++) await sh(`head -c ${mib}M /dev/urandom > ${q(join(dir, `big${i}.bin`))}`);
}

/** A test with a fresh registry and two stores A and B whose origin it is; all removed afterwards. */
const remoteTest = (
  name: string,
  fn: (reg: TestRegistry, a: Sandbox, b: Sandbox) => Promise<void>,
  opts: { auth?: boolean; accessLog?: boolean } = {},
) =>
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const reg = await TestRegistry.start(opts);
      const a = await withOrigin(reg.address());
      const b = await withOrigin(reg.address());
      try {
        await fn(reg, a, b);
      } finally {
        await a.dispose();
        await b.dispose();
        await reg.stop();
      }
    },
  });

fuseTest(
  "npm's tree travels: commit on A, push to a registry, pull into B, run npm from B; file:// too",
  async () => {
    const reg = await TestRegistry.start();
    const npm = await npmPackageDir();
    const a = await withOrigin(reg.address());
    const sbs = [a];
    try {
      await a.ok(["commit", npm, "-t", "npm/1"]);
      const first = JSON.parse(await a.ok(["push", "npm/1", "--json"]));
      assert.equal(first.layers.moved, 1);
      assert.ok(first.bytes > 1_000_000, `pushed ${first.bytes} bytes`);
      const blobsBefore = reg.blobs().length;
      const again = JSON.parse(await a.ok(["push", "npm/1", "--json"]));
      assert.deepEqual(
        [again.layers.moved, again.objects.moved, again.bytes],
        [0, 0, 0],
        "a second push sends nothing",
      );
      assert.equal(reg.blobs().length, blobsBefore);

      const version = (await sh("npm --version")).trim();
      const b = await withOrigin(reg.address());
      sbs.push(b);
      const pulled = JSON.parse(await b.ok(["pull", "npm/1", "--json"]));
      assert.equal(pulled.refs[0].digest, first.refs[0].digest);
      await b.ok(["check"]);
      // small files and manifests stay in their packs: a few files written, not one per object
      const packs = [...Deno.readDirSync(join(b.storage, "packs"))].map((e) => e.name);
      assert.ok(packs.some((n) => n.endsWith(".idx")), packs.join(" "));
      const loose = await sh(`find ${q(join(b.storage, "objects"))} -type f | wc -l`);
      assert.ok(Number(loose) < 50, `${loose.trim()} loose objects after the pull`);
      const ran = await b.ok([
        "run",
        "npm/1",
        "--",
        "node",
        join(b.mountpoint, "bin/npm-cli.js"),
        "--version",
      ]);
      assert.equal(ran.trim(), version);
      await b.ok(["run", "npm/1", "--", "diff", "-r", npm, b.mountpoint]);
      // an editable run copies a packed file up and writes to it
      const edited = await b.ok([
        "run",
        "--edit",
        "npm/1",
        "--",
        "sh",
        "-c",
        `echo appended >> ${q(join(b.mountpoint, "package.json"))} && tail -n 1 ${
          q(join(b.mountpoint, "package.json"))
        }`,
      ]);
      assert.equal(edited.trim(), "appended");

      // auto-pull: an empty store with origin runs the tag directly
      const c = await withOrigin(reg.address());
      sbs.push(c);
      const auto = await c.spfs([
        "run",
        "npm/1",
        "--",
        "node",
        join(c.mountpoint, "bin/npm-cli.js"),
        "--version",
      ]);
      assert.equal(auto.code, 0, auto.stderr);
      assert.equal(auto.stdout.trim(), version);
      assert.match(auto.stderr, /pulling from origin/);
      const off = await Sandbox.create();
      sbs.push(off);
      await off.ok(["remote", "add", "origin", reg.address()]);
      assert.equal(
        (await off.spfs(["run", "--no-pull", "npm/1", "--", "true"])).code,
        3,
        "--no-pull stays local",
      );

      // the same through a shared directory, pushed from B, whose objects are in packs
      const shared = `file://${join(a.root, "shared")}`;
      await b.ok(["remote", "add", "shared", shared]);
      await b.ok(["push", "npm/1", "--to", "shared"]);
      const fileAgain = JSON.parse(await b.ok(["push", "npm/1", "--to", "shared", "--json"]));
      assert.deepEqual([fileAgain.objects.moved, fileAgain.bytes], [0, 0]);
      const d = await withOrigin(shared);
      sbs.push(d);
      await d.ok(["pull", "npm/1"]);
      await d.ok(["check"]);
      await d.ok(["run", "npm/1", "--", "diff", "-r", npm, d.mountpoint]);
    } finally {
      for (const s of sbs) await s.dispose();
      await reg.stop();
    }
  },
);

remoteTest(
  "a registry killed mid-pull: the pull fails cleanly, the next one completes, check is clean",
  async (reg, a, b) => {
    await bigTree(join(a.root, "src"), 8, 32);
    await a.ok(["commit", join(a.root, "src"), "-t", "big/1"]);
    await a.ok(["push", "big/1"]);
    const child = b.command(["pull", "big/1"], { SPFS_REMOTE_RETRIES: "1" }).spawn();
    const tmp = join(b.storage, "tmp");
    for (let i = 0; i < 2000; i++) {
      try {
        if ([...Deno.readDirSync(tmp)].length) break;
      } catch { /* not created yet */ }
      await new Promise((r) => setTimeout(r, 5));
    }
    await reg.kill();
    const out = await child.output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 7, err);
    assert.match(err, /registry 127\.0\.0\.1:\d+ \(team\/spfs\).*(failed|unreachable)/);
    assert.match(err, /continues where/);
    await b.ok(["check"]);
    assert.equal((await b.spfs(["info", "big/1"])).code, 3, "no tag for a layer that did not arrive");
    await reg.restart();
    const done = JSON.parse(await b.ok(["pull", "big/1", "--json"]));
    assert.ok(done.objects.skipped >= 0);
    await b.ok(["check"]);
    const flat = await b.ok(["ls", "big/1", "--json"]);
    assert.equal(JSON.parse(flat).filter((e: { name: string }) => e.name.startsWith("big")).length, 8);
  },
);

remoteTest("a damaged blob on the registry is refused and nothing of it is kept", async (reg, a, b) => {
  await bigTree(join(a.root, "src"), 1, 2);
  await a.ok(["commit", join(a.root, "src"), "-t", "one/1"]);
  await a.ok(["push", "one/1"]);
  const big = reg.blobs()[0];
  assert.ok(big.size >= 2 << 20);
  const f = Deno.openSync(reg.blobPath(big.digest), { write: true });
  f.writeSync(new TextEncoder().encode("rot"));
  f.close();
  const r = await b.spfs(["pull", "one/1"]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, new RegExp(`sent bytes for ${big.digest} that hash to sha256:`));
  assert.match(r.stderr, /hint: the copy there is damaged: push it again/);
  assert.equal((await b.spfs(["info", big.digest])).code, 3, "the damaged blob is not in the store");
  await b.ok(["check"]);
});

remoteTest(
  "registry auth: a 401 says how to log in; env, config.json and a credential helper all work; no secret leaks",
  async (reg, a, b) => {
    writeTree(join(a.root, "src"), { "f.txt": "hello\n" });
    await a.ok(["commit", join(a.root, "src"), "-t", "auth/1"]);
    const anon = await a.spfs(["push", "auth/1"], { HOME: a.root });
    assert.equal(anon.code, 7, anon.stderr);
    assert.match(anon.stderr, /needs credentials/);
    assert.match(anon.stderr, new RegExp(`docker login 127\\.0\\.0\\.1:${reg.port}.*SPFS_REGISTRY_USER`));

    const wrong = await a.spfs(["push", "auth/1", "--json"], {
      SPFS_REGISTRY_USER: TOKEN_USER,
      SPFS_REGISTRY_PASSWORD: "not-the-password",
    });
    assert.equal(wrong.code, 7);
    assert.match(wrong.stderr, /refused the credentials from SPFS_REGISTRY_USER/);
    assert.ok(!wrong.stderr.includes("not-the-password") && !wrong.stdout.includes("not-the-password"));

    const env = { SPFS_REGISTRY_USER: TOKEN_USER, SPFS_REGISTRY_PASSWORD: TOKEN_PASSWORD };
    const pushed = await a.ok(["push", "auth/1", "--json"], env);
    assert.ok(!pushed.includes(TOKEN_PASSWORD));
    assert.ok(reg.tokenRequests.some((t) => t.authorized && t.scope === "repository:team/spfs:pull,push"));

    // Docker's config.json `auths`
    const dockerDir = join(b.root, "docker");
    Deno.mkdirSync(dockerDir);
    const auth = btoa(`${TOKEN_USER}:${TOKEN_PASSWORD}`);
    Deno.writeTextFileSync(
      join(dockerDir, "config.json"),
      JSON.stringify({ auths: { [reg.host]: { auth } } }),
    );
    const viaConfig = await b.spfs(["pull", "auth/1"], { DOCKER_CONFIG: dockerDir });
    assert.equal(viaConfig.code, 0, viaConfig.stderr);

    // a credential helper (docker-credential-helpers protocol) named by credHelpers
    const bin = join(b.root, "bin");
    Deno.mkdirSync(bin);
    writeTree(bin, {
      "docker-credential-spfstest": `#!/bin/sh\nread host\n[ "$host" = "${reg.host}" ] || exit 1\n` +
        `echo '{"Username":"${TOKEN_USER}","Secret":"${TOKEN_PASSWORD}"}'\n`,
    }, { "docker-credential-spfstest": 0o755 });
    Deno.writeTextFileSync(
      join(dockerDir, "config.json"),
      JSON.stringify({ credHelpers: { [reg.host]: "spfstest" } }),
    );
    const c = await withOrigin(reg.address());
    try {
      const viaHelper = await c.spfs(["pull", "auth/1", "--json"], {
        DOCKER_CONFIG: dockerDir,
        PATH: `${bin}:${Deno.env.get("PATH")}`,
      });
      assert.equal(viaHelper.code, 0, viaHelper.stderr);
      assert.ok(!viaHelper.stdout.includes(TOKEN_PASSWORD) && !viaHelper.stderr.includes(TOKEN_PASSWORD));
    } finally {
      await c.dispose();
    }
  },
  { auth: true },
);

remoteTest("two pulls of the same tag into one store at once both succeed", async (_reg, a, b) => {
  await bigTree(join(a.root, "src"), 3, 4);
  writeTree(
    join(a.root, "src"),
    Object.fromEntries([...Array(300)].map((_, i) => [`many/f${i}`, `${i}\n`])),
  );
  await a.ok(["commit", join(a.root, "src"), "-t", "pair/1"]);
  await a.ok(["push", "pair/1"]);
  const outs = await Promise.all([b.spfs(["pull", "pair/1"]), b.spfs(["pull", "pair/1"])]);
  for (const o of outs) assert.equal(o.code, 0, o.stderr);
  await b.ok(["check"]);
  const tag = JSON.parse(await b.ok(["tags", "pair/1", "--json"]));
  assert.equal(tag.length, 1, "one history entry, not one per pull");
  assert.equal(tag[0].digest, JSON.parse(await a.ok(["tags", "pair/1", "--json"]))[0].digest);
});

remoteTest(
  "a pull asks for the tag's manifest once and for each blob once",
  async (reg, a, b) => {
    writeTree(join(a.root, "src"), { "bin/tool": "#!/bin/sh\n", "lib/a.txt": "a\n", "lib/b.txt": "b\n" });
    await a.ok(["commit", join(a.root, "src"), "-t", "tools/1"]);
    await a.ok(["push", "tools/1"]);
    reg.requests.length = 0;
    await b.ok(["pull", "tools/1"]);
    await b.ok(["check"]);
    await reg.kill(); // the access log is complete once the registry is gone
    const gets = (kind: string) => reg.requests.filter((r) => r.startsWith(`GET /v2/team/spfs/${kind}/`));
    // the tag's manifest is the layer's own (setTag pushes the same bytes): no GET by digest tag
    assert.deepEqual(
      gets("manifests").map((r) => r.split("/").pop()),
      [`${encodeTag("tools/1")} 200`],
      reg.requests.join("\n"),
    );
    // the layer's config, its manifests tar and one pack: nothing asked twice
    const blobs = gets("blobs");
    assert.equal(blobs.length, 3, reg.requests.join("\n"));
    assert.equal(new Set(blobs).size, 3);
  },
  { accessLog: true },
);
