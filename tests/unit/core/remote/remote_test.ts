/** Remote addresses, tag encoding, auth challenges, credentials and the config file. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig, readConfigFile, writeRemote } from "../../../../core/config.ts";
import { SpfsError } from "../../../../core/errors.ts";
import { parseRemote } from "../../../../core/remote/address.ts";
import { credentialsFor } from "../../../../core/remote/oci/auth.ts";
import { buildTar, planPacks } from "../../../../core/remote/oci/mapping.ts";
import { tarEntries } from "../../../../core/store/packs.ts";
import { parseChallenge } from "../../../../core/remote/oci/registry.ts";
import {
  decodeTag,
  digestTag,
  encodeTag,
  historyNumber,
  historyTag,
} from "../../../../core/remote/tagname.ts";
import { RecordingRunner, setRunner } from "../../../../core/runner.ts";

Deno.test("remote addresses: oci:// over HTTPS unless loopback or insecure; file:// absolute; clear errors", () => {
  const a = parseRemote("origin", { address: "oci://ghcr.io/acme/spfs" });
  assert.deepEqual(a, {
    kind: "oci",
    name: "origin",
    address: "oci://ghcr.io/acme/spfs",
    host: "ghcr.io",
    repository: "acme/spfs",
    scheme: "https",
  });
  assert.equal(
    (parseRemote("l", { address: "oci://127.0.0.1:5000/x" }) as { scheme: string }).scheme,
    "http",
  );
  assert.equal(
    (parseRemote("l", { address: "oci://localhost:5000/x" }) as { scheme: string }).scheme,
    "http",
  );
  assert.equal(
    (parseRemote("i", { address: "oci://reg.lan:5000/x", insecure: true }) as { scheme: string }).scheme,
    "http",
  );
  assert.equal((parseRemote("p", { address: "oci://reg.lan/x" }) as { scheme: string }).scheme, "https");
  assert.deepEqual(parseRemote("f", { address: "file:///mnt/shared/spfs/" }), {
    kind: "file",
    name: "f",
    address: "file:///mnt/shared/spfs/",
    path: "/mnt/shared/spfs",
  });
  for (const bad of ["https://ghcr.io/x", "oci://ghcr.io", "oci://ghcr.io/Upper/Case", "file://relative"]) {
    assert.throws(() => parseRemote("r", { address: bad }), (e: SpfsError) => {
      assert.equal(e.code, "UsageError");
      assert.match(e.message, /remote "r"/);
      assert.match(e.hint!, /oci:\/\/registry\.example\.com/);
      return true;
    });
  }
});

Deno.test("tag encoding is reversible and never collides with history or digest tags", () => {
  for (const name of ["python/3.12", "a_b/c__d", "x", "tools/1.0-rc_2", "s_s/x_s", "a_h1"]) {
    const enc = encodeTag(name);
    assert.match(enc, /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
    assert.equal(decodeTag(enc), name);
  }
  assert.equal(encodeTag("python/3.12"), "python_s3.12");
  assert.equal(encodeTag("a_s/b"), "a__s_sb");
  assert.equal(historyTag("python_s3.12", 3), "python_s3.12_h3");
  assert.equal(historyNumber("python_s3.12", "python_s3.12_h3"), 3);
  assert.equal(historyNumber("python_s3.12", "python_s3.12"), undefined);
  assert.equal(historyNumber("a", "a__h2"), undefined, "a__h2 is the tag a_h2, not history of a");
  assert.equal(decodeTag("python_s3.12_h3"), undefined);
  const d = `sha256:${"ab".repeat(32)}`;
  assert.equal(digestTag(d), `_sha256-${"ab".repeat(32)}`);
  assert.equal(decodeTag(digestTag(d)), undefined);
  assert.throws(() => encodeTag(`a/${"v".repeat(120)}`), /too long for a registry/);
  assert.throws(() => encodeTag("bad tag"), /invalid tag name/);
});

Deno.test("WWW-Authenticate challenges: Bearer with quoted params, Basic, junk", () => {
  assert.deepEqual(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"',
    ),
    ["bearer", {
      realm: "https://auth.docker.io/token",
      service: "registry.docker.io",
      scope: "repository:a/b:pull",
    }],
  );
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), ["basic", { realm: "Registry Realm" }]);
  assert.deepEqual(parseChallenge(""), ["", {}]);
});

Deno.test("credentials: env first, then config.json auths, then helpers through the runner", async () => {
  const dir = Deno.makeTempDirSync();
  const saved = ["SPFS_REGISTRY_USER", "SPFS_REGISTRY_PASSWORD", "DOCKER_CONFIG"].map((
    k,
  ) => [k, Deno.env.get(k)]);
  const rec = new RecordingRunner(() => ({
    code: 0,
    stdout: '{"ServerURL":"x","Username":"u2","Secret":"from-helper"}',
    stderr: "",
  }));
  const prev = setRunner(rec);
  try {
    Deno.env.delete("SPFS_REGISTRY_USER");
    Deno.env.delete("SPFS_REGISTRY_PASSWORD");
    Deno.env.set("DOCKER_CONFIG", dir);
    assert.equal(await credentialsFor("reg.example:5000"), undefined);
    Deno.writeTextFileSync(
      join(dir, "config.json"),
      JSON.stringify({
        auths: { "https://reg.example:5000": { auth: btoa("u1:p:w") } },
        credHelpers: { "ghcr.io": "gh" },
        credsStore: "desktop",
      }),
    );
    assert.deepEqual(await credentialsFor("reg.example:5000"), {
      username: "u1",
      password: "p:w",
      source: join(dir, "config.json"),
    });
    assert.equal((await credentialsFor("ghcr.io"))?.password, "from-helper");
    assert.equal((await credentialsFor("other.io"))?.source, "docker-credential-desktop");
    assert.deepEqual(rec.calls, [["docker-credential-gh", "get"], [
      "docker-credential-desktop",
      "get",
    ]]);
    assert.deepEqual(rec.stdins, ["ghcr.io", "other.io"]);
    Deno.env.set("SPFS_REGISTRY_USER", "envuser");
    Deno.env.set("SPFS_REGISTRY_PASSWORD", "envpass");
    assert.equal((await credentialsFor("ghcr.io"))?.username, "envuser");
  } finally {
    setRunner(prev);
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k!) : Deno.env.set(k!, v);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config file: remotes and settings, precedence flag > env > file, clear errors", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "spfs", "config.toml");
  const saved = ["SPFS_CONFIG", "SPFS_MOUNTPOINT", "SPFS_SERVICE_IDLE_TIMEOUT"].map((
    k,
  ) => [k, Deno.env.get(k)]);
  try {
    Deno.env.set("SPFS_CONFIG", file);
    Deno.env.delete("SPFS_MOUNTPOINT");
    Deno.env.delete("SPFS_SERVICE_IDLE_TIMEOUT");
    assert.deepEqual((await loadConfig()).remotes, {}, "a missing file is an empty one");
    await writeRemote(file, "origin", { address: "oci://127.0.0.1:5000/team/spfs" });
    await writeRemote(file, "nfs", { address: "file:///mnt/spfs" });
    Deno.writeTextFileSync(
      file,
      'mountpoint = "/from-file"\nidle_timeout = 42\n' + Deno.readTextFileSync(file),
    );
    let cfg = await loadConfig();
    assert.equal(cfg.mountpoint, "/from-file");
    assert.equal(cfg.idleTimeoutS, 42);
    assert.deepEqual(Object.keys(cfg.remotes).sort(), ["nfs", "origin"]);
    Deno.env.set("SPFS_MOUNTPOINT", "/from-env");
    assert.equal((await loadConfig()).mountpoint, "/from-env");
    assert.equal((await loadConfig({ mountpoint: "/from-flag" })).mountpoint, "/from-flag");
    await writeRemote(file, "nfs", undefined);
    cfg = await loadConfig();
    assert.deepEqual(Object.keys(cfg.remotes), ["origin"]);
    assert.equal(cfg.mountpoint, "/from-env", "other settings survive a rewrite");
    for (
      const [text, why] of [
        ["mountpoint = ", /config file .*config\.toml: /],
        ["colour = 1", /unknown key "colour"/],
        ['idle_timeout = "x"', /"idle_timeout" must be a number/],
        ["[remote.a]\ninsecure = true", /\[remote\.a\] needs address/],
      ] as const
    ) {
      Deno.writeTextFileSync(file, text);
      await assert.rejects(
        () => readConfigFile(file),
        (e: SpfsError) => e.code === "UsageError" && why.test(e.message),
      );
    }
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k!) : Deno.env.set(k!, v);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("packs: sorted by digest, cut at 16 MiB; tars are deterministic and round-trip", async () => {
  const d = (i: number) => `sha256:${i.toString(16).padStart(64, "0")}`;
  const packs = planPacks([[d(3), 9 << 20], [d(1), 9 << 20], [d(2), 1], [d(4), 5]]);
  assert.deepEqual(packs.map((p) => p.map(([x]) => x)), [[d(1), d(2), d(3)], [d(4)]]);
  const entries = [{ name: "aa", bytes: new Uint8Array([1, 2]) }, {
    name: "bb",
    bytes: new Uint8Array(1000),
  }];
  const t1 = await buildTar(entries);
  const t2 = await buildTar(entries);
  assert.deepEqual(t1, t2);
  // offsets found by our walker hold exactly each entry's bytes
  const back = tarEntries(t1).map((e) => ({ name: e.name, bytes: t1.subarray(e.offset, e.offset + e.size) }));
  assert.deepEqual(back, entries);
  assert.throws(() => tarEntries(t1.subarray(0, 1024)), /end-of-archive/);
  assert.throws(() => tarEntries(t1.subarray(0, 2000)), /cut off/);
  const bad = t1.slice();
  bad[257] = 0x41; // not ustar
  assert.throws(() => tarEntries(bad), /not ustar/);
});
