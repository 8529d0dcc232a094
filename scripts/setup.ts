/**
 * Installs what spfs needs on a Debian-like machine: fuse3 (libfuse3 + fusermount3); with
 * `--bench` also fuse-overlayfs and skopeo; with `--test` the tools the real workloads use (git,
 * python3 with venv, xfsprogs for the reflink test on an XFS image, systemd for `systemd-analyze
 * verify`, docker-registry for push/pull against a real registry, strace for the crash tests).
 * As root it runs apt-get; otherwise it prints the exact command and exits 1. Also pre-fetches the npm dependencies so the first run does not pay for it.
 */
import { loadConfig } from "../core/config.ts";
import { checkLibfuse } from "../core/platform/checks.ts";
import { runner } from "../core/runner.ts";

const bench = Deno.args.includes("--bench");
const test = Deno.args.includes("--test");
const quiet = Deno.args.includes("--quiet");

async function haveLib(): Promise<boolean> {
  try {
    checkLibfuse(await loadConfig());
    return true;
  } catch {
    return false;
  }
}

async function have(cmd: string): Promise<boolean> {
  return (await runner().run(["sh", "-c", `command -v ${cmd}`])).code === 0;
}

if (Deno.build.os !== "linux") {
  if (!quiet) {
    console.error("setup: nothing to install automatically on", Deno.build.os, "(see README: macFUSE)");
  }
  Deno.exit(0);
}

const missing: string[] = [];
if (!(await haveLib()) || !(await have("fusermount3"))) missing.push("fuse3");
if (bench && !(await have("fuse-overlayfs"))) missing.push("fuse-overlayfs");
if (test || bench) {
  if (!(await have("git"))) missing.push("git");
  if ((await runner().run(["sh", "-c", "python3 -c 'import venv, ensurepip'"])).code !== 0) {
    missing.push("python3", "python3-venv");
  }
  if (!(await have("mkfs.xfs"))) missing.push("xfsprogs");
  // systemd-analyze verifies the unit `spfs launchagent` writes
  if (!(await have("systemd-analyze"))) missing.push("systemd");
  // a real OCI registry (CNCF distribution) on 127.0.0.1 for push/pull tests
  if (!(await have("docker-registry"))) missing.push("docker-registry");
  // the overlay crash tests kill an op at each of its syscalls by strace's fault injection
  if (!(await have("strace"))) missing.push("strace");
}
// the bench compares pull and push with skopeo copy
if (bench && !(await have("skopeo"))) missing.push("skopeo");

if (missing.length) {
  const cmd = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (Deno.uid() !== 0) {
    console.error(`setup: missing ${missing.join(", ")}. Install with:\n  sudo sh -c '${cmd}'`);
    Deno.exit(1);
  }
  console.error(`setup: installing ${missing.join(", ")} from Debian's packages…`);
  const env = "DEBIAN_FRONTEND=noninteractive";
  const r = await runner().run([
    "sh",
    "-c",
    `${env} apt-get update -qq && ${env} apt-get install -y -qq ${missing.join(" ")}`,
  ]);
  if (r.code !== 0) {
    console.error(`setup: apt-get failed (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
    Deno.exit(1);
  }
}
if (!(await haveLib())) {
  console.error("setup: libfuse3.so.3 still cannot be loaded after installing fuse3");
  Deno.exit(1);
}
if (!quiet) console.error("setup: fuse3 present" + (bench ? ", fuse-overlayfs present" : ""));
