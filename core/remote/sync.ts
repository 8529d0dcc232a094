/**
 * `spfs push` and `spfs pull`: walk tag → platform → layers, skip what the destination holds,
 * move children before parents, and set the tag last.
 */
import type { Config } from "../config.ts";
import { SpfsError } from "../errors.ts";
import { type Digest, DIGEST_RE } from "../store/objects.ts";
import { resolveRef } from "../store/refs.ts";
import type { Repo } from "../store/repo.ts";
import { layerClosure, readTop } from "../store/walk.ts";
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
  const out = summary(remote, t0);
  for (const ref of refs) {
    const digest = resolveRef(ref, repo.store, repo.tags);
    const top = readTop(repo.store, digest, ref);
    const layers = top.kind === "layer" ? [digest] : top.obj.layers;
    p.layers += layers.length;
    for (const l of layers) {
      if (await remote.hasTop(l)) {
        p.skippedLayers++;
      } else {
        const c = layerClosure(repo.store, l);
        p.bytesTotal += [...c.blobs.values()].reduce((a, b) => a + b, 0);
        await remote.pushLayer(repo.store, l, c, p);
      }
      p.layersDone++;
      p.onChange();
    }
    if (top.kind === "platform" && !(await remote.hasTop(digest))) {
      await remote.pushPlatform(repo.store, digest);
    }
    if (isTagRef(ref)) await remote.setTag(ref.replace(/~\d+$/, ""), digest);
    out.refs.push({ ref, digest, kind: top.kind });
  }
  return finish(out, p, t0);
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
  const out = summary(remote, t0);
  for (const ref of refs) {
    const digest = DIGEST_RE.test(ref) ? ref : await remote.getTag(ref);
    if (!digest) {
      throw new SpfsError("UnknownRef", `remote ${remote.address.name} has no tag "${ref}"`, {
        hint: `tags are pushed with \`spfs push ${ref}\`; pull a full digest (sha256:…) or another tag`,
      });
    }
    const have = repo.store.has(digest);
    const top = have ? readTop(repo.store, digest, ref) : await remote.readTop(digest);
    const layers = top.kind === "layer" ? [digest] : top.obj.layers;
    p.layers += layers.length;
    for (const l of layers) {
      if (repo.store.has(l)) p.skippedLayers++;
      else await remote.pullLayer(repo.store, l, p);
      p.layersDone++;
      p.onChange();
    }
    if (top.kind === "platform" && !have) await remote.pullPlatform(repo.store, digest);
    if (!DIGEST_RE.test(ref)) repo.tags.set(ref, digest);
    out.refs.push({ ref, digest, kind: top.kind });
  }
  return finish(out, p, t0);
}

function summary(remote: Remote, _t0: number): SyncSummary {
  return {
    remote: remote.address.name,
    refs: [],
    layers: { moved: 0, skipped: 0 },
    objects: { moved: 0, skipped: 0 },
    bytes: 0,
    ms: 0,
  };
}

function finish(out: SyncSummary, p: Progress, t0: number): SyncSummary {
  out.layers = { moved: p.layers - p.skippedLayers, skipped: p.skippedLayers };
  out.objects = { moved: p.objects, skipped: p.skippedObjects };
  out.bytes = p.bytes;
  out.ms = Math.round(performance.now() - t0);
  return out;
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
