/**
 * Imports a directory tree into the store as nested manifests (one per directory) and returns the
 * root manifest digest. Regular files become blobs, symlink targets become blobs, modes keep their
 * permission bits (& 0o7777). Sockets, FIFOs and devices are skipped and counted. The caller
 * makes the renames durable with `store.syncDirs()` once it has written everything it needs.
 */
import { join } from "node:path";
import { SpfsError } from "../errors.ts";
import { closeFd, fdPath, nameInDir, openDirNoFollow, openRegular } from "../../ffi/fsops.ts";
import { errnoName } from "../../ffi/errno.ts";
import { byName, type Digest, digestBytes, encodeManifest, type Entry } from "./objects.ts";
import { PACK_BYTES, PACKED_BELOW } from "./packs.ts";
import { type FileId, idOf, type ObjectStore, openScanned, sameFile, storageError } from "./store.ts";
import { type MetaOverride, parseScratchName } from "./scratch.ts";

/** Totals of an import. `bytes` counts regular-file bytes. */
export interface ImportResult {
  manifest: Digest;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  skipped: string[];
}

/** Called as work proceeds: totals known after the scan, then done counts. */
export interface ImportProgress {
  scanned?(files: number, bytes: number): void;
  advanced?(files: number, bytes: number): void;
}

interface ScanDir {
  path: string;
  mode: number;
  opaque?: boolean;
  children: ScanNode[];
}
type ScanNode =
  | {
    kind: "file";
    name: string;
    path: string;
    mode: number;
    size: number;
    digest?: Digest;
    /** What the scan saw at `path`: a read must find that very file. */
    id: FileId;
  }
  | { kind: "symlink"; name: string; target: string }
  | { kind: "mask"; name: string }
  | { kind: "meta"; name: string; meta: MetaOverride }
  | ({ kind: "dir"; name: string } & ScanDir);

const enc = new TextEncoder();
/** Large files copied into the store at once. */
const CONCURRENCY = 8;
/** Small files read at once (at most 64 MiB in memory). */
const READ_AHEAD = 64;

/**
 * Imports `dir` into `store`.
 * @throws SpfsError NotADirectory / PathNotFound for a bad source, StorageError on write failure.
 */
