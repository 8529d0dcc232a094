import assert from "node:assert/strict";
import { join } from "node:path";
import { Sandbox } from "../support/sandbox.ts";
import { fuseTest, writeTree } from "../support/fuse.ts";

/** Each user-fixable failure: a clear message with the fix, and a documented exit code. */
fuseTest(
  "errors: unknown ref, missing mount point, missing libfuse, unusable /dev/fuse, no service",
  async () => {
    const sb = Sandbox.create();
    try {
      writeTree(join(sb.root, "src"), { "f": "x\n" });
      await sb.ok(["commit", join(sb.root, "src"), "-t", "e"]);

      const noService = await sb.spfs(["status"]);
      assert.equal(noService.code, 5);
      assert.match(noService.stderr, /service is not running[\s\S]*hint: start it with `spfs service`/);
      assert.equal((await sb.spfs(["service", "--stop"])).code, 5);

      const missingMp = await sb.spfs(["run", "e", "--", "true"], {
        SPFS_MOUNTPOINT: join(sb.root, "no/such/dir"),
      });
      assert.equal(missingMp.code, 4);
      assert.match(missingMp.stderr, /mount point .* does not exist[\s\S]*hint: create it: `sudo mkdir -p/);

      const notDir = join(sb.root, "src/f");
      const fileMp = await sb.spfs(["run", "e", "--", "true"], { SPFS_MOUNTPOINT: notDir });
      assert.equal(fileMp.code, 4);
      assert.match(fileMp.stderr, /is not a directory/);

      const noLib = await sb.spfs(["run", "e", "--", "true"], { SPFS_LIBFUSE: "/nonexistent/libfuse3.so.3" });
      assert.equal(noLib.code, 4);
      assert.match(noLib.stderr, /libfuse is not installed[\s\S]*apt-get install -y fuse3/);

      const noDev = await sb.spfs(["run", "e", "--", "true"], {
        SPFS_FUSE_DEVICE: join(sb.root, "no-fuse-device"),
      });
      assert.equal(noDev.code, 4);
      assert.match(noDev.stderr, /does not exist: the fuse kernel module is not loaded[\s\S]*modprobe fuse/);

      const fakeDev = await sb.spfs(["run", "e", "--", "true"], { SPFS_FUSE_DEVICE: notDir });
      assert.equal(fakeDev.code, 4);
      assert.match(fakeDev.stderr, /not a character device[\s\S]*mknod/);

      // the service is started by this run; the bad ref is refused with a hint, exit 3
      const badRef = await sb.spfs(["run", "does-not-exist", "--", "true"]);
      assert.equal(badRef.code, 3);
      assert.match(badRef.stderr, /unknown ref "does-not-exist"[\s\S]*hint: list tags with `spfs tags`/);
      const badCommit = await sb.spfs(["commit", join(sb.root, "nope"), "-t", "x"]);
      assert.equal(badCommit.code, 3);
      assert.match(badCommit.stderr, /no such directory/);
      const badTag = await sb.spfs(["commit", join(sb.root, "src"), "-t", "a+b"]);
      assert.equal(badTag.code, 2);
      assert.match(badTag.stderr, /invalid tag name/);
      // the service survived all of that
      assert.equal((await sb.spfs(["run", "e", "--", "cat", `${sb.mountpoint}/f`])).stdout, "x\n");
      // a second background service is refused with the first one's pid
      const again = await sb.spfs(["service"]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, new RegExp(`already running \\(pid ${sb.servicePid()}\\)`));
    } finally {
      await sb.dispose();
    }
  },
);
