/**
 * The one way spfs runs external programs (fusermount3, umount, hdiutil, diskutil, launchctl,
 * systemctl…). Tests swap in a recording runner to assert the exact argv.
 */

/**
 * `spfs run`'s command is the one program spfs does not wait for: this process becomes it
 * (ffi/sys.ts execReplace, execvp(3)), and the call returns only when that failed.
 */
export { execReplace } from "../ffi/sys.ts";

/** Outcome of one program run. `code` is its exit status. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] with argv[1..] (no shell) and captures its output. Never throws on a non-zero exit. */
export interface CommandRunner {
  run(argv: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<RunResult>;
}

/**
 * The real runner, on Deno.Command: argv[0] is looked up in PATH by the OS, never a shell builtin.
 * Not dax: dax-sh 0.44 reports exit code 0 for a child killed by a signal it did not send
 * (`timeout -s KILL` killing a stat stuck on a hung FUSE mount), which hid hung mounts.
 * A child killed by signal N gets code 128+N, as a shell reports it.
 */
export const processRunner: CommandRunner = {
  async run(argv, opts = {}) {
    const ctl = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
    try {
      const child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: opts.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        signal: ctl,
      }).spawn();
      if (opts.stdin !== undefined) {
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {/* child closed stdin */});
        await w.close().catch(() => {});
      }
      const r = await child.output();
      const dec = new TextDecoder();
      return { code: exitCode(r), stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return { code: 127, stdout: "", stderr: `${argv[0]}: command not found in PATH` };
      }
      return { code: 126, stdout: "", stderr: e instanceof Error ? e.message : String(e) };
    }
  },
};

/** Signal numbers (signal(7); the same on Linux and macOS for these). */
const SIGNALS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/** A child's exit code as a shell reports it: its own, or 128+N when signal N ended it. */
export function exitCode(status: { code: number; signal: Deno.Signal | null }): number {
  return status.signal ? 128 + (SIGNALS[status.signal] ?? 0) : status.code;
}

/** The last line a program printed (stderr first), for one-line error messages. */
export function lastLine(r: RunResult): string {
  return (r.stderr.trim() || r.stdout.trim()).split("\n").at(-1) ?? "";
}

let current: CommandRunner = processRunner;

/** The runner in use. */
export function runner(): CommandRunner {
  return current;
}

/** Replaces the runner (tests); returns the previous one. */
export function setRunner(r: CommandRunner): CommandRunner {
  const prev = current;
  current = r;
  return prev;
}

/** A runner that records every argv and answers from a script of canned results (tests). */
export class RecordingRunner implements CommandRunner {
  readonly calls: string[][] = [];
  /** The stdin given to each call (undefined when none). */
  readonly stdins: (string | undefined)[] = [];
  readonly #answer: (argv: string[]) => RunResult;
  constructor(answer: (argv: string[]) => RunResult = () => ({ code: 0, stdout: "", stderr: "" })) {
    this.#answer = answer;
  }
  run(argv: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
    this.calls.push(argv);
    this.stdins.push(opts.stdin);
    return Promise.resolve(this.#answer(argv));
  }
}
