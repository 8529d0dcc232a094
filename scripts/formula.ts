/**
 * Renders the Homebrew formula: `deno run -A scripts/formula.ts VERSION OWNER/REPO dist/SHA256SUMS`
 * prints scripts/homebrew/spfs.rb.tmpl with the version, repo and each target's sha256 filled in.
 * A missing checksum is an error, so a partial release never yields a formula.
 */
import { assetName, TARGETS } from "./build.ts";

/** Fills the template. `sums` is SHA256SUMS text ("<hex>  <asset>" per line). */
export function renderFormula(template: string, version: string, repo: string, sums: string): string {
  const byAsset = new Map(
    sums.trim().split("\n").map((l) => {
      const [hash, name] = l.trim().split(/\s+/);
      return [name, hash] as const;
    }),
  );
  let out = template.replaceAll("{{VERSION}}", version.replace(/^v/, "")).replaceAll("{{REPO}}", repo);
  for (const t of TARGETS) {
    const h = byAsset.get(assetName(t));
    if (!h || !/^[0-9a-f]{64}$/.test(h)) throw new Error(`SHA256SUMS has no checksum for ${assetName(t)}`);
    out = out.replaceAll(`{{SHA_${t}}}`, h);
  }
  const left = /\{\{[^}]+\}\}/.exec(out);
  if (left) throw new Error(`template placeholder ${left[0]} was not filled`);
  return out;
}

if (import.meta.main) {
  const [version, repo, sumsPath] = Deno.args;
  if (!version || !repo || !sumsPath) {
    console.error("usage: deno run -A scripts/formula.ts VERSION OWNER/REPO dist/SHA256SUMS");
    Deno.exit(2);
  }
  const tmpl = Deno.readTextFileSync(new URL("./homebrew/spfs.rb.tmpl", import.meta.url));
  console.log(renderFormula(tmpl, version, repo, Deno.readTextFileSync(sumsPath)));
}
