/**
 * Pre-mount checks, each failing with a typed error that names the fix: the FUSE library, the FUSE
 * device, the mount point, and stale mounts left by a killed service ("Transport endpoint is not
 * connected").
 */
import { replySymbols } from "../../ffi/fuse/lowlevel.ts";
import { exists } from "../../ffi/fsops.ts";
import { chooseMacFuse } from "../../ffi/fuse/macfuse.ts";
import { type MountEntry, mountsAt } from "../../ffi/sys.ts";
import { platform } from "./facts.ts";
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { runner } from "../runner.ts";

/** dlopen names to try for libfuse, honouring `SPFS_LIBFUSE`. */
export function libfuseCandidates(cfg: Config): string[] {
  return cfg.libfuse ? [cfg.libfuse] : platform.libfuseCandidates;
}

/**
 * Loads and closes libfuse to prove it is installed; returns the name that loaded.
 * @throws SpfsError FuseNotInstalled with the install command.
 */
export function checkLibfuse(cfg: Config): string {
  const names = libfuseCandidates(cfg);
  for (const name of names) {
    try {
      Deno.dlopen(name, { fuse_reply_err: replySymbols.fuse_reply_err }).close();
      return name;
    } catch { /* try the next */ }
  }
  throw new SpfsError("FuseNotInstalled", `libfuse is not installed (tried ${names.join(", ")})`, {
    hint: `install it: ${platform.fuseInstallCommand}`,
  });
}

/**
 * macOS: a macFUSE library must be installed (ffi/macfuse.ts picks which). FUSE-T alone reports
 * caller PID 0 for every request, so per-process environments cannot work on it.
 * @throws SpfsError FuseNotLoaded (FUSE-T only) or FuseNotInstalled, with the install command.
 */
function checkMacFuse(): void {
  const c = chooseMacFuse(exists);
  if (c.flavour) return;
  throw new SpfsError(c.fuseTOnly ? "FuseNotLoaded" : "FuseNotInstalled", c.reason, {
    hint: platform.fuseInstallCommand,
  });
}

/**
 * True when /etc/synthetic.conf text creates the root-level directory `name` (synthetic.conf(5):
 * one name per line, an optional tab-separated symlink target, `#` comments).
 */
export function syntheticConfHas(text: string, name: string): boolean {
  return text.split("\n").some((l) => l.split("\t")[0].trim() === name);
}

/**
 * macOS: the root filesystem is read-only, so a root-level mount point such as /spfs must be listed
 * in /etc/synthetic.conf. No-op elsewhere, or when the mount point already exists.
 * @throws SpfsError MountPointMissing with the lines that add it.
 */
export function checkSyntheticConf(cfg: Config, confPath = platform.syntheticConf): void {
  const mp = cfg.mountpoint;
  if (!confPath || exists(mp) || mp.lastIndexOf("/") !== 0) return;
  const name = mp.slice(1);
  let text = "";
  try {
    text = Deno.readTextFileSync(confPath);
  } catch { /* no file yet */ }
  if (syntheticConfHas(text, name)) return;
  throw new SpfsError(
    "MountPointMissing",
    `${mp} is not listed in ${confPath} (the root volume is read-only)`,
    {
      hint:
        `printf '${name}\\n' | sudo tee -a ${confPath} && /System/Library/Filesystems/apfs.fs/Contents/Resources/apfs.util -t  (or reboot)`,
    },
  );
}

/**
 * Checks that the FUSE device exists, is a character device, and can be opened read-write.
 * @throws SpfsError FuseNotLoaded naming the fix.
 */
