/**
 * Command-line entry: parses argv with commander and dispatches to one module per subcommand,
 * each imported lazily. The common `spfs run [flags] SPEC [--] CMD…` is parsed here without
 * commander, whose import alone costs `spfs run` about 30 ms (ARCHITECTURE.md: start-up is a
 * product feature); anything else, `--help` included, goes through commander.
 */
import type { Command } from "commander";
import { type Config, type ConfigFlags, loadConfig } from "../core/config.ts";
import { ExitCode, SpfsError } from "../core/errors.ts";
import type { ServiceOpts } from "./service.ts";
import { run as runCmd, type RunOpts } from "./run.ts";
import { VERSION } from "../core/version.ts";
import { reportError } from "./output.ts";
import { forcedCrash, reportBug } from "../core/report.ts";

/** What each command group needs: the program, the config for a command, and the action wrapper. */
interface Cli {
  program: Command;
  cfg: (extra?: ConfigFlags) => Promise<Config>;
  act: <A extends unknown[]>(fn: (...a: A) => Promise<number | void>) => (...a: A) => Promise<void>;
  /** The `run` action; tests swap it to see what commander parsed. */
  runAction: RunAction;
}

/** Options of `spfs run` / `spfs shell` as parsed from argv. */
export type RunFlags = RunOpts & { mountpoint?: string };

/** Runs `spfs run` with parsed operands; resolves with the exit code. */
export type RunAction = (
  cfg: (extra?: ConfigFlags) => Promise<Config>,
  spec: string | undefined,
  command: string[],
  o: RunFlags,
) => Promise<number>;

/** The `spfs run` action, shared by commander and the quick parser. */
const runAction: RunAction = async (cfg, spec, command, o) => {
  // with --rerun there is no SPEC: every operand belongs to the command
  if (o.rerun && spec !== undefined) command = [spec, ...command];
  if (!o.rerun && spec === undefined) {
    throw new SpfsError("UsageError", "missing SPEC", { hint: "spfs run SPEC -- CMD [ARGS…]" });
  }
  return await runCmd(
    await cfg({ mountpoint: o.mountpoint }),
    o.rerun ? undefined : spec,
    command,
    o,
  );
};

/**
 * The flags of `spfs run` and `spfs shell`, declared once: commander's options are built from this
 * table, and the quick parser reads argv with it. `key` is the option commander sets; a flag with
 * a `value` placeholder takes one, a switch sets `set`.
 */
const RUN_FLAGS: {
  flag: string;
  key: keyof RunFlags;
  value?: string;
  set?: boolean;
  help: string;
}[] = [
  {
    flag: "--edit",
    key: "edit",
    set: true,
    help: "give the runtime a writable scratch dir (changes can be committed)",
  },
  {
    flag: "--keep-runtime",
    key: "keepRuntime",
    set: true,
    help: "keep the runtime after the command exits (durable; implies --edit)",
  },
  { flag: "--name", key: "name", value: "<name>", help: "name the runtime" },
  {
    flag: "--rerun",
    key: "rerun",
    value: "<runtime>",
    help: "re-enter a durable runtime by id or name (no SPEC)",
  },
  {
    flag: "--scratch",
    key: "scratch",
    value: "<where>",
    help: "put scratch on ramdisk:NAME (see `spfs ramdisk`) or in an absolute DIR (implies --edit)",
  },
  {
    flag: "--no-pull",
    key: "pull",
    set: false,
    help: "do not fetch a REF missing here from the origin remote",
  },
  { flag: "--mountpoint", key: "mountpoint", value: "<dir>", help: "mount point (env SPFS_MOUNTPOINT)" },
];
const RUN_FLAG_BY_NAME = new Map(RUN_FLAGS.map((f) => [f.flag, f]));

