/**
 * Mount table parsing: Linux /proc/self/mountinfo (proc(5): field 5 is the mount point,
 * the field after " - " the fs type; octal escapes such as \040 for spaces).
 */
/** A mount: where, its fs type (e.g. "fuse.spfs", "tmpfs"), and its device "major:minor". */
export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** st_dev of the mount (field 3); for FUSE, the minor is the connection number in fusectl. */
  dev: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));

/** Parses mountinfo text. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [pre, post] = line.split(" - ");
    const f = pre.split(" ");
    const p = (post ?? "").split(" ");
    out.push({ mountpoint: unescape(f[4]), fstype: p[0], source: unescape(p[1] ?? ""), dev: f[2] });
  }
  return out;
}
