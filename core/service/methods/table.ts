/**
 * Every RPC method, one function each, by its protocol name. The type ties the table to proto/:
 * each method in `paramSchemas` has a function here, and it takes that schema's params.
 */
import type { z } from "zod";
import type { paramSchemas } from "../../../proto/schemas.ts";
import type { MethodName } from "../../../proto/protocol.ts";
import type { Service } from "../state.ts";
import { commit } from "./commit.ts";
import { health } from "./health.ts";
import { mount } from "./mount.ts";
import { runtime_prune, runtime_remove, runtimes } from "./runtimes.ts";
import { shutdown } from "./shutdown.ts";
import { status } from "./status.ts";
import { unmount } from "./unmount.ts";

type Params = { [K in keyof typeof paramSchemas]: z.infer<(typeof paramSchemas)[K]> };
/** A method: the service and its validated params in, its result (or a thrown SpfsError) out. */
export type Method<K extends MethodName> = (s: Service, p: NonNullable<Params[K]>) => unknown;

export const METHODS: { [K in MethodName]: Method<K> } = {
  health,
  status,
  mount: (s, p) => mount(s, p),
  unmount,
  shutdown,
  commit,
  runtimes,
  runtime_remove,
  runtime_prune,
};
