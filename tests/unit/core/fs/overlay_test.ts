/**
 * The overlay and the read-only view, driven in-process: a real store, a real scratch dir and real
 * syscalls, but no FUSE mount and no root. Each test builds its own temp store and runs in
 * milliseconds. Errno values come from the host table, so the same file runs on macOS.
 */
import assert from "node:assert/strict";
import { importDir } from "../../../../core/store/importer.ts";
import { encodeLayer } from "../../../../core/store/objects.ts";
import { type ONode, Overlay } from "../../../../core/fs/overlay/overlay.ts";
import { ObjectStore } from "../../../../core/store/store.ts";
import { E, ROOT_INO, Vfs } from "../../../../core/fs/vfs.ts";
import { libc } from "../../../../ffi/sys.ts";

const RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
const me = { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
const enc = new TextEncoder();

interface Fixture {
  ov: Overlay;
  vfs: Vfs;
  store: ObjectStore;
  scratch: string;
  tmp: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A lower layer: a.txt, dir/b.txt, dir/sub/c.txt, link -> a.txt, empty/. */
async function fixture(): Promise<Fixture> {
  const tmp = await Deno.makeTempDir({ prefix: "spfs-ov-" });
  const src = `${tmp}/src`;
  await Deno.mkdir(`${src}/dir/sub`, { recursive: true });
  await Deno.mkdir(`${src}/empty`);
  await Deno.writeTextFile(`${src}/a.txt`, "alpha\n");
  await Deno.writeTextFile(`${src}/dir/b.txt`, "bravo\n");
  await Deno.writeTextFile(`${src}/dir/sub/c.txt`, "charlie\n");
  await Deno.symlink("a.txt", `${src}/link`);
  const store = ObjectStore.open(`${tmp}/store`);
  const { manifest } = await importDir(src, store);
  const layer = store.putBytes(encodeLayer(manifest));
  const vfs = new Vfs(store, me.uid, me.gid);
  const view = vfs.view([layer]);
  const scratch = `${tmp}/rt/scratch`, work = `${tmp}/rt/work`;
  await Deno.mkdir(scratch, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  const ov = new Overlay({
    id: "t",
    scratch,
    work,
    vfs,
    layers: [layer],
    rootSources: view.rootSources,
    reflink: false,
  });
  return {
    ov,
    vfs,
    store,
    scratch,
    tmp,
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };
}

/** The node at a path, walking from the root with lookup (raises nlookup as the kernel would). */
function walk(ov: Overlay, path: string): ONode | number {
  let ino = ROOT_INO;
  let n: ONode | number = ov.root;
  for (const part of path.split("/").filter(Boolean)) {
    n = ov.lookup(ino, part);
    if (typeof n === "number") return n;
    ino = n.ino;
  }
  return n;
}

function node(ov: Overlay, path: string): ONode {
  const n = walk(ov, path);
  assert.equal(typeof n, "object", `${path}: errno ${n}`);
  return n as ONode;
}

/** The scratch dir's names, sorted, recursively as relative paths. */
function scratchTree(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = prefix + e.name;
    out.push(e.isDirectory ? p + "/" : p);
    if (e.isDirectory) out.push(...scratchTree(`${dir}/${e.name}`, p + "/"));
  }
  return out.sort();
}

const names = (ov: Overlay, ino: number) => {
  const l = ov.list(ino);
  assert.notEqual(typeof l, "number");
  return (l as [string, ONode][]).map(([n]) => n).sort();
};

const readUpper = (f: Fixture, rel: string) => Deno.readTextFileSync(`${f.scratch}/${rel}`);

Deno.test("overlay: lookup resolves lower entries; errors are ENOENT and ENOTDIR", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  assert.equal(a.kind, "file");
  assert.equal(a.upper, false);
  const attr = f.ov.attr(a);
  assert.equal(typeof attr === "number" ? attr : attr.size, 6);
  assert.equal(node(f.ov, "dir/sub/c.txt").kind, "file");
  assert.equal(node(f.ov, "link").kind, "symlink");
  assert.equal(new TextDecoder().decode(f.ov.readlink(node(f.ov, "link")) as Uint8Array), "a.txt");
  assert.equal(walk(f.ov, "nope"), E.ENOENT);
  assert.equal(f.ov.lookup(a.ino, "x"), E.ENOTDIR);
  assert.deepEqual(names(f.ov, ROOT_INO), ["a.txt", "dir", "empty", "link"]);
  assert.deepEqual(scratchTree(f.scratch), [], "reads never write scratch");
});

Deno.test("overlay: create makes an upper file with the caller's mode; EEXIST over a lower name", async () => {
  await using f = await fixture();
  const r = f.ov.create(ROOT_INO, "new.txt", 0o640, 1, /* O_WRONLY */ me);
  assert.notEqual(typeof r, "number");
  const { node: n, fd } = r as { node: ONode; fd: number };
  libc().close(fd);
  f.ov.released(n, true);
  assert.equal(Deno.lstatSync(`${f.scratch}/new.txt`).mode! & 0o777, 0o640);
  assert.equal(f.ov.create(ROOT_INO, "a.txt", 0o644, 1, me), E.EEXIST);
  assert.equal(f.ov.create(ROOT_INO, ".wh.x", 0o644, 1, me), E.EINVAL);
  const d = node(f.ov, "dir");
  const r2 = f.ov.create(d.ino, "made.txt", 0o644, 1, me);
  assert.notEqual(typeof r2, "number");
  libc().close((r2 as { fd: number }).fd);
  assert.deepEqual(scratchTree(f.scratch), ["dir/", "dir/made.txt", "new.txt"]);
  assert.deepEqual(names(f.ov, d.ino), ["b.txt", "made.txt", "sub"]);
});

Deno.test("overlay: unlink of a lower file leaves a whiteout; of an upper file removes it", async () => {
  await using f = await fixture();
  assert.equal(f.ov.unlink(ROOT_INO, "a.txt"), 0);
  assert.equal(walk(f.ov, "a.txt"), E.ENOENT);
  assert.deepEqual(scratchTree(f.scratch), [".wh.a.txt"]);
  assert.deepEqual(names(f.ov, ROOT_INO), ["dir", "empty", "link"]);
  assert.equal(f.ov.unlink(ROOT_INO, "a.txt"), E.ENOENT);
  assert.equal(f.ov.unlink(ROOT_INO, "dir"), E.EISDIR);
  const r = f.ov.create(ROOT_INO, "u.txt", 0o644, 1, me) as { node: ONode; fd: number };
  libc().close(r.fd);
  f.ov.released(r.node, true);
  assert.equal(f.ov.unlink(ROOT_INO, "u.txt"), 0);
  assert.deepEqual(scratchTree(f.scratch), [".wh.a.txt"]);
  // a name re-created over its whiteout shows again, and the mask goes
  const again = f.ov.create(ROOT_INO, "a.txt", 0o644, 1, me) as { fd: number };
  libc().close(again.fd);
  assert.deepEqual(scratchTree(f.scratch), ["a.txt"]);
});

Deno.test("overlay: rmdir is ENOTEMPTY on a merged dir with entries; masks an emptied lower dir", async () => {
  await using f = await fixture();
  assert.equal(f.ov.rmdir(ROOT_INO, "dir"), E.ENOTEMPTY);
  assert.equal(f.ov.rmdir(ROOT_INO, "a.txt"), E.ENOTDIR);
  assert.equal(f.ov.rmdir(ROOT_INO, "empty"), 0);
  assert.deepEqual(scratchTree(f.scratch), [".wh.empty"]);
  assert.equal(walk(f.ov, "empty"), E.ENOENT);
});

Deno.test("overlay: a dir deleted and re-created is opaque: no lower entry shows below it", async () => {
  await using f = await fixture();
  const sub = node(f.ov, "dir/sub");
  assert.equal(f.ov.unlink(sub.ino, "c.txt"), 0);
  const d = node(f.ov, "dir");
  assert.equal(f.ov.rmdir(d.ino, "sub"), 0);
  const re = f.ov.mkdir(d.ino, "sub", 0o755, me);
  assert.notEqual(typeof re, "number");
  assert.deepEqual(names(f.ov, (re as ONode).ino), []);
  assert.deepEqual(scratchTree(f.scratch), ["dir/", "dir/sub/", "dir/sub/.wh..wh..opq"]);
  assert.equal(walk(f.ov, "dir/sub/c.txt"), E.ENOENT);
});

Deno.test("overlay: rename of a lower file copies it up and masks the old name", async () => {
  await using f = await fixture();
  const d = node(f.ov, "dir");
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", d.ino, "moved.txt", 0), 0);
  assert.equal(walk(f.ov, "a.txt"), E.ENOENT);
  assert.equal(readUpper(f, "dir/moved.txt"), "alpha\n");
  assert.deepEqual(scratchTree(f.scratch), [".wh.a.txt", "dir/", "dir/moved.txt"]);
  assert.equal(f.ov.rename(ROOT_INO, "nope", ROOT_INO, "x", 0), E.ENOENT);
  assert.equal(f.ov.rename(ROOT_INO, "link", ROOT_INO, ".wh.x", 0), E.EINVAL);
  assert.equal(f.ov.rename(ROOT_INO, "link", ROOT_INO, "dir", 0), E.EISDIR);
  assert.equal(f.ov.rename(ROOT_INO, "empty", ROOT_INO, "dir", 0), E.ENOTEMPTY);
});

Deno.test("overlay: rename keeps the inode; RENAME_NOREPLACE is EEXIST; RENAME_EXCHANGE swaps", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", ROOT_INO, "link", RENAME_NOREPLACE), E.EEXIST);
  const b = node(f.ov, "dir/b.txt");
  const d = node(f.ov, "dir");
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", d.ino, "b.txt", RENAME_EXCHANGE), 0);
  assert.equal(readUpper(f, "a.txt"), "bravo\n");
  assert.equal(readUpper(f, "dir/b.txt"), "alpha\n");
  assert.equal(node(f.ov, "dir/b.txt").ino, a.ino, "the inode moves with its file");
  assert.equal(node(f.ov, "a.txt").ino, b.ino);
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", ROOT_INO, "ghost", RENAME_EXCHANGE), E.ENOENT);
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", ROOT_INO, "x", 4), E.EINVAL);
});

