/** Where scratch lives: its filesystem type, free space, and whether copy-up can reflink there. */
import { storagePaths } from "../config.ts";
import { errnoName } from "../../ffi/errno.ts";
import { probeReflink, statfs } from "../../ffi/fsops.ts";
import { platform } from "../platform/facts.ts";
import type { BackstoreInfo } from "../../proto/protocol.ts";

/**
 * Probes the backstore once: the filesystem type of `<storage>/runtimes` (statfs f_type, macOS
 * f_fstypename) and whether FICLONE (macOS clonefile, on APFS) works from the object store into it.
 */
export function probeBackstore(storageRoot: string): BackstoreInfo {
  const sp = storagePaths(storageRoot);
  Deno.mkdirSync(sp.runtimes, { recursive: true });
  Deno.mkdirSync(sp.tmp, { recursive: true });
  const st = statfs(sp.runtimes);
  const r = probeReflink(sp.tmp, sp.runtimes);
  return {
    path: sp.runtimes,
    fs_type: typeof st === "number" ? "unknown" : st.typeName,
    reflink: r === true,
    reflink_error: r === true ? undefined : errnoName(r),
    copy_up: r === true ? platform.copyUp.reflink : platform.copyUp.fallback,
    free_bytes: freeBytes(sp.runtimes),
  };
}

/** Free bytes for an unprivileged user at `path` (0 when statfs fails). */
export function freeBytes(path: string): number {
  const st = statfs(path);
  return typeof st === "number" ? 0 : st.bavail * st.bsize;
}
