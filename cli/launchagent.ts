/**
 * `spfs launchagent install|uninstall|status`: the service under launchd (macOS) or systemd --user
 * (Linux). `--dry-run` prints the file and the commands instead of running them.
 */
import { agentBackend, agentSpec, agentStatus, installAgent, uninstallAgent } from "../core/client/agent.ts";
import type { Config } from "../core/config.ts";
import { ExitCode } from "../core/errors.ts";
import { printJson } from "./output.ts";

type Opts = { label?: string; dryRun?: boolean; json?: boolean };

export async function install(cfg: Config, o: Opts): Promise<number> {
  const spec = agentSpec(cfg, { label: o.label });
  const commands = agentBackend.installCommands(spec);
  if (o.dryRun) {
    const content = agentBackend.render(spec);
    if (o.json) printJson({ file: spec.file, content, commands });
    else {
      console.log(`# would write ${spec.file}:\n${content}`);
      console.log(`# then run:\n${commands.map((c) => c.join(" ")).join("\n")}`);
    }
    return 0;
  }
  if (!Deno.build.standalone) {
    console.error(
      `spfs: warning: not a compiled binary; the job runs \`${
        spec.argv.slice(0, 2).join(" ")
      } …\` from source. Install the released binary for a stable path.`,
    );
  }
  await installAgent(spec);
  if (o.json) printJson({ installed: spec.file, manager: agentBackend.manager, label: spec.label });
  else {console.log(
      `installed ${spec.file}; ${agentBackend.manager} now runs the spfs service (never idle-exits)`,
    );}
  return 0;
}

export async function uninstall(cfg: Config, o: Opts): Promise<number> {
  const spec = agentSpec(cfg, { label: o.label });
  if (o.dryRun) {
    const commands = agentBackend.uninstallCommands(spec);
    if (o.json) printJson({ file: spec.file, commands });
    else {console.log(`# would run:\n${
        commands.map((c) => c.join(" ")).join("\n")
      }\n# and delete ${spec.file}`);}
    return 0;
  }
  const was = await uninstallAgent(spec);
  if (o.json) printJson({ uninstalled: was, file: spec.file });
  else {console.log(
      was ? `uninstalled ${spec.file}` : `nothing installed at ${spec.file}; the job is unloaded`,
    );}
  return 0;
}

/** Exit 0 running, 1 installed but not running, 3 not installed. */
export async function status(cfg: Config, o: Opts): Promise<number> {
  const s = await agentStatus(agentSpec(cfg, { label: o.label }));
  if (o.json) printJson(s);
  else {
    console.log(`${s.manager} job  ${s.installed ? s.file : "not installed"}`);
    console.log(`loaded       ${s.loaded ? "yes" : "no"}`);
    if (s.state) console.log(`state        ${s.state}${s.pid ? ` (pid ${s.pid})` : ""}`);
    if (s.last_exit !== undefined) console.log(`last exit    ${s.last_exit}`);
  }
  if (!s.installed && !s.loaded) return ExitCode.notFound;
  return s.running ? 0 : ExitCode.failure;
}
