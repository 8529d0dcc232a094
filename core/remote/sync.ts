/**
 * `spfs push` and `spfs pull`: walk tag → platform → layers, skip what the destination holds,
 * move children before parents, and set the tag last.
 */
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { type Digest, DIGEST_RE } from "../store/objects.ts";
import { resolveRef } from "../store/refs.ts";
import type { Repo } from "../store/repo.ts";
import { layerClosure, readTop, type Top } from "../store/walk.ts";
import { type RemoteAddress, remoteNamed } from "./address.ts";
import { Progress, type Remote } from "./remote.ts";

/** What one push or pull did, for `--json` and the summary line. */
export interface SyncSummary {
  remote: string;
  refs: { ref: string; digest: Digest; kind: "layer" | "platform" }[];
  layers: { moved: number; skipped: number };
  objects: { moved: number; skipped: number };
  /** Payload bytes moved. */
  bytes: number;
  ms: number;
}

/**
 * Opens the remote at `address` (lazily importing the OCI client only when needed).
 * @throws SpfsError RemoteUnreachable for a file:// dir that cannot be used.
 */
export async function openRemote(cfg: Config, address: RemoteAddress): Promise<Remote> {
  if (address.kind === "file") return new (await import("./fsremote.ts")).FileRemote(address);
  return new (await import("./oci/ociremote.ts")).OciRemote(cfg, address);
}

/** Opens the configured remote `name` (default origin). */
export function remoteFor(cfg: Config, name?: string): Promise<Remote> {
  return openRemote(cfg, remoteNamed(cfg, name));
}

const isTagRef = (ref: string) => !DIGEST_RE.test(ref) && !/^(sha256:)?[0-9a-f]{4,64}$/.test(ref);

/**
 * Moves each layer the destination lacks, counting the rest as skipped. Shared by push and pull,
 * whose only differences are the two callbacks.
 */
async function moveLayers(
  layers: Digest[],
  present: (l: Digest) => boolean | Promise<boolean>,
  move: (l: Digest) => Promise<void>,
  p: Progress,
): Promise<void> {
  p.layers += layers.length;
  for (const l of layers) {
    if (await present(l)) p.skippedLayers++;
    else await move(l);
    p.layersDone++;
    p.onChange();
  }
}

/** The layers of a layer or platform, bottom to top. */
const layersOf = (top: Top) => top.kind === "layer" ? [top.digest] : top.obj.layers;

/**
 * Pushes each REF (tag or digest; a tag moves its current target and then the tag).
 * @throws SpfsError UnknownRef for a REF not in the local store; Remote* errors from the remote.
 */
export async function push(
  repo: Repo,
  remote: Remote,
  refs: string[],
  p = new Progress(),
): Promise<SyncSummary> {
  const t0 = performance.now();
  const done: SyncSummary["refs"] = [];
  for (const ref of refs) {
    const digest = resolveRef(ref, repo.store, repo.tags);
    const top = readTop(repo.store, digest, ref);
    await moveLayers(layersOf(top), (l) => remote.hasTop(l), (l) => {
      const c = layerClosure(repo.store, l);
      p.bytesTotal += [...c.blobs.values()].reduce((a, b) => a + b, 0);
      return remote.pushLayer(repo.store, l, c, p);
    }, p);
    if (top.kind === "platform" && !(await remote.hasTop(digest))) {
      await remote.pushPlatform(repo.store, digest);
    }
    if (isTagRef(ref)) await remote.setTag(ref.replace(/~\d+$/, ""), digest);
    done.push({ ref, digest, kind: top.kind });
  }
  return summary(remote, done, p, t0);
}

/**
 * Pulls each REF (a tag on the remote, or a full digest) into the local store, then sets the tag.
 * @throws SpfsError UnknownRef when the remote has no such tag; CorruptObject for damaged bytes.
 */
export async function pull(
  repo: Repo,
  remote: Remote,
  refs: string[],
  p = new Progress(),
): Promise<SyncSummary> {
  const t0 = performance.now();
  const done: SyncSummary["refs"] = [];
  for (const ref of refs) {
    const digest = DIGEST_RE.test(ref) ? ref : await remote.getTag(ref);
    if (!digest) {
      throw new SpfsError("UnknownRef", `remote ${remote.address.name} has no tag "${ref}"`, {
        hint: `tags are pushed with \`spfs push ${ref}\`; pull a full digest (sha256:…) or another tag`,
      });
    }
    const have = repo.store.has(digest);
    const top = have ? readTop(repo.store, digest, ref) : await remote.readTop(digest);
    await moveLayers(layersOf(top), (l) => repo.store.has(l), (l) => remote.pullLayer(repo.store, l, p), p);
    if (top.kind === "platform" && !have) await remote.pullPlatform(repo.store, digest);
    if (!DIGEST_RE.test(ref)) repo.tags.set(ref, digest);
    done.push({ ref, digest, kind: top.kind });
  }
  return summary(remote, done, p, t0);
}

function summary(remote: Remote, refs: SyncSummary["refs"], p: Progress, t0: number): SyncSummary {
  return {
    remote: remote.address.name,
    refs,
    layers: { moved: p.layers - p.skippedLayers, skipped: p.skippedLayers },
    objects: { moved: p.objects, skipped: p.skippedObjects },
    bytes: p.bytes,
    ms: Math.round(performance.now() - t0),
  };
}

/**
 * For `spfs run`/`shell`: pulls from origin each REF of `spec` that does not resolve here. A tag that
 * exists here wins without asking origin (offline, fast, and the same on every run until `spfs pull`).
 * Returns the REFs it pulled; [] when nothing was missing or no origin is configured.
 * @throws SpfsError from the pull (UnknownRef when origin lacks it too).
 */
export async function pullMissing(cfg: Config, repo: Repo, spec: string, p?: Progress): Promise<string[]> {
  if (!cfg.remotes.origin) return [];
  const missing = spec.split("+").map((r) => r.trim()).filter((ref) => {
    try {
      resolveRef(ref, repo.store, repo.tags);
      return false;
    } catch (e) {
      if (e instanceof SpfsError && e.code === "UnknownRef") return isTagRef(ref) || DIGEST_RE.test(ref);
      throw e;
    }
  });
  if (missing.length) await pull(repo, await remoteFor(cfg), missing.map((r) => r.replace(/~0$/, "")), p);
  return missing;
}
