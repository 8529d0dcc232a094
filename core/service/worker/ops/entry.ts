/** Name resolution and kernel references: lookup, forget, forget_multi. */
import { CTR } from "../../../metrics.ts";
import type { Op } from "../instrument.ts";

/** lookup: resolve `name` in `parent`; the root resolves through the caller's runtime. */
export const lookup: Op<"lookup"> = (c, req, parent, name) => {
  c.counters[CTR.lookups]++;
  const p = Number(parent);
  const b = c.resolve(req, p);
  c.replyEntry(req, b, b.lookup(p, c.name(name)), p);
};

/** forget: the kernel dropped `nlookup` references to `ino`. */
export const forget: Op<"forget"> = (c, req, ino, nlookup) => {
  c.byOwner(Number(ino)).forget(Number(ino), Number(nlookup));
  c.S.fuse_reply_none(req);
};

/** forget_multi: `count` {ino u64, nlookup u64} pairs. */
export const forget_multi: Op<"forget_multi"> = (c, req, count, ptr) => {
  const v = new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr!, Number(count) * 16));
  for (let i = 0; i < Number(count); i++) {
    const ino = Number(v.getBigUint64(i * 16, true)), n = Number(v.getBigUint64(i * 16 + 8, true));
    c.byOwner(ino).forget(ino, n);
  }
  c.S.fuse_reply_none(req);
};