export async function importDir(
  dir: string,
  store: ObjectStore,
  progress: ImportProgress = {},
  opts: { scratch?: boolean } = {},
): Promise<ImportResult> {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch {
    throw new SpfsError("PathNotFound", `cannot commit ${dir}: no such directory`, {
      hint: "pass an existing directory",
    });
  }
  if (!st.isDirectory) {
    throw new SpfsError("NotADirectory", `cannot commit ${dir}: not a directory`, {
      hint: "pass a directory; spfs layers are trees",
    });
  }
  const result: ImportResult = { manifest: "", files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: [] };

  // The tree may change while it is read (a runtime's scratch, as its programs run; the service
  // may be root). So each dir is opened without following a symlink and checked to be the one
  // its parent listed, and its entries are reached through that open dir, never by a path a
  // swapped-in symlink could redirect (Linux; Darwin by path, with the read-time check below).
  /** Scans the dir `path`, opened as `openAt` (a name in its open parent dir), which must be `id`. */
  const scan = (path: string, openAt: string, mode: number, id: FileId): ScanDir => {
    const node: ScanDir = { path, mode, children: [] };
    result.dirs++;
    const dfd = openDirNoFollow(openAt);
    try {
      if (dfd < 0) throw new Deno.errors.NotFound(`${path} is no longer a directory (${errnoName(-dfd)})`);
      if (!sameFile(Deno.statSync(fdPath(dfd)), id)) throw new Deno.errors.NotFound(`${path} was replaced`);
      scanEntries(node, path, dfd);
    } catch (e) {
      if (e instanceof SpfsError) throw e;
      throw storageError(`importing ${path}`, e);
    } finally {
      if (dfd >= 0) closeFd(dfd);
    }
    return node;
  };
  const scanEntries = (node: ScanDir, path: string, dfd: number): void => {
    const listed = nameInDir(dfd, ".") ?? path;
    for (const e of Deno.readDirSync(listed)) {
      const p = join(path, e.name), at = nameInDir(dfd, e.name) ?? p;
      if (opts.scratch) {
        // a runtime's scratch dir: whiteout names become masks, opaque flags and metadata changes
        const sn = parseScratchName(e.name, () => readMarker(at));
        if (sn.kind === "torn") continue;
        if (sn.kind === "opaque") {
          node.opaque = true;
          continue;
        }
        if (sn.kind === "mask") {
          node.children.push({ kind: "mask", name: sn.name });
          continue;
        }
        if (sn.kind === "meta") {
          node.children.push({ kind: "meta", name: sn.name, meta: JSON.parse(readMarker(at)) });
          continue;
        }
      }
      if (e.name.includes("\uFFFD")) {
        throw new SpfsError("UsageError", `cannot commit ${p}: the name is not valid UTF-8`, {
          hint: "rename it",
        });
      }
      const ls = Deno.lstatSync(at);
      if (ls.isSymlink) {
        node.children.push({ kind: "symlink", name: e.name, target: linkTargetOf(at, p) });
        result.symlinks++;
      } else if (ls.isDirectory) {
        node.children.push({
          kind: "dir",
          name: e.name,
          ...scan(p, at, (ls.mode ?? 0o755) & 0o7777, idOf(ls)),
        });
      } else if (ls.isFile) {
        const f = {
          kind: "file" as const,
          name: e.name,
          path: p,
          mode: (ls.mode ?? 0o644) & 0o7777,
          size: ls.size,
          id: idOf(ls),
        };
        node.children.push(f);
        result.files++;
        result.bytes += ls.size;
      } else {
        result.skipped.push(p);
        // a FIFO or socket in scratch replaced whatever a lower layer had there: keep that gone
        if (opts.scratch) node.children.push({ kind: "mask", name: e.name });
      }
    }
  };
  // the dir given may be reached through symlinks (the caller's choice); nothing below it may
  const root = scan(dir, Deno.realPathSync(dir), (st.mode ?? 0o755) & 0o7777, idOf(st));
  progress.scanned?.(result.files, result.bytes);

  // small files go into packs in the order a walk of the tree reads them (children by name, as
  // `find` lists the mount), so a cold read of the layer reads its packs front to back instead of
  // one file per object; large ones stay loose files, which a copy-up can clone
  const ordered = walkOrder(root);
  const grown = await packSmall(store, ordered.filter((f) => f.size < PACKED_BELOW), progress);
  const large = [...ordered.filter((f) => f.size >= PACKED_BELOW), ...grown];
  let next = 0;
  const worker = async () => {
    while (next < large.length) {
      const f = large[next++];
      const { digest, size } = await store.putFile(f.path, undefined, f.id);
      f.digest = digest;
      f.size = size;
      progress.advanced?.(1, size);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, large.length) }, worker));

  const build = (d: ScanDir): Digest => {
    // one entry per name, as the overlay shows it: a scratch entry wins over a mask, a mask over a
    // metadata change (a crash, or an older spfs, may leave them side by side)
    const best = new Map<string, ScanNode>();
    for (const c of d.children) {
      const b = best.get(c.name);
      if (!b || PRECEDENCE[c.kind] < PRECEDENCE[b.kind]) best.set(c.name, c);
    }
    const entries: Entry[] = [...best.values()].map((c): Entry => {
      switch (c.kind) {
        case "file":
          return { name: c.name, kind: "file", mode: c.mode, size: c.size, digest: c.digest! };
        case "symlink": {
          const bytes = enc.encode(c.target);
          return {
            name: c.name,
            kind: "symlink",
            mode: 0o777,
            size: bytes.length,
            digest: store.putBytes(bytes),
          };
        }
        case "dir":
          return { name: c.name, kind: "dir", mode: c.mode, size: 0, digest: build(c), opaque: c.opaque };
        case "mask":
          return { name: c.name, kind: "mask", mode: 0, size: 0, digest: "" };
        case "meta":
          return { name: c.name, kind: "file", mode: c.meta.mode, size: c.meta.size, digest: c.meta.digest };
      }
    });
    return store.putBytes(encodeManifest(entries));
  };
  result.manifest = build(root);
  return result;
}

/**
 * Whether `e`, thrown by importDir of a live runtime's scratch, means only that the tree changed
 * under the import (an entry renamed or removed between its listing and its read, or a file turned
 * into a dir), so the caller may import again. Walks the `cause` chain.
 */
export function scratchChanged(e: unknown): boolean {
  for (let x = e; x instanceof Error; x = x.cause) {
    if (
      x instanceof Deno.errors.NotFound || x instanceof Deno.errors.NotADirectory ||
      x instanceof Deno.errors.IsADirectory
    ) return true;
  }
  return false;
}

