/**
 * `deno task bench`: each row runs spfs side by side with a baseline in the same run, alternating
 * rounds, and reports medians and the ratio spfs/baseline. Machines are shared and noisy: read the
 * ratios, not the absolute times. Needs root for fuse-overlayfs and for dropping caches.
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { npmPackageDir, Sandbox } from "../../tests/support/sandbox.ts";
import { innerScript, parseNs, ROUNDS, row, rows, timeCmd, timed } from "./common.ts";
import { editableRows } from "./editable.ts";
import { concurrencyRows } from "./concurrency.ts";
import { remoteRows } from "./remote.ts";

/** Copy-up by reflink on an XFS image vs `cp --reflink=always` there (needs root and xfsprogs). */
async function reflinkRow(): Promise<void> {
  const img = join(sb.root, "xfs.img"), mnt = join(sb.root, "xfs");
  Deno.mkdirSync(mnt);
  const mk = await runner().run([
    "sh",
    "-c",
    `truncate -s 3G ${img} && mkfs.xfs -q -f -m reflink=1 ${img} && mount -o loop ${img} ${mnt}`,
  ]);
  if (mk.code !== 0) {
    console.error(`reflink row skipped: cannot mount an XFS image (${mk.stderr.trim()})`);
    return;
  }
  const x = Sandbox.create({ parent: mnt, prefix: "spfs-bench-xfs-" });
  try {
    const src = join(x.root, "src");
    Deno.mkdirSync(src);
    await runner().run(["sh", "-c", `head -c 1073741824 /dev/urandom > ${src}/big.bin`]);
    await x.ok(["commit", src, "-t", "big"]);
    const base: number[] = [], sp: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const d = Deno.makeTempDirSync({ dir: x.root });
      base.push(
        ...parseNs(
          (await runner().run(["sh", "-c", timed(d, `cp --reflink=always ${src}/big.bin "$D/copy"`)])).stdout,
        ),
      );
      await Deno.remove(d, { recursive: true });
      sp.push(
        ...parseNs(
          await x.ok([
            "run",
            "--edit",
            "big",
            "--",
            "sh",
            "-c",
            timed(x.mountpoint, 'echo x >> "$D/big.bin"'),
          ]),
        ),
      );
    }
    row("copy-up 1 GiB file (reflink, XFS)", "cp --reflink", base, sp);
  } finally {
    await x.dispose();
    await runner().run(["umount", "-l", mnt]);
  }
}

const sb = Sandbox.create({ prefix: "spfs-bench-" });
const overlay = join(sb.root, "overlay");
Deno.mkdirSync(overlay);
try {
  const src = await npmPackageDir();
  await sb.ok(["commit", src, "-t", "npm"]);
  await sb.ok(["service"]);
  const M = sb.mountpoint;

  // 1. start-up floor
  console.error("spfs run -- true vs deno run of an empty script");
  const empty = join(sb.root, "empty.ts");
  Deno.writeTextFileSync(empty, "");
  const base: number[] = [], spfs: number[] = [];
  // 30 pairs at least: each is under 0.1 s, and 6 left this row's median at the mercy of one slow start
  for (let i = 0; i < Math.max(30, ROUNDS * 2); i++) {
    base.push(
      await timeCmd(
        new Deno.Command(Deno.execPath(), { args: ["run", "-A", empty], stdout: "null", stderr: "piped" }),
      ),
    );
    spfs.push(await timeCmd(sb.command(["run", "npm", "--", "true"])));
  }
  row("spfs run npm -- true (warm service)", "deno run empty.ts", base, spfs);

  // 2/3. walks and reads of the npm tree: native vs spfs vs fuse-overlayfs
  const ov = await runner().run(["fuse-overlayfs", "-o", `lowerdir=${src}`, overlay]);
  const haveOverlay = ov.code === 0;
  if (!haveOverlay) console.error(`fuse-overlayfs unavailable: ${ov.stderr.trim()}`);
  for (
    const [name, work] of [
      ["find -type f | wc -l (npm tree)", 'find "$D" -type f | wc -l >/dev/null'],
      ["read every file (npm tree)", 'find "$D" -type f -exec cat {} + >/dev/null'],
    ] as const
  ) {
    console.error(name);
    const nat: number[] = [], sp: number[] = [], ovl: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      nat.push(...parseNs((await runner().run(["sh", "-c", innerScript(src, work, 3)])).stdout));
      sp.push(...parseNs(await sb.ok(["run", "npm", "--", "sh", "-c", innerScript(M, work, 3)])));
      if (haveOverlay) {
        ovl.push(...parseNs((await runner().run(["sh", "-c", innerScript(overlay, work, 3)])).stdout));
      }
    }
    row(name, "native dir", nat, sp);
    if (haveOverlay) row(name, "fuse-overlayfs (C)", ovl, sp);
  }
  if (haveOverlay) await runner().run(["fusermount3", "-u", overlay]);

  // 4. sequential read of 1 GiB
  console.error("sequential read of 1 GiB");
  const bigDir = join(sb.root, "big");
  Deno.mkdirSync(bigDir);
  await runner().run(["sh", "-c", `head -c 1073741824 /dev/urandom > ${bigDir}/big.bin`]);
  await sb.ok(["commit", bigDir, "-t", "big"]);
  const read = 'cat "$D/big.bin" >/dev/null';
  await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)]); // warm the page cache
  const bn: number[] = [], bs: number[] = [], cn: number[] = [], cs: number[] = [];
  const canDrop = Deno.uid() === 0;
  for (let r = 0; r < Math.max(3, Math.floor(ROUNDS / 2)); r++) {
    bn.push(...parseNs((await runner().run(["sh", "-c", innerScript(bigDir, read, 1)])).stdout));
    bs.push(...parseNs(await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)])));
    if (canDrop) {
      const drop = "sync; echo 3 > /proc/sys/vm/drop_caches";
      cn.push(
        ...parseNs((await runner().run(["sh", "-c", `${drop}; ${innerScript(bigDir, read, 1)}`])).stdout),
      );
      await runner().run(["sh", "-c", drop]);
      cs.push(...parseNs(await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)])));
    }
  }
  row("cat 1 GiB file (page cache warm)", "native file", bn, bs);
  if (canDrop) row("cat 1 GiB file (caches dropped)", "native file", cn, cs);

  await editableRows(sb, bigDir, src);
  await concurrencyRows(sb);
  await remoteRows(sb, src, bigDir);
  await reflinkRow();
} finally {
  await runner().run(["fusermount3", "-u", "-z", overlay]);
  await sb.dispose();
}
const { table } = await import("../../cli/output.ts");
console.log(`\nmedians over ${ROUNDS} alternating rounds (ms)\n`);
console.log(table(rows));