export function checkDevice(cfg: Config): void {
  if (!platform.fuseDeviceCheck) return checkMacFuse();
  const dev = cfg.fuseDevice;
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dev);
  } catch {
    throw new SpfsError("FuseNotLoaded", `${dev} does not exist: the fuse kernel module is not loaded`, {
      hint: "load it with `sudo modprobe fuse`; in a container, run it with --device /dev/fuse",
    });
  }
  if (!st.isCharDevice) {
    throw new SpfsError("FuseNotLoaded", `${dev} is not a character device`, {
      hint: "recreate it: `sudo rm -f /dev/fuse && sudo mknod -m 666 /dev/fuse c 10 229`",
    });
  }
  try {
    Deno.openSync(dev, { read: true, write: true }).close();
  } catch (e) {
    throw new SpfsError("FuseNotLoaded", `cannot open ${dev}: ${e instanceof Error ? e.message : e}`, {
      hint: "allow access: `sudo chmod 666 /dev/fuse` (or add your user to the group that owns it)",
    });
  }
}

/** fuse(8): `user_allow_other` in this file lets non-root users mount with allow_other. */
export const FUSE_CONF = "/etc/fuse.conf";

/**
 * Whether the service may mount with allow_other: always as root, else only when fuse.conf says
 * `user_allow_other`. Without it, processes of other uids inside a runtime get EACCES.
 */
export function allowOther(conf = FUSE_CONF, uid = Deno.uid()): { ok: boolean; why: string } {
  if (uid === 0) return { ok: true, why: "the service runs as root" };
  let text = "";
  try {
    text = Deno.readTextFileSync(conf);
  } catch { /* absent */ }
  return /^\s*user_allow_other\s*$/m.test(text)
    ? { ok: true, why: `${conf} has user_allow_other` }
    : { ok: false, why: `${conf} lacks user_allow_other` };
}

/** What a probe of the mount point found: usable, a dead FUSE mount, or one whose server stopped answering. */
export type MountState = "ok" | "stale" | "hung";
/** How long a child gets to stat a FUSE mount point before it counts as hung (s). */
const PROBE_TIMEOUT_S = 2;

/**
 * Probes a FUSE mount at `mp` from a child process (`timeout -s KILL`), so this process never
 * blocks on a server that stopped answering: a stat there waits in the kernel for good. The stat
 * bypasses the kernel's attribute cache (GNU stat `--cached=never`, AT_STATX_FORCE_SYNC): from
 * cache, a stopped server looks alive, and the next stat that does ask (Deno's asks for btime,
 * which FUSE never caches) hangs. Linux only: elsewhere no mount table lists `mp`.
 * @returns undefined when no FUSE filesystem is mounted at `mp` (a plain stat is then safe).
 */
export async function probeFuseMount(mp: string): Promise<MountState | undefined> {
  if (!mountsAt(mp).some((m) => m.fstype.startsWith("fuse"))) return undefined;
  const r = await runner().run([
    "timeout",
    "-s",
    "KILL",
    String(PROBE_TIMEOUT_S),
    "stat",
    "--cached=never",
    "-c",
    "%F",
    mp,
  ]);
  if (r.code === 0) return "ok";
  if (/not connected/i.test(r.stderr)) return "stale";
  return r.code === 124 || r.code === 137 ? "hung" : "stale";
}

/**
 * Checks the mount point exists and is a directory, without hanging on a stuck FUSE mount there.
 * @returns "stale" for a dead FUSE mount, "hung" for one whose server stopped answering.
 * @throws SpfsError MountPointMissing with the command that creates it.
 */
export async function checkMountpoint(cfg: Config): Promise<MountState> {
  // a FUSE filesystem there is never stat'ed in this process, even one that just answered
  return await probeFuseMount(cfg.mountpoint) ?? checkMountpointDir(cfg);
}

