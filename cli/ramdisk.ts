/** `spfs ramdisk create|destroy|list`: RAM disks for scratch dirs. */
import type { Config } from "../core/config.ts";
import { createRamdisk, destroyRamdisk, listRamdisks, parseSize } from "../core/runtime/ramdisk.ts";
import { formatBytes, printJson, table } from "./output.ts";

export async function create(
  cfg: Config,
  o: { size: string; name?: string; json?: boolean },
): Promise<number> {
  const rd = await createRamdisk(cfg, o.name ?? "spfs", parseSize(o.size));
  if (o.json) printJson(rd);
  else {
    console.log(`created RAM disk ${rd.name} (${formatBytes(rd.size_bytes)}) at ${rd.mountpoint}`);
    console.log(`use it: spfs run --scratch ramdisk:${rd.name} SPEC -- CMD`);
  }
  return 0;
}

export async function destroy(
  cfg: Config,
  name: string,
  o: { force?: boolean; json?: boolean },
): Promise<number> {
  const rd = await destroyRamdisk(cfg, name, o.force);
  if (o.json) printJson({ destroyed: rd.name, mountpoint: rd.mountpoint });
  else console.log(`destroyed RAM disk ${rd.name} (${rd.mountpoint})`);
  return 0;
}

export function list(cfg: Config, o: { json?: boolean }): number {
  const all = listRamdisks(cfg);
  if (o.json) printJson(all);
  else if (!all.length) console.log("no RAM disks (create one: spfs ramdisk create --size 2G --name NAME)");
  else {
    console.log(table([
      ["NAME", "SIZE", "STATE", "DEVICE", "MOUNT POINT"],
      ...all.map((
        r,
      ) => [r.name, formatBytes(r.size_bytes), r.mounted ? "mounted" : "gone", r.device, r.mountpoint]),
    ]));
  }
  return 0;
}
