/**
 * Editable-runtime rows. Each workload runs three ways in every round: on a local copy of its
 * lower tree, inside fuse-overlayfs (the C peer) over that tree, and inside `spfs run --edit` over
 * the same tree committed as a layer. Every run starts with an untimed `sync`, so dirty pages of
 * the previous step are not written back during the timed one (that moved the local baseline of
 * create+write up to 10x between runs). The three sides take turns at going first, since each
 * deletes its tree when done and the next side's creates pay for that on ext4 without a journal:
 * the inode allocator skips inodes freed in the last `dirty_expire_centisecs` (fs/ext4/ialloc.c
 * `recently_deleted`), which was most of the service's CPU time in a create+write profile here.
 * spfs marks its runtimes dir as the top of unrelated trees (chattr +T: ffi/fsops.ts `markTopDir`),
 * so the allocator puts each scratch tree in a fresh group, away from those freed inodes. The local
 * and fuse-overlayfs sides get the same treatment (their dirs are made in a +T dir too), so these
 * rows compare serving, not inode placement.
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { selfArgv } from "../../core/client/rpc.ts";
import { markTopDir } from "../../ffi/fsops.ts";
import type { Sandbox } from "../../tests/support/sandbox.ts";
import { createFiles, parseNs, ROUNDS, row, sh, tenThousandFiles, timed } from "./common.ts";

/** One workload: `work` and `prep` are shell snippets using $D, the tree's root. */
interface Workload {
  name: string;
  /** The lower tree: a local dir, committed as layer `tag`. */
  tag: string;
  prep?: string;
  work: string;
}

/** Times `w` on a fresh local copy of `lower`. */
async function local(root: string, lower: string, w: Workload): Promise<number[]> {
  const d = Deno.makeTempDirSync({ dir: root, prefix: "local-" });
  try {
    await sh(`cp -a ${lower}/. ${d}/`);
    return parseNs(await sh(timed(d, w.work, `sync; ${w.prep ?? ""}`)));
  } finally {
    await Deno.remove(d, { recursive: true });
  }
}

/** Times `w` inside a fresh fuse-overlayfs mount over `lower`; null when it cannot mount. */
async function overlay(root: string, lower: string, w: Workload): Promise<number[] | null> {
  const d = Deno.makeTempDirSync({ dir: root, prefix: "ovl-" });
  const [up, wk, mnt] = ["up", "work", "mnt"].map((n) => join(d, n));
  for (const p of [up, wk, mnt]) Deno.mkdirSync(p);
  try {
    const m = await runner().run([
      "fuse-overlayfs",
      "-o",
      `lowerdir=${lower},upperdir=${up},workdir=${wk}`,
      mnt,
    ]);
    if (m.code !== 0) return null;
    try {
      return parseNs(await sh(timed(mnt, w.work, `sync; ${w.prep ?? ""}`)));
    } finally {
      await runner().run(["fusermount3", "-u", "-z", mnt]);
    }
  } finally {
    await Deno.remove(d, { recursive: true });
  }
}

/** Times `w` inside `spfs run --edit` over `w.tag` (a fresh runtime). */
async function inSpfs(sb: Sandbox, w: Workload): Promise<number[]> {
  const script = timed(sb.mountpoint, w.work, `sync; ${w.prep ?? ""}`);
  return parseNs(await sb.ok(["run", "--edit", w.tag, "--", "sh", "-c", script]));
}

/**
 * The three-way editable rows, then copy-up and commit rows against their local counterparts.
 * @param bigDir a dir holding big.bin (1 GiB), committed as tag "big"
 * @param npmSrc npm's own package tree
 */
