/**
 * `deno task install [--root DIR]`: puts an `spfs` command on PATH that runs this checkout with the
 * deno running this task (an absolute path, so it works when deno itself came from npx). DIR
 * defaults to /usr/local as root, else ~/.local; the command goes to DIR/bin/spfs. Prints a PATH
 * line when DIR/bin is not on PATH. For a single self-contained binary, use `deno task build`.
 */
import { delimiter, join } from "node:path";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const i = Deno.args.indexOf("--root");
const root = i >= 0
  ? Deno.args[i + 1]
  : Deno.uid() === 0
  ? "/usr/local"
  : join(Deno.env.get("HOME") ?? "/", ".local");
if (!root) {
  console.error("install: --root needs a directory, e.g. --root ~/.local");
  Deno.exit(2);
}
const bin = join(root, "bin");
const target = join(bin, "spfs");
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const shim = `#!/bin/sh
# spfs from ${repo}, installed by \`deno task install\`
exec ${q(Deno.execPath())} run -A --quiet --config ${q(join(repo, "deno.json"))} ${
  q(join(repo, "main.ts"))
} "$@"
`;
try {
  Deno.mkdirSync(bin, { recursive: true });
  const tmp = `${target}.tmp-${Deno.pid}`;
  Deno.writeTextFileSync(tmp, shim, { mode: 0o755 });
  Deno.chmodSync(tmp, 0o755);
  Deno.renameSync(tmp, target);
} catch (e) {
  console.error(`install: cannot write ${target}: ${(e as Error).message}`);
  console.error("  hint: pick a directory you can write with --root DIR, or run as root for /usr/local");
  Deno.exit(1);
}
console.log(target);
if (!(Deno.env.get("PATH") ?? "").split(delimiter).includes(bin)) {
  console.error(`install: ${bin} is not on PATH; add it:\n  export PATH="${bin}:$PATH"`);
}