/**
 * Parses `run [flags] SPEC [CMD…]` as commander does for the `run` command (options stop at the
 * first operand; everything after it, `--` included, is the command). Returns undefined for any
 * other argv — global options, `--help`, an unknown or malformed flag, no operand — so that
 * commander parses it and reports errors in its usual words.
 */
export function parseQuickRun(
  argv: string[],
): { spec: string; command: string[]; o: RunFlags } | undefined {
  if (argv[0] !== "run") return undefined;
  const o: Record<string, unknown> = {};
  let i = 1;
  for (; i < argv.length && argv[i].startsWith("-"); i++) {
    const eq = argv[i].indexOf("=");
    const flag = eq < 0 ? argv[i] : argv[i].slice(0, eq);
    const f = RUN_FLAG_BY_NAME.get(flag);
    if (!f) return undefined;
    if (f.value) {
      const value = eq < 0 ? argv[++i] : argv[i].slice(eq + 1);
      if (value === undefined) return undefined;
      o[f.key] = value;
    } else if (eq < 0) o[f.key] = f.set;
    else return undefined;
  }
  if (i >= argv.length) return undefined;
  return { spec: argv[i], command: argv.slice(i + 1), o: o as RunFlags };
}

/** Commands for storage: commit, tag, tags, ls, info, check, doctor. */
function storageCommands({ program, cfg, act }: Cli): void {
  program.command("commit")
    .description(
      "import a directory tree as a layer, or (no DIR) commit a runtime's changes as a new layer on its stack",
    )
    .argument("[dir]", "directory to import; omit inside a runtime or with --runtime")
    .option(
      "-t, --tag <name>",
      "tag the result as name[/version]: a DIR's layer, or a runtime's whole stack (a platform)",
    )
    .option("--runtime <runtime>", "commit this runtime (id or name) instead of the one this shell runs in")
    .option("--json", "print {digest, manifest, files, bytes} as JSON")
    .action(
      act(async (dir: string | undefined, o: { tag?: string; runtime?: string; json?: boolean }) =>
        (await import("./commit.ts")).commit(await cfg(), dir, o)
      ),
    );

  program.command("tag")
    .description("point a tag at a REF (the previous target stays in history as NAME~1)")
    .argument("<ref>", "tag, digest or digest prefix")
    .argument("<name>", "tag name[/version]")
    .option("--json", "print JSON")
    .action(
      act(async (ref: string, name: string, o: { json?: boolean }) =>
        (await import("./tags.ts")).tag(await cfg(), ref, name, o)
      ),
    );

  program.command("tags")
    .description("list tags and their targets")
    .argument("[name]", "show the history of one tag")
    .option("--json", "print JSON")
    .action(
      act(async (name: string | undefined, o: { json?: boolean }) =>
        (await import("./tags.ts")).tags(await cfg(), name, o)
      ),
    );

  program.command("ls")
    .description("list a directory of a layer, platform or env spec")
    .argument("<spec>", "REF[+REF…]")
    .argument("[path]", "directory inside the environment", "/")
    .option("--json", "print JSON")
    .action(
      act(async (spec: string, path: string, o: { json?: boolean }) =>
        (await import("./ls.ts")).ls(await cfg(), spec, path, o)
      ),
    );

  program.command("info")
    .description("describe an object: blob, manifest, layer or platform")
    .argument("<ref>", "tag, digest or digest prefix")
    .option("--json", "print JSON")
    .action(
      act(async (ref: string, o: { json?: boolean }) =>
        (await import("./info.ts")).info(await cfg(), ref, o)
      ),
    );

  program.command("clean")
    .description(
      "remove objects that no tag (or its history), durable runtime or running runtime reaches",
    )
    .option("--dry-run", "print what would be removed, remove nothing")
    .option("--grace <seconds>", "keep unreferenced objects written in the last SECONDS (default 600)")
    .option("--json", "print {dryRun, removed, kept, young} as JSON")
    .action(
      act(async (o: { dryRun?: boolean; grace?: string; json?: boolean }) =>
        (await import("./clean.ts")).clean(await cfg(), o)
      ),
    );

  program.command("check")
    .description("verify every object against its digest and every reference; exit 6 if damaged")
    .option("--json", "print {ok, objects, bytes, corrupt, missing} as JSON")
    .action(act(async (o: { json?: boolean }) => (await import("./check.ts")).check(await cfg(), o)));

  program.command("doctor")
    .description(
      "check FUSE, the mount point, storage, the database and the service; print a fix for each problem",
    )
    .option("--json", "print {ok, checks: [{name, status, detail, code?, fix?}]} as JSON")
    .action(act(async (o: { json?: boolean }) => (await import("./doctor.ts")).doctor(await cfg(), o)));
}

