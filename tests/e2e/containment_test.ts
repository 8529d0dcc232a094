/**
 * Failure containment: a full disk, an exhausted fd table, an exception inside a FUSE callback and
 * an external unmount each stay contained, lose nothing, and say what happened.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { selfArgv } from "../../core/client/rpc.ts";
import { runner } from "../../core/runner.ts";
import { PACKED_BELOW } from "../../core/store/packs.ts";
import { Sandbox } from "../support/sandbox.ts";
import { exists, fuseTest, spfsLine, waitFor, writeTree } from "../support/fuse.ts";

const MiB = 1024 * 1024;
const isRoot = Deno.uid() === 0;

/** Every file under `dir` (relative paths), for "nothing partial was left" checks. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      if (e.isDirectory) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  if (exists(dir)) walk(dir, "");
  return out.sort();
}

/** JSON lines of the service log. */
function logLines(sb: Sandbox): Record<string, any>[] {
  return Deno.readTextFileSync(join(sb.runtime, "service.log")).split("\n").filter(Boolean).map((l) =>
    JSON.parse(l)
  );
}

fuseTest(
  "ENOSPC: commit and copy-up on a full storage volume fail cleanly, with no partial object",
  async () => {
    if (!isRoot) {
      console.log("  SKIP ENOSPC: mounting a small tmpfs needs root");
      return;
    }
    const sb = Sandbox.create();
    const vol = join(sb.root, "vol");
    Deno.mkdirSync(vol);
    assert.equal((await runner().run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", vol])).code, 0);
    try {
      const env = { SPFS_STORAGE_ROOT: join(vol, "store") };
      const src = join(sb.root, "src");
      Deno.mkdirSync(src);
      await runner().run([
        "sh",
        "-c",
        `head -c ${36 * MiB} /dev/urandom > ${src}/big.bin && echo hi > ${src}/small`,
      ]);
      await sb.ok(["commit", src, "-t", "base"], env);
      const objects = join(vol, "store/objects");
      const before = files(objects);

      // 1. importing a 40 MiB tree into the ~28 MiB left
      const more = join(sb.root, "more");
      Deno.mkdirSync(more);
      await runner().run(["sh", "-c", `head -c ${40 * MiB} /dev/urandom > ${more}/huge.bin`]);
      const full = await sb.spfs(["commit", more, "-t", "more"], env);
      assert.equal(full.code, 6, full.stderr);
      assert.match(full.stderr, /storage full while importing .*huge\.bin[\s\S]*hint: free space/);
      assert.deepEqual(files(objects), before, "no object, partial or whole, was added");
      assert.deepEqual(files(join(vol, "store/tmp")), [], "the partial tmp file was removed");

      // 2. copy-up of the 36 MiB lower file: ENOSPC to the writer, nothing left in scratch
      const M = sb.mountpoint;
      const copyUp = await sb.spfs([
        "run",
        "--keep-runtime",
        "--name",
        "full",
        "base",
        "--",
        "sh",
        "-c",
        // dd names the errno of the failed write (dash's echo says only "I/O error")
        `echo tail | dd of=${M}/big.bin oflag=append conv=notrunc status=none; echo "append=$?"; ` +
        `echo ok > ${M}/note && cat ${M}/note && sha256sum ${M}/big.bin`,
      ], env);
      assert.equal(copyUp.code, 0, copyUp.stderr);
      assert.match(copyUp.stderr, /No space left on device/);
      assert.match(copyUp.stdout, /append=[1-9]/);
      assert.match(copyUp.stdout, /\nok\n/, "the runtime keeps working for writes that fit");
      const lowerSha = (await runner().run(["sha256sum", `${src}/big.bin`])).stdout.split(" ")[0];
      assert.ok(copyUp.stdout.includes(lowerSha), "the file still reads as the lower layer's bytes");
      const rt = JSON.parse(await sb.ok(["runtime", "info", "full", "--json"], env));
      assert.deepEqual(files(rt.scratch), ["note"], "no partial copy-up in scratch");
      assert.deepEqual(files(join(rt.scratch, "..", "work")), [], "no partial copy-up in work/");

      // 3. committing a runtime whose new data does not fit: StorageFull, scratch intact
      const grow = await sb.spfs([
        "run",
        "--rerun",
        "full",
        "--",
        "sh",
        "-c",
        `head -c ${20 * MiB} /dev/urandom > ${M}/new.bin && sha256sum ${M}/new.bin > ${sb.root}/new.sha && ${
          spfsLine(["commit", "-t", "full/1"])
        }`,
      ], env);
      assert.equal(grow.code, 6, grow.stderr);
      assert.match(grow.stderr, /storage full while importing[\s\S]*hint: free space/);
      assert.deepEqual(files(join(vol, "store/tmp")), []);
      assert.equal((await sb.spfs(["tags"], env)).stdout.includes("full/1"), false);
      const again = await sb.ok(["run", "--rerun", "full", "--", "sha256sum", `${M}/new.bin`], env);
      assert.equal(again.split(" ")[0], Deno.readTextFileSync(join(sb.root, "new.sha")).split(" ")[0]);

      // the store is consistent and the service still serves
      const check = JSON.parse(await sb.ok(["check", "--json"], env));
      assert.equal(check.ok, true, JSON.stringify(check));
      assert.equal(await sb.ok(["run", "base", "--", "cat", `${M}/small`], env), "hi\n");
    } finally {
      await sb.dispose();
      await runner().run(["umount", "-l", vol]);
      await runner().run(["rm", "-rf", sb.root]);
    }
  },
);

fuseTest("EMFILE: a service low on file descriptors keeps serving every open and read", async () => {
  const sb = Sandbox.create();
  try {
    // small files are served from a pack (a dup of its fd each), large ones from their own file
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`many/${i}`, `${i}\n`]));
    const large = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`large/${i}`, `${i}\n`.padEnd(PACKED_BELOW, ".")]),
    );
    writeTree(join(sb.root, "src"), { f: "data\n", g: "other\n", ...many, ...large });
    await sb.ok(["commit", join(sb.root, "src"), "-t", "fd"]);
    // a service limited to 96 descriptors: fewer than the files read below
    const argv = selfArgv(["service", "--foreground", "--log-file", join(sb.runtime, "service.log")]);
    Deno.mkdirSync(sb.runtime, { recursive: true, mode: 0o700 });
    const svc = new Deno.Command("prlimit", {
      args: ["--nofile=96:96", "--", ...argv],
      env: sb.env,
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitFor("the limited service", async () => (await sb.spfs(["status"])).code === 0);
    const M = sb.mountpoint;
    const py = `
import os
fds = [os.open("${M}/f", os.O_RDONLY) for _ in range(500)]
print("held", len(fds))
print("read", os.pread(fds[0], 5, 0).decode().strip())
print("distinct", sum(1 for i in range(200) if open(f"${M}/many/{i}").read() == f"{i}\\n"))
print("large", sum(1 for i in range(40) if open(f"${M}/large/{i}").read(8).startswith(f"{i}\\n")))
print("stat", os.stat("${M}/g").st_size)
for fd in fds: os.close(fd)
print("after", open("${M}/f").read().strip(), open("${M}/g").read().strip())
`;
    const out = await sb.ok(["run", "fd", "--", "python3", "-c", py]);
    console.log(`  ${out.trim().replaceAll("\n", "; ")}`);
    // an open costs the service no descriptor; it keeps one per inode in use and gives the oldest
    // back when it runs out
    assert.match(out, /held 500\n/, "500 opens of one file");
    assert.match(out, /read data\n/);
    assert.match(out, /distinct 200\n/, "200 files read, more than the service's 96 descriptors");
    assert.match(out, /large 40\n/, "40 large files read once the small ones hold every descriptor");
    assert.match(out, /stat 6\n/);
    assert.match(out, /after data other/);
    assert.equal(JSON.parse(await sb.ok(["status", "--json"])).healthy, true);
    await sb.ok(["service", "--stop"]);
    assert.equal((await svc.status).code, 0);
  } finally {
    await sb.dispose();
  }
});

