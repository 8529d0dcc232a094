/**
 * Typed errors shared by every command. Each carries a stable `code`, a one-line `hint` telling the
 * user how to fix it, and the process exit code the CLI uses (documented in README.md "Exit codes").
 */

/** Exit codes; README.md documents them. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  fuseUnavailable: 4,
  serviceUnavailable: 5,
  storage: 6,
  /** A remote failed: unreachable, refused our credentials, or answered outside the protocol. */
  remote: 7,
  /** `spfs run`: the command could not be started (like env(1)). */
  cannotExecute: 126,
  commandNotFound: 127,
} as const;

export type ErrorCode =
  | "UsageError"
  | "UnknownRef"
  | "AmbiguousRef"
  | "InvalidTagName"
  | "NotADirectory"
  | "PathNotFound"
  | "FuseNotInstalled"
  | "FuseNotLoaded"
  | "MountPointMissing"
  | "MountFailed"
  | "ServiceNotRunning"
  | "ServiceConnectionFailed"
  | "ServiceStuck"
  | "ServiceStartFailed"
  | "ServiceAlreadyRunning"
  | "ProtocolMismatch"
  | "RpcError"
  | "CorruptObject"
  | "StorageError"
  | "CommandNotFound"
  | "RuntimeNotFound"
  | "RuntimeInUse"
  | "RuntimeBusy"
  | "NothingToCommit"
  | "NotEditable"
  | "StorageFull"
  | "DatabaseCorrupt"
  | "ProcessNotFound"
  | "RamdiskNotFound"
  | "RamdiskBusy"
  | "PermissionDenied"
  | "ServiceManagerFailed"
  | "RemoteUnreachable"
  | "RemoteAuthRequired"
  | "RemoteError";

const exitFor: Record<ErrorCode, number> = {
  UsageError: ExitCode.usage,
  UnknownRef: ExitCode.notFound,
  AmbiguousRef: ExitCode.usage,
  InvalidTagName: ExitCode.usage,
  NotADirectory: ExitCode.usage,
  PathNotFound: ExitCode.notFound,
  FuseNotInstalled: ExitCode.fuseUnavailable,
  FuseNotLoaded: ExitCode.fuseUnavailable,
  MountPointMissing: ExitCode.fuseUnavailable,
  MountFailed: ExitCode.fuseUnavailable,
  ServiceNotRunning: ExitCode.serviceUnavailable,
  ServiceConnectionFailed: ExitCode.serviceUnavailable,
  ServiceStuck: ExitCode.serviceUnavailable,
  ServiceStartFailed: ExitCode.serviceUnavailable,
  ServiceAlreadyRunning: ExitCode.failure,
  ProtocolMismatch: ExitCode.serviceUnavailable,
  RpcError: ExitCode.failure,
  CorruptObject: ExitCode.storage,
  StorageError: ExitCode.storage,
  CommandNotFound: ExitCode.commandNotFound,
  RuntimeNotFound: ExitCode.notFound,
  RuntimeInUse: ExitCode.failure,
  RuntimeBusy: ExitCode.failure,
  NothingToCommit: ExitCode.failure,
  NotEditable: ExitCode.usage,
  StorageFull: ExitCode.storage,
  DatabaseCorrupt: ExitCode.storage,
  ProcessNotFound: ExitCode.notFound,
  RamdiskNotFound: ExitCode.notFound,
  RamdiskBusy: ExitCode.failure,
  PermissionDenied: ExitCode.failure,
  ServiceManagerFailed: ExitCode.failure,
  RemoteUnreachable: ExitCode.remote,
  RemoteAuthRequired: ExitCode.remote,
  RemoteError: ExitCode.remote,
};

/** An error a user can act on: what happened (`message`), how to fix it (`hint`). */
export class SpfsError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly exitCode: number;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = code;
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
    this.exitCode = exitFor[code];
  }

  /** Plain object for `--json` output and RPC error `data`. */
  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

/** Rebuilds an SpfsError from its JSON form (for example an RPC error's `data`). */
export function spfsErrorFrom(data: unknown): SpfsError | undefined {
  if (!data || typeof data !== "object") return undefined;
  const d = data as Record<string, unknown>;
  if (typeof d.code !== "string" || !(d.code in exitFor) || typeof d.message !== "string") return undefined;
  return new SpfsError(d.code as ErrorCode, d.message, {
    hint: typeof d.hint === "string" ? d.hint : undefined,
    details: d.details as Record<string, unknown> | undefined,
  });
}
