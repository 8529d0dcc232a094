/**
 * REF and env spec resolution. A REF is a tag (`name~N` for history), a full digest, or a unique
 * digest prefix (at least 4 hex chars, `sha256:` optional). An env spec is `REF[+REF…]`; a platform
 * expands to its layers.
 */
import { SpfsError } from "../errors.ts";
import { type Digest, DIGEST_RE } from "./objects.ts";
import type { ObjectStore } from "./store.ts";
import type { TagDb } from "./tags.ts";

const HISTORY_RE = /^(.+)~(\d+)$/;
const PREFIX_RE = /^(?:sha256:)?([0-9a-f]{4,64})$/;

/**
 * Resolves one REF to an object digest.
 * @throws SpfsError UnknownRef (with a hint) or AmbiguousRef.
 */
export function resolveRef(ref: string, store: ObjectStore, tags: TagDb): Digest {
  const hist = HISTORY_RE.exec(ref);
  const name = hist ? hist[1] : ref;
  const back = hist ? Number(hist[2]) : 0;
  const tagged = tags.get(name, back);
  if (tagged) return tagged;
  if (hist && tags.get(name, 0)) {
    const n = tags.history(name).length;
    throw new SpfsError("UnknownRef", `tag ${name} has ${n} version(s); ${ref} goes back too far`, {
      hint: `use ${name}~0 … ${name}~${n - 1}`,
    });
  }
  if (DIGEST_RE.test(ref)) {
    if (store.has(ref)) return ref;
  } else {
    const m = PREFIX_RE.exec(ref);
    if (m) {
      const found = store.findByPrefix(m[1]);
      if (found.length === 1) return found[0];
      if (found.length > 1) {
        throw new SpfsError("AmbiguousRef", `digest prefix ${ref} matches ${found.length} objects`, {
          hint: `use more characters, e.g. ${found.slice(0, 2).join(" or ")}`,
        });
      }
    }
  }
  throw new SpfsError("UnknownRef", `unknown ref "${ref}": no tag, digest or digest prefix matches`, {
    hint: "list tags with `spfs tags`; commit a directory with `spfs commit DIR -t NAME`",
  });
}

/** A resolved env spec: the layer digests, bottom to top. */
export interface ResolvedSpec {
  spec: string;
  layers: Digest[];
}

/**
 * Resolves `REF[+REF…]` to layers, expanding platforms.
 * @throws SpfsError UnknownRef, AmbiguousRef, or UsageError when a REF names a blob or manifest.
 */
export function resolveSpec(spec: string, store: ObjectStore, tags: TagDb): ResolvedSpec {
  const refs = spec.split("+").map((r) => r.trim());
  if (refs.some((r) => r === "")) {
    throw new SpfsError("UsageError", `empty REF in env spec "${spec}"`, {
      hint: "write REF[+REF…], e.g. base+tools/1",
    });
  }
  const layers: Digest[] = [];
  for (const ref of refs) {
    const d = resolveRef(ref, store, tags);
    const obj = store.kindOf(d) === "blob" ? undefined : store.readObject(d);
    if (obj?.type === "spfs/layer@1") layers.push(d);
    else if (obj?.type === "spfs/platform@1") layers.push(...obj.layers);
    else {
      throw new SpfsError(
        "UsageError",
        `${ref} (${d}) is a ${obj ? "manifest" : "blob"}, not a layer or platform`,
        {
          hint: "run a tag or layer digest printed by `spfs commit`",
        },
      );
    }
  }
  return { spec, layers };
}
