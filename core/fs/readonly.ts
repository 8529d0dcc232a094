/**
 * The read-only backend: a layer stack served from the shared inode table (core/fs/vfs.ts). Every
 * write answers EROFS, as a read-only mount does. One instance per read-only runtime (its view
 * decides the root), one for outsiders (an empty root), and one shared for inodes below the root,
 * which belong to their stack whoever asks.
 */
import { E } from "../../ffi/errno.ts";
import { libc, O_ACCMODE, O_TRUNC } from "../../ffi/sys.ts";
import type { Attr } from "../../ffi/stat.ts";
import type { StatVfs } from "../../ffi/types.ts";
import { type DirEntry, type Errno, type FsBackend, nameTooLong, type Opened } from "./backend.ts";
import type { BlobOpener } from "./blobs.ts";
import { ROOT_INO, type Vfs, type View } from "./vfs.ts";

/** S_IFMT type bits by manifest kind. */
export const DT: Record<string, number> = { dir: 0o040000, file: 0o100000, symlink: 0o120000 };
const W_OK = 2;

const READ_ONLY_STATVFS: StatVfs = {
  bsize: 4096,
  blocks: 0,
  bfree: 0,
  bavail: 0,
  files: 0,
  ffree: 0,
  namemax: 255,
  readonly: true,
};

/** A layer stack, read-only. `view` null: an outsider's empty root, or any inode below the root. */
export class ReadOnlyBackend implements FsBackend {
  readonly attrTimeout = 60;
  readonly writable = false;
  readonly cacheListings = true;
  constructor(readonly vfs: Vfs, readonly view: View | null, readonly blobs: BlobOpener) {}

  lookup(parent: number, name: string): Attr | Errno {
    if (nameTooLong(name)) return E.ENAMETOOLONG;
    const n = this.vfs.lookup(this.view, parent, name);
    return typeof n === "number" ? n : this.vfs.attr(n.ino)!;
  }
  forget(ino: number, n: number): boolean {
    return this.vfs.forget(ino, n);
  }
  getattr(ino: number): Attr | Errno {
    return this.vfs.attr(ino) ?? E.ENOENT;
  }
  readlink(ino: number): Uint8Array | Errno {
    const n = this.vfs.nodes.get(ino);
    if (!n || n.kind !== "symlink") return E.ENOENT;
    return this.vfs.blobBytes(n.digest!);
  }
  open(ino: number, flags: number): Opened | Errno {
    const n = this.vfs.nodes.get(ino);
    if (!n) return E.ENOENT;
    if (n.kind !== "file") return E.EACCES;
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC)) return E.EROFS;
    const fd = this.blobs.open(n.digest!);
    return fd < 0 ? -fd : { fh: fd };
  }
  release(fh: number): void {
    this.blobs.closed(fh);
    libc().close(fh);
  }
  list(ino: number): DirEntry[] | Errno {
    const list = this.vfs.list(this.view, ino);
    if (typeof list === "number") return list;
    return list.map(([name, n]) => ({ name, ino: n.ino, type: DT[n.kind] }));
  }
  statfs(): StatVfs {
    return READ_ONLY_STATVFS;
  }
  access(_ino: number, mask: number): Errno {
    return mask & W_OK ? E.EROFS : 0;
  }
  getxattr(): Errno {
    return E.ENOATTR;
  }
  listxattr(): Uint8Array {
    return new Uint8Array(0);
  }
  setxattr(ino: number): Errno {
    return ino === ROOT_INO ? E.ENOTSUP : E.EROFS;
  }
  removexattr(ino: number): Errno {
    return ino === ROOT_INO ? E.ENOATTR : E.EROFS;
  }
  write(): Errno {
    return E.EBADF;
  }
  setattr(): Errno {
    return E.EROFS;
  }
  create(): Errno {
    return E.EROFS;
  }
  mknod(): Errno {
    return E.EROFS;
  }
  mkdir(): Errno {
    return E.EROFS;
  }
  symlink(): Errno {
    return E.EROFS;
  }
  link(): Errno {
    return E.EROFS;
  }
  unlink(): Errno {
    return E.EROFS;
  }
  rmdir(): Errno {
    return E.EROFS;
  }
  rename(): Errno {
    return E.EROFS;
  }
  fallocate(): Errno {
    return E.EROFS;
  }
}
