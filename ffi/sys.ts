/**
 * The facade that picks the host's native calls once (the std `path/join.ts` habit): callers
 * import libc, errno, open flags and process facts from here and never test the OS themselves.
 * Linux: glibc (`linux/libc.ts`) and procfs (`linux/proc.ts`). macOS: libSystem
 * (`darwin/libsystem.ts`). A Linux-only symbol (renameat2, l*xattr, copy_file_range, ioctl,
 * fallocate, fdatasync, pidfd_open, eventfd, pipe2, fcntl) throws "not available on macOS" when
 * called there; `fsops.ts` and the helpers below take the Darwin route before any such call.
 */
import { os } from "./os.ts";
import { E, RESOURCE_ERRNOS } from "./errno.ts";
import { cstr, cStringArray, ErrnoError } from "./types.ts";
import { type Libc, LINUX_O_FLAGS, linuxErrno, linuxLibc, linuxSymbols } from "./linux/libc.ts";
import * as linuxProc from "./linux/proc.ts";
import * as darwin from "./darwin/libsystem.ts";
import { type MountEntry, parseMountinfo } from "./linux/mounts.ts";

export { cstr, ErrnoError };
export type { Libc, MountEntry };
export {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  FICLONE,
  FS_IOC_GETFLAGS,
  FS_IOC_SETFLAGS,
  FS_TOPDIR_FL,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  XATTR_CREATE,
  XATTR_REPLACE,
} from "./linux/libc.ts";
export type { ProcInfo } from "./linux/proc.ts";

let syms: Libc | undefined;
/** The libc symbol table of this host (see the module comment for macOS). */
export function libc(): Libc {
  if (syms) return syms;
  if (os === "linux") return syms = linuxLibc();
  const mac = darwin.libSystem() as unknown as Record<string, unknown>;
  const missing = (k: string) => () => {
    throw new Error(`libc ${k}() is not available on macOS in this version of spfs`);
  };
  // getters, so that only the symbols a command calls get bound (see lazySymbols)
  const out = {};
  for (const k of Object.keys(linuxSymbols)) {
    Object.defineProperty(out, k, { enumerable: true, get: () => k in mac ? mac[k] : missing(k) });
  }
  return syms = out as Libc;
}

/** errno of the last failed synchronous libc call on this thread. */
export function errno(): number {
  return os === "darwin" ? darwin.errnoDarwin() : linuxErrno();
}

/** The errno to answer a FUSE request that threw `e`: a resource errno when it was one, else EIO. */
export function errnoOfException(e: unknown): number {
  const n = errnoIn(e) ?? E.EIO;
  return RESOURCE_ERRNOS.has(n) ? n : E.EIO;
}

/**
 * The errno `e` carries: an ErrnoError's, or a Deno.errors one's ("… (os error N)"); undefined
 * for an exception that did not come from the OS (a bug in our code).
 */
export function errnoIn(e: unknown): number | undefined {
  if (e instanceof ErrnoError) return e.errno;
  const m = /\(os error (\d+)\)/.exec(e instanceof Error ? e.message : String(e));
  return m ? Number(m[1]) : undefined;
}

/** The host's open(2) flags; the FUSE kernel module hands the caller's flags over in these too. */
export const {
  O_RDONLY,
  O_WRONLY,
  O_RDWR,
  O_ACCMODE,
  O_CREAT,
  O_EXCL,
  O_NOCTTY,
  O_TRUNC,
  O_APPEND,
  O_NOATIME,
  O_CLOEXEC,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_DIRECTORY,
  O_PATH,
}: Record<keyof typeof LINUX_O_FLAGS, number> = os === "darwin"
  ? darwin.DARWIN_O_FLAGS as Record<keyof typeof LINUX_O_FLAGS, number>
  : LINUX_O_FLAGS;

/**
 * poll(2) on this thread, blocking it (the FUSE worker's loop). `nfds_t` is unsigned long on
 * Linux and unsigned int on Darwin (poll.h), so the count's FFI type differs.
 * @returns the number of ready fds, or -1 with errno set.
 */
export function pollHere(fds: Uint8Array, n: number, timeoutMs: number): number {
  const poll = libc().poll_here as unknown as (f: Uint8Array, n: number | bigint, t: number) => number;
  return poll(fds, os === "darwin" ? n : BigInt(n), timeoutMs);
}

/**
 * A pipe for waking a thread that polls: `[read end, write end]`. Linux: pipe2 with O_CLOEXEC |
 * O_NONBLOCK (pipe(7)), so children never inherit it and neither end ever blocks. Darwin has no
 * pipe2 and fcntl is variadic (not callable through FFI on arm64): a plain pipe(2).
 * @throws ErrnoError when the fd table is full.
 */