/** Commands for remotes: remote list|add|remove, push, pull. */
function remoteCommands({ program, cfg, act }: Cli): void {
  const remote = program.command("remote").description(
    "list, add and remove remotes (OCI registries and shared directories) in the config file",
  );
  remote.command("list").description("list the configured remotes").option("--json", "print JSON")
    .action(act(async (o: { json?: boolean }) => (await import("./remote.ts")).list(await cfg(), o)));
  remote.command("add")
    .description("add or replace a remote; `origin` is the default for push, pull and run")
    .argument("<name>", "remote name, e.g. origin")
    .argument("<address>", "oci://HOST[:PORT]/NAMESPACE/REPO or file:///PATH")
    .option("--insecure", "allow plain HTTP to a registry that is not on loopback")
    .option("--json", "print JSON")
    .action(
      act(async (name: string, address: string, o: { insecure?: boolean; json?: boolean }) =>
        (await import("./remote.ts")).add(await cfg(), name, address, o)
      ),
    );
  remote.command("remove").description("remove a remote").argument("<name>", "remote name")
    .option("--json", "print JSON")
    .action(
      act(async (name: string, o: { json?: boolean }) =>
        (await import("./remote.ts")).remove(await cfg(), name, o)
      ),
    );

  program.command("push")
    .description("send layers and platforms (and their tags) to a remote; skips what it already has")
    .argument("<refs...>", "tags or digests")
    .option("--to <remote>", "remote name (default origin)")
    .option("--json", "print {remote, refs, layers, objects, bytes, ms} as JSON")
    .action(
      act(async (refs: string[], o: import("./remote.ts").SyncOpts) =>
        (await import("./remote.ts")).push(await cfg(), refs, o)
      ),
    );
  program.command("pull")
    .description("fetch tags or digests from a remote into this store; skips what is already here")
    .argument("<refs...>", "tags or full digests")
    .option("--from <remote>", "remote name (default origin)")
    .option("--json", "print {remote, refs, layers, objects, bytes, ms} as JSON")
    .action(
      act(async (refs: string[], o: import("./remote.ts").SyncOpts) =>
        (await import("./remote.ts")).pull(await cfg(), refs, o)
      ),
    );
}

