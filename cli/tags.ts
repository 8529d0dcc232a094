/** `spfs tag REF NAME` and `spfs tags [NAME]` */
import type { Config } from "../core/config.ts";
import { SpfsError } from "../core/errors.ts";
import { resolveRef } from "../core/store/refs.ts";
import { openRepo } from "../core/store/repo.ts";
import { printJson, shortDigest, table } from "./output.ts";

export function tag(cfg: Config, ref: string, name: string, o: { json?: boolean }): Promise<number> {
  const { store, tags } = openRepo(cfg);
  const digest = resolveRef(ref, store, tags);
  const kind = store.kindOf(digest);
  if (kind === "blob" || kind === "manifest") {
    throw new SpfsError("UsageError", `${ref} is a ${kind}; tags point at layers and platforms`, {
      hint: "tag the layer digest printed by `spfs commit`",
    });
  }
  tags.set(name, digest);
  if (o.json) printJson({ name, digest, kind });
  else console.log(`${name} -> ${digest}`);
  return Promise.resolve(0);
}

export function tags(cfg: Config, name: string | undefined, o: { json?: boolean }): Promise<number> {
  const { tags } = openRepo(cfg);
  const rows = name ? tags.history(name) : tags.list();
  if (name && rows.length === 0) {
    throw new SpfsError("UnknownRef", `no tag named ${name}`, { hint: "list tags with `spfs tags`" });
  }
  if (o.json) {
    printJson(
      rows.map((r, i) => ({
        name: name ? `${r.name}~${i}` : r.name,
        digest: r.digest,
        created: new Date(r.createdMs).toISOString(),
      })),
    );
  } else if (rows.length === 0) {
    console.error("no tags yet; create one with `spfs commit DIR -t NAME`");
  } else {
    console.log(table([
      ["TAG", "DIGEST", "CREATED"],
      ...rows.map((
        r,
        i,
      ) => [name ? `${r.name}~${i}` : r.name, shortDigest(r.digest), new Date(r.createdMs).toISOString()]),
    ]));
  }
  return Promise.resolve(0);
}
