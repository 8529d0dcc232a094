/** `spfs doctor`: each check is broken on its own in a temp setup, and its fix is asserted. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkSyntheticConf, syntheticConfHas } from "../../core/platform/checks.ts";
import { loadConfig } from "../../core/config.ts";
import { SpfsError } from "../../core/errors.ts";
import { runner } from "../../core/runner.ts";
import type { DoctorCheck } from "../../core/client/doctor.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, waitFor, writeTree } from "../support/fuse.ts";

const isRoot = Deno.uid() === 0;

async function doctor(sb: Sandbox, env: Record<string, string> = {}) {
  const r = await sb.spfs(["doctor", "--json"], env);
  const out = JSON.parse(r.stdout) as { ok: boolean; checks: DoctorCheck[] };
  const by = (name: string) => out.checks.find((c) => c.name === name)!;
  return { code: r.code, ok: out.ok, by, failed: out.checks.filter((c) => c.status === "fail") };
}

/** Asserts that exactly `name` failed, with `code`, and a fix matching `fix`. */
async function expectFail(
  sb: Sandbox,
  env: Record<string, string>,
  name: string,
  code: string,
  fix: RegExp,
) {
  const d = await doctor(sb, env);
  assert.equal(d.code, 1, `doctor exits 1 when ${name} fails`);
  assert.equal(d.ok, false);
  assert.deepEqual(d.failed.map((c) => c.name), [name], `only ${name} fails: ${JSON.stringify(d.failed)}`);
  assert.equal(d.by(name).code, code);
  assert.match(d.by(name).fix ?? "", fix);
  return d.by(name);
}

async function mountTmpfs(dir: string, opts: string) {
  Deno.mkdirSync(dir, { recursive: true });
  const r = await runner().run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir]);
  assert.equal(r.code, 0, r.stderr);
}

