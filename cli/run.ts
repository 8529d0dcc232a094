/**
 * `spfs run SPEC -- CMD…` and `spfs shell SPEC`: register this process as the root of SPEC's
 * environment, run CMD with inherited stdio, forward SIGINT/SIGTERM, unregister, and exit with
 * CMD's exit code (128+N when a signal N ended it).
 */
import { ensureService } from "../core/client.ts";
import type { Config } from "../core/config.ts";
import { ExitCode, SpfsError } from "../core/errors.ts";
import type { MountResult } from "../proto/protocol.ts";

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
};

export async function run(cfg: Config, spec: string, command: string[]): Promise<number> {
  if (command[0] === "--") command = command.slice(1);
  if (command.length === 0) {
    throw new SpfsError("UsageError", "no command given", { hint: "spfs run SPEC -- CMD [ARGS…]" });
  }
  const client = await ensureService(cfg);
  await client.call<MountResult>("mount", { pid: Deno.pid, spec });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      env: { SPFS_RUNTIME_SPEC: spec },
    }).spawn();
  } catch (e) {
    await client.call("unmount", { pid: Deno.pid }).catch(() => {});
    client.close();
    if (e instanceof Deno.errors.NotFound) {
      throw new SpfsError("CommandNotFound", `command not found: ${command[0]}`, {
        hint: "check the name and PATH",
      });
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      console.error(`spfs: error: cannot execute ${command[0]}: permission denied`);
      return ExitCode.cannotExecute;
    }
    throw e;
  }
  const forward = (sig: Deno.Signal) => () => {
    try {
      child.kill(sig);
    } catch { /* already exited */ }
  };
  const listeners = (["SIGINT", "SIGTERM"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, fn] of listeners) Deno.addSignalListener(s, fn);
  const status = await child.status;
  for (const [s, fn] of listeners) Deno.removeSignalListener(s, fn);
  await client.call("unmount", { pid: Deno.pid }).catch(() => {});
  client.close();
  if (status.signal) return 128 + (SIGNALS[status.signal] ?? 0);
  return status.code;
}