Deno.test("overlay: rename of a lower dir copies its subtree up and makes it opaque", async () => {
  await using f = await fixture();
  assert.equal(f.ov.rename(ROOT_INO, "dir", ROOT_INO, "dir2", 0), 0);
  assert.equal(readUpper(f, "dir2/sub/c.txt"), "charlie\n");
  assert.deepEqual(names(f.ov, node(f.ov, "dir2").ino), ["b.txt", "sub"]);
  assert.equal(walk(f.ov, "dir"), E.ENOENT);
  assert.ok(scratchTree(f.scratch).includes(".wh.dir"));
  assert.ok(scratchTree(f.scratch).includes("dir2/.wh..wh..opq"));
});

Deno.test("overlay: link copies a lower file up and shares its node; nlink counts both", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const l = f.ov.link(a.ino, ROOT_INO, "a2.txt");
  assert.equal(l, a, "both names are one node");
  const attr = f.ov.attr(a);
  assert.equal(typeof attr === "number" ? attr : attr.nlink, 2);
  assert.equal(Deno.lstatSync(`${f.scratch}/a2.txt`).ino, Deno.lstatSync(`${f.scratch}/a.txt`).ino);
  assert.equal(f.ov.link(node(f.ov, "dir").ino, ROOT_INO, "d2"), E.EPERM);
  assert.equal(f.ov.link(a.ino, ROOT_INO, "link"), E.EEXIST);
});

