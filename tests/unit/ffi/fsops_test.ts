/** ffi/fsops.ts calls that have no other direct test. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { syncFilesystem } from "../../../ffi/fsops.ts";
import { E } from "../../../ffi/errno.ts";

Deno.test("syncFilesystem: one syncfs(2) for a dir on Linux, ENOTSUP on macOS, the errno of a bad path", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "f"), "x");
    assert.equal(syncFilesystem(dir), Deno.build.os === "darwin" ? E.ENOTSUP : 0);
    if (Deno.build.os !== "darwin") {
      assert.equal(syncFilesystem(join(dir, "missing")), E.ENOENT);
      assert.equal(syncFilesystem(join(dir, "f")), E.ENOTDIR);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
