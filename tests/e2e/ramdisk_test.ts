/**
 * RAM disks: the exact hdiutil/diskutil/mount argv through the command runner (macOS paths run here
 * against recorded outputs), and a real tmpfs on Linux used as a runtime's scratch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Config, loadConfig } from "../../core/config.ts";
import {
  apfsBackend,
  createRamdisk,
  destroyRamdisk,
  listRamdisks,
  parseSize,
  RamdiskDb,
  tmpfsBackend,
} from "../../core/runtime/ramdisk.ts";
import { type RecordingRunner, runner, type RunResult } from "../../core/runner.ts";
import { rejectsWith, res, withRecordingRunner } from "../support/recording_runner.ts";
import { mountsAt } from "../../ffi/sys.ts";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

/** A recording runner plus a config whose storage root and runtime dir are in a temp dir. */
const withRecorder = (
  answer: (argv: string[]) => RunResult,
  fn: (rec: RecordingRunner, cfg: Config) => Promise<void>,
) =>
  withRecordingRunner(
    answer,
    async (rec, dir) =>
      fn(rec, await loadConfig({ storage: join(dir, "store"), runtimeDir: join(dir, "run") })),
  );
const rejects = rejectsWith;

Deno.test("ramdisk sizes: 1024-based units, whole sectors, clear errors", () => {
  assert.equal(parseSize("256M"), 256 * 1024 * 1024);
  assert.equal(parseSize("2G"), 2 * 1024 ** 3);
  assert.equal(parseSize("1.5GiB"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("1048576"), 1048576);
  assert.throws(() => parseSize("lots"), /invalid size "lots"/);
  assert.throws(() => parseSize("12K"), /too small/);
});

Deno.test("macOS ramdisk create: hdiutil attach -nomount ram://SECTORS, then diskutil erasevolume APFS", async () => {
  await withRecorder((argv) => {
    if (argv[0] === "hdiutil") return res(0, "/dev/disk4          \t                               \t\n");
    return res(0, "Started erase on disk4\nFinished erase on disk4\n");
  }, async (rec, cfg) => {
    const rd = await createRamdisk(cfg, "fast", parseSize("2G"), apfsBackend);
    assert.deepEqual(rec.calls, [
      ["hdiutil", "attach", "-nomount", "ram://4194304"],
      ["diskutil", "erasevolume", "APFS", "fast", "/dev/disk4"],
    ]);
    assert.equal(rd.mountpoint, "/Volumes/fast");
    assert.equal(rd.device, "/dev/disk4");
    assert.deepEqual(new RamdiskDb(cfg.storageRoot).get("fast")?.device, "/dev/disk4", "recorded");
    await rejects(createRamdisk(cfg, "fast", parseSize("1G"), apfsBackend), "UsageError", /already exists/);
    assert.equal(rec.calls.length, 2, "a taken name runs nothing");
  });
});

Deno.test("macOS ramdisk create failures: no device; erase fails -> the device is detached, nothing recorded", async () => {
  await withRecorder(
    () => res(1, "", "hdiutil: attach failed - Cannot allocate memory\n"),
    async (rec, cfg) => {
      const e = await rejects(
        createRamdisk(cfg, "big", parseSize("64G"), apfsBackend),
        "MountFailed",
        /hdiutil could not create a RAM device: hdiutil: attach failed - Cannot allocate memory/,
      );
      assert.match(e.hint!, /smaller --size/);
      assert.deepEqual(rec.calls, [["hdiutil", "attach", "-nomount", "ram://134217728"]]);
      assert.deepEqual(new RamdiskDb(cfg.storageRoot).all(), []);
    },
  );
  await withRecorder((argv) => {
    if (argv[1] === "attach") return res(0, "/dev/disk5\n");
    if (argv[0] === "diskutil") return res(1, "", "Error: -69888: Couldn't unmount disk\n");
    return res(0, '"disk5" ejected.\n');
  }, async (rec, cfg) => {
    await rejects(
      createRamdisk(cfg, "bad", parseSize("256M"), apfsBackend),
      "MountFailed",
      /diskutil could not format \/dev\/disk5 as APFS: Error: -69888/,
    );
    assert.deepEqual(rec.calls, [
      ["hdiutil", "attach", "-nomount", "ram://524288"],
      ["diskutil", "erasevolume", "APFS", "bad", "/dev/disk5"],
      ["hdiutil", "detach", "/dev/disk5"],
    ]);
    assert.deepEqual(new RamdiskDb(cfg.storageRoot).all(), []);
  });
});

Deno.test("macOS ramdisk destroy: hdiutil detach; 'Resource busy' is RamdiskBusy; --force; already gone", async () => {
  let detach: RunResult = res(1, "", "hdiutil: detach failed - Resource busy\n");
  await withRecorder((argv) => {
    if (argv[1] === "attach") return res(0, "/dev/disk6\n");
    if (argv[0] === "diskutil") return res(0);
    return detach;
  }, async (rec, cfg) => {
    await createRamdisk(cfg, "r", parseSize("256M"), apfsBackend);
    rec.calls.length = 0;
    const e = await rejects(
      destroyRamdisk(cfg, "r", false, apfsBackend),
      "RamdiskBusy",
      /in use: hdiutil: detach failed - Resource busy/,
    );
    assert.match(e.hint!, /spfs ramdisk destroy r --force/);
    assert.equal(e.exitCode, 1);
    assert.ok(new RamdiskDb(cfg.storageRoot).get("r"), "still recorded after a refused destroy");
    detach = res(0, '"disk6" ejected.\n');
    await destroyRamdisk(cfg, "r", true, apfsBackend);
    assert.deepEqual(rec.calls, [["hdiutil", "detach", "/dev/disk6"], [
      "hdiutil",
      "detach",
      "-force",
      "/dev/disk6",
    ]]);
    assert.deepEqual(new RamdiskDb(cfg.storageRoot).all(), []);
    await rejects(destroyRamdisk(cfg, "r", false, apfsBackend), "RamdiskNotFound", /no RAM disk named r/);
    // detached behind our back (reboot, Finder): destroy just forgets it
    await createRamdisk(cfg, "r2", parseSize("256M"), apfsBackend);
    detach = res(1, "", "hdiutil: detach failed - No such file or directory\n");
    await destroyRamdisk(cfg, "r2", false, apfsBackend);
    assert.deepEqual(listRamdisks(cfg, apfsBackend), []);
  });
});

Deno.test("Linux ramdisk create argv: mount -t tmpfs -o size=BYTES,mode=0700 (root only)", async () => {
  await withRecorder(() => res(0), async (rec, cfg) => {
    if (Deno.uid() !== 0) {
      await rejects(
        createRamdisk(cfg, "t", parseSize("256M"), tmpfsBackend),
        "PermissionDenied",
        /needs root/,
      );
      assert.deepEqual(rec.calls, []);
      return;
    }
    const rd = await createRamdisk(cfg, "t", parseSize("256M"), tmpfsBackend);
    const mp = join(cfg.runtimeDir, "ramdisks/t");
    assert.deepEqual(rec.calls, [["mount", "-t", "tmpfs", "-o", "size=268435456,mode=0700", "spfs-t", mp]]);
    assert.equal(rd.mountpoint, mp);
  });
  await withRecorder(() => res(32, "", "mount: /x: permission denied.\n"), async (_rec, cfg) => {
    if (Deno.uid() !== 0) return;
    await rejects(
      createRamdisk(cfg, "t", parseSize("256M"), tmpfsBackend),
      "MountFailed",
      /permission denied/,
    );
    assert.deepEqual(new RamdiskDb(cfg.storageRoot).all(), [], "nothing recorded");
    assert.throws(() => Deno.statSync(join(cfg.runtimeDir, "ramdisks/t")), "the mount point dir was removed");
  });
});

fuseTest(
  "Linux ramdisk for real: create 256M, --scratch ramdisk:NAME holds the runtime, destroy",
  async () => {
    if (Deno.uid() !== 0) {
      console.log("  SKIP real tmpfs ramdisk: mounting tmpfs needs root (the argv tests above still ran)");
      return;
    }
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "lower.txt": "from the layer\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "rd"]);
      const made = JSON.parse(
        await sb.ok(["ramdisk", "create", "--size", "256M", "--name", "scr", "--json"]),
      );
      assert.equal(made.size_bytes, 256 * 1024 * 1024);
      const m = mountsAt(made.mountpoint);
      assert.equal(m.at(-1)?.fstype, "tmpfs", "a tmpfs is mounted");
      const taken = await sb.spfs(["ramdisk", "create", "--size", "256M", "--name", "scr"]);
      assert.equal(taken.code, 2);
      assert.match(taken.stderr, /already exists/);
      assert.equal(mountsAt(made.mountpoint).length, 1, "a refused create mounts nothing");

      const M = sb.mountpoint;
      const out = await sb.ok([
        "run",
        "--scratch",
        "ramdisk:scr",
        "--keep-runtime",
        "--name",
        "onram",
        "rd",
        "--",
        "sh",
        "-c",
        `echo new > ${M}/new.txt && echo more >> ${M}/lower.txt && cat ${M}/lower.txt`,
      ]);
      assert.equal(out, "from the layer\nmore\n");
      const info = JSON.parse(await sb.ok(["runtime", "info", "onram", "--json"]));
      const real = Deno.realPathSync(info.scratch);
      assert.ok(real.startsWith(`${made.mountpoint}/`), `scratch ${real} is on the ramdisk`);
      assert.equal(Deno.readTextFileSync(join(real, "new.txt")), "new\n");
      assert.equal(
        Deno.readTextFileSync(join(real, "lower.txt")),
        "from the layer\nmore\n",
        "copy-up landed there",
      );
      assert.equal(await sb.ok(["run", "--rerun", "onram", "--", "cat", `${M}/new.txt`]), "new\n");

      // the runtime on it blocks destroy; removing the runtime frees its files on the ramdisk
      const inUse = await sb.spfs(["ramdisk", "destroy", "scr"]);
      assert.equal(inUse.code, 1);
      assert.match(
        inUse.stderr,
        /holds the scratch of runtime .*\n\s+hint: remove it first \(spfs runtime remove/,
      );
      await sb.ok(["runtime", "remove", "onram"]);
      assert.deepEqual([...Deno.readDirSync(join(made.mountpoint, "spfs-runtimes"))], []);

      // an open file makes umount fail with "target is busy"
      const holder = new Deno.Command("sh", {
        args: ["-c", "exec sleep 30"],
        cwd: made.mountpoint,
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const busy = await sb.spfs(["ramdisk", "destroy", "scr"]);
        assert.equal(busy.code, 1, busy.stderr);
        assert.match(busy.stderr, /RAM disk scr is in use: .*busy[\s\S]*--force/);
        const listed = JSON.parse(await sb.ok(["ramdisk", "list", "--json"]));
        assert.deepEqual(listed.map((r: { name: string; mounted: boolean }) => [r.name, r.mounted]), [[
          "scr",
          true,
        ]]);
      } finally {
        holder.kill("SIGKILL");
        await holder.status;
      }
      await sb.ok(["ramdisk", "destroy", "scr"]);
      assert.deepEqual(mountsAt(made.mountpoint), [], "unmounted");
      assert.equal(JSON.parse(await sb.ok(["ramdisk", "list", "--json"])).length, 0);
      const gone = await sb.spfs(["run", "--scratch", "ramdisk:scr", "rd", "--", "true"]);
      assert.equal(gone.code, 3);
      assert.match(gone.stderr, /no RAM disk named scr[\s\S]*spfs ramdisk list/);
    } finally {
      // leave nothing behind even when an assertion above failed midway
      await sb.spfs(["ramdisk", "destroy", "scr", "--force"]);
      for (const m of mountsAt(join(sb.runtime, "ramdisks/scr"))) {
        await runner().run([
          "umount",
          "-l",
          m.mountpoint,
        ]);
      }
      await sb.dispose();
    }
  },
);
