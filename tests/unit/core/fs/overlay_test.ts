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
import { probeReflink, statfs } from "../../../../ffi/fsops.ts";
import { errnoName } from "../../../../ffi/errno.ts";
import type { FsStats } from "../../../../ffi/types.ts";
import { copyUp } from "../../../../core/fs/overlay/copyup.ts";
import type { Attr } from "../../../../ffi/stat.ts";
import { BlobOpener } from "../../../../core/fs/blobs.ts";
import { OverlayBackend } from "../../../../core/fs/overlay/backend.ts";
import { ReadOnlyBackend } from "../../../../core/fs/readonly.ts";
import { packLoose } from "../../../support/packs.ts";

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

/** The default lower layer: a.txt, dir/b.txt, dir/sub/c.txt, link -> a.txt, empty/. */
async function smallTree(src: string): Promise<void> {
  await Deno.mkdir(`${src}/dir/sub`, { recursive: true });
  await Deno.mkdir(`${src}/empty`);
  await Deno.writeTextFile(`${src}/a.txt`, "alpha\n");
  await Deno.writeTextFile(`${src}/dir/b.txt`, "bravo\n");
  await Deno.writeTextFile(`${src}/dir/sub/c.txt`, "charlie\n");
  await Deno.symlink("a.txt", `${src}/link`);
}

