/**
 * Where each FUSE library lives, per OS: plain names only, so that `core/platform/facts.ts` (on
 * every CLI start-up path) does not load the ABI tables. Sources: Debian's libfuse3-3 package
 * (3.14), macFUSE 4.x/5.x and FUSE-T installers (reference/ffi-abi.md §6).
 */
import type { Os } from "../os.ts";

/** Which FUSE library a Mac has. */
export type MacFuseFlavour = "macfuse3" | "macfuse2" | "fuse-t";

/** Where each flavour installs its library (macFUSE 5 keeps libfuse.2 alongside libfuse3.4). */
export const MAC_FUSE_LIBS: Record<MacFuseFlavour, string> = {
  macfuse3: "/usr/local/lib/libfuse3.4.dylib",
  macfuse2: "/usr/local/lib/libfuse.2.dylib",
  "fuse-t": "/usr/local/lib/libfuse-t.dylib",
};

/** dlopen names tried in order for the FUSE library, per OS. */
export const LIBFUSE_CANDIDATES: Record<Os, string[]> = {
  linux: [
    "libfuse3.so.3",
    "/usr/lib/x86_64-linux-gnu/libfuse3.so.3",
    "/usr/lib/aarch64-linux-gnu/libfuse3.so.3",
  ],
  darwin: [MAC_FUSE_LIBS.macfuse3, MAC_FUSE_LIBS.macfuse2],
};
