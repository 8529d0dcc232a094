/**
 * Per-OS policy, chosen once: how to install FUSE, how to unmount, which service manager and RAM
 * disk kind this host has, and which runtime features are available. Code that needs a
 * difference asks for one of these capabilities, never for an OS name. Native calls live in
 * `ffi/sys.ts`; path defaults in `core/config.ts`.
 */
import { os } from "../../ffi/os.ts";
import { LIBFUSE_CANDIDATES } from "../../ffi/fuse/libnames.ts";

/** Platform policy the rest of spfs needs, without any OS test of its own. */
export interface Platform {
  /** The OS name, for messages only. */
  name: "Linux" | "macOS";
  /** dlopen names tried in order for the FUSE library. */
  libfuseCandidates: string[];
  /** Shell command that installs FUSE here. */
  fuseInstallCommand: string;
  /** macOS only: synthetic.conf(5), which creates root-level mount points such as /spfs. */
  syntheticConf?: string;
  /** Command to unmount a FUSE mount point lazily, as argv. */
  unmountArgv(mountpoint: string): string[];
  /** The user service manager `spfs launchagent` installs into. */
  serviceManager: "systemd" | "launchd";
  /** What `spfs ramdisk create` makes. */
  ramdisk: "tmpfs" | "apfs";
  /** Whether the mount table is readable (Linux mountinfo); macOS spfs reads none. */
  mountTable: boolean;
  /** Whether /dev/fuse is opened read-write as a check (macFUSE's devices are per mount). */
  fuseDeviceCheck: boolean;
  /** How copy-up copies a file with reflinks and without (ffi/fsops.ts cloneFile), for `spfs status`. */
  copyUp: { reflink: "reflink" | "clonefile"; fallback: "copy_file_range" | "copy" };
  /**
   * Longest Unix socket path in bytes: `sizeof(sun_path)` less its NUL (108 in Linux
   * `<sys/un.h>`, 104 in Darwin `<sys/un.h>`).
   */
  socketPathMax: number;
  /** Whether `/proc/self/fd/N/name` reaches a name in an open directory (Linux procfs). */
  procFdPaths: boolean;
}

const linux: Platform = {
  name: "Linux",
  libfuseCandidates: LIBFUSE_CANDIDATES.linux,
  fuseInstallCommand: "sudo apt-get install -y fuse3   # Debian/Ubuntu; Fedora: sudo dnf install fuse3",
  unmountArgv: (mp) => ["fusermount3", "-u", "-z", mp],
  serviceManager: "systemd",
  ramdisk: "tmpfs",
  mountTable: true,
  fuseDeviceCheck: true,
  copyUp: { reflink: "reflink", fallback: "copy_file_range" },
  socketPathMax: 107,
  procFdPaths: true,
};

const darwin: Platform = {
  name: "macOS",
  libfuseCandidates: LIBFUSE_CANDIDATES.darwin,
  fuseInstallCommand: "brew install --cask macfuse   # then allow the system extension and reboot",
  syntheticConf: "/etc/synthetic.conf",
  unmountArgv: (mp) => ["umount", "-f", mp],
  serviceManager: "launchd",
  ramdisk: "apfs",
  mountTable: false,
  fuseDeviceCheck: false,
  copyUp: { reflink: "clonefile", fallback: "copy" },
  socketPathMax: 103,
  procFdPaths: false,
};

/** The platform policy of this host. */
export const platform: Platform = os === "darwin" ? darwin : linux;
