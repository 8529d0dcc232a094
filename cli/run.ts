/**
 * `spfs run SPEC -- CMD…` and `spfs shell SPEC`: register this process as the root of SPEC's
 * environment, run CMD with inherited stdio, forward SIGINT/SIGTERM, unregister, and exit with
 * CMD's exit code (128+N when a signal N ended it).
 */
import { ensureServiceThen } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import { ExitCode, SpfsError } from "../core/errors.ts";
import { exitCode } from "../core/runner.ts";
import type { MountResult } from "../proto/protocol.ts";

/** Options of `spfs run` / `spfs shell` that shape the runtime. */
export interface RunOpts {
  edit?: boolean;
  keepRuntime?: boolean;
  name?: string;
  rerun?: string;
  /** `ramdisk:NAME` or an absolute directory for scratch; implies edit. */
  scratch?: string;
  /** commander's `--no-pull`: false turns off fetching missing REFs from origin. */
  pull?: boolean;
}

/**
 * Deno 2.9.6 loads its web-streams and subprocess code on a process's first spawn, about 4 ms
 * (measured here). Doing it while the service registers the runtime takes it off the path
 * between `spfs run` starting and CMD starting.
 */
function warmSpawn(): void {
  new ReadableStream();
  new Deno.Command("true");
}

/**
 * Runs `command` as the root of a runtime of `spec` (or of the durable runtime `o.rerun`).
 * Resolves with the command's exit code.
 * @throws SpfsError for a bad spec, an unknown runtime, or an unreachable service.
 */
export async function run(
  cfg: Config,
  spec: string | undefined,
  command: string[],
  o: RunOpts = {},
): Promise<number> {
  if (command[0] === "--") command = command.slice(1);
  if (command.length === 0) {
    throw new SpfsError("UsageError", "no command given", { hint: "spfs run SPEC -- CMD [ARGS…]" });
  }
  if (o.rerun && (o.edit || o.keepRuntime || o.name || o.scratch)) {
    throw new SpfsError(
      "UsageError",
      "--rerun re-enters an existing runtime; it takes no --edit, --keep-runtime, --name or --scratch",
      {
        hint: `spfs run --rerun ${o.rerun} -- CMD`,
      },
    );
  }
  const params = {
    pid: Deno.pid,
    ...(o.rerun ? { rerun: o.rerun } : { spec }),
    ...(o.edit ? { edit: true } : {}),
    ...(o.keepRuntime ? { keep: true } : {}),
    ...(o.name ? { name: o.name } : {}),
    ...(o.scratch ? { scratch: o.scratch } : {}),
  };
  const { client, result } = await ensureServiceThen<MountResult>(cfg, "mount", params);
  warmSpawn();
  let rt: MountResult;
  try {
    rt = await result;
  } catch (e) {
    // only a REF unknown here costs the pull machinery: the common path stays one RPC
    if (!(e instanceof SpfsError && e.code === "UnknownRef") || !spec || o.pull === false) throw e;
    if (!cfg.remotes.origin) throw e;
    const { pullMissing } = await import("../core/remote/sync.ts");
    const { openRepo } = await import("../core/store/repo.ts");
    console.error(
      `spfs: ${spec} is not (all) in this store; pulling from origin (${cfg.remotes.origin.address})…`,
    );
    const pulled = await pullMissing(cfg, openRepo(cfg), spec).catch((pe) => {
      client.close();
      throw pe;
    });
    if (!pulled.length) throw e;
    rt = await client.call<MountResult>("mount", params);
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      env: { SPFS_RUNTIME: rt.id, SPFS_RUNTIME_SPEC: spec ?? o.rerun! },
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
  return exitCode(status);
}
