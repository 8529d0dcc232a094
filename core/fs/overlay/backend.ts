/**
 * An editable runtime as an FsBackend: inode numbers in, the overlay's nodes inside. Owns the
 * runtime's open file handles (fds in scratch or in the object store), so an unlinked file that
 * is still open keeps serving live attributes through its fd.
 *
 * The kernel does not say when a file is open (Linux sends no OPEN: ffi/fuse/abi.ts `noOpen`), so a
 * scratch file losing its last name while the kernel still knows its inode is kept open here
 * ("pinned") until the kernel forgets the inode: a process may still read or write it. A lower
 * file in that state is copied into an unnamed scratch file, pinned the same way, when it is first
 * written or its attributes set; every change to a detached file goes through that fd, never a path.
 */
import { E } from "../../../ffi/errno.ts";
import { fallocate, fstat, ftruncate, openFile, statfs } from "../../../ffi/fsops.ts";
import { errno, libc, O_RDONLY, O_RDWR, O_TRUNC, RENAME_EXCHANGE } from "../../../ffi/sys.ts";
import type { Attr } from "../../../ffi/stat.ts";
import type { StatVfs } from "../../../ffi/types.ts";
import type { Caller, DeferredCopy, DirEntry, Errno, FsBackend, Opened, SetAttr } from "../backend.ts";
import type { BlobOpener } from "../blobs.ts";
import { DT } from "../readonly.ts";
import { ROOT_INO } from "../vfs.ts";
import { type ONode, opensToWrite, Overlay, type OverlayOptions } from "./overlay.ts";

/** An open handle of this runtime. */
interface Handle {
  node: ONode;
  /** The fd is the scratch file (else the lower blob, whose own attributes are not the file's). */
  upper: boolean;
  /** Holders of this fd: a pin, and the worker when `open` handed the pinned fd out again. */
  refs: number;
}

/**
 * Lower files at least this big (bytes) are copied up off the FUSE thread: a copy of 1 MiB takes
 * about as long as a round trip to the copier and back, and a 1 GiB one most of a second.
 */
export const OFF_THREAD_COPY_MIN = 1 << 20;

/** One editable runtime. */
export class OverlayBackend implements FsBackend {
  /** Scratch times and sizes move, so the kernel keeps attributes briefly. */
  readonly attrTimeout = 1;
  readonly writable = true;
  /**
   * Listings may stay in the kernel's readdir cache: a runtime's dirs are its own inodes, and
   * every change to them comes through this mount, where the kernel marks the dir changed (Linux
   * fs/fuse/dir.c `fuse_dir_changed` bumps i_version) and drops its cache at the next opendir.
   * A commit keeps names and inodes as they were.
   */
  readonly cacheListings = true;
  readonly overlay: Overlay;
  readonly #handles = new Map<number, Handle>();
  /** ino → the fd pinning an unlinked scratch file (see above). */
  readonly #pins = new Map<number, number>();
  readonly #blobs: BlobOpener;

  constructor(o: OverlayOptions & { blobs: BlobOpener }) {
    this.#blobs = o.blobs;
    this.overlay = new Overlay({ ...o, owner: this });
  }

