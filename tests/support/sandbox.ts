/**
 * A throw-away spfs setup for tests, the demo and benchmarks: its own storage root, runtime dir
 * and mount point under one temp dir, and helpers that run the real CLI as child processes.
 */
import { join } from "node:path";
import { selfArgv } from "../../core/client/rpc.ts";
import { type Config, loadConfig, readPidFile } from "../../core/config.ts";
import { SpfsError } from "../../core/errors.ts";
import { checkDevice, checkLibfuse } from "../../core/platform/checks.ts";
import { runner } from "../../core/runner.ts";
import { platform } from "../../core/platform/facts.ts";

/** Output of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Sandbox {
  readonly root: string;
  readonly storage: string;
  readonly runtime: string;
  readonly mountpoint: string;
  readonly env: Record<string, string>;

  private constructor(root: string, mountpoint?: string) {
    this.root = root;
    this.storage = join(root, "store");
    this.runtime = join(root, "run");
    this.mountpoint = mountpoint ?? join(root, "mnt");
    this.env = {
      SPFS_STORAGE_ROOT: this.storage,
      SPFS_RUNTIME_DIR: this.runtime,
      SPFS_MOUNTPOINT: this.mountpoint,
      // never the developer's own config file (remotes, storage root)
      SPFS_CONFIG: join(root, "config.toml"),
    };
  }

  /** Creates the temp dirs (and the mount point unless one is given). */
  static create(opts: { mountpoint?: string; prefix?: string; parent?: string } = {}): Sandbox {
    const root = Deno.makeTempDirSync({ prefix: opts.prefix ?? "spfs-test-", dir: opts.parent });
    const s = new Sandbox(root, opts.mountpoint);
    Deno.mkdirSync(s.mountpoint, { recursive: true });
    return s;
  }

  /** argv and env for running spfs with this sandbox's config. */
  command(args: string[], extraEnv: Record<string, string> = {}): Deno.Command {
    const argv = selfArgv(args);
    return new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: { ...this.env, ...extraEnv },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  }

  /** Runs `spfs ARGS…` to completion. */
  async spfs(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
    const out = await this.command(args, extraEnv).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  /** Like spfs() but throws with the output when the exit code is not 0. */
  async ok(args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
    const r = await this.spfs(args, extraEnv);
    if (r.code !== 0) throw new Error(`spfs ${args.join(" ")} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** The pid in the service pid file, if any. */
  servicePid(): number | undefined {
    return readPidFile({ runtimeDir: this.runtime } as Config);
  }

  /** Stops the service, unmounts whatever is left, and removes the temp dir. Never throws. */
  async dispose(): Promise<void> {
    const pid = this.servicePid();
    await this.spfs(["service", "--stop", "--force"]).catch(() => {});
    if (pid) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await runner().run(platform.unmountArgv(this.mountpoint));
    // SPFS_TEST_KEEP=1 keeps the tree (store, scratch, logs) to look at after a failure
    if (Deno.env.get("SPFS_TEST_KEEP") === "1") console.error(`kept ${this.root}`);
    else await runner().run(["rm", "-rf", this.root]);
  }
}

/**
 * Shell pipeline (run inside a tree) listing each path's type, mode, size and symlink target.
 * Directory sizes are filesystem-specific, so directories print "-" for theirs.
 */
export const TREE_LISTING =
  "find . \\( -type d -printf '%y %m - %P\\n' \\) -o -printf '%y %m %s %l %P\\n' | sort";

/** Why FUSE cannot be used here, or undefined when it can (the service's own pre-mount checks). */
export async function fuseUnavailableReason(): Promise<string | undefined> {
  const cfg = await loadConfig();
  try {
    checkLibfuse(cfg);
    checkDevice(cfg);
    return undefined;
  } catch (e) {
    return e instanceof SpfsError ? `${e.message} (${e.hint})` : String(e);
  }
}

/** The directory holding npm's `bin/npm-cli.js` on this machine. */
export async function npmPackageDir(): Promise<string> {
  const r = await runner().run(["sh", "-c", 'readlink -f "$(command -v npm)"']);
  const cli = r.stdout.trim();
  const dir = join(cli, "..", "..");
  Deno.statSync(join(dir, "bin", "npm-cli.js"));
  return dir;
}
