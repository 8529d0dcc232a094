/**
 * Remote rows: push and pull of npm's tree and of a 1 GiB layer over loopback to a real registry
 * (docker-registry), side by side with `skopeo copy` of an OCI image holding the same bytes (one
 * uncompressed tar layer of the same tree), and a second push of an unchanged layer.
 */
import { join } from "node:path";
import { runner } from "../../core/runner.ts";
import { TestRegistry } from "../../tests/support/registry.ts";
import type { Sandbox } from "../../tests/support/sandbox.ts";
import { ROUNDS, row, sh, timeCmd } from "./common.ts";

const sha256 = async (path: string) => (await sh(`sha256sum ${path}`)).split(" ")[0];

/** An OCI image layout at `dir` whose one layer is an uncompressed tar of `tree`. */
async function ociLayout(dir: string, tree: string): Promise<void> {
  Deno.mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
  const tar = join(dir, "layer.tar");
  await sh(`tar -C ${tree} -cf ${tar} .`);
  const layer = await sha256(tar);
  const size = Deno.statSync(tar).size;
  Deno.renameSync(tar, join(dir, "blobs/sha256", layer));
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [`sha256:${layer}`] },
  }));
  const put = async (bytes: Uint8Array) => {
    const p = join(dir, "tmp.json");
    Deno.writeFileSync(p, bytes);
    const d = await sha256(p);
    Deno.renameSync(p, join(dir, "blobs/sha256", d));
    return { digest: `sha256:${d}`, size: bytes.length };
  };
  const cfg = await put(config);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${layer}`, size }],
  }));
  const m = await put(manifest);
  Deno.writeTextFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  Deno.writeTextFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...m,
        annotations: { "org.opencontainers.image.ref.name": "img" },
      }],
    }),
  );
}

/**
 * skopeo remembers where it saw each blob and mounts it from there instead of uploading; clear
 * that cache so each baseline push sends its bytes like spfs's does.
 */
const forgetBlobs = () =>
  sh(
    "rm -f /var/lib/containers/cache/blob-info-cache-v1.* ~/.local/share/containers/cache/blob-info-cache-v1.*",
  );

const skopeo = (src: string, dst: string) =>
  new Deno.Command("skopeo", {
    args: ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", src, dst],
    stdout: "null",
    stderr: "piped",
  });

/** Push, pull and re-push rows for one tree already committed in `sb` as `tag`. */
async function treeRows(sb: Sandbox, reg: TestRegistry, what: string, tag: string, tree: string) {
  const layout = join(sb.root, `oci-${tag.replace("/", "-")}`);
  await ociLayout(layout, tree);
  const pushB: number[] = [], pushS: number[] = [], pullB: number[] = [], pullS: number[] = [];
  const againB: number[] = [], againS: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const repo = `bench/${tag.replace("/", "-")}-${r}`;
    await forgetBlobs();
    pushB.push(await timeCmd(skopeo(`oci:${layout}:img`, `docker://${reg.host}/${repo}-skopeo:img`)));
    await sb.ok(["remote", "add", "origin", reg.address(`${repo}-spfs`)]);
    pushS.push(await timeCmd(sb.command(["push", tag])));
    againB.push(await timeCmd(skopeo(`oci:${layout}:img`, `docker://${reg.host}/${repo}-skopeo:img`)));
    againS.push(await timeCmd(sb.command(["push", tag])));
    const dst = join(sb.root, `pulled-${r}`);
    pullB.push(await timeCmd(skopeo(`docker://${reg.host}/${repo}-skopeo:img`, `oci:${dst}:img`)));
    await sh(`rm -rf ${dst}`);
    const store = join(sb.root, `store-${r}`);
    pullS.push(await timeCmd(sb.command(["pull", tag], { SPFS_STORAGE_ROOT: store })));
    await sh(`rm -rf ${store}`);
  }
  row(`push ${what} to a registry`, "skopeo copy", pushB, pushS);
  row(`pull ${what} from a registry`, "skopeo copy", pullB, pullS);
  row(`second push of ${what}, unchanged`, "skopeo copy", againB, againS);
}

/** The remote rows; skipped with a line when docker-registry or skopeo is missing. */
export async function remoteRows(sb: Sandbox, npm: string, bigDir: string): Promise<void> {
  for (const tool of ["docker-registry", "skopeo"]) {
    if ((await runner().run(["sh", "-c", `command -v ${tool}`])).code !== 0) {
      console.error(`remote rows skipped: ${tool} is missing (deno task bench installs it as root)`);
      return;
    }
  }
  const reg = await TestRegistry.start();
  try {
    await treeRows(sb, reg, "npm's tree", "npm", npm);
    await treeRows(sb, reg, "a 1 GiB layer", "big", bigDir);
  } finally {
    await reg.stop();
    await sb.spfs(["remote", "remove", "origin"]);
  }
}
