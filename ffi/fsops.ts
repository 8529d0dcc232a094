/**
 * Path-level filesystem calls for editable runtimes, one function per call with the OS picked
 * inside, returning errno instead of throwing so the FUSE adapter can pass the exact POSIX error
 * on (the POSIX suite compares errno values with a local directory). The overlay calls only these,
 * so one overlay code path serves Linux and macOS.
 * Linux: glibc 2.36, man-pages 6.03 sections 2 and 3. macOS: libSystem, xnu-11417 headers
 * (darwin/libsystem.ts). No variadic argument is ever passed through FFI on macOS (on Apple arm64
 * it would go on the stack, where Deno FFI cannot put it): files are created with Deno.openSync,
 * whose mode Deno passes natively, and `open` is called with its two fixed arguments only.
 */
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  cstr,
  errno,
  errnoIn,
  FICLONE,
  FS_IOC_GETFLAGS,
  FS_IOC_SETFLAGS,
  FS_TOPDIR_FL,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  XATTR_CREATE,
  XATTR_REPLACE,
} from "./sys.ts";
import { type Attr, decodeStat, hostStatLayout, STAT_SIZE } from "./stat.ts";
import { E } from "./errno.ts";
import { os } from "./os.ts";
import { DARWIN_FS, libSystem, statfsDarwin } from "./darwin/libsystem.ts";
import type { FsStats } from "./types.ts";

const darwin = os === "darwin";
const layout = hostStatLayout();
const statBuf = new Uint8Array(STAT_SIZE[layout]);
const statView = new DataView(statBuf.buffer);

/** lstat(2) of `path`: its attributes (real st_ino in `ino`), or an errno. */
export function lstat(path: string): Attr | number {
  return libc().lstat(cstr(path), statBuf) === 0 ? decodeStat(layout, statView) : errno();
}

/** fstat(2) of an open fd: its attributes, or an errno. */
export function fstat(fd: number): Attr | number {
  statBuf.fill(0);
  return libc().fstat(fd, statBuf) === 0 ? decodeStat(layout, statView) : errno();
}

/** True when `path` exists, of any type (a dangling symlink counts). Portable: no libc call. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a libc call that returns 0 or -1, mapping -1 to errno. */
export function check(rc: number | bigint): number {
  return Number(rc) < 0 ? errno() : 0;
}

/**
 * Creates `path` (must not exist), opens it with `flags` (O_CREAT and O_EXCL are implied and
 * stripped) and gives it exactly `mode` (no umask: FUSE hands over an already masked mode).
 * Returns the fd, or -errno. Deno.openSync creates the file because open's mode is a variadic
 * argument (see the module comment); it is created 0600 so the open succeeds for its owner
 * whatever `mode` says, as open(2) with O_CREAT does.
 */
