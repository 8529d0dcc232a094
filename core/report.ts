/**
 * Opt-in error reporting to Sentry (README "Error reporting"). Only bugs are sent: exceptions
 * that are not an SpfsError (usage errors, unknown refs, FUSE or remote trouble are the user's to
 * fix and stay local). Off unless a DSN is configured (`SPFS_SENTRY_DSN` or `sentry_dsn`); the SDK
 * is imported only when there is something to send, so it costs nothing on the common path.
 */
import { SpfsError } from "./errors.ts";
import { VERSION } from "./version.ts";

/** Where a bug happened: the CLI command or service part, for the event's tags. */
export interface ReportContext {
  /** "cli" or "service". */
  component: "cli" | "service";
  /** The subcommand (`run`, `push`, …), the RPC method, or the FUSE op. */
  command: string;
}

/** Longest a process waits for the report to leave before exiting (ms). */
const FLUSH_MS = 2000;

type SentryModule = typeof import("@sentry/deno");
let sentry: Promise<SentryModule | undefined> | undefined;
let dsnInUse: string | undefined;

/** True for errors worth a report: a bug, not an outcome the user can act on. */
export function isBug(e: unknown): boolean {
  return !(e instanceof SpfsError);
}

/**
 * Names of environment variables whose values never leave the machine. Matched by name, so
 * `SPFS_REGISTRY_PASSWORD`, `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY` and the like are covered.
 */
const SECRET_NAME = /PASS|TOKEN|SECRET|KEY|AUTH|CRED|DSN|COOKIE|SESSION/i;

/**
 * Returns `text` with the user's home dir replaced by `~`, other users' home dirs by
 * `/home/<user>`, and every secret removed: values of secret-looking environment variables,
 * URL userinfo, and `Basic`/`Bearer` credentials.
 */
export function scrub(text: string, env: Record<string, string | undefined> = Deno.env.toObject()): string {
  let out = text;
  const secrets = Object.entries(env)
    .filter(([k, v]) => SECRET_NAME.test(k) && v && v.length >= 4)
    .map(([, v]) => v!)
    .sort((a, b) => b.length - a.length);
  for (const s of secrets) out = out.split(s).join("[redacted]");
  out = out.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 [redacted]")
    .replace(/(\w+:\/\/)[^\s/@"']+@/g, "$1[redacted]@");
  const home = env.HOME?.replace(/\/+$/, "");
  if (home && home !== "" && home !== "/") out = out.split(home).join("~");
  return out.replace(/\/(home|Users)\/[^/\s"':]+/g, "/$1/<user>");
}

/** Applies `scrub` to every string inside a JSON-like value. */
function scrubDeep<T>(v: T): T {
  if (typeof v === "string") return scrub(v) as T;
  if (Array.isArray(v)) return v.map(scrubDeep) as T;
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrubDeep(x)])) as T;
  }
  return v;
}

function load(dsn: string): Promise<SentryModule | undefined> {
  dsnInUse = dsn;
  return sentry ??= import("@sentry/deno").then((S) => {
    S.init({
      dsn,
      release: `spfs@${VERSION}`,
      // no global handlers, breadcrumbs of console lines or fetches, or host context: we send
      // exactly the error we were handed, with the tags below
      defaultIntegrations: false,
      sendDefaultPii: false,
      beforeSend(event) {
        delete event.server_name;
        delete event.user;
        delete event.request;
        delete event.breadcrumbs;
        return scrubDeep(event);
      },
    });
    S.setTags({ version: VERSION, platform: `${Deno.build.os}-${Deno.build.arch}` });
    return S;
  }).catch(() => undefined); // a broken reporter never turns into a second error
}

/**
 * Sends `e` to Sentry when a DSN is configured and `e` is a bug (see `isBug`); otherwise does
 * nothing. Resolves once the event has left or after 2 s; never throws.
 * @param dsn the configured DSN (`Config.sentryDsn`); undefined = reporting off
 */
export async function reportBug(e: unknown, ctx: ReportContext, dsn: string | undefined): Promise<void> {
  if (!dsn || !isBug(e)) return;
  if (dsnInUse && dsnInUse !== dsn) return; // one DSN per process
  const S = await load(dsn);
  if (!S) return;
  try {
    S.captureException(e, { tags: { component: ctx.component, command: ctx.command } });
    await S.flush(FLUSH_MS);
  } catch { /* reporting is best effort */ }
}

/**
 * True when `SPFS_DEBUG_CRASH` asks this part of spfs to fail with a bug, to check a DSN end to
 * end: `cli` (every command, after parsing its arguments), `service` (every RPC request but
 * `health` and `shutdown`, so it still starts and stops) or `fuse` (the FUSE worker's statfs op,
 * so `stat -f` on the mount fails with EIO while every other request is served).
 */
export function forcedCrash(where: "cli" | "service" | "fuse"): boolean {
  return Deno.env.get("SPFS_DEBUG_CRASH") === where;
}