/** Which of a scratch dir's nodes for one name counts (lower wins). */
const PRECEDENCE: Record<ScanNode["kind"], number> = { file: 0, symlink: 0, dir: 0, mask: 1, meta: 2 };

type FileNode = Extract<ScanNode, { kind: "file" }>;

/** The files below `d`, depth first, each dir's children in manifest order. */
function walkOrder(d: ScanDir, out: FileNode[] = []): FileNode[] {
  const kids = d.children.filter((c) => c.kind === "file" || c.kind === "dir").sort(byName);
  for (const c of kids) {
    if (c.kind === "file") out.push(c);
    else if (c.kind === "dir") walkOrder(c, out);
  }
  return out;
}

/**
 * Hashes `files` (each under PACKED_BELOW bytes when scanned) and writes those the store lacks into
 * packs of about PACK_BYTES, in the order given; sets each file's digest and size. Returns the files
 * that grew past PACKED_BELOW since the scan, for the caller to store loose.
 * @throws SpfsError StorageError when a file cannot be read or the pack not written.
 */
async function packSmall(
  store: ObjectStore,
  files: FileNode[],
  progress: ImportProgress,
): Promise<FileNode[]> {
  const grown: FileNode[] = [];
  let batch: { digest: Digest; bytes: Uint8Array }[] = [];
  let batchBytes = 0;
  const batched = new Set<Digest>();
  for (let i = 0; i < files.length; i += READ_AHEAD) {
    const group = files.slice(i, i + READ_AHEAD);
    const read = await Promise.all(group.map((f) => readRegularFile(f.path, f.id)));
    const digests = read.map((b) => b.length < PACKED_BELOW ? digestBytes(b) : "");
    const present = store.reuseAll(digests.filter((d) => d && !batched.has(d)));
    for (const [j, f] of group.entries()) {
      if (!digests[j]) {
        grown.push(f);
        continue;
      }
      f.digest = digests[j];
      f.size = read[j].length;
      if (!present.has(f.digest) && !batched.has(f.digest)) {
        batch.push({ digest: f.digest, bytes: read[j] });
        batched.add(f.digest);
        batchBytes += f.size;
      }
      progress.advanced?.(1, f.size);
      if (batchBytes >= PACK_BYTES) {
        await store.putObjects(batch);
        batch = [];
        batchBytes = 0;
      }
    }
  }
  await store.putObjects(batch);
  return grown;
}

/**
 * The bytes of the regular file `path`, read through an fd opened without following a symlink, so
 * a name swapped for a symlink after the scan's lstat (by a program in the runtime, racing a
 * commit) is never read through: the service may run as root.
 * @throws SpfsError StorageError; its cause is NotFound when the name no longer holds a regular
 *   file (`scratchChanged` tells the caller the tree changed)
 */
async function readRegularFile(path: string, id: FileId): Promise<Uint8Array> {
  let fd = -1;
  try {
    fd = openScanned(path, id);
    return await Deno.readFile(fdPath(fd));
  } catch (e) {
    throw storageError(`importing ${path}`, e);
  } finally {
    if (fd >= 0) closeFd(fd);
  }
}

/**
 * The text of a whiteout marker file at `at` (a metadata sidecar, or the name a hashed mask
 * holds), read without following a symlink: markers are the service's own files.
 * @throws Deno.errors.NotFound (the runtime changed) and other Deno errors.
 */
function readMarker(at: string): string {
  const fd = openRegular(at);
  if (fd < 0) throw new Deno.errors.NotFound(`${at}: ${errnoName(-fd)}`);
  try {
    return Deno.readTextFileSync(fdPath(fd));
  } finally {
    closeFd(fd);
  }
}

/**
 * A symlink's target, read at `at` (`p` names it in errors). Deno reads it as a string and throws
 * on one that is not UTF-8, which a layer could not keep either.
 * @throws SpfsError UsageError naming the link.
 */
function linkTargetOf(at: string, p: string): string {
  try {
    return Deno.readLinkSync(at);
  } catch (e) {
    if (!/not valid UTF-8/.test(String(e))) throw e;
    throw new SpfsError("UsageError", `cannot commit ${p}: its symlink target is not valid UTF-8`, {
      hint: "point it at a UTF-8 path",
    });
  }
}
