import assert from "node:assert/strict";
import { readFrames } from "../../../proto/framing.ts";

function stream(chunks: string[]): ReadableStreamDefaultReader<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  }).getReader();
}

Deno.test("NDJSON frames split across chunks are joined; blank lines ignored", async () => {
  const got: string[] = [];
  const r = await readFrames(
    stream(['{"a":', '1}\n\n{"b"', ":2}\n{", '"c":3}\n']),
    100,
    (l) => void got.push(l),
  );
  assert.equal(r, "eof");
  assert.deepEqual(got, ['{"a":1}', '{"b":2}', '{"c":3}']);
});

Deno.test("a frame over the limit stops reading, even before its newline arrives", async () => {
  const got: string[] = [];
  assert.equal(
    await readFrames(stream(["ok\n", "x".repeat(60), "x".repeat(60)]), 100, (l) => void got.push(l)),
    "oversize",
  );
  assert.deepEqual(got, ["ok"]);
  assert.equal(await readFrames(stream(["y".repeat(101) + "\n"]), 100, () => {}), "oversize");
});
