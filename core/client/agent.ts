/**
 * Runs the service under the OS service manager: a launchd LaunchAgent on macOS (launchd.plist(5),
 * launchctl(1) `bootstrap`/`bootout`/`print`), a systemd `--user` unit on Linux (systemd.service(5),
 * systemctl(1)). The managed service never idle-exits (`--idle-timeout 0`). Every program runs
 * through the command runner.
 */
import { dirname } from "node:path";
import { build } from "plist";
import { exists } from "../../ffi/fsops.ts";
import { platform } from "../platform/facts.ts";
import { selfArgv } from "./rpc.ts";
import { type Config, configEnv } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { lastLine, runner, type RunResult } from "../runner.ts";

/** What to install: the file, its content, and the identity of the job. */
export interface AgentSpec {
  /** launchd Label, or the systemd unit name without `.service`. */
  label: string;
  /** The file to write (plist or unit). */
  file: string;
  /** Absolute argv of the service. */
  argv: string[];
  /** Environment the service runs with. */
  env: Record<string, string>;
  uid: number;
  /** Where launchd writes the service's stdout/stderr (unused by systemd, which has the journal). */
  logDir: string;
}

/** What `status` found. `state` is the manager's own word (launchd "running", systemd "active"). */
export interface AgentStatus {
  manager: "launchd" | "systemd";
  file: string;
  installed: boolean;
  loaded: boolean;
  running: boolean;
  state?: string;
  pid?: number;
  last_exit?: number;
}

/** One service manager. */
export interface AgentBackend {
  manager: "launchd" | "systemd";
  /** Default file path for `label` under `home` (with `env` for XDG_CONFIG_HOME). */
  fileFor(label: string, home: string, env: Record<string, string | undefined>): string;
  render(spec: AgentSpec): string;
  installCommands(spec: AgentSpec): string[][];
  uninstallCommands(spec: AgentSpec): string[][];
  statusCommand(spec: AgentSpec): string[];
  /** Runs `argv` for install/uninstall and maps a failure to a typed error; `ok` tolerates some codes. */
  check(argv: string[], r: RunResult, spec: AgentSpec): void;
  parseStatus(r: RunResult, spec: AgentSpec): Omit<AgentStatus, "manager" | "file" | "installed">;
}

/** macOS LaunchAgent in the `gui/<uid>` domain. */
export const launchdBackend: AgentBackend = {
  manager: "launchd",
  fileFor: (label, home) => `${home}/Library/LaunchAgents/${label}.plist`,
  render(spec) {
    const plist = {
      Label: spec.label,
      ProgramArguments: spec.argv,
      RunAtLoad: true,
      // restart after a crash, not after a clean stop (`spfs service --stop`)
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 10,
      ProcessType: "Interactive",
      StandardOutPath: `${spec.logDir}/service.out.log`,
      StandardErrorPath: `${spec.logDir}/service.err.log`,
      EnvironmentVariables: spec.env,
    };
    return build(plist) + "\n";
  },
  installCommands: (s) => [
    ["launchctl", "bootout", `gui/${s.uid}/${s.label}`],
    ["launchctl", "enable", `gui/${s.uid}/${s.label}`],
    ["launchctl", "bootstrap", `gui/${s.uid}`, s.file],
  ],
  uninstallCommands: (s) => [["launchctl", "bootout", `gui/${s.uid}/${s.label}`]],
  statusCommand: (s) => ["launchctl", "print", `gui/${s.uid}/${s.label}`],
  check(argv, r, s) {
    if (r.code === 0) return;
    // bootout of a job that is not loaded: 3 "No such process" / 113 "Could not find service"
    if (
      argv[1] === "bootout" &&
      (r.code === 3 || r.code === 113 || /No such process|Could not find/i.test(r.stderr))
    ) {
      return;
    }
    throw new SpfsError(
      "ServiceManagerFailed",
      `\`${argv.join(" ")}\` failed (exit ${r.code}): ${lastLine(r)}`,
      {
        hint:
          `check the file with \`plutil -lint ${s.file}\` and the job with \`launchctl print gui/${s.uid}/${s.label}\`; logs are in ${s.logDir}`,
      },
    );
  },
  parseStatus(r) {
    if (r.code !== 0) return { loaded: false, running: false };
    const field = (k: string) => new RegExp(`^\\s*${k} = (.+)$`, "m").exec(r.stdout)?.[1].trim();
    const state = field("state");
    const pid = field("pid");
    const exit = field("last exit code");
    return {
      loaded: true,
      running: state === "running",
      state,
      pid: pid ? Number(pid) : undefined,
      last_exit: exit && /^-?\d+/.test(exit) ? parseInt(exit) : undefined,
    };
  },
};