Deno.test("overlay: chmod/chown/utimens of a lower file write a sidecar, not a copy", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const r = f.ov.setattr(a, { mode: 0o600, mtime: 1_000_000_000_000_000_000n }, undefined);
  assert.notEqual(typeof r, "number");
  const attr = r as Exclude<typeof r, number>;
  assert.equal(attr.mode & 0o7777, 0o600);
  assert.equal(attr.mtimeNs, 1_000_000_000_000_000_000n);
  assert.deepEqual(scratchTree(f.scratch), [".wh..wh..meta.a.txt"]);
  assert.equal(a.upper, false, "no data was copied");
  // a later write-open copies up and keeps the override
  const o = f.ov.open(a, 1, /* O_WRONLY */ () => -E.EIO);
  assert.notEqual(typeof o, "number");
  libc().close((o as { fd: number }).fd);
  f.ov.released(a, true);
  assert.deepEqual(scratchTree(f.scratch), ["a.txt"]);
  assert.equal(Deno.lstatSync(`${f.scratch}/a.txt`).mode! & 0o7777, 0o600);
});

Deno.test("overlay: truncate copies up and cuts; the lower blob is unchanged", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const digest = a.lower!.digest!;
  const r = f.ov.setattr(a, { size: 2 }, undefined);
  assert.equal(typeof r === "number" ? r : r.size, 2);
  assert.equal(readUpper(f, "a.txt"), "al");
  assert.equal(Deno.readTextFileSync(f.vfs.blobPath(digest)), "alpha\n");
  assert.equal(f.ov.setattr(node(f.ov, "dir"), { size: 0 }, undefined), E.EISDIR);
});