export function createFile(path: string, flags: number, mode: number): number {
  try {
    Deno.openSync(path, { createNew: true, write: true, mode: 0o600 }).close();
  } catch (e) {
    return -(errnoIn(e) ?? E.EIO);
  }
  const fd = libc().open(cstr(path), (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC);
  const e = fd < 0 ? errno() : fchmod(fd, mode);
  if (e) {
    if (fd >= 0) libc().close(fd);
    libc().unlink(cstr(path));
    return -e;
  }
  return fd;
}

/** open(2) of an existing file, with its two fixed arguments only: the fd, or -errno. */
export function openFile(path: string, flags: number): number {
  if (flags & O_CREAT) throw new Error("openFile never creates: use createFile");
  const fd = libc().open(cstr(path), flags | O_CLOEXEC);
  return fd < 0 ? -errno() : fd;
}

/**
 * Opens the regular file `path` for reading without following a symlink at its last component
 * (O_NOFOLLOW, and O_NONBLOCK so a FIFO never blocks), then checks with fstat that it is one. A
 * name another process swapped for a symlink, FIFO or device after the caller's lstat is refused,
 * never read through: ELOOP for a symlink (open(2)), ENXIO for any other non-regular file.
 * @returns the fd (read it through `fdPath`, close it with `closeFd`), or -errno
 */
export function openRegular(path: string): number {
  const fd = openFile(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return fd;
  const a = fstat(fd);
  if (typeof a === "number" || (a.mode & 0o170000) !== 0o100000) {
    libc().close(fd);
    return typeof a === "number" ? -a : -E.ENXIO;
  }
  return fd;
}

/**
 * A path that opens what the open fd `fd` holds, whatever its name has become since: Linux
 * procfs `/proc/self/fd/N` (proc(5)), Darwin fdesc `/dev/fd/N` (fd(4)).
 */
export function fdPath(fd: number): string {
  return darwin ? `/dev/fd/${fd}` : `/proc/self/fd/${fd}`;
}

/**
 * A path naming `name` inside the directory open as `dirFd`, resolved from that directory whatever
 * happened to the path it was opened by: Linux procfs `/proc/self/fd/N/name`; null on Darwin,
 * whose `/dev/fd/N` is no directory.
 */
export function nameInDir(dirFd: number, name: string): string | null {
  return darwin ? null : `${fdPath(dirFd)}/${name}`;
}

/**
 * Opens the directory `path` without following a symlink at its last component (O_DIRECTORY |
 * O_NOFOLLOW). @returns the fd, or -errno (ENOTDIR or ELOOP for a name that is no directory now)
 */
export function openDirNoFollow(path: string): number {
  return openFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

/** close(2). */
export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * Opens directory `path` as an anchor for names below it: the fd, or -errno. Linux: O_PATH
 * (no read permission needed). Darwin has no O_PATH: O_RDONLY | O_DIRECTORY.
 */
export function openDirAnchor(path: string): number {
  return openFile(path, O_PATH | O_DIRECTORY);
}

/** Creates `path` as an empty file (mode 0600) if it does not exist. Returns 0 or an errno. */
export function touch(path: string): number {
  try {
    Deno.openSync(path, { create: true, write: true, mode: 0o600 }).close();
    return 0;
  } catch (e) {
    return errnoIn(e) ?? E.EIO;
  }
}

/**
 * rename of two paths; `flags` are the Linux renameat2(2) ones (RENAME_NOREPLACE 1,
 * RENAME_EXCHANGE 2) on every OS. Darwin: renameatx_np with RENAME_EXCL / RENAME_SWAP (stdio.h).
 * Returns 0 or an errno.
 */
export function rename(from: string, to: string, flags = 0): number {
  if (darwin) {
    const f = renamexFlags(flags);
    return check(libSystem().renameatx_np(DARWIN_FS.AT_FDCWD, cstr(from), DARWIN_FS.AT_FDCWD, cstr(to), f));
  }
  return check(libc().renameat2(AT_FDCWD, cstr(from), AT_FDCWD, cstr(to), flags));
}

/** Darwin renameatx_np flags for Linux renameat2 ones: NOREPLACE → RENAME_EXCL, EXCHANGE → RENAME_SWAP. */
export function renamexFlags(linuxFlags: number): number {
  return (linuxFlags & RENAME_NOREPLACE ? DARWIN_FS.RENAME_EXCL : 0) |
    (linuxFlags & RENAME_EXCHANGE ? DARWIN_FS.RENAME_SWAP : 0);
}

/** mkdir(2); `mode` is masked by the umask. Returns 0 or an errno. */
export function mkdir(path: string, mode: number): number {
  return check(libc().mkdir(cstr(path), mode & 0o7777));
}

/** rmdir(2). Returns 0 or an errno. */
export function rmdir(path: string): number {
  return check(libc().rmdir(cstr(path)));
}

/** unlink(2). Returns 0 or an errno. */
export function unlink(path: string): number {
  return check(libc().unlink(cstr(path)));
}

/** symlink(2) at `path` pointing at `target` (bytes, no NUL). Returns 0 or an errno. */
export function symlink(target: Uint8Array, path: string): number {
  const z = new Uint8Array(target.length + 1);
  z.set(target);
  return check(libc().symlink(z, cstr(path)));
}

/** link(2). Returns 0 or an errno. */
export function link(existing: string, path: string): number {
  return check(libc().link(cstr(existing), cstr(path)));
}

/**
 * mknod(2): regular files, FIFOs, sockets, devices (`rdev`: Linux dev_t is 64-bit, Darwin's
 * 32-bit). Returns 0 or an errno.
 */
export function mknod(path: string, mode: number, rdev: bigint): number {
  if (darwin) return check(libSystem().mknod(cstr(path), mode & 0xffff, Number(BigInt.asIntN(32, rdev))));
  return check(libc().mknod(cstr(path), mode, rdev));
}

/** chmod(2) (follows symlinks; never called on one). Returns 0 or an errno. */
export function chmod(path: string, mode: number): number {
  return check(libc().chmod(cstr(path), mode & 0o7777));
}

/** fchmod(2). Returns 0 or an errno. */
export function fchmod(fd: number, mode: number): number {
  return check(libc().fchmod(fd, mode & 0o7777));
}

/** lchown(2); 0xffffffff keeps the id. Returns 0 or an errno. */
export function lchown(path: string, uid: number, gid: number): number {
  return check(libc().lchown(cstr(path), uid >>> 0, gid >>> 0));
}

/** fchown(2); 0xffffffff keeps the id. Returns 0 or an errno. */
export function fchown(fd: number, uid: number, gid: number): number {
  return check(libc().fchown(fd, uid >>> 0, gid >>> 0));
}

/** truncate(2) to `size` bytes. Returns 0 or an errno. */
export function truncate(path: string, size: number | bigint): number {
  return check(libc().truncate(cstr(path), BigInt(size)));
}

/** ftruncate(2) to `size` bytes. Returns 0 or an errno. */
export function ftruncate(fd: number, size: number | bigint): number {
  return check(libc().ftruncate(fd, BigInt(size)));
}

/**
 * fallocate(2) (Linux). Darwin has none outside fcntl(F_PREALLOCATE), which is variadic:
 * ENOTSUP, as on a local filesystem without it.
 */
export function fallocate(fd: number, mode: number, off: bigint, len: bigint): number {
  if (darwin) return E.ENOTSUP;
  return check(libc().fallocate(fd, mode, off, len));
}

/**
 * getxattr without following symlinks into `buf` (null: ask for the size), from byte `position`
 * (Darwin resource forks; anything but 0 is EINVAL on Linux). Returns the value's length in bytes,
 * or -errno (a missing name: -ENODATA on Linux, -ENOATTR on Darwin, both E.ENOATTR).
 */
export function getxattr(path: string, name: string, buf: Uint8Array | null, position = 0): number {
  const size = BigInt(buf?.length ?? 0);
  if (!darwin && position !== 0) return -E.EINVAL;
  const r = Number(
    darwin
      ? libSystem().getxattr(cstr(path), cstr(name), buf, size, position, DARWIN_FS.XATTR_NOFOLLOW)
      : libc().lgetxattr(cstr(path), cstr(name), buf, size),
  );
  return r < 0 ? -errno() : r;
}

/**
 * setxattr without following symlinks. `flags` are Linux's XATTR_CREATE 1 / XATTR_REPLACE 2 on
 * every OS (Darwin's are 0x2 / 0x4, bsd/sys/xattr.h); `position` as for getxattr. Returns 0 or
 * an errno.
 */
export function setxattr(
  path: string,
  name: string,
  value: Deno.PointerValue,
  size: number,
  flags: number,
  position = 0,
): number {
  if (!darwin && position !== 0) return E.EINVAL;
  return check(
    darwin
      ? libSystem().setxattr(cstr(path), cstr(name), value, BigInt(size), position, darwinXattrFlags(flags))
      : libc().lsetxattr(cstr(path), cstr(name), value, BigInt(size), flags),
  );
}

/** Darwin setxattr options for Linux XATTR_CREATE 1 / XATTR_REPLACE 2, never following symlinks. */
export function darwinXattrFlags(linuxFlags: number): number {
  return DARWIN_FS.XATTR_NOFOLLOW | (linuxFlags & XATTR_CREATE ? DARWIN_FS.XATTR_CREATE : 0) |
    (linuxFlags & XATTR_REPLACE ? DARWIN_FS.XATTR_REPLACE : 0);
}

/**
 * Whether a runtime may set xattr `name` on a scratch entry. Linux: `user.*` only (xattr(7):
 * trusted.* and security.* need CAP_SYS_ADMIN in the service's namespace and would apply to the
 * service, system.* are ACLs). Darwin has no namespaces: any name (com.apple.quarantine, …).
 */
export function xattrNameSettable(name: string): boolean {
  return darwin || name.startsWith("user.");
}

/**
 * fsync(2), or fdatasync(2) when `datasync` (Linux). Darwin: fsync for both, since fdatasync is
 * not in the SDK headers; a full flush to the platters would take fcntl(F_FULLFSYNC), which is
 * variadic. Returns 0 or an errno.
 */
export function fsyncFd(fd: number, datasync: boolean): number {
  return check(datasync && !darwin ? libc().fdatasync(fd) : libc().fsync(fd));
}

/** listxattr without following symlinks into `buf` (null: ask for the size): bytes, or -errno. */
export function listxattr(path: string, buf: Uint8Array | null): number {
  const size = BigInt(buf?.length ?? 0);
  const r = Number(
    darwin
      ? libSystem().listxattr(cstr(path), buf, size, DARWIN_FS.XATTR_NOFOLLOW)
      : libc().llistxattr(cstr(path), buf, size),
  );
  return r < 0 ? -errno() : r;
}

/** removexattr without following symlinks. Returns 0 or an errno. */
export function removexattr(path: string, name: string): number {
  return check(
    darwin
      ? libSystem().removexattr(cstr(path), cstr(name), DARWIN_FS.XATTR_NOFOLLOW)
      : libc().lremovexattr(cstr(path), cstr(name)),
  );
}

export type { FsStats };

/** statfs(2) of `path`, or an errno. Darwin: `struct statfs` with 64-bit inodes (darwin/libsystem.ts). */
export function statfs(path: string): FsStats | number {
  if (darwin) {
    const d = statfsDarwin(path);
    if (typeof d === "number") return d;
    const { bsize, blocks, bfree, bavail, files, ffree } = d;
    // APFS and HFS+ names are at most 255 UTF-8 bytes (NAME_MAX, sys/syslimits.h)
    return { type: 0, typeName: d.fstypename, bsize, blocks, bfree, bavail, files, ffree, namemax: 255 };
  }
  const b = new Uint8Array(120);
  if (libc().statfs(cstr(path), b) !== 0) return errno();
  const v = new DataView(b.buffer);
  const n = (o: number) => Number(v.getBigUint64(o, true));
  return {
    type: n(0),
    typeName: fsTypeName(n(0)),
    bsize: n(8),
    blocks: n(16),
    bfree: n(24),
    bavail: n(32),
    files: n(40),
    ffree: n(48),
    namemax: n(64),
  };
}

/** f_type magic numbers (linux/magic.h) of the filesystems a backstore is likely on. */
const FS_NAMES: Record<number, string> = {
  0xEF53: "ext4",
  0x01021994: "tmpfs",
  0x9123683E: "btrfs",
  0x58465342: "xfs",
  0x794c7630: "overlay",
  0x2fc12fc1: "zfs",
  0x65735546: "fuse",
  0x6969: "nfs",
  0xF2F52010: "f2fs",
};

/** A readable filesystem name for a statfs f_type. */
function fsTypeName(type: number): string {
  return FS_NAMES[type] ?? `0x${type.toString(16)}`;
}

/** Opens `src` for reading and creates `dst` (0600, must not exist): [in, out] fds or an errno. */
function openPair(src: string, dst: string): [number, number] | number {
  const fin = openFile(src, O_RDONLY);
  if (fin < 0) return -fin;
  const fout = createFile(dst, O_WRONLY, 0o600);
  if (fout < 0) {
    libc().close(fin);
    return -fout;
  }
  return [fin, fout];
}

/**
 * Clones `src` into the new file `dst`. Linux: ioctl(FICLONE) when `reflink`, then
 * copy_file_range(2), then a byte copy. Darwin: clonefile(2) when `reflink` (it creates `dst`
 * with `src`'s mode), then a byte copy. Returns the method used, or an errno.
 */
export function cloneFile(
  src: string,
  dst: string,
  reflink: boolean,
): "reflink" | "copy_file_range" | "copy" | number {
  if (darwin && reflink) {
    const e = clonefile(src, dst);
    if (e === 0) return "reflink";
    if (e !== E.ENOTSUP && e !== E.EXDEV) return e;
  }
  const C = libc();
  const fds = openPair(src, dst);
  if (typeof fds === "number") return fds;
  const [fin, fout] = fds;
  try {
    if (!darwin) {
      if (reflink && C.ioctl(fout, BigInt(FICLONE), BigInt(fin)) === 0) return "reflink";
      const r = copyFileRange(fin, fout);
      if (r !== "copy") return r;
    }
    return byteCopy(fin, fout);
  } finally {
    C.close(fin);
    C.close(fout);
  }
}

/** clonefile(2) without following a symlink or copying the owner: 0 or an errno. */
function clonefile(src: string, dst: string): number {
  const { CLONE_NOFOLLOW, CLONE_NOOWNERCOPY } = DARWIN_FS;
  return check(libSystem().clonefile(cstr(src), cstr(dst), CLONE_NOFOLLOW | CLONE_NOOWNERCOPY));
}

/** copy_file_range(2) of a whole file (Linux): the method, "copy" when the kernel cannot, or an errno. */
function copyFileRange(fin: number, fout: number): "copy_file_range" | "copy" | number {
  for (;;) {
    const n = Number(libc().copy_file_range(fin, null, fout, null, 1n << 30n, 0));
    if (n === 0) return "copy_file_range";
    if (n > 0) continue;
    const e = errno();
    return e === E.EXDEV || e === E.ENOSYS || e === E.EINVAL || e === E.ENOTSUP ? "copy" : e;
  }
}

/** pread/pwrite of a whole file, 1 MiB at a time: "copy", or an errno. */
function byteCopy(fin: number, fout: number): "copy" | number {
  const C = libc();
  const buf = new Uint8Array(1 << 20);
  let off = 0n;
  for (;;) {
    const n = Number(C.pread(fin, buf, BigInt(buf.length), off));
    if (n < 0) return errno();
    if (n === 0) return "copy";
    let done = 0;
    while (done < n) {
      const w = Number(C.pwrite(fout, Deno.UnsafePointer.of(buf.subarray(done)), BigInt(n - done), off));
      if (w < 0) return errno();
      done += w;
      off += BigInt(w);
    }
  }
}

/**
 * Sets times on `path` without following symlinks, or on the open file `path` when it is an fd
 * (futimens(2)); ns since the epoch, or "now", or undefined to keep.
 */
export function utimens(
  path: string | number,
  atime: bigint | "now" | undefined,
  mtime: bigint | "now" | undefined,
): number {
  // struct timespec is {i64 sec, i64 nsec} on both LP64 systems; the special nsec values differ
  const [NOW, OMIT] = darwin
    ? [DARWIN_FS.UTIME_NOW, DARWIN_FS.UTIME_OMIT]
    : [(1n << 30n) - 1n, (1n << 30n) - 2n];
  const ts = new BigInt64Array(4);
  const put = (i: number, t: bigint | "now" | undefined) => {
    if (t === undefined) ts[i + 1] = OMIT;
    else if (t === "now") ts[i + 1] = NOW;
    else {
      ts[i] = t / 1_000_000_000n;
      ts[i + 1] = t % 1_000_000_000n;
    }
  };
  put(0, atime);
  put(2, mtime);
  if (typeof path === "number") return check(libc().futimens(path, new Uint8Array(ts.buffer)));
  const [fdcwd, nofollow] = darwin
    ? [DARWIN_FS.AT_FDCWD, DARWIN_FS.AT_SYMLINK_NOFOLLOW]
    : [AT_FDCWD, AT_SYMLINK_NOFOLLOW];
  return check(libc().utimensat(fdcwd, cstr(path), new Uint8Array(ts.buffer), nofollow));
}

/** readlink(2): the target bytes, or an errno. */
export function readlinkBytes(path: string): Uint8Array | number {
  const b = new Uint8Array(4096);
  const n = Number(libc().readlink(cstr(path), b, BigInt(b.length)));
  return n < 0 ? errno() : b.slice(0, n);
}

/**
 * Probes whether a file in `srcDir` can be reflinked into `dstDir` (which may be the same dir):
 * clones a small file with FICLONE (Linux) or clonefile(2) (Darwin).
 * Returns true, or the errno that refused it (EOPNOTSUPP, EXDEV, EINVAL…).
 */
export function probeReflink(srcDir: string, dstDir: string): true | number {
  const tag = `.spfs-probe-${Deno.pid}-${Date.now()}`;
  const a = `${srcDir}/${tag}`, b = `${dstDir}/${tag}.clone`;
  try {
    Deno.writeFileSync(a, new Uint8Array(4096).fill(7));
    if (darwin) {
      const e = clonefile(a, b);
      return e === 0 ? true : e;
    }
    const fds = openPair(a, b);
    if (typeof fds === "number") return fds;
    const C = libc();
    const e = C.ioctl(fds[1], BigInt(FICLONE), BigInt(fds[0])) === 0 ? 0 : errno();
    C.close(fds[0]);
    C.close(fds[1]);
    return e === 0 ? true : e;
  } finally {
    for (const p of [a, b]) {
      try {
        Deno.removeSync(p);
      } catch { /* not created */ }
    }
  }
}

/**
 * Marks dir `path` as the top of unrelated hierarchies (chattr +T, FS_TOPDIR_FL), so that ext4's
 * Orlov allocator spreads the dirs made in it over block groups instead of packing each into its
 * parent's group (Documentation/filesystems/ext4, chattr(1)). Without a journal ext4 skips every
 * inode freed in the last 30 s, or 5.5 min while its table block is dirty, scanning each in turn
 * (fs/ext4/ialloc.c `recently_deleted`); a new runtime's scratch next to the one just deleted paid
 * that on every create.
 * Returns true when the flag is set, or the errno: ENOTSUP (EOPNOTSUPP) or ENOTTY where the
 * filesystem has no such flag (xfs, btrfs, tmpfs), and ENOTSUP on Darwin, which has no such hint.
 */
export function markTopDir(path: string): true | number {
  if (darwin) return E.ENOTSUP;
  const fd = openFile(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -fd;
  const C = libc();
  try {
    const flags = new Int32Array(2);
    const at = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(flags)));
    if (C.ioctl(fd, BigInt(FS_IOC_GETFLAGS), at) !== 0) return errno();
    if (flags[0] & FS_TOPDIR_FL) return true;
    flags[0] |= FS_TOPDIR_FL;
    return C.ioctl(fd, BigInt(FS_IOC_SETFLAGS), at) === 0 ? true : errno();
  } finally {
    C.close(fd);
  }
}
