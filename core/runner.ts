/**
 * The one way spfs runs external programs (fusermount3, umount, hdiutil, diskutil, launchctl,
 * systemctl…), built on dax. Tests swap in a recording runner to assert the exact argv.
 */

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

/** The real runner. dax is imported lazily: most commands never run a program. */
export const daxRunner: CommandRunner = {
  async run(argv, opts = {}) {
    const { default: $ } = await import("dax");
    // dax's shell has builtins (cp, rm, mkdir, echo…) that lack most flags (`cp -a`); a resolved
    // path always runs the real program
    const prog = argv[0].includes("/") ? argv[0] : await $.which(argv[0]);
    if (!prog) return { code: 127, stdout: "", stderr: `${argv[0]}: command not found in PATH` };
    let cmd = $`${[prog, ...argv.slice(1)]}`.noThrow().stdout("piped").stderr("piped").quiet();
    if (opts.stdin !== undefined) cmd = cmd.stdinText(opts.stdin);
    if (opts.timeoutMs) cmd = cmd.timeout(opts.timeoutMs);
    try {
      const r = await cmd;
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      // dax throws when the program cannot be found
      return { code: 127, stdout: "", stderr: e instanceof Error ? e.message : String(e) };
    }
  },
};

/** The last line a program printed (stderr first), for one-line error messages. */
export function lastLine(r: RunResult): string {
  return (r.stderr.trim() || r.stdout.trim()).split("\n").at(-1) ?? "";
}

let current: CommandRunner = daxRunner;

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
  readonly #answer: (argv: string[]) => RunResult;
  constructor(answer: (argv: string[]) => RunResult = () => ({ code: 0, stdout: "", stderr: "" })) {
    this.#answer = answer;
  }
  run(argv: string[]): Promise<RunResult> {
    this.calls.push(argv);
    return Promise.resolve(this.#answer(argv));
  }
}