Deno.test("overlay: user.* xattrs copy up and round-trip; other namespaces are ENOTSUP", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  assert.equal(f.ov.getxattr(a, "user.k", 64), E.ENOATTR);
  const v = enc.encode("value");
  const ptr = Deno.UnsafePointer.of(v);
  assert.equal(f.ov.setxattr(a, "trusted.k", ptr, v.length, 0), E.ENOTSUP);
  assert.equal(f.ov.setxattr(a, "user.k", ptr, v.length, 0), 0);
  assert.equal(a.upper, true);
  assert.equal(new TextDecoder().decode(f.ov.getxattr(a, "user.k", 64) as Uint8Array), "value");
  assert.equal((f.ov.getxattr(a, "user.k", 0) as Uint8Array).length, 5, "size 0 asks for the length");
  assert.equal(f.ov.getxattr(a, "user.k", 2), E.ERANGE);
  assert.equal(f.ov.setxattr(a, "user.k", ptr, v.length, 1 /* XATTR_CREATE */), E.EEXIST);
  const list = new TextDecoder().decode(f.ov.listxattr(a, 256) as Uint8Array);
  assert.ok(list.split("\0").includes("user.k"));
  assert.equal(f.ov.removexattr(a, "user.k"), 0);
  assert.equal(f.ov.getxattr(a, "user.k", 64), E.ENOATTR);
});

Deno.test("overlay: mkdir, symlink and mknod create upper entries; mknod of a device is refused", async () => {
  await using f = await fixture();
  const d = f.ov.mkdir(ROOT_INO, "newdir", 0o750, me) as ONode;
  assert.equal(d.kind, "dir");
  const s = f.ov.symlink(d.ino, "s", enc.encode("../a.txt"), me) as ONode;
  assert.equal(new TextDecoder().decode(f.ov.readlink(s) as Uint8Array), "../a.txt");
  const fifo = f.ov.mknod(d.ino, "fifo", 0o010644, 0n, me) as ONode;
  assert.equal(fifo.kind, "other");
  assert.equal(f.ov.mknod(d.ino, "blk", 0o060644, 0x0801n, me), E.EPERM);
  assert.equal(f.ov.mkdir(ROOT_INO, "dir", 0o755, me), E.EEXIST);
  assert.deepEqual(scratchTree(f.scratch), ["newdir/", "newdir/fifo", "newdir/s"]);
  assert.equal(Deno.lstatSync(`${f.scratch}/newdir`).mode! & 0o777, 0o750);
});

