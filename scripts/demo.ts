/**
 * `deno task demo`: the main job on real input. Commits npm's own package tree as a layer, runs
 * npm from it at the mount point, diffs the tree against its source, and shows that a process
 * outside the run sees an empty mount point. Uses /spfs when it can (root), else a temp dir.
 */
import { runner } from "../core/runner.ts";
import { mountsAt } from "../ffi/sys.ts";
import { npmPackageDir, Sandbox, TREE_LISTING } from "../tests/support/sandbox.ts";

const say = (s: string) => console.log(`\n\x1b[1m==> ${s}\x1b[0m`);
class DemoFailure extends Error {}
function fail(msg: string): never {
  console.error(`demo: FAILED: ${msg}`);
  throw new DemoFailure(msg);
}

let mountpoint: string | undefined = "/spfs";
try {
  Deno.mkdirSync("/spfs", { recursive: true });
  // not empty, or already a mount point (another user's service): leave it alone
  if (Deno.readDirSync("/spfs").next().done === false || mountsAt("/spfs").length) mountpoint = undefined;
} catch {
  mountpoint = undefined;
}
const sb = Sandbox.create({ mountpoint, prefix: "spfs-demo-" });
const mp = sb.mountpoint;
let code = 0;
try {
  const src = await npmPackageDir();
  say(`commit npm's package tree (${src}) as the layer npm/demo`);
  const c = JSON.parse(await sb.ok(["commit", src, "-t", "npm/demo", "--json"]));
  console.log(
    `layer ${c.digest}\n${c.files} files, ${c.symlinks} symlinks, ${c.dirs} dirs, ${c.bytes} bytes`,
  );

  say(`spfs run npm/demo -- node ${mp}/bin/npm-cli.js --version`);
  const inside = (await sb.ok(["run", "npm/demo", "--", "node", `${mp}/bin/npm-cli.js`, "--version"])).trim();
  const host = (await runner().run(["npm", "--version"])).stdout.trim();
  console.log(`through spfs: ${inside}\nmachine npm:  ${host}`);
  if (inside !== host) fail("versions differ");

  say(`spfs run npm/demo -- diff -r --no-dereference ${src} ${mp}`);
  const d = await sb.spfs(["run", "npm/demo", "--", "diff", "-r", "--no-dereference", src, mp]);
  if (d.code !== 0) fail(`diff found differences:\n${d.stdout.slice(0, 2000)}`);
  console.log("no differences (contents and symlink targets)");
  const a = await runner().run(["sh", "-c", `cd ${src} && ${TREE_LISTING}`]);
  const b = await sb.ok(["run", "npm/demo", "--", "sh", "-c", `cd ${mp} && ${TREE_LISTING}`]);
  if (a.stdout !== b) fail("types, modes or sizes differ");
  console.log(`types, modes, sizes and link targets of ${a.stdout.split("\n").length - 1} paths match`);

  say("meanwhile, a process outside the run looks at the mount point");
  const holder = sb.command(["run", "npm/demo", "--", "sh", "-c", `ls ${mp}/bin/npm-cli.js && sleep 30`])
    .spawn();
  const reader = holder.stdout.getReader();
  await reader.read(); // the run is up and sees the layer
  const outside = [...Deno.readDirSync(mp)].map((e) => e.name);
  console.log(
    `inside the run: ${mp}/bin/npm-cli.js exists; outside: ls -A ${mp} -> ${
      outside.length ? outside.join(" ") : "(empty)"
    }`,
  );
  holder.kill("SIGTERM");
  reader.releaseLock();
  await holder.status;
  await holder.stderr.cancel();
  await holder.stdout.cancel();
  if (outside.length) fail("the outside process saw entries");

  say("spfs status");
  console.log(await sb.ok(["status"]));
  say("demo passed");
} catch (e) {
  code = 1;
  if (!(e instanceof DemoFailure)) console.error(`demo: FAILED: ${e instanceof Error ? e.message : e}`);
} finally {
  await sb.dispose();
}
Deno.exit(code);
