/** Helpers for tests that run external programs through a RecordingRunner with canned outputs. */
import assert from "node:assert/strict";
import { SpfsError } from "../../core/errors.ts";
import { RecordingRunner, type RunResult, setRunner } from "../../core/runner.ts";

/** A canned program result. */
export const res = (code: number, stdout = "", stderr = ""): RunResult => ({ code, stdout, stderr });

/**
 * Runs `fn` with a RecordingRunner answering from `answer` and a fresh temp dir; restores the real
 * runner and removes the dir afterwards.
 */
export async function withRecordingRunner(
  answer: (argv: string[]) => RunResult,
  fn: (rec: RecordingRunner, dir: string) => void | Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "spfs-rec-" });
  const rec = new RecordingRunner(answer);
  const prev = setRunner(rec);
  try {
    await fn(rec, dir);
  } finally {
    setRunner(prev);
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Awaits `p`, asserting it rejects with an SpfsError of `code` whose message matches. */
export async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<SpfsError> {
  let err: unknown;
  await p.catch((e) => err = e);
  assert.ok(err instanceof SpfsError, `expected SpfsError ${code}, got ${err}`);
  assert.equal(err.code, code);
  assert.match(err.message, message);
  return err;
}
