/**
 * What the overlay's op modules (copy-up, attributes, rename, xattrs) share: the parts an
 * `Overlay` is composed of, as an interface so those modules do not import the class itself.
 */
import type { Attr } from "../../../ffi/stat.ts";
import type { Child, Vfs } from "../vfs.ts";
import type { NodeTable, ONode } from "./nodes.ts";
import type { UpperDir } from "./upper.ts";

/** How copy-up copied a file. */
export type CopyUpHow = "reflink" | "copy_file_range" | "copy";

export interface OverlayParts {
  readonly vfs: Vfs;
  readonly upper: UpperDir;
  readonly table: NodeTable;
  /** Whether copy-up may try a reflink (the backstore probe said so). */
  readonly reflink: boolean;
  readonly onCopyUp?: (how: CopyUpHow) => void;
  /** Bumped by every change; a commit checks it did not move while it read scratch. */
  gen: number;
  /** Copy-ups in flight off the FUSE thread (copyup.ts beginCopyUp): a commit waits for them. */
  copying: number;
  node(ino: number): ONode | undefined;
  /** The parent dir node of `n` (walked down again when the kernel forgot it). */
  parentOf(n: ONode): ONode;
  child(dir: ONode, name: string): ONode | undefined;
  /**
   * The lower entry the name `name` in `dir` shows, or undefined. Ask this, not `ONode.lower`,
   * whether a name needs a mask: a hard-linked node has several names and one `lower`.
   */
  lowerChild(dir: ONode, name: string): Child | undefined;
  list(ino: number): [string, ONode][] | number;
  attr(n: ONode): Attr | number;
}
