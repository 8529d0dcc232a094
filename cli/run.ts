/**
 * `spfs run SPEC -- CMD…` and `spfs shell SPEC`: register this process as the root of SPEC's
 * environment, then become CMD (execvp): CMD keeps this pid, so its signals, exit status and
 * process tree are its own, no idle spfs process waits beside it, and the service ends the runtime
 * when that pid exits.
 */
import { ensureServiceThen } from "../core/client/rpc.ts";
import type { Config } from "../core/config.ts";
import { ExitCode, SpfsError } from "../core/errors.ts";
import { E, errnoName } from "../ffi/errno.ts";
import { execReplace } from "../core/runner.ts";
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
 * Runs `command` as the root of a runtime of `spec` (or of the durable runtime `o.rerun`) by
 * replacing this process with it. Returns only when it could not be started: with 126 (cannot
 * execute) after unregistering.
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
  Deno.env.set("SPFS_RUNTIME", rt.id);
  Deno.env.set("SPFS_RUNTIME_SPEC", spec ?? o.rerun!);
  // the service's exit watch ends the runtime when this pid (now CMD) exits; the socket is
  // close-on-exec, so the service sees this connection close as CMD starts
  const err = execReplace(command);
  await client.call("unmount", { pid: Deno.pid }).catch(() => {});
  client.close();
  if (err === E.ENOENT) {
    throw new SpfsError("CommandNotFound", `command not found: ${command[0]}`, {
      hint: "check the name and PATH",
    });
  }
  const why = err === E.EACCES ? "permission denied" : errnoName(err);
  console.error(`spfs: error: cannot execute ${command[0]}: ${why}`);
  return ExitCode.cannotExecute;
}