fuseTest("doctor: every check fails alone when its one thing is broken, with the exact fix", async () => {
  const sb = Sandbox.create();
  const mounts: string[] = [];
  try {
    writeTree(join(sb.root, "src"), { "f": "x\n" });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "d"]);

    // healthy, with the service up: all pass, exit 0, and the text form says so
    await sb.ok(["service"]);
    const good = await doctor(sb);
    assert.equal(good.code, 0, JSON.stringify(good.failed));
    assert.ok(good.ok);
    assert.match(good.by("libfuse").detail, /libfuse3\.so\.3 3\.\d+/);
    assert.match(good.by("service").detail, /^pid \d+, version .*, protocol 1\./);
    assert.match(good.by("database").detail, /quick_check ok/);
    assert.match(await sb.ok(["doctor"]), /all checks passed/);
    await sb.ok(["service", "--stop"]);

    // libfuse missing
    await expectFail(
      sb,
      { SPFS_LIBFUSE: "/nonexistent/libfuse3.so.3" },
      "libfuse",
      "FuseNotInstalled",
      /apt-get install -y fuse3/,
    );
    // /dev/fuse missing, or not a device
    await expectFail(
      sb,
      { SPFS_FUSE_DEVICE: join(sb.root, "no-fuse") },
      "fuse device",
      "FuseNotLoaded",
      /sudo modprobe fuse/,
    );
    await expectFail(
      sb,
      { SPFS_FUSE_DEVICE: join(sb.root, "src/f") },
      "fuse device",
      "FuseNotLoaded",
      /mknod -m 666 \/dev\/fuse c 10 229/,
    );
    // mount point missing
    const missing = join(sb.root, "no/mnt");
    await expectFail(
      sb,
      { SPFS_MOUNTPOINT: missing },
      "mount point",
      "MountPointMissing",
      new RegExp(`sudo mkdir -p ${missing}`),
    );

    // storage: not writable, nearly full (tmpfs needs root to mount)
    if (isRoot) {
      const ro = join(sb.root, "ro");
      await mountTmpfs(ro, "ro,size=1g");
      mounts.push(ro);
      const c = await expectFail(
        sb,
        { SPFS_STORAGE_ROOT: join(ro, "store") },
        "storage",
        "StorageError",
        new RegExp(`sudo mount -o remount,rw ${ro}`),
      );
      assert.match(c.detail, /not writable: Read-only file system/);
      const small = join(sb.root, "small");
      await mountTmpfs(small, "size=16m");
      mounts.push(small);
      const f = await expectFail(
        sb,
        { SPFS_STORAGE_ROOT: small },
        "storage",
        "StorageFull",
        /free space there \(df -h .*\), or set SPFS_STORAGE_ROOT/,
      );
      assert.match(f.detail, /only 1\d MiB free/);
      // a foreign filesystem on the mount point
      const mp = join(sb.root, "othermnt");
      await mountTmpfs(mp, "size=1m");
      mounts.push(mp);
      await expectFail(
        sb,
        { SPFS_MOUNTPOINT: mp },
        "mount point",
        "MountFailed",
        new RegExp(`sudo umount ${mp}`),
      );
    } else {
      const locked = join(sb.root, "locked");
      Deno.mkdirSync(locked, { mode: 0o555 });
      await expectFail(
        sb,
        { SPFS_STORAGE_ROOT: join(locked, "s") },
        "storage",
        "StorageError",
        /sudo chown -R/,
      );
      console.log("  (not root: the read-only, nearly-full and foreign-mount cases need tmpfs mounts)");
    }

    // database: a damaged header, then a damaged b-tree page
    const db = join(sb.storage, "spfs.db");
    const pristine = Deno.readFileSync(db);
    const damaged = pristine.slice();
    damaged.set(new TextEncoder().encode("this is not sqlite"), 0);
    Deno.writeFileSync(db, damaged);
    const hdr = await expectFail(sb, {}, "database", "DatabaseCorrupt", /sqlite3 .*spfs\.db\.bad \.recover/);
    assert.match(hdr.detail, /cannot be read: file is not a database/);
    const page = pristine.slice();
    const pageSize = new DataView(pristine.buffer).getUint16(16);
    assert.ok(pristine.length >= 2 * pageSize, "the database has more than one page");
    // the header of every page after the first (some may be free, so hit them all)
    for (let off = pageSize; off < page.length; off += pageSize) page.fill(0xa5, off, off + 64);
    Deno.writeFileSync(db, page);
    const qc = await expectFail(sb, {}, "database", "DatabaseCorrupt", /\.recover/);
    assert.match(qc.detail, /PRAGMA quick_check|cannot be read/);
    Deno.writeFileSync(db, pristine);

    // service: another protocol major answers on the socket
    const sock = join(sb.runtime, "service.sock");
    const fake = Deno.listen({ transport: "unix", path: sock });
    const serving = (async () => {
      for await (const conn of fake) {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        const req = JSON.parse(new TextDecoder().decode(buf.subarray(0, n ?? 0)));
        const result = { healthy: true, version: "9.0.0", protocol: "99.0", uptime_s: 1, pid: 1 };
        await conn.write(
          new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", id: req.id, result }) + "\n"),
        );
        conn.close();
      }
    })();
    await expectFail(sb, {}, "service", "ProtocolMismatch", /spfs service --stop && spfs service/);
    fake.close();
    await serving.catch(() => {});

    // service killed: a stale socket and a stale FUSE mount (ENOTCONN)
    await sb.ok(["run", "d", "--", "true"]);
    Deno.kill(sb.servicePid()!, "SIGKILL");
    await waitFor("the mount to go stale", () => {
      try {
        Deno.statSync(sb.mountpoint);
        return false;
      } catch {
        return true;
      }
    });
    const stale = await doctor(sb);
    assert.equal(stale.code, 1);
    assert.deepEqual(stale.failed.map((c) => c.name).sort(), ["mount point", "service", "stale mounts"]);
    const unmount = `fusermount3 -u -z ${sb.mountpoint}`;
    assert.equal(stale.by("mount point").fix, unmount);
    // other stale mounts on this host (not ours) may be listed too
    assert.ok(stale.by("stale mounts").fix!.split(" && ").includes(unmount));
    assert.match(stale.by("stale mounts").detail, /\d+ spfs mounts? (is|are) stale/);
    assert.ok(stale.by("stale mounts").detail.includes(sb.mountpoint));
    assert.equal(stale.by("service").code, "ServiceNotRunning");
    assert.match(stale.by("service").fix!, new RegExp(`rm ${sock}`));
    // a stale mount at another mount point (another root, another user's test) only warns
    Deno.mkdirSync(join(sb.root, "mp2"));
    const elsewhere = await doctor(sb, { SPFS_MOUNTPOINT: join(sb.root, "mp2") });
    assert.deepEqual(elsewhere.failed.map((c) => c.name), ["service"]);
    assert.equal(elsewhere.by("stale mounts").status, "warn");
    assert.ok(elsewhere.by("stale mounts").fix!.split(" && ").includes(unmount));
    assert.match(elsewhere.by("stale mounts").detail, /so spfs still works/);
    // the text form prints each fix
    const text = await sb.spfs(["doctor"]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /FAIL {2}stale mounts .*\n\s+fix: fusermount3 -u -z/);
    assert.match(text.stdout, /3 of 8 checks failed/);
    // following the fixes makes doctor pass
    assert.equal((await runner().run(unmount.split(" "))).code, 0);
    Deno.removeSync(sock);
    const fixed = await doctor(sb);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.failed));
  } finally {
    for (const m of mounts.reverse()) await runner().run(["umount", "-l", m]);
    await sb.dispose();
  }
});

Deno.test("doctor: macOS mount point needs an /etc/synthetic.conf line (checked against a temp file)", async () => {
  assert.ok(syntheticConfHas("# comment\nspfs\n", "spfs"));
  assert.ok(syntheticConfHas("data\tUsers/me/data\nspfs\tUsers/me/spfs\n", "spfs"));
  assert.ok(!syntheticConfHas("# spfs\nspfsx\n", "spfs"));
  const dir = Deno.makeTempDirSync();
  try {
    const conf = join(dir, "synthetic.conf");
    Deno.writeTextFileSync(conf, "other\n");
    const cfg = { ...(await loadConfig()), mountpoint: "/spfs-doctor-test-absent" };
    assert.throws(() => checkSyntheticConf(cfg, conf), (e: unknown) => {
      assert.ok(e instanceof SpfsError);
      assert.equal(e.code, "MountPointMissing");
      assert.match(e.hint!, /printf 'spfs-doctor-test-absent\\n' \| sudo tee -a .*synthetic\.conf/);
      return true;
    });
    Deno.writeTextFileSync(conf, "spfs-doctor-test-absent\n");
    checkSyntheticConf(cfg, conf);
    // nested mount points are not synthetic.conf's business
    checkSyntheticConf({ ...cfg, mountpoint: "/a/b" }, conf);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