/** Commands for running: run, shell, diff. */
function runCommands({ program, cfg, act, runAction }: Cli): void {
  const runtimeOptions = (c: Command) =>
    RUN_FLAGS.reduce((cmd, f) => cmd.option(f.value ? `${f.flag} ${f.value}` : f.flag, f.help), c);

  runtimeOptions(
    program.command("run")
      .description("run a command with the environment mounted at /spfs for its process tree")
      .usage("[options] SPEC -- CMD [ARGS…]  |  --rerun RUNTIME -- CMD [ARGS…]")
      .argument("[spec]", "REF[+REF…]")
      .argument("[command...]", "command and arguments (put them after --)"),
  )
    .passThroughOptions()
    .action(
      act((spec: string | undefined, command: string[], o: RunFlags) => runAction(cfg, spec, command, o)),
    );

  runtimeOptions(
    program.command("shell")
      .description("start $SHELL with the environment mounted at /spfs")
      .argument("[spec]", "REF[+REF…] (omit with --rerun)"),
  )
    .action(
      act(async (spec: string | undefined, o: RunFlags) => {
        if (!o.rerun && spec === undefined) {
          throw new SpfsError("UsageError", "missing SPEC", { hint: "spfs shell SPEC" });
        }
        return runCmd(await cfg({ mountpoint: o.mountpoint }), spec, [
          Deno.env.get("SHELL") || "/bin/sh",
        ], o);
      }),
    );

  program.command("diff")
    .description("list added, changed and removed paths: a runtime's changes, or between two refs")
    .argument("[refs...]", "none: the runtime's uncommitted changes; REF: the runtime vs REF; A B: A vs B")
    .option("--runtime <runtime>", "runtime id or name (default: the runtime this shell runs in)")
    .option("--json", "print [{op, path, kind}] as JSON")
    .action(
      act(async (refs: string[], o: { runtime?: string; json?: boolean }) =>
        (await import("./diff.ts")).diff(await cfg(), refs, o)
      ),
    );
}

/** Commands for runtime list|info|remove|prune. */
function runtimeCommands({ program, cfg, act }: Cli): void {
  const runtime = program.command("runtime").description("list, inspect and remove runtimes");
  runtime.command("list")
    .description("list running and durable runtimes")
    .option("--json", "print JSON")
    .action(act(async (o: { json?: boolean }) => (await import("./runtime.ts")).list(await cfg(), o)));
  runtime.command("info")
    .description("show one runtime")
    .argument("<runtime>", "id or name")
    .option("--json", "print JSON")
    .action(
      act(async (ref: string, o: { json?: boolean }) =>
        (await import("./runtime.ts")).info(await cfg(), ref, o)
      ),
    );
  runtime.command("remove")
    .description("delete a durable runtime that is not running, with its scratch dir")
    .argument("<runtime...>", "ids or names")
    .option("--json", "print JSON")
    .action(
      act(async (refs: string[], o: { json?: boolean }) =>
        (await import("./runtime.ts")).remove(await cfg(), refs, o)
      ),
    );
  runtime.command("prune")
    .description("delete every runtime whose root process is gone (durable ones included)")
    .option("--dry-run", "only list what would be removed")
    .option("-y, --yes", "do not ask for confirmation")
    .option("--json", "print JSON")
    .action(
      act(async (o: { dryRun?: boolean; yes?: boolean; json?: boolean }) =>
        (await import("./runtime.ts")).prune(await cfg(), o)
      ),
    );
}

/** Commands for launchagent install|uninstall|status. */
function agentCommands({ program, cfg, act }: Cli): void {
  const agent = program.command("launchagent")
    .description("run the service under launchd (macOS) or systemd --user (Linux), started at login");
  const agentOpts = (c: Command) =>
    c.option("--label <label>", "job label (launchd default dev.spfs.service, systemd default spfs)")
      .option("--json", "print JSON");
  agentOpts(
    agent.command("install")
      .description("write the plist/unit and load it; the service runs with --idle-timeout 0")
      .option("--dry-run", "print the file and the commands instead"),
  ).action(
    act(async (o: { label?: string; dryRun?: boolean; json?: boolean }) =>
      (await import("./launchagent.ts")).install(await cfg(), o)
    ),
  );
  agentOpts(
    agent.command("uninstall")
      .description("unload the job and delete its file")
      .option("--dry-run", "print the commands instead"),
  ).action(
    act(async (o: { label?: string; dryRun?: boolean; json?: boolean }) =>
      (await import("./launchagent.ts")).uninstall(await cfg(), o)
    ),
  );
  agentOpts(
    agent.command("status").description(
      "what the service manager reports; exit 0 running, 1 stopped, 3 not installed",
    ),
  ).action(
    act(async (o: { label?: string; json?: boolean }) =>
      (await import("./launchagent.ts")).status(await cfg(), o)
    ),
  );
}

