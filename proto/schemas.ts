/** zod schemas for RPC params (validated by the service). Results are typed in ./protocol.ts. */
import { z } from "zod";

export const requestSchema = z.object({
  jsonrpc: z.literal("2.0"),
  id: z.union([z.number(), z.string(), z.null()]).optional(),
  method: z.string().max(64),
  params: z.unknown().optional(),
});

const empty = z.union([z.object({}).strict(), z.array(z.never()).length(0)]).optional();

export const paramSchemas = {
  health: empty,
  status: empty,
  shutdown: empty,
  mount: z.object({
    pid: z.number().int().positive().max(2 ** 31 - 1),
    spec: z.string().min(1).max(4096).optional(),
    edit: z.boolean().optional(),
    keep: z.boolean().optional(),
    name: z.string().min(1).max(64).optional(),
    rerun: z.string().min(1).max(64).optional(),
    scratch: z.string().min(1).max(4096).optional(),
  }).strict().refine((p) => (p.spec === undefined) !== (p.rerun === undefined), "give spec or rerun"),
  commit: z.object({
    runtime: z.string().min(1).max(64),
    tag: z.string().min(1).max(256).optional(),
  }).strict(),
  runtimes: empty,
  runtime_remove: z.object({ runtime: z.string().min(1).max(64), force: z.boolean().optional() }).strict(),
  runtime_prune: z.object({ dry_run: z.boolean().optional() }).strict().optional(),
  unmount: z.object({
    pid: z.number().int().positive().max(2 ** 31 - 1).optional(),
    id: z.string().max(64).optional(),
  }).strict().refine((p) => p.pid !== undefined || p.id !== undefined, "give pid or id"),
} as const;