Deno.test("overlay: an unlinked open file keeps serving attributes with nlink 0", async () => {
  await using f = await fixture();
  const r = f.ov.create(ROOT_INO, "tmp.txt", 0o644, 2, /* O_RDWR */ me) as { node: ONode; fd: number };
  assert.equal(f.ov.unlink(ROOT_INO, "tmp.txt"), 0);
  assert.equal(r.node.detached?.nlink, 0);
  assert.equal(f.ov.node(r.node.ino), r.node, "the node stays while a handle is open");
  libc().close(r.fd);
  f.ov.released(r.node, true);
  f.ov.forget(r.node.ino, r.node.nlookup);
  assert.equal(f.ov.node(r.node.ino), undefined);
});

Deno.test("overlay: rebase after a commit keeps inodes and resolves paths in the new layer", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const r = f.ov.create(ROOT_INO, "new.txt", 0o644, 1, me) as { node: ONode; fd: number };
  libc().close(r.fd);
  f.ov.released(r.node, true);
  assert.equal(f.ov.unlink(node(f.ov, "dir").ino, "b.txt"), 0);
  const { manifest } = await importDir(f.scratch, f.store, {}, { scratch: true });
  const top = f.store.putBytes(encodeLayer(manifest));
  const layers = [...f.ov.layers, top];
  Deno.renameSync(f.scratch, `${f.tmp}/trash`);
  Deno.mkdirSync(f.scratch);
  f.ov.rebase(layers, f.vfs.view(layers).rootSources);
  assert.deepEqual(scratchTree(f.scratch), []);
  assert.equal(node(f.ov, "a.txt").ino, a.ino);
  const moved = node(f.ov, "new.txt");
  assert.equal(moved.ino, r.node.ino);
  assert.equal(moved.upper, false, "new.txt now lives in the committed layer");
  assert.equal(walk(f.ov, "dir/b.txt"), E.ENOENT);
  assert.deepEqual(names(f.ov, node(f.ov, "dir").ino), ["sub"]);
});

Deno.test("vfs: read-only views share file inodes by content and keep stacks apart", async () => {
  await using f = await fixture();
  const v1 = f.vfs.view(f.ov.layers);
  const a1 = f.vfs.lookup(v1, ROOT_INO, "a.txt");
  assert.notEqual(typeof a1, "number");
  const d1 = f.vfs.lookup(v1, ROOT_INO, "dir");
  const src2 = `${f.tmp}/src2`;
  Deno.mkdirSync(`${src2}/dir`, { recursive: true });
  Deno.writeTextFileSync(`${src2}/a.txt`, "alpha\n");
  Deno.writeTextFileSync(`${src2}/dir/other`, "x");
  const { manifest } = await importDir(src2, f.store);
  const v2 = f.vfs.view([f.store.putBytes(encodeLayer(manifest))]);
  const a2 = f.vfs.lookup(v2, ROOT_INO, "a.txt");
  const d2 = f.vfs.lookup(v2, ROOT_INO, "dir");
  assert.equal((a1 as { ino: number }).ino, (a2 as { ino: number }).ino, "same blob and mode: one inode");
  assert.notEqual((d1 as { ino: number }).ino, (d2 as { ino: number }).ino, "dirs are per stack");
  assert.equal(f.vfs.lookup(v2, ROOT_INO, "missing"), E.ENOENT);
  assert.equal(f.vfs.lookup(null, ROOT_INO, "a.txt"), E.ENOENT, "outsiders see an empty root");
});
