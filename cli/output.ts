/** Shared CLI output: errors with hints, JSON, tables, sizes. */
import { SpfsError } from "../core/errors.ts";
import type { RuntimeInfo } from "../proto/protocol.ts";

/** Prints an error (with its hint) to stderr and returns the exit code to use. */
export function reportError(e: unknown, json = false): number {
  if (e instanceof SpfsError) {
    if (json) console.error(JSON.stringify({ error: e.toJSON() }));
    else {
      console.error(`spfs: error: ${e.message}`);
      if (e.hint) console.error(`  hint: ${e.hint}`);
    }
    return e.exitCode;
  }
  const msg = e instanceof Error ? (Deno.env.get("SPFS_DEBUG") ? e.stack : e.message) : String(e);
  if (json) console.error(JSON.stringify({ error: { code: "InternalError", message: msg } }));
  else {
    console.error(`spfs: error: ${msg}`);
    console.error("  hint: this is a bug in spfs; rerun with SPFS_DEBUG=1 for a stack trace and report it");
  }
  return 1;
}

export function printJson(v: unknown): void {
  console.log(JSON.stringify(v, null, 2));
}

/** Human-readable byte count (1024-based). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Left-aligned text table. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  return rows.map((r) => r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  "))
    .join("\n");
}

/** Short form of a digest for tables. */
export function shortDigest(d: string): string {
  return d.startsWith("sha256:") ? d.slice(7, 19) : d;
}

/** "edit,durable", "edit" or "ro": a runtime's kind for tables. */
export const runtimeFlags = (r: RuntimeInfo) =>
  [r.editable ? "edit" : "ro", r.durable ? "durable" : ""].filter(Boolean).join(",");
