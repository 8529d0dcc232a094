/** Runtime look-ups a CLI command makes through the service. */
import { ensureService } from "./rpc.ts";
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import type { RuntimeInfo } from "../../proto/protocol.ts";

/** Every running runtime and every durable one, from the service (started if needed). */
export async function fetchAll(cfg: Config): Promise<RuntimeInfo[]> {
  const c = await ensureService(cfg);
  const r = await c.call<{ runtimes: RuntimeInfo[] }>("runtimes");
  c.close();
  return r.runtimes;
}

/**
 * The running or durable runtime with id or name `ref`.
 * @throws SpfsError RuntimeNotFound.
 */
export async function findRuntime(cfg: Config, ref: string): Promise<RuntimeInfo> {
  const r = (await fetchAll(cfg)).find((x) => x.id === ref || x.name === ref);
  if (!r) {
    throw new SpfsError("RuntimeNotFound", `no runtime with id or name "${ref}"`, {
      hint: "list them with `spfs runtime list`",
    });
  }
  return r;
}

/** The runtime a command refers to: `--runtime`, else the one this process runs in ($SPFS_RUNTIME). */
export function currentRuntime(flag: string | undefined, what: string): string {
  const ref = flag ?? Deno.env.get("SPFS_RUNTIME");
  if (!ref) {
    throw new SpfsError("UsageError", `${what}: not inside a runtime and no --runtime given`, {
      hint: "run it inside `spfs run --edit …`, or pass --runtime ID|NAME (see `spfs runtime list`)",
    });
  }
  return ref;
}