/** The stat-based checks of the mount point dir (safe: no FUSE filesystem is mounted there). */
function checkMountpointDir(cfg: Config): MountState {
  const mp = cfg.mountpoint;
  const fix =
    `create it: \`sudo mkdir -p ${mp} && sudo chown $(id -u):$(id -g) ${mp}\`, or set SPFS_MOUNTPOINT to a directory you own`;
  try {
    const st = Deno.statSync(mp);
    if (!st.isDirectory) {
      throw new SpfsError("MountPointMissing", `mount point ${mp} is not a directory`, { hint: fix });
    }
    // fusermount3 lets a non-root user mount only on a directory they can write
    const uid = Deno.uid();
    if (uid && st.uid !== uid && !((st.mode ?? 0) & 0o002)) {
      throw new SpfsError("MountPointMissing", `mount point ${mp} belongs to uid ${st.uid}, not you`, {
        hint: `sudo chown $(id -u):$(id -g) ${mp}, or set SPFS_MOUNTPOINT to a directory you own`,
      });
    }
    return "ok";
  } catch (e) {
    if (e instanceof SpfsError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new SpfsError("MountPointMissing", `mount point ${mp} does not exist`, { hint: fix });
    }
    if (e instanceof Deno.errors.NotConnected || /not connected/i.test(String(e))) return "stale";
    throw new SpfsError("MountPointMissing", `cannot use mount point ${mp}: ${e}`, { hint: fix });
  }
}

/** The FUSE control filesystem (Documentation/filesystems/fuse.rst "Control filesystem"). */
const FUSECTL = "/sys/fs/fuse/connections";

/** The fusectl file that aborts the FUSE connection of mount `m` (its st_dev minor numbers it). */
export function abortFile(m: MountEntry): string {
  return `${FUSECTL}/${m.dev.split(":")[1]}/abort`;
}

/**
 * Aborts the FUSE connection of a hung mount, mounting fusectl first if needed: every request
 * waiting on it fails with ENOTCONN, and the mount becomes stale (unmountable).
 * @throws SpfsError MountFailed when the connection cannot be aborted (not root, no fusectl).
 */
export async function abortFuseConnection(m: MountEntry): Promise<void> {
  const file = abortFile(m);
  if (!exists(file)) await runner().run(["mount", "-t", "fusectl", "fusectl", FUSECTL]);
  try {
    Deno.writeTextFileSync(file, "1");
  } catch (e) {
    throw new SpfsError(
      "MountFailed",
      `hung FUSE mount at ${m.mountpoint}: cannot abort its connection (${e})`,
      {
        hint: `as root: echo 1 > ${file} && umount -l ${m.mountpoint}`,
      },
    );
  }
}

/**
 * Removes a dead or hung FUSE mount at the mount point. Call only while holding the service lock:
 * then any spfs mount there belongs to a dead or stuck service. Returns true when one was removed.
 * @throws SpfsError MountFailed when a live filesystem is mounted there or removal fails.
 */
export async function cleanupStaleMount(cfg: Config): Promise<boolean> {
  const mp = cfg.mountpoint;
  const mounted = mountsAt(mp);
  const state = await checkMountpoint(cfg);
  if (!mounted.length && state === "ok") return false;
  if (state === "ok") {
    // it answers, so it is alive: another service (other runtime dir) or another filesystem
    const m = mounted.at(-1)!;
    throw new SpfsError(
      "MountFailed",
      `${mp} already has a live ${m.fstype} filesystem mounted (${m.source})`,
      {
        hint:
          `stop whatever serves it (\`spfs service --stop\` with its SPFS_RUNTIME_DIR, or \`sudo umount ${mp}\`), or use another SPFS_MOUNTPOINT`,
      },
    );
  }
  if (state === "hung") await abortFuseConnection(mounted.at(-1)!);
  for (let i = 0; i < Math.max(1, mounted.length); i++) {
    const r = await runner().run(platform.unmountArgv(mp));
    if (r.code !== 0) {
      throw new SpfsError("MountFailed", `cannot unmount stale FUSE mount at ${mp}: ${r.stderr.trim()}`, {
        hint: `run \`${platform.unmountArgv(mp).join(" ")}\` by hand (as the user who mounted it)`,
      });
    }
  }
  return true;
}

/**
 * The checks a client runs before starting a service: library, device, mount point. A FUSE mount
 * already there is left to the service, which probes it and removes it if dead or hung.
 */
export function preflight(cfg: Config): void {
  checkLibfuse(cfg);
  checkDevice(cfg);
  if (!mountsAt(cfg.mountpoint).some((m) => m.fstype.startsWith("fuse"))) checkMountpointDir(cfg);
}
