/** Name resolution and kernel references: lookup, forget, forget_multi. */
import { CTR } from "../../../metrics.ts";
import { E } from "../../../../ffi/errno.ts";
import { ROOT_INO } from "../../../fs/vfs.ts";
import type { Op } from "../instrument.ts";
import type { WorkerContext } from "../context.ts";

/**
 * lookup: resolve `name` in `parent`; the root resolves through the caller's runtime. A name
 * missing below the root is answered as a negative entry the kernel caches: a directory there
 * changes only through this mount (the kernel sees every create, link and rename) or by a commit's
 * rebase, which keeps the names as they are.
 */
export const lookup: Op<"lookup"> = (c, req, parent, name) => {
  c.counters[CTR.lookups]++;
  const p = Number(parent);
  const b = c.resolve(req, p), n = c.name(name);
  const a = b.lookup(p, n);
  if (a === E.ENOENT && p !== ROOT_INO) return void c.S.fuse_reply_entry(req, c.negativeEntry);
  c.replyEntry(req, b, a, p, n);
};

/** forget: the kernel dropped `nlookup` references to `ino`; at none, its fd is closed. */
export const forget: Op<"forget"> = (c, req, ino, nlookup) => {
  forgetOne(c, Number(ino), Number(nlookup));
  c.S.fuse_reply_none(req);
};

function forgetOne(c: WorkerContext, ino: number, n: number): void {
  if (c.byOwner(ino).forget(ino, n)) c.files.drop(ino);
}

/** forget_multi: `count` {ino u64, nlookup u64} pairs. */
export const forget_multi: Op<"forget_multi"> = (c, req, count, ptr) => {
  const k = Number(count);
  const v = k > 0 ? new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr!, k * 16)) : null;
  for (let i = 0; i < k; i++) {
    const ino = Number(v!.getBigUint64(i * 16, true)), n = Number(v!.getBigUint64(i * 16 + 8, true));
    forgetOne(c, ino, n);
  }
  c.S.fuse_reply_none(req);
};
