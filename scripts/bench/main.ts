/**
 * `deno task bench`: each row runs spfs side by side with a baseline in the same run, alternating
 * rounds, and reports medians and the ratio spfs/baseline. Machines are shared and noisy: read the
 * ratios, not the absolute times. Needs root for fuse-overlayfs and for dropping caches.
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { selfArgv } from "../../core/client/rpc.ts";
import { npmPackageDir, Sandbox } from "../../tests/support/sandbox.ts";

const ROUNDS = Number(Deno.env.get("SPFS_BENCH_ROUNDS") ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: string[][] = [["benchmark", "baseline", "baseline ms", "spfs ms", "spfs/baseline"]];

function row(name: string, baseName: string, base: number[], spfs: number[]) {
  const b = median(base), s = median(spfs);
  rows.push([name, baseName, b.toFixed(1), s.toFixed(1), `${(s / b).toFixed(2)}x`]);
  console.error(`  ${name}: baseline ${b.toFixed(1)} ms, spfs ${s.toFixed(1)} ms`);
}

async function timeCmd(cmd: Deno.Command): Promise<number> {
  const t0 = performance.now();
  const out = await cmd.output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return performance.now() - t0;
}

/** Runs `work` (a shell snippet using $D) k times inside one shell; prints ns per run. */
function innerScript(dir: string, work: string, k: number): string {
  return `D=${dir}; for i in $(seq ${k}); do s=$(date +%s%N); ${work}; e=$(date +%s%N); echo $((e-s)); done`;
}
const parseNs = (out: string) => out.trim().split("\n").map((l) => Number(l) / 1e6);

/** Times `work` (shell, using $D) once inside a shell; prints ns. `setup` runs untimed first. */
function timed(dir: string, work: string, setup = ""): string {
  return `D=${dir}; ${setup}\ns=$(date +%s%N); ${work}; e=$(date +%s%N); echo $((e-s))`;
}

/** Editable-runtime rows: each against the same work on a local directory. */
async function editableRows(M: string, bigDir: string): Promise<void> {
  const local = () => Deno.makeTempDirSync({ dir: sb.root, prefix: "local-" });
  const rm = (d: string) => Deno.remove(d, { recursive: true });
  const emptyDir = join(sb.root, "emptysrc");
  Deno.mkdirSync(emptyDir);
  await sb.ok(["commit", emptyDir, "-t", "empty"]);
  const create = (tag: string) =>
    `mkdir "$D/w"; for n in $(seq 10000); do echo "${tag} $n" > "$D/w/f$n"; done`;
  const tenk = join(sb.root, "tenk");
  await runner().run([
    "sh",
    "-c",
    `for d in $(seq 100); do mkdir -p ${tenk}/t/$d; for f in $(seq 100); do echo $d$f > ${tenk}/t/$d/$f; done; done`,
  ]);
  await sb.ok(["commit", tenk, "-t", "tenk"]);
  const n = Math.max(3, Math.floor(ROUNDS / 2));
  const r5 = [[], []] as number[][], r6 = [[], []] as number[][], r7 = [[], []] as number[][];
  const r8 = [[], []] as number[][];
  for (let r = 0; r < n; r++) {
    console.error(`editable rows, round ${r + 1}/${n}`);
    // 5. create and write 10,000 small files
    let d = local();
    r5[0].push(...parseNs((await runner().run(["sh", "-c", timed(d, create(`l${r}`))])).stdout));
    await rm(d);
    r5[1].push(
      ...parseNs(await sb.ok(["run", "--edit", "empty", "--", "sh", "-c", timed(M, create(`s${r}`))])),
    );
    // 6. rm -rf of a 10,000-file tree (a lower layer for spfs)
    d = local();
    await runner().run(["cp", "-a", `${tenk}/t`, `${d}/t`]);
    r6[0].push(...parseNs((await runner().run(["sh", "-c", timed(d, 'rm -rf "$D/t"')])).stdout));
    await rm(d);
    r6[1].push(
      ...parseNs(await sb.ok(["run", "--edit", "tenk", "--", "sh", "-c", timed(M, 'rm -rf "$D/t"')])),
    );
    // 7. copy-up of a 1 GiB file vs copying it on the local disk (cp uses copy_file_range too)
    d = local();
    r7[0].push(
      ...parseNs((await runner().run(["sh", "-c", timed(d, `cp ${bigDir}/big.bin "$D/copy"`)])).stdout),
    );
    await rm(d);
    r7[1].push(
      ...parseNs(await sb.ok(["run", "--edit", "big", "--", "sh", "-c", timed(M, 'echo x >> "$D/big.bin"')])),
    );
    // 8. commit of 10,000 new files: from a runtime's scratch vs `spfs commit DIR` of a local dir
    d = local();
    await runner().run(["sh", "-c", `D=${d}; ${create(`cl${r}`)}`]);
    const t0 = performance.now();
    await sb.ok(["commit", `${d}/w`]);
    r8[0].push(performance.now() - t0);
    await rm(d);
    const commit = selfArgv(["commit"]).map((a) => `'${a}'`).join(" ");
    r8[1].push(
      ...parseNs(
        await sb.ok([
          "run",
          "--edit",
          "empty",
          "--",
          "sh",
          "-c",
          timed(M, `${commit} >/dev/null 2>&1`, create(`cs${r}`)),
        ]),
      ),
    );
  }
  row("create+write 10,000 small files (editable)", "local dir", r5[0], r5[1]);
  row("rm -rf a 10,000-file tree (lower layer)", "local dir", r6[0], r6[1]);
  row("copy-up 1 GiB file (copy_file_range fallback)", "cp on local disk", r7[0], r7[1]);
  row("commit 10,000 new files (runtime scratch)", "spfs commit DIR", r8[0], r8[1]);
  await reflinkRow();
}

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
  for (let i = 0; i < ROUNDS * 2; i++) {
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
  await sb.ok(["run", "big", "--", "sh", "-c", innerScript(M, read, 1)]); // first open verifies the blob digest
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

  await editableRows(M, bigDir);
} finally {
  await runner().run(["fusermount3", "-u", "-z", overlay]);
  await sb.dispose();
}
const { table } = await import("../../cli/output.ts");
console.log(`\nmedians over ${ROUNDS} alternating rounds (ms)\n`);
console.log(table(rows));