fuseTest(
  "exception in a FUSE callback: EIO for that request, logged with op and path, service lives",
  async () => {
    const sb = Sandbox.create();
    try {
      Deno.mkdirSync(join(sb.root, "src/dir"), { recursive: true });
      Deno.symlinkSync("this-target-will-vanish", join(sb.root, "src/dir/lost"));
      Deno.writeTextFileSync(join(sb.root, "src/kept"), "kept\n");
      const c = JSON.parse(await sb.ok(["commit", join(sb.root, "src"), "-t", "exc", "--json"]));
      assert.ok(c.digest);
      // remove a symlink's blob behind spfs's back: reading its target throws inside readlink
      const blob =
        (await runner().run(["sh", "-c", `grep -rl 'this-target-will-vanish' ${sb.storage}/objects`]))
          .stdout.trim();
      assert.ok(blob, "found the blob file");
      Deno.chmodSync(join(blob, ".."), 0o755);
      Deno.removeSync(blob);
      const M = sb.mountpoint;
      const r = await sb.spfs([
        "run",
        "exc",
        "--",
        "sh",
        "-c",
        `cat ${M}/dir/lost; echo "cat=$?"; cat ${M}/kept`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Input\/output error/);
      assert.match(r.stdout, /cat=1\nkept\n/, "the next request in the same runtime is served");
      const hit = logLines(sb).find((l) => l.properties?.op === "readlink" && l.level === "ERROR");
      assert.ok(hit, "the failure is logged");
      assert.equal(hit.properties.path, "/dir/lost");
      assert.equal(hit.properties.errno, 5);
      assert.match(hit.message, /readlink failed: NotFound/);
      assert.equal(JSON.parse(await sb.ok(["status", "--json"])).fuse.errors >= 1, true);
      assert.equal(await sb.ok(["run", "exc", "--", "cat", `${M}/kept`]), "kept\n");
    } finally {
      await sb.dispose();
    }
  },
);

fuseTest(
  "fatal worker error: an external unmount ends the service with exit 1 and a logged reason; the next run recovers",
  async () => {
    const sb = Sandbox.create();
    try {
      Deno.mkdirSync(join(sb.root, "src"));
      Deno.writeTextFileSync(join(sb.root, "src/f"), "x\n");
      await sb.ok(["commit", join(sb.root, "src"), "-t", "fatal"]);
      const log = join(sb.runtime, "service.log");
      Deno.mkdirSync(sb.runtime, { recursive: true, mode: 0o700 });
      const svc = sb.command(["service", "--foreground", "--log-file", log]).spawn();
      await waitFor("the service", async () => (await sb.spfs(["status"])).code === 0);
      const u = await runner().run(["fusermount3", "-u", "-z", sb.mountpoint]);
      assert.equal(u.code, 0, u.stderr);
      const st = await svc.output();
      assert.equal(st.code, 1, "the service exits non-zero");
      const reason = logLines(sb).find((l) => /FUSE loop ended unexpectedly/.test(l.message));
      assert.ok(reason, `the reason is logged:\n${Deno.readTextFileSync(log)}`);
      assert.equal(reason.level, "ERROR");
      assert.ok(!exists(join(sb.runtime, "service.sock")), "the socket is removed on the way out");
      assert.equal(await sb.ok(["run", "fatal", "--", "cat", `${sb.mountpoint}/f`]), "x\n");
    } finally {
      await sb.dispose();
    }
  },
);
