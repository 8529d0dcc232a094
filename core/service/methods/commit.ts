/**
 * `commit`: turns a runtime's scratch into a new top layer. Scratch is imported while the runtime
 * keeps running; then the worker swaps it out, but only if nothing changed meanwhile (else retry).
 * A tag names the runtime's new stack as a platform (a one-layer stack: that layer).
 */
import { SpfsError } from "../../errors.ts";
import { importDir, scratchChanged } from "../../store/importer.ts";
import { encodeLayer, encodePlatform, type Layer } from "../../store/objects.ts";
import { readTop } from "../../store/walk.ts";
import { validateTagName } from "../../store/tags.ts";
import type { CommitParams, CommitResult } from "../../../proto/protocol.ts";
import type { WorkerReply } from "../worker/messages.ts";
import type { Runtime } from "../runtimes.ts";
import type { Service } from "../state.ts";

/** @throws SpfsError RuntimeNotFound, NotEditable, RuntimeBusy, NothingToCommit, StorageError. */
export async function commit(s: Service, p: CommitParams): Promise<CommitResult> {
  if (p.tag) validateTagName(p.tag);
  const rt = editableRuntime(s, p.runtime);
  for (let attempt = 1;; attempt++) {
    // the first try lets the runtime's programs run on; a retry holds their changes back
    const hold = attempt > 1;
    try {
      const r = await commitOnce(s, rt, p, hold);
      if (r !== "changed") return r;
      if (attempt >= ATTEMPTS) {
        throw busy(
          rt.id,
          `it changed during each of ${ATTEMPTS} tries; changes right in / are never held back`,
        );
      }
    } finally {
      if (hold) s.worker.send({ type: "thaw", id: rt.id });
    }
  }
}

/** Tries in all; the first runs with the runtime live, the others with its changes held. */
const ATTEMPTS = 3;
/** Longest a held commit waits for copy-ups already running to finish (ms). */
const COPY_WAIT_MS = 30_000;

/**
 * One try at a commit: "changed" when the runtime changed while its scratch was read. With
 * `hold`, the runtime's requests that would change it (but those naming the root) wait from the
 * freeze until the caller's thaw; copy-ups already running are waited for.
 */
async function commitOnce(
  s: Service,
  rt: Runtime,
  p: CommitParams,
  hold: boolean,
): Promise<CommitResult | "changed"> {
  const d = s.rdb.dirs(rt.id);
  type Check = Extract<WorkerReply, { gen: number }>;
  let c = await s.worker.ask<Check>({ type: hold ? "freeze" : "commit-check", id: rt.id });
  for (
    const until = Date.now() + COPY_WAIT_MS;
    hold && !("ok" in c) && c.copying > 0 && Date.now() < until;
  ) {
    await new Promise((res) => setTimeout(res, 10));
    c = await s.worker.ask<Check>({ type: "commit-check", id: rt.id });
  }
  if ("ok" in c) throw new SpfsError("RuntimeNotFound", `runtime ${rt.id} is gone`);
  if (c.copying > 0) {
    throw new SpfsError("RuntimeBusy", `${c.copying} big file(s) are being copied up in runtime ${rt.id}`, {
      hint: "commit again in a moment, once those copies finish",
    });
  }
  if ([...Deno.readDirSync(d.scratch)].length === 0) {
    if (p.tag && rt.layers.length) return tagStack(s, rt.layers, p.tag);
    throw new SpfsError("NothingToCommit", `runtime ${rt.id} has no changes to commit`, {
      hint: "see changes with `spfs diff`; `spfs commit -t NAME` tags the runtime's stack as it is",
    });
  }
  let result;
  try {
    result = await importDir(d.scratch, s.store, {}, { scratch: true });
  } catch (e) {
    // a program in the runtime renamed or removed a file mid-import: like "changed" below
    if (!scratchChanged(e)) throw e;
    return "changed";
  }
  const layer = s.store.putBytes(encodeLayer(result.manifest, { "spfs.runtime": rt.id }));
  s.store.syncDirs();
  const layers = [...rt.layers, layer];
  const trash = `${d.root}/trash-${Date.now()}`;
  const r = await s.worker.ask<WorkerReply>({ type: "rebase", id: rt.id, layers, gen: c.gen, trash });
  if ("ok" in r && !r.ok) {
    if (r.reason === "changed") return "changed";
    throw busy(rt.id, r.reason);
  }
  // names that were hard links are files of their own now: the kernel must not lead one to the
  // other's inode, so their dentries go before the commit returns. Each notice takes its dir's
  // lock, which a held request may hold: thaw first.
  if (hold) s.worker.send({ type: "thaw", id: rt.id });
  const { unlinked = [], known = [] } = "ok" in r && r.ok ? r : {};
  await s.worker.invalidateEntries(unlinked);
  // the layer dropped owners, times and split links' counts: the kernel's cached attributes (1 s)
  // would still show them, so a stat right after the commit would not match a restart
  await s.worker.invalidateAttrs(known);
  rt.layers = layers;
  if (rt.durable) s.rdb.put(rt);
  // the tag names the environment as committed: the whole stack, so `spfs run TAG` (or a pull
  // of TAG elsewhere) gets the layers below too, not just this one's changes
  const platform = layers.length > 1 ? s.store.putBytes(encodePlatform(layers)) : null;
  if (p.tag) s.tags.set(p.tag, platform ?? layer);
  void Deno.remove(trash, { recursive: true }).catch(() => {});
  s.log.info("committed runtime {runtime} as {layer}", { runtime: rt.id, layer, tag: p.tag });
  const { manifest, files, dirs, symlinks, bytes, skipped } = result;
  return {
    layer,
    platform,
    manifest,
    layers,
    files,
    dirs,
    symlinks,
    bytes,
    tag: p.tag ?? null,
    skipped,
    unchanged: false,
  };
}

/**
 * A commit with a tag and nothing new: the tag names the runtime's stack as it is, as the same
 * commit would have after a change (a platform of the stack, or its one layer).
 */
function tagStack(s: Service, layers: string[], tag: string): CommitResult {
  const layer = layers.at(-1)!;
  const platform = layers.length > 1 ? s.store.putBytes(encodePlatform(layers)) : null;
  s.store.syncDirs();
  s.tags.set(tag, platform ?? layer);
  const { manifest } = readTop(s.store, layer, "the runtime's top layer").obj as Layer;
  return {
    layer,
    platform,
    manifest,
    layers,
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytes: 0,
    tag,
    skipped: [],
    unchanged: true,
  };
}

function busy(id: string, reason: string): SpfsError {
  return new SpfsError("RuntimeBusy", `runtime ${id} kept changing during the commit (${reason})`, {
    hint: "stop the programs writing to /spfs and commit again",
  });
}

/** The running, editable runtime `ref`. */
function editableRuntime(s: Service, ref: string): Runtime {
  const rt = s.runtimes.find(ref);
  if (!rt) {
    if (s.rdb.find(ref)) {
      throw new SpfsError("RuntimeNotFound", `runtime ${ref} is not running`, {
        hint: `re-enter it with \`spfs run --rerun ${ref} -- spfs commit -t NAME\``,
      });
    }
    throw s.runtimes.notFound(ref);
  }
  if (!rt.editable) {
    throw new SpfsError("NotEditable", `runtime ${rt.id} is read-only; there is nothing to commit`, {
      hint: "start runs with --edit to change and commit them",
    });
  }
  return rt;
}