/** An overlay over one lower layer made by `populate` (default: smallTree). */
async function fixture(
  opts: {
    populate?: (src: string) => Promise<void>;
    reflink?: boolean;
    onCopyUp?: (how: string) => void;
    /** keep the layer's files and manifests in a pack, as a pull from a registry does */
    packed?: boolean;
  } = {},
): Promise<Fixture> {
  const tmp = await Deno.makeTempDir({ prefix: "spfs-ov-" });
  const src = `${tmp}/src`;
  await Deno.mkdir(src);
  await (opts.populate ?? smallTree)(src);
  const store = ObjectStore.open(`${tmp}/store`);
  const { manifest } = await importDir(src, store);
  const layer = store.putBytes(encodeLayer(manifest));
  if (opts.packed) await packLoose(store, [layer]);
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
    reflink: opts.reflink ?? false,
    onCopyUp: opts.onCopyUp,
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

/** An FsBackend over a fresh overlay on the fixture's layer (its own scratch dir). */
function backend(
  f: Fixture,
  blobs = new BlobOpener(f.vfs.objectsDir, () => {}, () => {}, (d, r) => f.vfs.packedBlob(d, r)),
): OverlayBackend {
  const scratch = Deno.makeTempDirSync({ dir: f.tmp }), work = Deno.makeTempDirSync({ dir: f.tmp });
  return new OverlayBackend({
    id: "b",
    scratch,
    work,
    vfs: f.vfs,
    layers: f.ov.layers,
    rootSources: f.vfs.view(f.ov.layers).rootSources,
    reflink: false,
    blobs,
  });
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
  const r = f.ov.create(ROOT_INO, "new.txt", 0o640, me);
  assert.notEqual(typeof r, "number");
  const { node: n, fd } = r as { node: ONode; fd: number };
  libc().close(fd);
  f.ov.released(n);
  assert.equal(Deno.lstatSync(`${f.scratch}/new.txt`).mode! & 0o777, 0o640);
  assert.equal(f.ov.create(ROOT_INO, "a.txt", 0o644, me), E.EEXIST);
  assert.equal(f.ov.create(ROOT_INO, ".wh.x", 0o644, me), E.EINVAL);
  const d = node(f.ov, "dir");
  const r2 = f.ov.create(d.ino, "made.txt", 0o644, me);
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
  const r = f.ov.create(ROOT_INO, "u.txt", 0o644, me) as { node: ONode; fd: number };
  libc().close(r.fd);
  f.ov.released(r.node);
  assert.equal(f.ov.unlink(ROOT_INO, "u.txt"), 0);
  assert.deepEqual(scratchTree(f.scratch), [".wh.a.txt"]);
  // a name re-created over its whiteout shows again, and the mask goes
  const again = f.ov.create(ROOT_INO, "a.txt", 0o644, me) as { fd: number };
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
  f.ov.released(a);
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
  assert.equal(new TextDecoder().decode(f.store.readVerified(digest)), "alpha\n");
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

Deno.test("overlay: mkdir, symlink and mknod create upper entries", async () => {
  await using f = await fixture();
  const d = f.ov.mkdir(ROOT_INO, "newdir", 0o750, me) as ONode;
  assert.equal(d.kind, "dir");
  const s = f.ov.symlink(d.ino, "s", enc.encode("../a.txt"), me) as ONode;
  assert.equal(new TextDecoder().decode(f.ov.readlink(s) as Uint8Array), "../a.txt");
  const fifo = f.ov.mknod(d.ino, "fifo", 0o010644, 0n, me) as ONode;
  assert.equal(fifo.kind, "other");
  assert.equal(f.ov.mkdir(ROOT_INO, "dir", 0o755, me), E.EEXIST);
  assert.deepEqual(scratchTree(f.scratch), ["newdir/", "newdir/fifo", "newdir/s"]);
  assert.equal(Deno.lstatSync(`${f.scratch}/newdir`).mode! & 0o777, 0o750);
});

Deno.test("overlay: an unlinked open file keeps serving attributes with nlink 0", async () => {
  await using f = await fixture();
  const r = f.ov.create(ROOT_INO, "tmp.txt", 0o644, me) as { node: ONode; fd: number };
  assert.equal(f.ov.unlink(ROOT_INO, "tmp.txt"), 0);
  assert.equal(r.node.detached?.nlink, 0);
  assert.equal(f.ov.node(r.node.ino), r.node, "the node stays while a handle is open");
  libc().close(r.fd);
  f.ov.released(r.node);
  f.ov.forget(r.node.ino, r.node.nlookup);
  assert.equal(f.ov.node(r.node.ino), undefined);
});

Deno.test("overlay: rebase after a commit keeps inodes and resolves paths in the new layer", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const r = f.ov.create(ROOT_INO, "new.txt", 0o644, me) as { node: ONode; fd: number };
  libc().close(r.fd);
  f.ov.released(r.node);
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

Deno.test("overlay: a hard-linked symlink is one node under all its names, after the kernel forgets it", async () => {
  await using f = await fixture();
  const l = node(f.ov, "link");
  assert.equal(f.ov.link(l.ino, node(f.ov, "dir").ino, "l2"), l);
  assert.equal(f.ov.rename(ROOT_INO, "dir", ROOT_INO, "dir2", 0), 0); // moves the second name
  // the kernel forgets everything (memory pressure), then looks both names up again
  for (const n of [...f.ov.nodes.values()]) if (n.ino !== ROOT_INO) f.ov.forget(n.ino, n.nlookup);
  const a = node(f.ov, "link"), b = node(f.ov, "dir2/l2");
  assert.equal(a, b, "one node: two would share one inode number, and forgetting one would lose the other");
  f.ov.forget(a.ino, 1);
  assert.equal(new TextDecoder().decode(f.ov.readlink(f.ov.node(a.ino)!) as Uint8Array), "a.txt");
});

Deno.test("overlay: rebase gives each name of a hard-linked file its own file and, at its next lookup, inode", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  assert.equal(f.ov.link(a.ino, node(f.ov, "dir").ino, "a2.txt"), a);
  const { manifest } = await importDir(f.scratch, f.store, {}, { scratch: true });
  const layers = [...f.ov.layers, f.store.putBytes(encodeLayer(manifest))];
  Deno.renameSync(f.scratch, `${f.tmp}/trash`);
  Deno.mkdirSync(f.scratch);
  const dir = node(f.ov, "dir");
  assert.deepEqual(f.ov.rebase(layers, f.vfs.view(layers).rootSources), [[dir.ino, "a2.txt"]]);
  assert.equal(node(f.ov, "a.txt"), a, "the node keeps its own path");
  const a2 = node(f.ov, "dir/a2.txt");
  assert.notEqual(a2.ino, a.ino, "the layer keeps no hard links: the other name is a file of its own");
  const nlink = (n: ONode) => (f.ov.attr(n) as { nlink: number }).nlink;
  assert.deepEqual([nlink(a), nlink(a2)], [1, 1]);
  // a write to one name leaves the other as committed
  const o = f.ov.open(a, 1, () => -E.EIO) as { fd: number };
  libc().close(o.fd);
  f.ov.released(a);
  assert.deepEqual(scratchTree(f.scratch), ["a.txt"]);
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

// --- a local disk's behaviour (issue: every user and every path) ---

const S_IFBLK = 0o060000;
const long = (n: number) => "n".repeat(n);

Deno.test("names over 255 bytes are ENAMETOOLONG, in editable and read-only views", async () => {
  await using f = await fixture();
  assert.equal(f.ov.lookup(ROOT_INO, long(256)), E.ENAMETOOLONG);
  assert.equal(f.ov.create(ROOT_INO, long(256), 0o644, me), E.ENAMETOOLONG);
  assert.equal(
    f.ov.mkdir(ROOT_INO, "é".repeat(128), 0o755, me),
    E.ENAMETOOLONG,
    "bytes count, not characters",
  );
  assert.equal(f.ov.rename(ROOT_INO, "a.txt", ROOT_INO, long(256), 0), E.ENAMETOOLONG);
  const ok = f.ov.create(ROOT_INO, long(255), 0o644, me) as { fd: number };
  assert.equal(typeof ok, "object");
  libc().close(ok.fd);
  const ro = new ReadOnlyBackend(
    f.vfs,
    f.vfs.view(f.ov.layers),
    new BlobOpener(f.vfs.objectsDir, () => {}),
  );
  assert.equal(ro.lookup(ROOT_INO, long(256)), E.ENAMETOOLONG);
  assert.equal(ro.lookup(ROOT_INO, long(255)), E.ENOENT);
});

Deno.test("a dir's nlink counts a copied-up lower subdir once, and not a file that replaced one", async () => {
  await using f = await fixture();
  const nlink = (n: ONode) => (f.ov.attr(n) as Attr).nlink;
  const dir = node(f.ov, "dir");
  const sub = node(f.ov, "dir/sub");
  const made = f.ov.create(sub.ino, "new.txt", 0o644, me);
  assert.notEqual(typeof made, "number", "a create inside copies dir/ and dir/sub up");
  assert.ok(node(f.ov, "dir").upper && node(f.ov, "dir/sub").upper);
  assert.equal(nlink(dir), 3, "sub is in scratch and in the layer: one subdir");
  f.ov.mkdir(dir.ino, "sub2", 0o755, me);
  assert.equal(nlink(dir), 4);
  assert.equal(f.ov.unlink(sub.ino, "new.txt"), 0);
  assert.equal(f.ov.unlink(sub.ino, "c.txt"), 0);
  assert.equal(f.ov.rmdir(dir.ino, "sub"), 0);
  assert.equal(nlink(dir), 3, "sub is gone");
  assert.notEqual(typeof f.ov.create(dir.ino, "sub", 0o644, me), "number");
  assert.equal(nlink(dir), 3, "a file named like the old lower dir is not a subdir");
  assert.equal(f.ov.unlink(dir.ino, "sub"), 0);
  f.ov.mkdir(dir.ino, "sub", 0o755, me);
  assert.equal(nlink(dir), 4, "a new dir at the masked name counts");
});

Deno.test("an opaque dir found in scratch by a new overlay (a rerun) has attributes and its entries", async () => {
  await using f = await fixture();
  const dir = node(f.ov, "dir"), sub = node(f.ov, "dir/sub");
  assert.equal(f.ov.unlink(sub.ino, "c.txt"), 0);
  assert.equal(f.ov.rmdir(dir.ino, "sub"), 0);
  assert.equal(f.ov.unlink(dir.ino, "b.txt"), 0);
  assert.equal(f.ov.rmdir(ROOT_INO, "dir"), 0);
  const again = f.ov.mkdir(ROOT_INO, "dir", 0o755, me);
  assert.notEqual(typeof again, "number");
  assert.notEqual(typeof f.ov.create((again as ONode).ino, "z", 0o644, me), "number");
  f.ov.dispose();
  const rerun = new Overlay({
    id: "t2",
    scratch: f.scratch,
    work: `${f.tmp}/rt/work`,
    vfs: f.vfs,
    layers: f.ov.layers,
    rootSources: f.vfs.view(f.ov.layers).rootSources,
    reflink: false,
  });
  const d = node(rerun, "dir");
  const a = rerun.attr(d);
  assert.notEqual(typeof a, "number", `attr of the opaque dir: errno ${a}`);
  assert.equal((a as Attr).nlink, 2, "the layer's dir/sub is hidden by the opaque dir");
  assert.deepEqual((rerun.list(d.ino) as [string, ONode][]).map(([name]) => name), ["z"]);
});

Deno.test("a dir's nlink is 2 plus its subdirs; it follows mkdir and rmdir", async () => {
  await using f = await fixture();
  const nlink = (n: ONode) => (f.ov.attr(n) as Attr).nlink;
  const dir = node(f.ov, "dir");
  assert.equal(nlink(dir), 3, "dir/ holds one subdir (sub)");
  assert.equal(nlink(node(f.ov, "empty")), 2);
  f.ov.mkdir(dir.ino, "sub2", 0o755, me);
  assert.equal(nlink(dir), 4, "an upper subdir counts too");
  assert.equal(f.ov.unlink(node(f.ov, "dir/sub").ino, "c.txt"), 0);
  assert.equal(f.ov.rmdir(dir.ino, "sub"), 0);
  assert.equal(nlink(dir), 3, "a masked lower subdir does not");
  const d = f.vfs.lookup(f.vfs.view(f.ov.layers), ROOT_INO, "dir") as { ino: number };
  assert.equal(f.vfs.attr(d.ino)!.nlink, 3, "the read-only view agrees");
  assert.equal(
    f.vfs.attr(ROOT_INO)!.nlink,
    1,
    "the shared root differs per caller: 1 keeps find from counting",
  );
});

Deno.test("an unlinked open file reports nlink 0 through its handle, lower or upper", async () => {
  await using f = await fixture();
  const b = backend(f);
  const a = b.lookup(ROOT_INO, "a.txt") as Attr;
  const o = b.open(a.ino, 0 /* O_RDONLY */) as { fh: number };
  assert.equal(b.unlink(ROOT_INO, "a.txt"), 0);
  assert.equal((b.getattr(a.ino, o.fh) as Attr).nlink, 0);
  assert.equal((b.getattr(a.ino, o.fh) as Attr).mode & 0o777, 0o644, "the layer's mode, not the blob's 0444");
  b.release(o.fh);
  const [c, h] = b.create(ROOT_INO, "u.txt", 0o600, me) as [Attr, { fh: number }];
  assert.equal(b.unlink(ROOT_INO, "u.txt"), 0);
  assert.equal((b.getattr(c.ino, h.fh) as Attr).nlink, 0);
  b.release(h.fh);
});

Deno.test("inode numbers survive the kernel forgetting them, in editable and read-only views", async () => {
  await using f = await fixture();
  const again = (path: string) => {
    const n = node(f.ov, path);
    const ino = n.ino;
    f.ov.forget(ino, n.nlookup);
    assert.equal(f.ov.node(ino), undefined, "forgotten");
    return [ino, node(f.ov, path).ino];
  };
  const [a1, a2] = again("a.txt");
  assert.equal(a2, a1);
  const [c1, c2] = again("dir/sub/c.txt");
  assert.equal(c2, c1);
  const made = f.ov.create(ROOT_INO, "new.txt", 0o644, me) as { node: ONode; fd: number };
  libc().close(made.fd);
  f.ov.released(made.node);
  const [n1, n2] = again("new.txt");
  assert.equal(n1, made.node.ino);
  assert.equal(n2, n1);
  assert.equal(f.ov.rename(ROOT_INO, "new.txt", ROOT_INO, "moved.txt", 0), 0);
  const [m1, m2] = again("moved.txt");
  assert.equal(m1, n1, "rename keeps the number");
  assert.equal(m2, n1);
  assert.equal(f.ov.unlink(ROOT_INO, "moved.txt"), 0);
  const re = f.ov.create(ROOT_INO, "moved.txt", 0o644, me) as { node: ONode; fd: number };
  libc().close(re.fd);
  assert.notEqual(re.node.ino, n1, "a new file at a deleted name is a new inode");

  const view = f.vfs.view(f.ov.layers);
  const r1 = f.vfs.lookup(view, ROOT_INO, "dir") as { ino: number; nlookup: number };
  f.vfs.forget(r1.ino, r1.nlookup);
  assert.equal(f.vfs.attr(r1.ino), undefined);
  assert.equal((f.vfs.lookup(view, ROOT_INO, "dir") as { ino: number }).ino, r1.ino);
});

Deno.test("readdirs keep at most listedMax nodes nobody looked up; a later lookup returns the listed inode", async () => {
  await using f = await fixture();
  const b = backend(f);
  b.overlay.listedMax = 0;
  const table = b.overlay.table;
  const before = table.nodes.size;
  const dir = b.lookup(ROOT_INO, "dir") as Attr;
  const listed = b.list(dir.ino);
  assert.notEqual(typeof listed, "number");
  const entries = listed as { name: string; ino: number; type: number }[];
  assert.deepEqual(entries.map((e) => e.name).sort(), ["b.txt", "sub"]);
  assert.equal(table.nodes.size, before + 1, "only `dir`, which the kernel looked up");
  assert.equal(table.atPath("/dir/b.txt"), undefined);
  for (const e of entries) {
    const a = b.lookup(dir.ino, e.name) as Attr;
    assert.equal(a.ino, e.ino, `${e.name}: the dirent's inode is the lookup's`);
  }
  // a listed name that is already a node (looked up, or open) stays one
  b.list(dir.ino);
  assert.equal(table.atPath("/dir/b.txt")?.nlookup, 1);
  assert.equal(table.nodes.size, before + 3);

  // the newest listedMax of them stay
  b.overlay.listedMax = 1;
  const sub = b.lookup(dir.ino, "sub") as Attr;
  b.list(sub.ino);
  assert.notEqual(table.atPath("/dir/sub/c.txt"), undefined, "kept: one within listedMax");
  b.list(ROOT_INO);
  assert.equal(table.atPath("/dir/sub/c.txt"), undefined, "dropped: the oldest beyond listedMax");
  assert.equal((b.lookup(sub.ino, "c.txt") as Attr).ino, (b.list(sub.ino) as { ino: number }[])[0].ino);
});

Deno.test("a lower dir comes into scratch whole with its own mode, whatever the umask", async () => {
  await using f = await fixture({
    populate: async (src) => {
      for (const [d, mode] of [["open", 0o777], ["ro", 0o555], ["priv", 0o700]] as const) {
        await Deno.mkdir(`${src}/${d}/deep`, { recursive: true });
        await Deno.writeTextFile(`${src}/${d}/deep/x`, d);
        await Deno.chmod(`${src}/${d}`, mode);
      }
    },
  });
  for (const [d, mode] of [["open", 0o777], ["ro", 0o555], ["priv", 0o700]] as const) {
    const deep = node(f.ov, `${d}/deep`);
    const made = f.ov.create(deep.ino, "new", 0o644, me) as { node: ONode; fd: number };
    assert.equal(typeof made, "object", `${d}: ${made}`);
    libc().close(made.fd);
    assert.equal(Deno.statSync(`${f.scratch}/${d}`).mode! & 0o7777, mode, `${d}: the lower dir's mode`);
    assert.equal(readUpper(f, `${d}/deep/new`), "");
  }
  assert.deepEqual([...Deno.readDirSync(`${f.tmp}/rt/work`)], [], "nothing left in work/");
});

Deno.test("ctime of a lower file moves to now on chmod, chown and utimensat; layers show 1980", async () => {
  await using f = await fixture();
  const a = node(f.ov, "a.txt");
  const before = f.ov.attr(a) as Attr;
  assert.equal(before.time, 315532800, "1980-01-01T00:00:00Z: zip and wheel tools accept it");
  assert.equal(before.mtimeNs, undefined);
  const t0 = BigInt(Date.now() - 1000) * 1_000_000n;
  const r = f.ov.setattr(a, { mode: 0o600 }, undefined) as Attr;
  assert.ok(r.ctimeNs! >= t0, `chmod sets ctime to now (${r.ctimeNs})`);
  const old = 1_000_000_000_000_000_000n;
  const u = f.ov.setattr(a, { mtime: old }, undefined) as Attr;
  assert.equal(u.mtimeNs, old);
  assert.ok(u.ctimeNs! >= t0, "utimensat sets ctime to now, not to the new mtime");
});

/** Linux-only behaviour: fallocate(2), and /proc/self/fd anchors for paths past PATH_MAX (ffi/fsops.ts). */
const linuxOnly = { ignore: Deno.build.os !== "linux" };

Deno.test(
  "mknod of a device as root keeps st_rdev; fallocate 0 and KEEP_SIZE work on a handle",
  linuxOnly,
  async () => {
    await using f = await fixture();
    const dev = f.ov.mknod(ROOT_INO, "blk", S_IFBLK | 0o600, 0x0801n, me);
    if (Deno.uid() === 0) {
      assert.equal(typeof dev, "object");
      assert.equal((f.ov.attr(dev as ONode) as Attr).rdev, 0x0801);
    } else assert.equal(dev, E.EPERM, "a non-root service cannot make devices, as on a local disk");
    const b = backend(f);
    const [c, h] = b.create(ROOT_INO, "big", 0o644, me) as [Attr, { fh: number }];
    assert.equal(b.fallocate(c.ino, h.fh, 0, 0n, 1048576n), 0);
    assert.equal((b.getattr(c.ino, h.fh) as Attr).size, 1048576);
    assert.equal(b.fallocate(c.ino, h.fh, 1, /* FALLOC_FL_KEEP_SIZE */ 0n, 4194304n), 0);
    const a = b.getattr(c.ino, h.fh) as Attr;
    assert.equal(a.size, 1048576, "KEEP_SIZE allocates without growing");
    assert.ok(a.blocks * 512 >= 4194304, `blocks ${a.blocks}`);
    b.release(h.fh);
  },
);

Deno.test(
  "paths deeper than PATH_MAX work as on a local disk: create, list, rename, unlink, rmdir",
  linuxOnly,
  async () => {
    await using f = await fixture();
    const part = "d".repeat(200);
    let dir = f.ov.root;
    const chain: ONode[] = [];
    for (let i = 0; i < 25; i++) { // 25 × 201 bytes: past PATH_MAX (4096) below scratch
      const d = f.ov.mkdir(dir.ino, part, 0o755, me);
      assert.equal(typeof d, "object", `mkdir at depth ${i}: errno ${d}`);
      chain.push(dir = d as ONode);
    }
    assert.ok(f.scratch.length + dir.path.length > 4096);
    const r = f.ov.create(dir.ino, "leaf.txt", 0o644, me) as { node: ONode; fd: number };
    assert.equal(typeof r, "object", `create: errno ${r}`);
    assert.equal(Number(libc().pwrite(r.fd, Deno.UnsafePointer.of(enc.encode("deep")), 4n, 0n)), 4);
    libc().close(r.fd);
    f.ov.released(r.node);
    assert.equal((f.ov.attr(r.node) as Attr).size, 4);
    assert.deepEqual(names(f.ov, dir.ino), ["leaf.txt"]);
    assert.equal(f.ov.rename(dir.ino, "leaf.txt", dir.ino, "moved.txt", 0), 0);
    assert.equal((f.ov.attr(node(f.ov, `${chain.map(() => part).join("/")}/moved.txt`)) as Attr).size, 4);
    assert.equal(f.ov.unlink(dir.ino, "moved.txt"), 0);
    for (let i = chain.length - 1; i > 0; i--) {
      assert.equal(f.ov.rmdir(chain[i - 1].ino, part), 0, `rmdir ${i}`);
    }
    assert.equal(f.ov.rmdir(ROOT_INO, part), 0);
    assert.deepEqual(scratchTree(f.scratch), []);
  },
);

/** Whether the temp dir's filesystem can reflink (APFS clonefile; btrfs, xfs FICLONE): probed once. */
const reflinkHere = (() => {
  const d = Deno.makeTempDirSync({ prefix: "spfs-probe-" });
  try {
    const r = probeReflink(d, d);
    if (r !== true) console.log(`reflink copy-up test ignored: ${d} cannot reflink (${errnoName(r)})`);
    return r === true;
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
})();

Deno.test(
  "a 256 MiB copy-up by reflink (macOS clonefile, Linux FICLONE) takes no new blocks; the lower blob is unchanged",
  { ignore: !reflinkHere },
  async () => {
    const MiB = 1 << 20;
    const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
    const hows: string[] = [];
    await using f = await fixture({
      populate: async (src) => {
        using out = await Deno.open(`${src}/big.bin`, { create: true, write: true });
        for (let i = 0; i < 256 * 16; i++) out.writeSync(chunk);
      },
      reflink: true,
      onCopyUp: (how) => hows.push(how),
    });
    const { ov, vfs, scratch, tmp } = f;
    const free = () => {
      const s = statfs(tmp) as FsStats;
      return s.bavail * s.bsize;
    };
    const n = node(ov, "big.bin");
    const blob = vfs.blobPath(n.lower!.digest!);
    const before = free();
    assert.equal(copyUp(ov, n), 0);
    const used = before - free();
    assert.deepEqual(hows, ["reflink"]);
    assert.ok(used < 16 * MiB, `a cloned 256 MiB file took ${(used / MiB).toFixed(1)} MiB`);
    // writing the copy leaves the lower blob as it was
    using up = await Deno.open(`${scratch}/big.bin`, { write: true });
    up.writeSync(new Uint8Array(4096).fill(0xee));
    const head = new Uint8Array(4096);
    using b = await Deno.open(blob);
    b.readSync(head);
    assert.deepEqual(head, chunk.subarray(0, 4096));
    assert.equal(Deno.statSync(blob).size, 256 * MiB);
  },
);

Deno.test("a layer kept in a pack: opens read its range, readlink and copy-up take its bytes", async () => {
  await using f = await fixture({ packed: true });
  assert.deepEqual([...f.store.loose()].length, 1, "only the layer object is loose");
  const blobs = new BlobOpener(f.vfs.objectsDir, () => {}, () => {}, (d, r) => f.vfs.packedBlob(d, r));
  const ro = new ReadOnlyBackend(f.vfs, f.vfs.view(f.ov.layers), blobs);
  const a = ro.lookup(ROOT_INO, "a.txt") as Attr;
  const o = ro.open(a.ino, 0) as { fh: number };
  const slice = blobs.slices.get(o.fh);
  assert.ok(slice, "the handle reads a range of the pack");
  assert.equal(slice[1], 6);
  const got = new Uint8Array(6);
  assert.equal(Number(libc().pread(o.fh, got, 6n, BigInt(slice[0]))), 6);
  assert.equal(new TextDecoder().decode(got), "alpha\n");
  ro.release(o.fh);
  assert.equal(blobs.slices.size, 0, "release forgets the range, so a reused fd number reads from 0");
  assert.equal(
    new TextDecoder().decode(ro.readlink((ro.lookup(ROOT_INO, "link") as Attr).ino) as Uint8Array),
    "a.txt",
  );

  // copy-up of a packed file and symlink, then the same through a write-open
  assert.equal(copyUp(f.ov, node(f.ov, "link")), 0);
  assert.equal(Deno.readLinkSync(`${f.scratch}/link`), "a.txt");
  const w = f.ov.open(node(f.ov, "dir/b.txt"), 2, /* O_RDWR */ () => -E.EIO) as { fd: number };
  assert.equal(typeof w, "object");
  libc().close(w.fd);
  assert.equal(Deno.readTextFileSync(`${f.scratch}/dir/b.txt`), "bravo\n");
  const b = backend(f, blobs);
  const h = b.open((b.lookup(ROOT_INO, "a.txt") as Attr).ino, 0) as { fh: number };
  assert.equal(blobs.slices.get(h.fh)?.[1], 6, "an editable runtime reads a lower packed file in place too");
  b.release(h.fh);
  assert.equal(blobs.slices.size, 0);
});
