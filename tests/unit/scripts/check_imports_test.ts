import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { checkImports, readTree } from "../../../scripts/check_imports.ts";

const graph = (files: Record<string, string>) => new Map(Object.entries(files));

Deno.test("import checker: the repository keeps the layering and has no cycle", () => {
  const root = join(dirname(new URL(import.meta.url).pathname), "../../..");
  assert.deepEqual(checkImports(readTree(root)), []);
});

Deno.test("import checker: rejects an import against the arrow and names the edge", () => {
  const f = checkImports(graph({
    "core/store/store.ts": 'import { Vfs } from "../fs/vfs.ts";',
    "core/fs/vfs.ts": 'import { ObjectStore } from "../store/store.ts";',
  }));
  assert.equal(f.length, 2);
  assert.match(
    f[0],
    /^forbidden import: core\/store\/store\.ts → core\/fs\/vfs\.ts \(core\/store may not import core\/fs/,
  );
  assert.match(f[1], /^import cycle: core\/fs\/vfs\.ts → core\/store\/store\.ts → core\/fs\/vfs\.ts$/);
});

Deno.test("import checker: a cycle inside one folder, client→service, cli→cli, and dynamic imports", () => {
  const f = checkImports(graph({
    "core/store/a.ts": 'export * from "./b.ts";',
    "core/store/b.ts": 'const m = await import("./a.ts");',
    "core/client/rpc.ts": 'import { runService } from "../service/main.ts";',
    "core/service/main.ts": "",
    "cli/diff.ts": 'import { findRuntime } from "./runtime.ts";',
    "cli/runtime.ts": 'import { table } from "./output.ts";',
    "cli/output.ts": "",
    "ffi/linux/proc.ts": 'import { libSystem } from "../darwin/libsystem.ts";',
    "ffi/darwin/libsystem.ts": "",
  }));
  assert.ok(
    f.some((l) => l === "import cycle: core/store/a.ts → core/store/b.ts → core/store/a.ts"),
    f.join("\n"),
  );
  assert.ok(f.some((l) => l.startsWith("forbidden import: core/client/rpc.ts → core/service/main.ts")));
  assert.ok(f.some((l) => l.startsWith("forbidden import: cli/diff.ts → cli/runtime.ts")));
  assert.ok(f.some((l) => l.startsWith("forbidden import: ffi/linux/proc.ts → ffi/darwin/libsystem.ts")));
  assert.ok(!f.some((l) => l.startsWith("forbidden import: cli/runtime.ts")), "cli/output.ts is shared");
  assert.equal(f.length, 4, f.join("\n"));
});
