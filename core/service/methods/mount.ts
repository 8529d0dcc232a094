/** `mount`: registers a process tree as a runtime (new, or a durable one re-entered with rerun). */
import { SpfsError } from "../../errors.ts";
import { newRuntimeId, validateRuntimeName } from "../../runtime/records.ts";
import { scratchBase } from "../../runtime/ramdisk.ts";
import { resolveSpec } from "../../store/refs.ts";
import { procInfo } from "../../../ffi/sys.ts";
import { probeReflink } from "../../../ffi/fsops.ts";
import { storagePaths } from "../../config.ts";
import { platform } from "../../platform/facts.ts";
import type { MountParams, MountResult } from "../../../proto/protocol.ts";
import type { Runtime } from "../runtimes.ts";
import type { Service } from "../state.ts";

/** @throws SpfsError ProcessNotFound, RuntimeInUse, RuntimeNotFound, UnknownRef. */
export function mount(s: Service, p: MountParams): MountResult {
  const proc = procInfo(p.pid);
  if (!proc) {
    throw new SpfsError("ProcessNotFound", `process ${p.pid} does not exist (it may have exited already)`, {
      hint: "register a running process: pass the pid of the process tree's root",
      details: { pid: p.pid },
    });
  }
  const editable = !!(p.edit || p.keep || p.scratch);
  for (const rt of s.runtimes.live.values()) {
    if (rt.root_pid === p.pid) s.runtimes.remove(rt, "re-registered");
  }
  const rt = p.rerun ? rerun(s, p.rerun, p.pid, proc.startTime) : create(s, p, editable, proc.startTime);
  if (rt.editable) rt.scratch = s.rdb.dirs(rt.id).scratch;
  const reflink = rt.editable && reflinkInto(s, rt.id);
  s.runtimes.add(rt, reflink);
  s.log.info("registered runtime {runtime} for {root_pid}: {env_spec}", {
    runtime: rt.id,
    root_pid: p.pid,
    env_spec: rt.env_spec,
    editable: rt.editable,
    durable: rt.durable,
    copy_up: rt.editable ? (reflink ? platform.copyUp.reflink : platform.copyUp.fallback) : undefined,
  });
  return { id: rt.id, name: rt.name, layers: rt.layers, editable: rt.editable, durable: rt.durable };
}

/**
 * Whether copy-up can clone from the store into this runtime's scratch: the backstore's probe,
 * unless the scratch lives on another volume (`--scratch`: its runtime dir is a symlink there),
 * which is probed itself; a RAM disk cannot share blocks with the store's volume, so it copies.
 */
function reflinkInto(s: Service, id: string): boolean {
  const d = s.rdb.dirs(id);
  try {
    if (!Deno.lstatSync(d.root).isSymlink) return s.backstore.reflink;
  } catch {
    return s.backstore.reflink;
  }
  return probeReflink(storagePaths(s.cfg.storageRoot).tmp, d.scratch) === true;
}

/** A durable runtime re-entered by a new root process. */
function rerun(s: Service, ref: string, pid: number, startTime: number): Runtime {
  const rec = s.rdb.find(ref);
  if (!rec) {
    const live = s.runtimes.find(ref);
    if (live) {
      throw new SpfsError(
        "RuntimeInUse",
        `runtime ${ref} is not durable and is in use by pid ${live.root_pid}`,
        {
          hint: "start it with --keep-runtime to re-enter it later",
        },
      );
    }
    throw s.runtimes.notFound(ref);
  }
  const live = s.runtimes.live.get(rec.id);
  if (live) {
    throw new SpfsError("RuntimeInUse", `runtime ${ref} is already running (root pid ${live.root_pid})`, {
      hint: "one process tree at a time; wait for it to exit, or use `spfs run --edit` for another runtime",
    });
  }
  s.rdb.sweepWork(rec.id);
  return { ...rec, root_pid: pid, started_ms: Date.now(), startTime, active: true };
}

/** A new runtime over the layers `p.spec` resolves to. */
function create(s: Service, p: MountParams, editable: boolean, startTime: number): Runtime {
  const resolved = resolveSpec(p.spec!, s.store, s.tags);
  if (p.name) {
    validateRuntimeName(p.name);
    if (s.rdb.find(p.name) || s.runtimes.find(p.name)) {
      throw new SpfsError("RuntimeInUse", `a runtime named ${p.name} already exists`, {
        hint:
          `re-enter it with \`spfs run --rerun ${p.name} -- CMD\`, or remove it with \`spfs runtime remove ${p.name}\``,
      });
    }
  }
  const rt: Runtime = {
    id: newRuntimeId(),
    name: p.name ?? null,
    root_pid: p.pid,
    env_spec: p.spec!,
    layers: resolved.layers,
    started_ms: Date.now(),
    created_ms: Date.now(),
    startTime,
    editable,
    durable: !!p.keep,
    active: true,
  };
  if (editable) s.rdb.createDirs(rt.id, p.scratch ? scratchBase(s.cfg, p.scratch) : undefined);
  if (rt.durable) s.rdb.put(rt);
  return rt;
}