/** Quotes one word for a systemd unit line (systemd.syntax(7)); `%` is a specifier, `$` expands in Exec lines. */
export function systemdQuote(s: string, exec = false): string {
  let v = s.replaceAll("%", "%%");
  if (exec) v = v.replaceAll("$", "$$$$");
  if (!/[\s"'\\;]/.test(v) && v !== "") return v;
  return `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** Linux systemd user unit. */
export const systemdBackend: AgentBackend = {
  manager: "systemd",
  fileFor: (label, home, env) => `${env.XDG_CONFIG_HOME || `${home}/.config`}/systemd/user/${label}.service`,
  render(spec) {
    return [
      "# Written by `spfs launchagent install`; remove it with `spfs launchagent uninstall`.",
      "[Unit]",
      "Description=spfs service: per-process environments on one FUSE mount",
      "",
      "[Service]",
      "Type=simple",
      `ExecStart=${spec.argv.map((a) => systemdQuote(a, true)).join(" ")}`,
      ...Object.entries(spec.env).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`),
      "Restart=on-failure",
      "RestartSec=10",
      // graceful stop unmounts (lazily when busy) within the service's own 5 s worker timeout
      "TimeoutStopSec=30",
      "",
      "[Install]",
      "WantedBy=default.target",
      "",
    ].join("\n");
  },
  installCommands: (s) => [
    ["systemctl", "--user", "daemon-reload"],
    ["systemctl", "--user", "enable", "--now", `${s.label}.service`],
  ],
  uninstallCommands: (s) => [
    ["systemctl", "--user", "disable", "--now", `${s.label}.service`],
  ],
  statusCommand: (s) => [
    "systemctl",
    "--user",
    "show",
    `${s.label}.service`,
    "--property=LoadState,ActiveState,SubState,MainPID,ExecMainStatus",
  ],
  check(argv, r, s) {
    if (r.code === 0) return;
    if (argv[3] === "disable" && /not loaded|does not exist|No such file/i.test(r.stderr)) return;
    const noBus = /Failed to connect to bus|DBUS_SESSION_BUS_ADDRESS|No medium found/i.test(r.stderr);
    throw new SpfsError(
      "ServiceManagerFailed",
      `\`${argv.join(" ")}\` failed (exit ${r.code}): ${lastLine(r)}`,
      {
        hint: noBus
          ? "there is no systemd user session here: log in normally (not via su/sudo), or run `sudo loginctl enable-linger $USER` and retry"
          : `see \`journalctl --user -u ${s.label}.service\``,
      },
    );
  },
  parseStatus(r) {
    const kv = Object.fromEntries(
      r.stdout.split("\n").filter((l) => l.includes("=")).map((
        l,
      ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const loaded = r.code === 0 && kv.LoadState === "loaded";
    const pid = Number(kv.MainPID);
    return {
      loaded,
      running: loaded && kv.ActiveState === "active",
      state: kv.ActiveState ? `${kv.ActiveState} (${kv.SubState})` : undefined,
      pid: pid > 0 ? pid : undefined,
      last_exit: kv.ExecMainStatus !== undefined && kv.ExecMainStatus !== ""
        ? Number(kv.ExecMainStatus)
        : undefined,
    };
  },
};

/** The service manager of this platform. */
export const agentBackend: AgentBackend = platform.serviceManager === "launchd"
  ? launchdBackend
  : systemdBackend;

/** Default job label: reverse-DNS for launchd, a plain unit name for systemd. */
export const DEFAULT_LABEL = { launchd: "dev.spfs.service", systemd: "spfs" } as const;

/** The spec for `cfg`: the service in the foreground, never idle-exiting, with cfg's paths baked in. */
export function agentSpec(
  cfg: Config,
  opts: { label?: string; backend?: AgentBackend; home?: string } = {},
): AgentSpec {
  const b = opts.backend ?? agentBackend;
  const home = opts.home ?? Deno.env.get("HOME") ?? "/";
  const label = opts.label ?? DEFAULT_LABEL[b.manager];
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/.test(label)) {
    throw new SpfsError("UsageError", `invalid label "${label}"`, {
      hint: `e.g. ${DEFAULT_LABEL[b.manager]}`,
    });
  }
  const logDir = b.manager === "launchd" ? `${home}/Library/Logs/spfs` : cfg.runtimeDir;
  return {
    label,
    file: b.fileFor(label, home, Deno.env.toObject()),
    argv: selfArgv(["service", "--foreground", "--idle-timeout", "0"]),
    env: { ...configEnv(cfg), SPFS_SERVICE_IDLE_TIMEOUT: "0" },
    uid: Deno.uid() ?? 0,
    logDir,
  };
}

/** Writes the file and loads the job. Idempotent: a loaded job is unloaded first. */
export async function installAgent(spec: AgentSpec, backend = agentBackend): Promise<void> {
  Deno.mkdirSync(dirname(spec.file), { recursive: true });
  Deno.mkdirSync(spec.logDir, { recursive: true });
  Deno.writeTextFileSync(spec.file, backend.render(spec));
  for (const argv of backend.installCommands(spec)) {
    const r = await runner().run(argv);
    // the first launchd step unloads an older copy; "not loaded" is fine there
    backend.check(argv, r, spec);
  }
}

/** Unloads the job and deletes its file. Succeeds when it was not installed. */
export async function uninstallAgent(spec: AgentSpec, backend = agentBackend): Promise<boolean> {
  const installed = exists(spec.file);
  for (const argv of backend.uninstallCommands(spec)) backend.check(argv, await runner().run(argv), spec);
  if (installed) Deno.removeSync(spec.file);
  if (backend.manager === "systemd") {
    const reload = ["systemctl", "--user", "daemon-reload"];
    backend.check(reload, await runner().run(reload), spec);
  }
  return installed;
}

/** What the service manager says about the job. */
export async function agentStatus(spec: AgentSpec, backend = agentBackend): Promise<AgentStatus> {
  const r = await runner().run(backend.statusCommand(spec));
  return {
    manager: backend.manager,
    file: spec.file,
    installed: exists(spec.file),
    ...backend.parseStatus(r, spec),
  };
}