export async function editableRows(sb: Sandbox, bigDir: string, npmSrc: string): Promise<void> {
  const sideRoot = join(sb.root, "sides");
  Deno.mkdirSync(sideRoot);
  markTopDir(sideRoot);
  const lowers: Record<string, string> = { empty: join(sb.root, "emptysrc"), tenk: join(sb.root, "tenk") };
  Deno.mkdirSync(lowers.empty);
  await tenThousandFiles(lowers.tenk);
  for (const [tag, dir] of Object.entries(lowers)) await sb.ok(["commit", dir, "-t", tag]);
  const npmTar = join(sb.root, "npm.tar");
  await sh(`tar -cf ${npmTar} -C ${npmSrc} .`);

  const find = 'find "$D/t" -type f | wc -l >/dev/null';
  const workloads: Workload[] = [
    {
      name: "create+write 10,000 small files",
      tag: "empty",
      work: createFiles("w"),
    },
    { name: "rm -rf a 10,000-file lower tree", tag: "tenk", work: 'rm -rf "$D/t"' },
    { name: "untar npm's tree (2,400 paths)", tag: "empty", work: `tar -xf ${npmTar} -C "$D"` },
    { name: "find a 10,000-file lower tree", tag: "tenk", work: find },
    { name: "second find in the same runtime", tag: "tenk", prep: find, work: find },
    {
      name: "read every file of that tree",
      tag: "tenk",
      work: 'find "$D/t" -type f -exec cat {} + >/dev/null',
    },
  ];
  const n = Math.max(3, Math.floor(ROUNDS / 2));
  const got = workloads.map(() => ({ local: [] as number[], ovl: [] as number[], spfs: [] as number[] }));
  let haveOverlay = true;
  for (let r = 0; r < n; r++) {
    console.error(`editable rows, round ${r + 1}/${n}`);
    for (const [i, w] of workloads.entries()) {
      const sides: [number[], () => Promise<number[] | null>][] = [
        [got[i].local, () => local(sideRoot, lowers[w.tag], w)],
        [got[i].ovl, async () => {
          const o = haveOverlay ? await overlay(sideRoot, lowers[w.tag], w) : null;
          if (!o) haveOverlay = false;
          return o;
        }],
        [got[i].spfs, () => inSpfs(sb, w)],
      ];
      // each side takes each place in turn: the one right after a side that deleted 10,000 files
      // pays for it on journal-less ext4 (see the module doc)
      for (let k = 0; k < sides.length; k++) {
        const [into, run] = sides[(r + k) % sides.length];
        into.push(...(await run() ?? []));
      }
    }
  }
  if (!haveOverlay) console.error("fuse-overlayfs unavailable: editable rows have no C-peer column");
  for (const [i, w] of workloads.entries()) {
    row(`${w.name} (editable)`, "local dir", got[i].local, got[i].spfs);
    if (haveOverlay) row(`${w.name} (editable)`, "fuse-overlayfs (C)", got[i].ovl, got[i].spfs);
  }
  await copyUpAndCommitRows(sb, bigDir);
}

/** Copy-up of 1 GiB, and commit of 10,000 files from a dir and from a runtime's scratch. */
async function copyUpAndCommitRows(sb: Sandbox, bigDir: string): Promise<void> {
  const M = sb.mountpoint;
  // content unique per round and per side, so no commit finds its objects already stored
  const commit = selfArgv(["commit"]).map((a) => `'${a}'`).join(" ");
  const cu = [[], []] as number[][], cd = [[], []] as number[][], cs: number[] = [];
  for (let r = 0; r < Math.max(3, Math.floor(ROUNDS / 2)); r++) {
    console.error(`copy-up and commit rows, round ${r + 1}`);
    let d = Deno.makeTempDirSync({ dir: sb.root });
    // cp uses copy_file_range too
    cu[0].push(...parseNs(await sh(timed(d, `cp ${bigDir}/big.bin "$D/copy"`, "sync"))));
    await Deno.remove(d, { recursive: true });
    cu[1].push(
      ...parseNs(
        await sb.ok(["run", "--edit", "big", "--", "sh", "-c", timed(M, 'echo x >> "$D/big.bin"', "sync")]),
      ),
    );

    // 10,000 new files: `cp -a` + sync of the dir vs `spfs commit DIR`; then from a runtime's scratch
    d = Deno.makeTempDirSync({ dir: sb.root });
    await sh(`D=${d}; ${createFiles(`dir${r}`)}`);
    cd[0].push(...parseNs(await sh(timed(d, 'cp -a "$D/w" "$D/copy" && sync', "sync"))));
    cd[1].push(...parseNs(await sh(timed(d, `${commit} "$D/w" >/dev/null`, "sync"))));
    await Deno.remove(d, { recursive: true });
    cs.push(
      ...parseNs(
        await sb.ok([
          "run",
          "--edit",
          "empty",
          "--",
          "sh",
          "-c",
          timed(M, `${commit} >/dev/null 2>&1`, `${createFiles(`scratch${r}`)}; sync`),
        ]),
      ),
    );
  }
  row("copy-up 1 GiB file (copy_file_range)", "cp on local disk", cu[0], cu[1]);
  row("spfs commit DIR of 10,000 files", "cp -a + sync", cd[0], cd[1]);
  row("commit 10,000 new files (runtime scratch)", "spfs commit DIR", cd[1], cs);
}
