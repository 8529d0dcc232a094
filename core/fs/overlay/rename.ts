/**
 * rename(2) and renameat2(2) with RENAME_NOREPLACE and RENAME_EXCHANGE. Both sides are copied up
 * (a dir with its whole subtree, made opaque), the scratch entries are renamed with the same
 * flags, the old name of a lower entry is masked, and the node table follows: inodes move with
 * their paths.
 */
import { E } from "../../../ffi/errno.ts";
import { rename as renameat2 } from "../../../ffi/fsops.ts";
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from "../../../ffi/sys.ts";
import { WH_PREFIX } from "../../store/scratch.ts";
import { nameTooLong } from "../backend.ts";
import { lastAttr } from "./attrs.ts";
import { deepCopyUp } from "./copyup.ts";
import type { ONode } from "./nodes.ts";
import type { OverlayParts } from "./parts.ts";

/** True when the merged listing of dir `n` is empty. */
export function isEmptyDir(ov: OverlayParts, n: ONode): boolean {
  const l = ov.list(n.ino);
  return typeof l !== "number" && l.length === 0;
}

/** The errno a rename of `src` over `dst` must fail with before anything changes, or 0. */
function precheck(ov: OverlayParts, src: ONode, dst: ONode | undefined, flags: number): number {
  if (dst && (flags & RENAME_NOREPLACE)) return E.EEXIST;
  if (flags & RENAME_EXCHANGE) return dst ? 0 : E.ENOENT;
  if (!dst) return 0;
  if (src.kind === "dir" && dst.kind !== "dir") return E.ENOTDIR;
  if (src.kind !== "dir" && dst.kind === "dir") return E.EISDIR;
  if (dst.kind === "dir" && !isEmptyDir(ov, dst)) return E.ENOTEMPTY;
  return 0;
}

/** rename of `name` in `dirIno` to `nname` in `ndirIno`: 0 or an errno. */
export function renameNode(
  ov: OverlayParts,
  dirIno: number,
  name: string,
  ndirIno: number,
  nname: string,
  flags: number,
): number {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return E.EINVAL;
  const dir = ov.node(dirIno), ndir = ov.node(ndirIno);
  if (!dir || !ndir) return E.ENOENT;
  if (ndir.kind !== "dir") return E.ENOTDIR;
  if (nname.startsWith(WH_PREFIX)) return E.EINVAL;
  if (nameTooLong(nname)) return E.ENAMETOOLONG;
  const src = ov.child(dir, name);
  if (!src) return E.ENOENT;
  const dst = ov.child(ndir, nname);
  if (src === dst) return 0;
  let e = precheck(ov, src, dst, flags);
  if (e) return e;
  const dstLast = dst ? ov.attr(dst) : E.ENOENT;
  const lowerAtSrc = ov.lowerChild(dir, name) !== undefined; // per name: `src` may be a hard link
  const exchange = (flags & RENAME_EXCHANGE) !== 0;
  e = deepCopyUp(ov, src) || (exchange ? deepCopyUp(ov, dst!) : 0) ||
    ov.upper.ensure(ndir, (m) => ov.parentOf(m));
  if (e) return e;
  const lowerAtDst = ndir.lowerSources ? ov.vfs.childrenOf(ndir.lowerSources).get(nname) : undefined;
  const target = exchange ? {} : prepareTarget(ov, ndir, nname, src, dst, !!lowerAtDst);
  if (typeof target === "number") return target;
  const undoTarget = () => {
    if (target.away) ov.upper.restore(dst!, target.away);
    if (target.masked) ov.upper.removeMask(ndir, nname);
  };
  const from = `${dir.path}/${name}`, to = `${ndir.path}/${nname}`;
  // the old name's mask goes first and the new name's after: a scratch entry wins over a mask
  // (README "Editable runtimes"), so a service killed between the two steps shows the old name,
  // or the new one, never both or neither
  const maskSrc = !exchange && lowerAtSrc;
  if (maskSrc && (e = ov.upper.addMask(dir, name, (m) => ov.parentOf(m)))) {
    undoTarget();
    return e;
  }
  const rc = renameat2(ov.upper.path(from), ov.upper.path(to), flags & RENAME_EXCHANGE);
  if (rc) {
    if (maskSrc) ov.upper.removeMask(dir, name);
    undoTarget();
    return rc;
  }
  if (target.away) ov.upper.discard(target.away);
  ov.upper.invalidate();
  if (exchange) {
    const tmp = `${to}\0swap`;
    ov.table.move(dst!, to, tmp);
    ov.table.move(src, from, to);
    ov.table.move(dst!, tmp, from);
  } else {
    ov.upper.removeMask(ndir, nname);
    ov.upper.dropMeta(ndir, nname);
    ov.upper.dropMeta(dir, name);
    if (dst) ov.table.detach(dst, to, dstLast, (m) => lastAttr(ov, m));
    ov.table.move(src, from, to);
    src.lower = lowerAtDst ?? null;
    if (src.kind === "dir") src.lowerSources = null;
  }
  ov.gen++;
  return 0;
}

/**
 * Makes way at the target before the rename. A dir moving over a lower dir is made opaque first
 * (harmless if the rename fails: nothing lower shows at its own name). A scratch dir it replaces
 * that holds whiteouts goes into work/ whole (rename(2) replaces only an empty dir), behind a mask
 * of its name when a lower entry is there: a crash in between shows the target gone, never the
 * lower entries its whiteouts hid. Returns what to undo if the rename fails, or an errno.
 */
function prepareTarget(
  ov: OverlayParts,
  ndir: ONode,
  nname: string,
  src: ONode,
  dst: ONode | undefined,
  lowerAtDst: boolean,
): { away?: string; masked?: boolean } | number {
  if (src.kind === "dir" && lowerAtDst && !src.state?.opaque) {
    const e = ov.upper.markOpaque(src);
    if (e) return e;
  }
  if (!dst?.upper || dst.kind !== "dir") return {};
  let masked = false;
  if (lowerAtDst && !ov.upper.state(ndir)?.masks.has(nname)) {
    const e = ov.upper.addMask(ndir, nname, (m) => ov.parentOf(m));
    if (e) return e;
    masked = true;
  }
  const away = ov.upper.moveAway(dst);
  if (typeof away === "number") {
    if (masked) ov.upper.removeMask(ndir, nname);
    return away;
  }
  return { away, masked };
}
