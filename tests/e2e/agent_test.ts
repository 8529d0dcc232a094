/**
 * `spfs launchagent`: the launchd plist and the systemd unit, and the exact launchctl/systemctl argv
 * of install, uninstall and status, with recorded outputs (failure paths included).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "plist";
import { XMLValidator } from "fast-xml-parser";
import {
  agentSpec,
  agentStatus,
  installAgent,
  launchdBackend,
  systemdBackend,
  systemdQuote,
  uninstallAgent,
} from "../../core/client/agent.ts";
import { loadConfig } from "../../core/config.ts";
import { processRunner } from "../../core/runner.ts";
import { rejectsWith, res, withRecordingRunner } from "../support/recording_runner.ts";
import { Sandbox } from "../support/sandbox.ts";

const uid = Deno.uid() ?? 0;
const withHome = withRecordingRunner;
const rejects = (p: Promise<unknown>, message: RegExp) => rejectsWith(p, "ServiceManagerFailed", message);

const CFG = await loadConfig({
  storage: "/data/spfs store",
  runtimeDir: "/run/user/501/spfs",
  mountpoint: "/spfs",
});
const cfg = () => CFG;

const LAUNCHCTL_PRINT_RUNNING = `gui/501/dev.spfs.service = {
\tactive count = 1
\tpath = /Users/me/Library/LaunchAgents/dev.spfs.service.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /usr/local/bin/spfs
\targuments = {
\t\t/usr/local/bin/spfs
\t\tservice
\t}

\tpid = 4242
\timmediate reason = speculative
\tlast exit code = (never exited)
}
`;
const LAUNCHCTL_PRINT_STOPPED = LAUNCHCTL_PRINT_RUNNING.replace("state = running", "state = not running")
  .replace("\tpid = 4242\n", "").replace("(never exited)", "1");

Deno.test("launchd plist: valid XML plist with the Apple DOCTYPE, every key the job needs", async () => {
  await withHome(() => res(0), (_rec, home) => {
    const spec = agentSpec(cfg(), { backend: launchdBackend, home });
    const xml = launchdBackend.render(spec);
    assert.equal(XMLValidator.validate(xml), true, "well-formed XML");
    assert.match(
      xml,
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1.0\/\/EN"/,
    );
    const p = parse(xml) as Record<string, any>;
    assert.equal(p.Label, "dev.spfs.service");
    assert.ok(p.ProgramArguments[0].startsWith("/"), "absolute binary path");
    assert.deepEqual(p.ProgramArguments.slice(-4), ["service", "--foreground", "--idle-timeout", "0"]);
    assert.equal(p.RunAtLoad, true);
    assert.deepEqual(p.KeepAlive, { SuccessfulExit: false });
    assert.equal(typeof p.ThrottleInterval, "number");
    assert.equal(p.StandardOutPath, `${home}/Library/Logs/spfs/service.out.log`);
    assert.equal(p.StandardErrorPath, `${home}/Library/Logs/spfs/service.err.log`);
    assert.equal(
      p.EnvironmentVariables.SPFS_SERVICE_IDLE_TIMEOUT,
      "0",
      "the managed service never idle-exits",
    );
    assert.equal(p.EnvironmentVariables.SPFS_STORAGE_ROOT, "/data/spfs store");
    assert.equal(spec.file, `${home}/Library/LaunchAgents/dev.spfs.service.plist`);
  });
});

Deno.test("launchd install/uninstall argv: bootout (not loaded is fine), enable, bootstrap gui/UID; bootout", async () => {
  await withHome((argv) => {
    if (argv[1] === "bootout") {
      return res(113, "", `Could not find service "dev.spfs.service" in domain for user gui: ${uid}\n`);
    }
    return res(0);
  }, async (rec, home) => {
    const spec = agentSpec(cfg(), { backend: launchdBackend, home });
    await installAgent(spec, launchdBackend);
    assert.deepEqual(rec.calls, [
      ["launchctl", "bootout", `gui/${uid}/dev.spfs.service`],
      ["launchctl", "enable", `gui/${uid}/dev.spfs.service`],
      ["launchctl", "bootstrap", `gui/${uid}`, spec.file],
    ]);
    assert.equal(Deno.readTextFileSync(spec.file), launchdBackend.render(spec));
    rec.calls.length = 0;
    assert.equal(await uninstallAgent(spec, launchdBackend), true);
    assert.deepEqual(rec.calls, [["launchctl", "bootout", `gui/${uid}/dev.spfs.service`]]);
    assert.throws(() => Deno.statSync(spec.file), "the plist is gone");
  });
});

Deno.test("launchd failures: bootstrap I/O error names plutil and launchctl print; status of a job not loaded", async () => {
  await withHome((argv) => {
    if (argv[1] === "bootstrap") return res(5, "", "Bootstrap failed: 5: Input/output error\n");
    if (argv[1] === "print") {
      return res(113, "", `Could not find service "dev.spfs.service" in domain for user gui: ${uid}\n`);
    }
    return res(0);
  }, async (rec, home) => {
    const spec = agentSpec(cfg(), { backend: launchdBackend, home });
    const e = await rejects(
      installAgent(spec, launchdBackend),
      /`launchctl bootstrap gui\/\d+ .*\.plist` failed \(exit 5\): Bootstrap failed: 5: Input\/output error/,
    );
    assert.match(
      e.hint!,
      /plutil -lint .*dev\.spfs\.service\.plist.*launchctl print gui\/\d+\/dev\.spfs\.service/,
    );
    assert.equal(e.exitCode, 1);
    rec.calls.length = 0;
    const s = await agentStatus(spec, launchdBackend);
    assert.deepEqual(rec.calls, [["launchctl", "print", `gui/${uid}/dev.spfs.service`]]);
    assert.deepEqual({ ...s, file: "" }, {
      manager: "launchd",
      file: "",
      installed: true,
      loaded: false,
      running: false,
    });
  });
});

Deno.test("launchd status parses launchctl print: running with pid, stopped with last exit code", async () => {
  let out = LAUNCHCTL_PRINT_RUNNING;
  await withHome(() => res(0, out), async (_rec, home) => {
    const spec = agentSpec(cfg(), { backend: launchdBackend, home });
    const s = await agentStatus(spec, launchdBackend);
    assert.equal(s.installed, false);
    assert.deepEqual([s.loaded, s.running, s.state, s.pid, s.last_exit], [
      true,
      true,
      "running",
      4242,
      undefined,
    ]);
    out = LAUNCHCTL_PRINT_STOPPED;
    const t = await agentStatus(spec, launchdBackend);
    assert.deepEqual([t.loaded, t.running, t.state, t.pid, t.last_exit], [
      true,
      false,
      "not running",
      undefined,
      1,
    ]);
  });
});

Deno.test("systemd unit: quoting of spaces, quotes, % and $; the unit passes systemd-analyze verify", async () => {
  assert.equal(systemdQuote("plain"), "plain");
  assert.equal(systemdQuote("a b"), '"a b"');
  assert.equal(systemdQuote('say "hi"\\'), '"say \\"hi\\"\\\\"');
  assert.equal(systemdQuote("100%"), "100%%");
  assert.equal(systemdQuote("$HOME", true), "$$HOME");
  await withHome(() => res(0), async (_rec, home) => {
    const spec = agentSpec(
      { ...cfg(), storageRoot: `${home}/store 100% "x"` },
      { backend: systemdBackend, home },
    );
    assert.equal(spec.file, `${home}/.config/systemd/user/spfs.service`);
    const unit = systemdBackend.render(spec);
    assert.match(unit, /\nExecStart=\/\S+ .*service --foreground --idle-timeout 0\n/);
    assert.match(unit, /\nEnvironment=SPFS_SERVICE_IDLE_TIMEOUT=0\n/);
    assert.match(unit, /\nEnvironment="SPFS_STORAGE_ROOT=.*\/store 100%% \\"x\\""\n/);
    assert.match(unit, /\nRestart=on-failure\n[\s\S]*\[Install\]\nWantedBy=default.target\n/);
    const file = join(home, "spfs.service");
    Deno.writeTextFileSync(file, unit);
    const verify = await processRunner.run(["systemd-analyze", "verify", file]);
    if (verify.code === 127) {
      assert.notEqual(
        Deno.env.get("SPFS_REQUIRE_FUSE"),
        "1",
        "CI must have systemd-analyze (setup.ts installs it)",
      );
      console.log(
        "  SKIP systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)",
      );
      return;
    }
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", "systemd reports no unknown key or bad value");
    // and it does catch a broken unit
    Deno.writeTextFileSync(file, unit.replace("Restart=on-failure", "Restrt=on-failure"));
    assert.match(
      (await processRunner.run(["systemd-analyze", "verify", file])).stderr,
      /Unknown key 'Restrt'/,
    );
  });
});

Deno.test("systemd install/uninstall/status argv, and the no-user-bus failure", async () => {
  let show = res(
    0,
    "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=1234\nExecMainStatus=0\n",
  );
  await withHome((argv) => argv[2] === "show" ? show : res(0), async (rec, home) => {
    const spec = agentSpec(cfg(), { backend: systemdBackend, home });
    await installAgent(spec, systemdBackend);
    assert.deepEqual(rec.calls, [
      ["systemctl", "--user", "daemon-reload"],
      ["systemctl", "--user", "enable", "--now", "spfs.service"],
    ]);
    rec.calls.length = 0;
    const s = await agentStatus(spec, systemdBackend);
    assert.deepEqual(rec.calls, [[
      "systemctl",
      "--user",
      "show",
      "spfs.service",
      "--property=LoadState,ActiveState,SubState,MainPID,ExecMainStatus",
    ]]);
    assert.deepEqual([s.installed, s.loaded, s.running, s.state, s.pid, s.last_exit], [
      true,
      true,
      true,
      "active (running)",
      1234,
      0,
    ]);
    show = res(0, "LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainStatus=0\n");
    const n = await agentStatus(spec, systemdBackend);
    assert.deepEqual([n.loaded, n.running, n.pid], [false, false, undefined]);
    rec.calls.length = 0;
    assert.equal(await uninstallAgent(spec, systemdBackend), true);
    assert.deepEqual(rec.calls, [
      ["systemctl", "--user", "disable", "--now", "spfs.service"],
      ["systemctl", "--user", "daemon-reload"],
    ]);
    assert.throws(() => Deno.statSync(spec.file));
  });
  await withHome(
    () => res(1, "", "Failed to connect to bus: No medium found\n"),
    async (_rec, home) => {
      const e = await rejects(
        installAgent(agentSpec(cfg(), { backend: systemdBackend, home }), systemdBackend),
        /`systemctl --user daemon-reload` failed \(exit 1\): Failed to connect to bus: No medium found/,
      );
      assert.match(e.hint!, /loginctl enable-linger/);
    },
  );
});

Deno.test("spfs launchagent install --dry-run prints the file and commands and writes nothing", async () => {
  const sb = Sandbox.create();
  try {
    const home = join(sb.root, "home");
    Deno.mkdirSync(home);
    const r = await sb.spfs(["launchagent", "install", "--dry-run", "--json"], {
      HOME: home,
      XDG_CONFIG_HOME: "",
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.file, `${home}/.config/systemd/user/spfs.service`);
    assert.match(out.content, /ExecStart=.*--idle-timeout 0/);
    assert.deepEqual(out.commands, [
      ["systemctl", "--user", "daemon-reload"],
      ["systemctl", "--user", "enable", "--now", "spfs.service"],
    ]);
    assert.throws(() => Deno.statSync(join(home, ".config")), "nothing written");
    const st = await sb.spfs(["launchagent", "status"], {
      HOME: home,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
    });
    assert.equal(st.code, 3, "status of a job that is not installed exits 3");
    assert.match(st.stdout, /not installed/);
  } finally {
    await sb.dispose();
  }
});
