/**
 * The spfs service protocol: JSON-RPC 2.0, one JSON object per line (NDJSON) over a Unix socket at
 * `<runtime dir>/service.sock`. Kept free of heavy imports: `spfs run` loads it on every start.
 * The zod schemas for params and results live in ./schemas.ts.
 */

/** major.minor; a different major is incompatible. */
export const PROTOCOL_VERSION = "1.0";
/** Largest accepted frame in bytes, newline excluded. Larger frames are rejected and the connection closed. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** JSON-RPC 2.0 standard codes, and spfs application codes (-32000…-32099). */
export const RpcCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /** An SpfsError; `data` carries {code, message, hint}. */
  spfsError: -32000,
  /** The frame exceeded MAX_FRAME_BYTES. */
  frameTooLarge: -32001,
} as const;

export type MethodName =
  | "health"
  | "status"
  | "mount"
  | "unmount"
  | "shutdown"
  | "commit"
  | "runtimes"
  | "runtime_remove"
  | "runtime_prune";

export interface HealthResult {
  healthy: boolean;
  version: string;
  protocol: string;
  uptime_s: number;
  pid: number;
}

export interface RuntimeInfo {
  id: string;
  name: string | null;
  /** 0 when the runtime is durable and not running. */
  root_pid: number;
  env_spec: string;
  layers: string[];
  started_ms: number;
  editable: boolean;
  durable: boolean;
  /** Editable runtimes: the scratch (upper) dir. */
  scratch?: string;
  active: boolean;
}

/** Where scratch lives and what copy-up can do there. */
export interface BackstoreInfo {
  path: string;
  fs_type: string;
  /** FICLONE works between the object store and scratch. */
  reflink: boolean;
  /** Why reflink is unavailable (errno name), when it is. */
  reflink_error?: string;
  /** reflink: FICLONE (Linux) or clonefile (macOS); else a copy_file_range (Linux) or byte copy (macOS). */
  copy_up: "reflink" | "clonefile" | "copy_file_range" | "copy";
  free_bytes: number;
}

export interface CommitParams {
  /** Runtime id or name. */
  runtime: string;
  tag?: string;
}
export interface CommitResult {
  layer: string;
  /** The runtime's whole stack as a platform object (what `tag` names), or null for one layer. */
  platform: string | null;
  manifest: string;
  layers: string[];
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  tag: string | null;
  skipped: string[];
  /** True when scratch held nothing new and `tag` now names the runtime's stack as it was. */
  unchanged: boolean;
}

export interface StatusResult extends HealthResult {
  mountpoint: string;
  storage_root: string;
  libfuse: string;
  runtimes: RuntimeInfo[];
  backstore: BackstoreInfo;
  /** Per FUSE op: requests and latency quantiles in µs (histogram bucket bounds). */
  ops: Record<string, { count: number; p50_us: number; p95_us: number; p99_us: number }>;
  caches: Record<"ancestry" | "manifest", { hits: number; misses: number; hit_rate: number }>;
  open_handles: number;
  /** Background blob verification: blobs hashed intact, found corrupt, waiting. */
  blobs: { verified: number; corrupt: number; queued: number };
  fuse: {
    requests: number;
    errors: number;
    opens: number;
    lookups: number;
    /** Files copied into scratch, and how many of those were reflinks. */
    copy_ups: number;
    reflink_copy_ups: number;
  };
}

export interface MountParams {
  /** The root pid: this process and its descendants see the environment. */
  pid: number;
  /** Env spec; omitted with `rerun`. */
  spec?: string;
  /** Give the runtime a writable scratch dir. */
  edit?: boolean;
  /** Keep the runtime (scratch and record) after its root exits; implies `edit`. */
  keep?: boolean;
  name?: string;
  /** Re-enter the durable runtime with this id or name. */
  rerun?: string;
  /** Where scratch lives: `ramdisk:NAME` or an absolute directory (default: the storage root). */
  scratch?: string;
}
export interface MountResult {
  id: string;
  name: string | null;
  layers: string[];
  editable: boolean;
  durable: boolean;
}
export interface UnmountParams {
  pid?: number;
  id?: string;
}

export interface RpcRequest {
  jsonrpc: "2.0";
  id?: number | string | null;
  method: string;
  params?: unknown;
}
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}
export interface RpcResponse {
  jsonrpc: "2.0";
  id: number | string | null;
  result?: unknown;
  error?: RpcErrorObject;
}

/** Major part of a protocol version string. */
export function protocolMajor(v: string): number {
  return Number(v.split(".")[0]);
}
