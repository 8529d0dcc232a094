/**
 * The import-direction checker run by `deno task check`. Data flows one way (ARCHITECTURE.md
 * "Layout and boundaries"):
 *
 *   main.ts → cli → core/client | core/service → core/runtime → core/fs → core/platform
 *     → core/remote → core/store → core (kernel: errors, config, log, …) → proto, ffi
 *
 * and inside ffi, leaves first: os, types → errno, stat → linux/, darwin/ → fuse/ → sys.ts → the
 * helpers built on it (fsops, exitwatch). A module may import one of a lower rank, or one of its
 * own group. Forbidden besides: core/client ↔ core/service, ffi/linux ↔ ffi/darwin, cli command
 * modules importing each other (only cli/main.ts dispatches, cli/output.ts is shared), and any
 * cycle. Static imports, `import()` and `new Worker(new URL(…))` all count as edges.
 * Prints each offending edge or cycle and exits 1; tests/ and scripts/ are not ranked.
 */
import { dirname, join, normalize, relative } from "node:path";

/** A module's place in the layering. */
interface Place {
  group: string;
  rank: number;
}

/** First match wins: leaves are listed before the patterns that would also match them. */
const RANKS: [RegExp, string, number][] = [
  [/^main\.ts$/, "main", 100],
  [/^cli\/main\.ts$/, "cli/main", 95],
  [/^cli\/output\.ts$/, "cli/output", 85],
  [/^cli\//, "cli", 90],
  [/^core\/client\//, "core/client", 80],
  [/^core\/service\//, "core/service", 80],
  [/^core\/platform\//, "core/platform", 45],
  [/^core\/runtime\//, "core/runtime", 60],
  [/^core\/fs\//, "core/fs", 50],
  [/^core\/remote\//, "core/remote", 42],
  [/^core\/store\//, "core/store", 40],
  [/^core\/[^/]+\.ts$/, "core", 30],
  [/^proto\//, "proto", 20],
  [/^ffi\/(os|types)\.ts$/, "ffi/os+types", 11],
  [/^ffi\/(errno|stat)\.ts$/, "ffi/errno+stat", 12],
  [/^ffi\/linux\//, "ffi/linux", 13],
  [/^ffi\/darwin\//, "ffi/darwin", 13],
  [/^ffi\/fuse\//, "ffi/fuse", 14],
  [/^ffi\/sys\.ts$/, "ffi/sys", 15],
  [/^ffi\/[^/]+\.ts$/, "ffi/helpers", 16],
];

const FORBIDDEN: [string, string, string][] = [
  ["core/client", "core/service", "a CLI process never loads the service; talk to it over RPC"],
  ["core/service", "core/client", "the service does not use client glue"],
  ["ffi/linux", "ffi/darwin", "per-OS bindings are siblings; ffi/sys.ts picks one"],
  ["ffi/darwin", "ffi/linux", "per-OS bindings are siblings; ffi/sys.ts picks one"],
  ["cli", "cli", "command modules never import each other: share through cli/output.ts or core/"],
];

/** Where a repo-relative source path sits, or undefined when it is not ranked (tests, scripts). */
export function placeOf(path: string): Place | undefined {
  const hit = RANKS.find(([re]) => re.test(path));
  return hit && { group: hit[1], rank: hit[2] };
}

/** The relative specifiers a module imports: static, dynamic and worker URLs. */
export function specifiers(source: string): string[] {
  const re =
    /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new Worker\(\s*new URL\(\s*)(["'])(\.{1,2}\/[^"']+)\1/g;
  return [...source.matchAll(re)].map((m) => m[2]);
}

/** One finding: a forbidden edge or a cycle, as a line to print. */
export type Finding = string;

/**
 * Checks a module graph given as repo-relative path → source text.
 * @returns the findings, empty when the graph keeps the rules.
 */
export function checkImports(files: Map<string, string>): Finding[] {
  const out: Finding[] = [];
  const edges = new Map<string, string[]>();
  for (const [from, src] of files) {
    const pf = placeOf(from);
    const targets: string[] = [];
    for (const spec of specifiers(src)) {
      const to = normalize(join(dirname(from), spec));
      if (!files.has(to)) continue;
      targets.push(to);
      const pt = placeOf(to);
      if (!pf) continue;
      if (!pt) {
        out.push(`forbidden import: ${from} → ${to} (source code never imports tests/ or scripts/)`);
        continue;
      }
      const rule = FORBIDDEN.find(([a, b]) => a === pf.group && b === pt.group);
      if (rule) out.push(`forbidden import: ${from} → ${to} (${pf.group} → ${pt.group}: ${rule[2]})`);
      else if (pt.rank > pf.rank || (pt.rank === pf.rank && pt.group !== pf.group)) {
        out.push(
          `forbidden import: ${from} → ${to} (${pf.group} may not import ${pt.group}; ` +
            `see scripts/check_imports.ts for the order)`,
        );
      }
    }
    edges.set(from, targets);
  }
  out.push(...findCycles(edges).map((c) => `import cycle: ${c.join(" → ")}`));
  return out;
}

/** Each elementary cycle found by a depth-first walk, once, as a closed path. */
function findCycles(edges: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (n: string) => {
    state.set(n, "open");
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === "open") cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of [...edges.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

/** Reads every .ts file under the ranked folders of `root`. */
export function readTree(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) walk(p);
      else if (e.name.endsWith(".ts")) files.set(relative(root, p), Deno.readTextFileSync(p));
    }
  };
  for (const d of ["cli", "core", "ffi", "proto", "tests", "scripts"]) walk(join(root, d));
  files.set("main.ts", Deno.readTextFileSync(join(root, "main.ts")));
  return files;
}

if (import.meta.main) {
  const root = join(dirname(new URL(import.meta.url).pathname), "..");
  const files = readTree(root);
  const findings = checkImports(files);
  for (const f of findings) console.error(f);
  if (findings.length) Deno.exit(1);
  console.log(`imports: ${files.size} modules, every edge follows the layering, no cycles`);
}