export function wakePipe(): [number, number] {
  const fds = new Int32Array(2), b = new Uint8Array(fds.buffer);
  const rc = os === "darwin"
    ? libc().pipe(b)
    : libc().pipe2(b, LINUX_O_FLAGS.O_CLOEXEC | LINUX_O_FLAGS.O_NONBLOCK);
  if (rc !== 0) throw new ErrnoError(errno(), "pipe");
  return [fds[0], fds[1]];
}

/**
 * Makes `fd` non-blocking (fcntl F_SETFL, asm-generic/fcntl.h F_GETFL 3, F_SETFL 4). Darwin: fcntl
 * is variadic, which Deno FFI cannot call there, so it answers false and the fd stays blocking.
 */
export function setNonblocking(fd: number): boolean {
  if (os === "darwin") return false;
  const flags = libc().fcntl(fd, 3, 0);
  return flags >= 0 && libc().fcntl(fd, 4, flags | LINUX_O_FLAGS.O_NONBLOCK) === 0;
}

/** SIGPIPE: 13 on Linux (asm-generic/signal.h) and Darwin (sys/signal.h); SIG_IGN is (void *)1. */
const SIGPIPE = 13, SIG_IGN = 1n;

/**
 * Replaces this process with `argv[0]`, searched on PATH as execvp(3) does, keeping its pid, stdio
 * and environment (`Deno.env` edits included); every other fd Deno opens is close-on-exec.
 * SIGPIPE goes back to its default first: the Deno runtime ignores it, and an ignored signal stays
 * ignored across execve(2), which would turn `cmd | head` from a quiet exit into write errors.
 * @returns only when the exec failed: its errno (ENOENT not found, EACCES not executable, …).
 */
export function execReplace(argv: string[]): number {
  const { ptrs, keep } = cStringArray(argv);
  const C = libc();
  C.signal(SIGPIPE, null);
  C.execvp(keep[0], ptrs);
  const err = errno();
  C.signal(SIGPIPE, Deno.UnsafePointer.create(SIG_IGN));
  return err;
}

/** Flags from <sys/file.h>. */
export const LOCK_EX = 2, LOCK_NB = 4;

/**
 * Takes an exclusive, non-blocking flock(2) on `path` (created if missing). Returns the fd that
 * holds it (keep it open for as long as the lock must hold), or null when another process has it.
 * @throws Error when `path` cannot be opened.
 */
export function tryFlock(path: string): number | null {
  Deno.writeFileSync(path, new Uint8Array(), { append: true, mode: 0o600 });
  const S = libc();
  const fd = S.open(cstr(path), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw new Error(`cannot open ${path}: errno ${errno()}`);
  if (S.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    S.close(fd);
    return null;
  }
  return fd;
}

/**
 * ppid and start time of a live pid (Linux: also a tid; clock ticks since boot) or null when it is
 * gone. macOS: proc_pidinfo (start time in µs).
 * @throws ErrnoError when /proc cannot be read for another reason (EMFILE, ENFILE, ENOMEM).
 */
export const procInfo: (pid: number) => linuxProc.ProcInfo | null = os === "darwin"
  ? darwin.procInfoDarwin
  : linuxProc.procInfo;

/**
 * Pins on processes for the router's cache (Linux: proc.ts `pinProcess`); undefined on macOS,
 * where each check reads `proc_pidinfo` instead.
 */
export const processPins: {
  pin(pid: number): number | null;
  alive(pin: number): boolean;
  unpin(pin: number): void;
} | undefined = os === "darwin"
  ? undefined
  : { pin: linuxProc.pinProcess, alive: linuxProc.pinAlive, unpin: linuxProc.unpinProcess };

/** Thread-group id (the process pid) of a thread id, or null when it is gone. macFUSE reports pids. */
export const tgidOf: (tid: number) => number | null = os === "darwin"
  ? (tid) => darwin.procInfoDarwin(tid) ? tid : null
  : linuxProc.tgidOf;

/** True while a process with this pid exists (zombies count as existing). */
export const processAlive: (pid: number) => boolean = os === "darwin"
  ? (pid) => !!darwin.procInfoDarwin(pid)
  : linuxProc.processAlive;

/**
 * True once `pid` has exited: gone, a zombie (Linux state Z, Darwin SZOMB), or reused (its start time no longer
 * matches `startTime`, when given).
 */
export const processExited: (pid: number, startTime?: number) => boolean = os === "darwin"
  ? (pid, startTime) => {
    const i = darwin.procInfoDarwin(pid);
    return !i || i.zombie || (startTime !== undefined && i.startTime !== startTime);
  }
  : linuxProc.processExited;

/** Every mount this process sees (Linux mountinfo; empty on macOS, where spfs reads no mount table). */
export function mounts(): MountEntry[] {
  return os === "linux" ? parseMountinfo(Deno.readTextFileSync("/proc/self/mountinfo")) : [];
}

/** Mounts whose mount point is exactly `path` (topmost last). */
export function mountsAt(path: string): MountEntry[] {
  return mounts().filter((m) => m.mountpoint === path);
}
