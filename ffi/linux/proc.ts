/**
 * Process facts for routing: parent pid, start time, thread group. Linux reads procfs (proc(5):
 * /proc/<pid>/stat fields 4 `ppid` and 22 `starttime` in clock ticks; /proc/<tid>/status `Tgid:`)
 * through libc so the hot path avoids Deno's file-handle machinery.
 */
import { LINUX_O_FLAGS, linuxErrno as errno, linuxLibc as libc } from "./libc.ts";
import { cstr, ErrnoError } from "../types.ts";
import { E } from "../errno.ts";

const { O_CLOEXEC, O_RDONLY } = LINUX_O_FLAGS;

/** ppid and start time (clock ticks since boot) of a pid or tid. */
export interface ProcInfo {
  ppid: number;
  startTime: number;
}

const buf = new Uint8Array(1024);
const dec = new TextDecoder();
const pathCache = new Map<number, Uint8Array>();
const DEV_NULL = cstr("/dev/null");
/** An fd held in reserve so /proc stays readable when the process runs out of descriptors. */
let reserve = -1;

function readProc(pid: number, file: "stat" | "status"): string | null {
  const key = file === "stat" ? pid : -pid;
  let p = pathCache.get(key);
  if (!p) {
    p = cstr(`/proc/${pid}/${file}`);
    if (pathCache.size > 4096) pathCache.clear();
    pathCache.set(key, p);
  }
  const S = libc();
  if (reserve < 0) reserve = S.open(DEV_NULL, O_RDONLY | O_CLOEXEC);
  let fd = S.open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno() === E.EMFILE && reserve >= 0) {
    // routing must keep working when the fd table is full: spend the reserve fd, then retake it
    S.close(reserve);
    fd = S.open(p, O_RDONLY | O_CLOEXEC);
    reserve = -1;
  }
  if (fd < 0) {
    const e = errno();
    // gone is an answer; out of fds is not, and guessing "gone" would route the caller wrongly
    if (e === E.ENOENT || e === E.ESRCH) return null;
    throw new ErrnoError(e, `cannot read /proc/${pid}/${file}`);
  }
  const n = Number(S.pread(fd, buf, BigInt(buf.length), 0n));
  S.close(fd);
  if (reserve < 0) reserve = S.open(DEV_NULL, O_RDONLY | O_CLOEXEC);
  return n > 0 ? dec.decode(buf.subarray(0, n)) : null;
}

/** Parses the text of /proc/<pid>/stat. `comm` may hold spaces and parens, so split after the last ')'. */
export function parseProcStat(text: string): ProcInfo | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const f = text.slice(close + 2).split(" ");
  // f[0] is field 3 (state); field N is f[N - 3]
  const ppid = Number(f[1]), startTime = Number(f[19]);
  return Number.isFinite(ppid) && Number.isFinite(startTime) ? { ppid, startTime } : null;
}

/**
 * ppid and start time of a live pid/tid, or null when it is gone.
 * @throws ErrnoError when /proc cannot be read for another reason (EMFILE, ENFILE, ENOMEM).
 */
export function procInfo(pid: number): ProcInfo | null {
  const t = readProc(pid, "stat");
  return t ? parseProcStat(t) : null;
}

const pinBuf = new Uint8Array(32);

/**
 * A handle pinned to the process now running as `pid` (a pid or tid): an fd of
 * /proc/<pid>/comm, or null when it cannot be opened (gone, or out of fds). A read through that fd
 * fails with ESRCH once that process has exited, even after its pid is reused, because the fd holds
 * the process's own `struct pid` (Linux fs/proc/base.c `get_proc_task`). So `pinAlive` answers
 * "is it still the same process?" in one pread of a 16-byte file, without /proc/<pid>/stat.
 */
export function pinProcess(pid: number): number | null {
  const fd = libc().open(cstr(`/proc/${pid}/comm`), O_RDONLY | O_CLOEXEC);
  return fd < 0 ? null : fd;
}

/** Whether the process `pin` was taken on has not exited. */
export function pinAlive(pin: number): boolean {
  return Number(libc().pread(pin, pinBuf, BigInt(pinBuf.length), 0n)) >= 0;
}

/** Closes a pin. */
export function unpinProcess(pin: number): void {
  libc().close(pin);
}

/** Thread-group id (the process pid) of a thread id, or null when it is gone. */
export function tgidOf(tid: number): number | null {
  const t = readProc(tid, "status");
  if (!t) return null;
  const m = /\nTgid:\s+(\d+)/.exec(t);
  return m ? Number(m[1]) : null;
}

/** True while a process with this pid exists (zombies count as existing). */
export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * True once `pid` has exited: gone, a zombie (state Z), or reused (its start time no longer
 * matches `startTime`, when given).
 */
export function processExited(pid: number, startTime?: number): boolean {
  const t = readProc(pid, "stat");
  const info = t ? parseProcStat(t) : null;
  if (!t || !info) return true;
  if (startTime !== undefined && info.startTime !== startTime) return true;
  return t.slice(t.lastIndexOf(")") + 2, t.lastIndexOf(")") + 3) === "Z";
}
