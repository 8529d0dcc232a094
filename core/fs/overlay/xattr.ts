/**
 * Extended attributes of scratch entries: names the host lets a runtime set (fsops
 * xattrNameSettable: user.* on Linux, any on macOS); lower entries have none.
 */
import { E } from "../../../ffi/errno.ts";
import * as fs from "../../../ffi/fsops.ts";
import { copyUp } from "./copyup.ts";
import type { ONode } from "./nodes.ts";
import type { OverlayParts } from "./parts.ts";

/** getxattr: the value, or an empty array of its length when `size` is 0. */
export function getxattr(
  ov: OverlayParts,
  n: ONode,
  name: string,
  size: number,
  position = 0,
): Uint8Array | number {
  if (!n.upper || !fs.xattrNameSettable(name)) return E.ENOATTR;
  const buf = size > 0 ? new Uint8Array(size) : null;
  const r = fs.getxattr(ov.upper.path(n), name, buf, position);
  if (r < 0) return -r;
  return size > 0 ? buf!.subarray(0, r) : new Uint8Array(r);
}

/** setxattr: settable names only (others ENOTSUP); copies a lower entry up first. */
export function setxattr(
  ov: OverlayParts,
  n: ONode,
  name: string,
  value: Deno.PointerValue,
  size: number,
  flags: number,
  position = 0,
): number {
  if (!fs.xattrNameSettable(name)) return E.ENOTSUP;
  const e = copyUp(ov, n);
  if (e) return e;
  ov.gen++;
  return fs.setxattr(ov.upper.path(n), name, value, size, flags, position);
}

/** listxattr: the NUL-separated user.* names, or only the needed size when `size` is 0. */
export function listxattr(ov: OverlayParts, n: ONode, size: number): Uint8Array | number {
  if (!n.upper) return new Uint8Array(0);
  const buf = size > 0 ? new Uint8Array(size) : null;
  const r = fs.listxattr(ov.upper.path(n), buf);
  if (r < 0) return -r;
  return size > 0 ? buf!.subarray(0, r) : new Uint8Array(r);
}

/** removexattr. */
export function removexattr(ov: OverlayParts, n: ONode, name: string): number {
  if (!n.upper) return E.ENOATTR;
  ov.gen++;
  return fs.removexattr(ov.upper.path(n), name);
}