/** Commands for ramdisk create|destroy|list. */
function ramdiskCommands({ program, cfg, act }: Cli): void {
  const ramdisk = program.command("ramdisk").description(
    "RAM disks for scratch dirs (tmpfs on Linux, APFS on macOS)",
  );
  ramdisk.command("create")
    .description("create and mount a RAM disk (Linux: needs root)")
    .requiredOption("--size <size>", "size, e.g. 256M or 2G")
    .option("--name <name>", "volume name", "spfs")
    .option("--json", "print JSON")
    .action(
      act(async (o: { size: string; name?: string; json?: boolean }) =>
        (await import("./ramdisk.ts")).create(await cfg(), o)
      ),
    );
  ramdisk.command("destroy")
    .description("unmount and free a RAM disk spfs created")
    .argument("<name>", "its name")
    .option("--force", "detach even while files on it are open")
    .option("--json", "print JSON")
    .action(
      act(async (name: string, o: { force?: boolean; json?: boolean }) =>
        (await import("./ramdisk.ts")).destroy(await cfg(), name, o)
      ),
    );
  ramdisk.command("list")
    .description("list the RAM disks spfs created")
    .option("--json", "print JSON")
    .action(act(async (o: { json?: boolean }) => (await import("./ramdisk.ts")).list(await cfg(), o)));
}

/** Commands for service and status. */
function serviceCommands({ program, cfg, act }: Cli): void {
  program.command("service")
    .description("start the background service that owns the FUSE mount (detached unless --foreground)")
    .option("--mountpoint <dir>", "mount point (env SPFS_MOUNTPOINT, default /spfs)")
    .option("--foreground", "serve in this process until stopped")
    .option("--stop", "stop the running service and wait for it to exit (not while runtimes run)")
    .option("--force", "with --stop: stop even while runtimes run (their commands lose /spfs)")
    .option("--log-file <path>", "log to this file (rotated at 10 MiB)")
    .option(
      "--idle-timeout <seconds>",
      "exit after this long with no runtimes; 0 = never (env SPFS_SERVICE_IDLE_TIMEOUT, default 1800)",
    )
    .option("--if-not-running", "exit 0 instead of 1 when a service is already running")
    .option(
      "--metrics-listen <host:port>",
      "serve Prometheus /metrics on a loopback address (env SPFS_METRICS_LISTEN)",
    )
    .option("--json", "print JSON")
    .action(
      act(async (o: ServiceOpts & { mountpoint?: string; idleTimeout?: string; metricsListen?: string }) => {
        const idle = o.idleTimeout === undefined ? undefined : Number(o.idleTimeout);
        if (idle !== undefined && !(idle >= 0)) {
          throw new SpfsError(
            "UsageError",
            `--idle-timeout must be a number of seconds >= 0, not "${o.idleTimeout}"`,
            {
              hint: "use 0 to never idle-exit",
            },
          );
        }
        return (await import("./service.ts")).service(
          await cfg({ mountpoint: o.mountpoint, idleTimeoutS: idle, metricsListen: o.metricsListen }),
          o,
        );
      }),
    );

  program.command("status")
    .description("show the service: version, uptime, pid, mount point and registered runtimes")
    .option("--json", "print JSON")
    .option("--prometheus", "print metrics in the Prometheus text format")
    .action(
      act(async (o: { json?: boolean; prometheus?: boolean }) =>
        (await import("./status.ts")).status(await cfg(), o)
      ),
    );
}

/** Outcome of parsing and running one command line, for `main`'s error handling. */
interface Outcome {
  code: number;
  /** `--json` was given: errors go out as JSON. */
  json: boolean;
  /** The subcommand path, e.g. "runtime list", for bug reports. */
  command: string;
  cfg: (extra?: ConfigFlags) => Promise<Config>;
}

