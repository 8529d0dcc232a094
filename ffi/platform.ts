/**
 * The one place that picks platform facts: chosen once, from `Deno.build.os`, at module load.
 * Everything else asks this module instead of testing the OS itself.
 */

import { MAC_FUSE_LIBS } from "./macfuse.ts";

export type Os = "linux" | "darwin";

/** Platform facts the rest of spfs needs, without any OS test of its own. */
export interface Platform {
  os: Os;
  /** dlopen names tried in order for the FUSE library. */
  libfuseCandidates: string[];
  /** Shell command that installs FUSE here. */
  fuseInstallCommand: string;
  /** Default storage root (ARCHITECTURE.md "Storage"). */
  storageRootDefault(env: Record<string, string | undefined>, home: string): string;
  /** Default runtime dir for the socket, pidfile and logs. */
  runtimeDirDefault(env: Record<string, string | undefined>, uid: number): string;
  /** macOS only: synthetic.conf(5), which creates root-level mount points such as /spfs. */
  syntheticConf?: string;
  /** Command to unmount a FUSE mount point lazily, as argv. */
  unmountArgv(mountpoint: string): string[];
  /**
   * Whether editable runtimes work here. Their scratch layer needs libc calls (renameat2, xattrs,
   * open with a mode) that have no macOS binding yet: `open` is variadic, and Apple arm64 passes
   * the mode on the stack, which Deno FFI cannot do.
   */
  editableRuntimes: boolean;
}

const linux: Platform = {
  os: "linux",
  libfuseCandidates: [
    "libfuse3.so.3",
    "/usr/lib/x86_64-linux-gnu/libfuse3.so.3",
    "/usr/lib/aarch64-linux-gnu/libfuse3.so.3",
  ],
  fuseInstallCommand: "sudo apt-get install -y fuse3   # Debian/Ubuntu; Fedora: sudo dnf install fuse3",
  storageRootDefault: (env, home) => `${env.XDG_DATA_HOME || `${home}/.local/share`}/spfs`,
  runtimeDirDefault: (env, uid) =>
    env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/spfs` : `${env.TMPDIR || "/tmp"}/spfs-${uid}`,
  unmountArgv: (mp) => ["fusermount3", "-u", "-z", mp],
  editableRuntimes: true,
};

const darwin: Platform = {
  os: "darwin",
  libfuseCandidates: [MAC_FUSE_LIBS.macfuse3, MAC_FUSE_LIBS.macfuse2],
  fuseInstallCommand: "brew install --cask macfuse   # then allow the system extension and reboot",
  storageRootDefault: (_env, home) => `${home}/Library/Application Support/spfs`,
  runtimeDirDefault: (env, uid) => `${(env.TMPDIR || "/tmp").replace(/\/$/, "")}/spfs-${uid}`,
  syntheticConf: "/etc/synthetic.conf",
  unmountArgv: (mp) => ["umount", "-f", mp],
  editableRuntimes: false,
};

/** The platform spfs runs on. Unsupported OSes fail at startup with a clear message. */
export const platform: Platform = (() => {
  switch (Deno.build.os) {
    case "linux":
      return linux;
    case "darwin":
      return darwin;
    default:
      throw new Error(`spfs supports Linux and macOS, not ${Deno.build.os}`);
  }
})();

/** ffi/darwin.ts (libSystem bindings and Darwin codecs), loaded only on macOS. */
export const darwinFfi = platform.os === "darwin" ? await import("./darwin.ts") : undefined;
