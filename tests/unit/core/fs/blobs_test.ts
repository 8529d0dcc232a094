import assert from "node:assert/strict";
import { join } from "node:path";
import { BlobOpener } from "../../../../core/fs/blobs.ts";
import { digestBytes } from "../../../../core/store/objects.ts";
import { E } from "../../../../ffi/errno.ts";
import { libc } from "../../../../ffi/sys.ts";

Deno.test("blob open: served at once, handed to the verifier once, refused with EIO once marked corrupt", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const bytes = new TextEncoder().encode("blob\n");
    const d = digestBytes(bytes);
    Deno.writeFileSync(join(dir, "b"), new TextEncoder().encode("not the blob\n")); // corrupt on disk
    const asked: string[] = [];
    const o = new BlobOpener(() => join(dir, "b"), (x) => asked.push(x));
    const fd = o.open(d);
    assert.ok(fd >= 0, "the first open is not held up by a hash, even of a corrupt blob");
    libc().close(fd);
    const fd2 = o.open(d);
    assert.ok(fd2 >= 0);
    libc().close(fd2);
    assert.deepEqual(asked, [d], "the verifier is asked once per blob");
    o.markCorrupt(d);
    assert.equal(o.open(d), -E.EIO);
    const gone: string[] = [];
    const missing = new BlobOpener(() => join(dir, "none"), (x) => asked.push(x), (x) => gone.push(x));
    assert.equal(missing.open(d), -E.EIO, "a blob missing from the store is an I/O error, not ENOENT");
    assert.deepEqual(gone, [d]);
    assert.equal(asked.length, 1, "a blob that cannot be opened is not queued");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