/** Fails on purpose when `SPFS_DEBUG_CRASH=cli`, to test bug reporting. */
async function crashIfForced(argv: string[], cfg: () => Promise<Config>): Promise<void> {
  if (forcedCrash("cli")) {
    throw new Error(
      `forced internal error (SPFS_DEBUG_CRASH=cli) in \`spfs ${argv.join(" ")}\` with storage ${
        (await cfg()).storageRoot
      }`,
    );
  }
}

/**
 * Builds the commander program for `argv`. `out` receives the exit code, `--json` and the command
 * name as the action runs; `run` is the `spfs run` action (tests pass one that records its operands).
 */
export async function buildProgram(
  argv: string[],
  out: Outcome,
  run: RunAction = runAction,
): Promise<Command> {
  const { Command } = await import("commander");
  const program = new Command("spfs")
    .description(
      "Run commands in content-addressed environments that appear at /spfs for one process tree only.",
    )
    .version(VERSION, "-V, --version")
    .option("--storage <dir>", "storage root (env SPFS_STORAGE_ROOT)")
    .option("--runtime-dir <dir>", "runtime dir for the socket, pid file and logs (env SPFS_RUNTIME_DIR)")
    .option(
      "-v, --verbose",
      "debug logging (env SPFS_LOG=debug|info|warning|error)",
      (_v, n: number) => n + 1,
      0,
    )
    .option("--log-format <format>", "console log format: text or json (env SPFS_LOG_FORMAT)")
    .enablePositionalOptions()
    .showHelpAfterError("(run `spfs --help` for usage)")
    .exitOverride();

  out.cfg = (extra: ConfigFlags = {}) => {
    const g = program.opts<{ storage?: string; runtimeDir?: string; verbose?: number; logFormat?: string }>();
    return loadConfig({
      storage: g.storage,
      runtimeDir: g.runtimeDir,
      verbose: g.verbose,
      logFormat: g.logFormat,
      ...extra,
    });
  };
  const act = <A extends unknown[]>(fn: (...a: A) => Promise<number | void>) => async (...a: A) => {
    const opts = a.at(-2) as { json?: boolean } | undefined;
    out.json = !!opts?.json;
    out.code = (await fn(...a)) ?? 0;
  };
  program.hook("preAction", async (_program, action) => {
    const names: string[] = [];
    for (let c: Command | null = action; c?.parent; c = c.parent) names.unshift(c.name());
    out.command = names.join(" ");
    await crashIfForced(argv, out.cfg);
  });
  const cli: Cli = { program, cfg: out.cfg, act, runAction: run };
  storageCommands(cli);
  runCommands(cli);
  remoteCommands(cli);
  runtimeCommands(cli);
  agentCommands(cli);
  ramdiskCommands(cli);
  serviceCommands(cli);
  return program;
}

/** Runs the CLI and resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const out: Outcome = { code: 0, json: false, command: "spfs", cfg: (extra = {}) => loadConfig(extra) };
  try {
    const quick = parseQuickRun(argv);
    if (quick) {
      out.command = "run";
      await crashIfForced(argv, out.cfg);
      return await runAction(out.cfg, quick.spec, quick.command, quick.o);
    }
    await (await buildProgram(argv, out)).parseAsync(argv, { from: "user" });
    return out.code;
  } catch (e) {
    // commander's own exits (help, version, usage) carry its `code`; it has printed already
    const cmdCode = (e as { code?: unknown })?.code;
    if (typeof cmdCode === "string" && cmdCode.startsWith("commander.")) {
      return ["commander.helpDisplayed", "commander.version", "commander.help"].includes(cmdCode)
        ? 0
        : ExitCode.usage;
    }
    const rc = reportError(e, out.json);
    let dsn: string | undefined;
    try {
      dsn = (await out.cfg()).sentryDsn;
    } catch { /* a bad config was the error itself */ }
    await reportBug(e, { component: "cli", command: out.command }, dsn);
    return rc;
  }
}