  #attrOf(n: ONode | number): Attr | Errno {
    return typeof n === "number" ? n : this.overlay.attr(n);
  }

  /** Ends the runtime: closes the pins (a lingering process's later forgets find nothing). */
  dispose(): void {
    for (const fd of this.#pins.values()) this.release(fd);
    this.#pins.clear();
    this.overlay.dispose();
  }

  lookup(parent: number, name: string): Attr | Errno {
    return this.#attrOf(this.overlay.lookup(parent, name));
  }
  forget(ino: number, n: number): boolean {
    const gone = this.overlay.forget(ino, n);
    const pin = gone ? this.#pins.get(ino) : undefined;
    if (pin !== undefined) {
      this.#pins.delete(ino);
      this.release(pin);
    }
    return gone;
  }
  /** An open scratch file's fd is the truth: the file may be unlinked and still growing. */
  getattr(ino: number, fh?: number): Attr | Errno {
    const h = fh !== undefined ? this.#handles.get(fh) : undefined;
    if (h?.upper) {
      const a = fstat(fh!);
      if (typeof a !== "number") return { ...a, ino };
    }
    const n = this.overlay.node(ino);
    if (!n) return E.ENOENT;
    if (n.detached && n.openFds > 0) {
      for (const [fd, o] of this.#handles) {
        const a = o.node === n && o.upper ? fstat(fd) : E.EBADF;
        if (typeof a !== "number") return { ...a, ino };
      }
    }
    return this.overlay.attr(n);
  }
  setattr(ino: number, set: SetAttr, fh?: number): Attr | Errno {
    if (ino === ROOT_INO) return E.EPERM;
    const n = this.overlay.node(ino);
    if (!n) return E.ENOENT;
    if (!n.detached || n.kind === "dir") return this.overlay.setattr(n, set, fh);
    const pin = this.#detachedFd(n);
    return typeof pin === "number" ? pin : this.overlay.setattr(n, set, pin.fd);
  }
  readlink(ino: number): Uint8Array | Errno {
    const n = this.overlay.node(ino);
    return n ? this.overlay.readlink(n) : E.ENOENT;
  }
  open(ino: number, flags: number): Opened | Errno {
    const n = this.overlay.node(ino);
    if (!n) return E.ENOENT;
    const pin = n.detached && (opensToWrite(flags) || n.upper) ? this.#detachedFd(n) : undefined;
    if (typeof pin === "number") return pin;
    if (pin) {
      if (flags & O_TRUNC) ftruncate(pin.fd, 0);
      this.#handles.get(pin.fd)!.refs++;
      return { fh: pin.fd };
    }
    const r = this.overlay.open(n, flags, this.#blobs.open);
    if (typeof r === "number") return r;
    this.#handles.set(r.fd, { node: n, upper: n.upper, refs: 1 });
    return { fh: r.fd };
  }
  copyBeforeOpen(ino: number, flags: number): DeferredCopy | Errno | null {
    const n = this.overlay.node(ino);
    const job = n ? this.overlay.slowCopyUp(n, flags, OFF_THREAD_COPY_MIN) : null;
    if (job === null || typeof job === "number") return job;
    return {
      src: job.src,
      dst: job.tmp,
      size: n!.lower!.size,
      finish: (err, how) => this.overlay.endCopyUp(ino, job, err, how),
    };
  }
  create(parent: number, name: string, mode: number, who: Caller): [Attr, Opened] | Errno {
    const r = this.overlay.create(parent, name, mode, who);
    if (typeof r === "number") return r;
    const a = this.overlay.attr(r.node);
    if (typeof a === "number") return a;
    this.#handles.set(r.fd, { node: r.node, upper: true, refs: 1 });
    return [a, { fh: r.fd }];
  }
  write(fh: number, buf: Deno.PointerValue, size: bigint, off: bigint): bigint | Errno {
    if (!this.#handles.get(fh)?.upper) return E.EBADF;
    const n = libc().pwrite(fh, buf, size, off);
    if (n < 0) return errno();
    this.overlay.gen++;
    return BigInt(n);
  }
  release(fh: number): void {
    const h = this.#handles.get(fh);
    if (h && --h.refs > 0) return;
    if (h) {
      this.#handles.delete(fh);
      this.overlay.released(h.node);
    }
    this.#blobs.closed(fh);
    libc().close(fh);
  }

  /**
   * The pinned fd of the detached file `n`; a lower one is first copied into an unnamed scratch
   * file (see above). ENOENT for a detached node with no pin (the kernel had forgotten it).
   */
  #detachedFd(n: ONode): { fd: number } | Errno {
    const pin = this.#pins.get(n.ino);
    if (pin !== undefined) return { fd: pin };
    if (n.upper) return E.ENOENT;
    const r = this.overlay.orphanCopyUp(n);
    if (typeof r === "number") return r;
    n.openFds++;
    this.#handles.set(r.fd, { node: n, upper: true, refs: 1 });
    this.#pins.set(n.ino, r.fd);
    return r;
  }

  /**
   * Pins the scratch file `path` names before that name goes, when it is its last and the kernel
   * still knows its inode (see above).
   */
  #pin(path: string): void {
    const n = this.overlay.table.atPath(path);
    if (!n || n.kind !== "file" || !n.upper || n.nlookup <= 0 || (n.links?.size ?? 1) > 1) return;
    if (this.#pins.has(n.ino)) return;
    const up = this.overlay.upperPath(n);
    let fd = openFile(up, O_RDWR);
    if (fd === -E.EACCES) fd = openFile(up, O_RDONLY);
    if (fd < 0) return;
    n.openFds++;
    this.#handles.set(fd, { node: n, upper: true, refs: 1 });
    this.#pins.set(n.ino, fd);
  }
  list(ino: number): DirEntry[] | Errno {
    const list = this.overlay.list(ino, true);
    if (typeof list === "number") return list;
    return list.map(([name, n]) => {
      let type = DT[n.kind];
      if (type === undefined) {
        const a = this.overlay.attr(n);
        type = typeof a === "number" ? 0 : a.mode & 0o170000;
      }
      return { name, ino: n.ino, type };
    });
  }
  statfs(): StatVfs | Errno {
    const st = statfs(this.overlay.scratch);
    return typeof st === "number" ? st : { ...st, readonly: false };
  }
  access(): Errno {
    return 0;
  }
  #withNode<T>(ino: number, f: (n: ONode) => T | Errno): T | Errno {
    const n = this.overlay.node(ino);
    return n ? f(n) : E.ENOENT;
  }
  getxattr(ino: number, name: string, size: number, position = 0): Uint8Array | Errno {
    return this.#withNode(ino, (n) => this.overlay.getxattr(n, name, size, position));
  }
  listxattr(ino: number, size: number): Uint8Array | Errno {
    return this.#withNode(ino, (n) => this.overlay.listxattr(n, size));
  }
  setxattr(
    ino: number,
    name: string,
    value: Deno.PointerValue,
    size: number,
    flags: number,
    position = 0,
  ): Errno {
    return this.#withNode(ino, (n) => this.overlay.setxattr(n, name, value, size, flags, position));
  }
  removexattr(ino: number, name: string): Errno {
    return this.#withNode(ino, (n) => this.overlay.removexattr(n, name));
  }
  mknod(parent: number, name: string, mode: number, rdev: bigint, who: Caller): Attr | Errno {
    return this.#attrOf(this.overlay.mknod(parent, name, mode, rdev, who));
  }
  mkdir(parent: number, name: string, mode: number, who: Caller): Attr | Errno {
    return this.#attrOf(this.overlay.mkdir(parent, name, mode, who));
  }
  symlink(parent: number, name: string, target: Uint8Array, who: Caller): Attr | Errno {
    return this.#attrOf(this.overlay.symlink(parent, name, target, who));
  }
  link(ino: number, parent: number, name: string): Attr | Errno {
    return this.#attrOf(this.overlay.link(ino, parent, name));
  }
  unlink(parent: number, name: string): Errno {
    const dir = this.overlay.node(parent);
    if (dir) this.#pin(`${dir.path}/${name}`);
    return this.overlay.unlink(parent, name);
  }
  rmdir(parent: number, name: string): Errno {
    return this.overlay.rmdir(parent, name);
  }
  rename(parent: number, name: string, newParent: number, newName: string, flags: number): Errno {
    const to = this.overlay.node(newParent);
    if (to && !(flags & RENAME_EXCHANGE)) this.#pin(`${to.path}/${newName}`);
    return this.overlay.rename(parent, name, newParent, newName, flags);
  }
  /** fallocate on the handle's fd (opened for writing, so it is in scratch). */
  fallocate(_ino: number, fh: number | undefined, mode: number, off: bigint, len: bigint): Errno {
    if (fh === undefined || !this.#handles.get(fh)?.upper) return E.EBADF;
    const e = fallocate(fh, mode, off, len);
    if (e) return e;
    this.overlay.gen++;
    return 0;
  }
}
