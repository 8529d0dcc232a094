/** What every RPC method may use: the service's parts, wired once by main.ts. */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { RuntimeDb } from "../runtime/records.ts";
import type { ObjectStore } from "../store/store.ts";
import type { TagDb } from "../store/tags.ts";
import type { BackstoreInfo } from "../../proto/protocol.ts";
import type { RuntimeTable } from "./runtimes.ts";
import type { WorkerHandle } from "./worker_handle.ts";

/** The running service. */
export interface Service {
  cfg: Config;
  store: ObjectStore;
  tags: TagDb;
  rdb: RuntimeDb;
  runtimes: RuntimeTable;
  worker: WorkerHandle;
  backstore: BackstoreInfo;
  /** performance.now() at start (ms). */
  started: number;
  /** Int32 counters indexed by metrics.ts `CTR`, shared with the worker. */
  counters: Int32Array;
  /** Int32 latency histograms, LAT_BUCKETS per op slot, shared with the worker. */
  latency: Int32Array;
  log: Logger;
  /** Stops the service (idempotent). */
  stop(why: string): Promise<void>;
}
