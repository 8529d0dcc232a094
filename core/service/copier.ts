/**
 * Copies copy-up bytes for the FUSE worker, so a big copy-up never blocks its thread
 * (core/service/worker/copies.ts). `Deno.copyFile` runs on Deno's blocking-task threads and uses
 * Rust's `std::fs::copy`: copy_file_range(2) on Linux (a reflink where the filesystem shares
 * extents), fclonefileat(2) then fcopyfile(3) on macOS.
 */
import { errnoIn } from "../../ffi/sys.ts";
import { E } from "../../ffi/errno.ts";
import { platform } from "../platform/facts.ts";

/** What the worker is told: 0 or the errno of the failed copy, and the method. */
export interface Copied {
  errno: number;
  how: "copy_file_range" | "copy";
}

/**
 * Copies blob `src` into `dst` (created; it must not be visible to anyone yet). A failed copy
 * leaves `dst` for the worker to remove with the rest of its copy-up.
 */
export async function copyForWorker(src: string, dst: string): Promise<Copied> {
  const how = platform.copyUp.fallback;
  try {
    await Deno.copyFile(src, dst);
    return { errno: 0, how };
  } catch (e) {
    return { errno: errnoIn(e) ?? E.EIO, how };
  }
}
