/**
 * A small OCI distribution client (distribution-spec v1.1): manifests, blobs, tags, with the auth
 * flows registries use — anonymous, Basic, and bearer tokens from the `WWW-Authenticate` challenge
 * (docker token spec) — and retries with backoff on 429, 5xx and dropped connections.
 * Errors name the registry and repository, never a credential.
 */
import { SpfsError } from "../../errors.ts";
import type { Digest } from "../../store/objects.ts";
import type { RemoteAddress } from "../address.ts";
import { type Credentials, credentialsFor } from "./auth.ts";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Retry policy: attempts per request and the first backoff (ms, doubled each time, ±25 %). */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
}

/** Default: 6 attempts, 250 ms doubling (about 8 s in all); `SPFS_REMOTE_RETRIES` overrides attempts. */
export function retryPolicy(): RetryPolicy {
  const n = Number(Deno.env.get("SPFS_REMOTE_RETRIES") ?? 6);
  return { attempts: Number.isInteger(n) && n >= 1 ? n : 6, baseMs: 250 };
}

type Scope = "pull" | "pull,push";

/** One repository on one registry. */
export class Registry {
  readonly addr: RemoteAddress & { kind: "oci" };
  readonly base: string;
  readonly retry: RetryPolicy;
  #creds?: Promise<Credentials | undefined>;
  /** Authorization header per scope, once a challenge was answered. */
  #auth = new Map<Scope, string>();

  constructor(addr: RemoteAddress & { kind: "oci" }, retry = retryPolicy()) {
    this.addr = addr;
    this.base = `${addr.scheme}://${addr.host}/v2/${addr.repository}`;
    this.retry = retry;
  }

  get label(): string {
    return `registry ${this.addr.host} (${this.addr.repository})`;
  }

  /**
   * Sends one request with auth and retries. `body` is a factory so a retry can send it again.
   * Resolves with any response whose status is in `ok` (default 2xx).
   * @throws SpfsError RemoteUnreachable, RemoteAuthRequired or RemoteError.
   */
  async request(
    method: string,
    path: string,
    o: {
      headers?: Record<string, string>;
      body?: () => BodyInit;
      scope?: Scope;
      ok?: number[];
      url?: string;
    } = {},
  ): Promise<Response> {
    const scope = o.scope ?? "pull";
    const url = o.url ?? `${this.base}${path}`;
    let answered = false;
    for (let attempt = 1;; attempt++) {
      let res: Response;
      try {
        const headers = new Headers(o.headers);
        const auth = this.#auth.get(scope);
        if (auth) headers.set("Authorization", auth);
        res = await fetch(url, { method, headers, body: o.body?.(), redirect: "follow" });
      } catch (e) {
        if (attempt >= this.retry.attempts) {
          throw new SpfsError(
            "RemoteUnreachable",
            `${this.label}: ${method} failed: ${(e as Error).message}`,
            {
              cause: e,
              hint:
                "check the address and that the registry is up; the next push or pull continues where this stopped",
            },
          );
        }
        await backoff(this.retry, attempt);
        continue;
      }
      if (res.status === 401 && !answered) {
        await res.body?.cancel();
        await this.#answer(res.headers.get("www-authenticate") ?? "", scope);
        answered = true;
        attempt--; // the challenge is not a failure
        continue;
      }
      if ((res.status === 429 || res.status >= 500) && attempt < this.retry.attempts) {
        await res.body?.cancel();
        await backoff(this.retry, attempt, res.headers.get("retry-after"));
        continue;
      }
      if ((o.ok ?? []).includes(res.status) || (res.status >= 200 && res.status < 300)) return res;
      throw await this.#failure(method, path, res);
    }
  }

  async #failure(method: string, path: string, res: Response): Promise<SpfsError> {
    const text = (await res.text().catch(() => "")).slice(0, 300);
    let detail = text;
    try {
      const errs = JSON.parse(text).errors as { code: string; message: string }[];
      detail = errs.map((e) => `${e.code}: ${e.message}`).join("; ");
    } catch { /* not an OCI error body */ }
    if (res.status === 401 || res.status === 403) {
      return new SpfsError(
        "RemoteAuthRequired",
        `${this.label} refused ${method} ${path} (${res.status}${detail ? `: ${detail}` : ""})`,
        { hint: this.#loginHint() },
      );
    }
    return new SpfsError("RemoteError", `${this.label}: ${method} ${path} answered ${res.status} ${detail}`, {
      hint: res.status >= 500 ? "the registry failed; retry later" : "check the remote's address",
    });
  }

  #loginHint(): string {
    return `log in with \`docker login ${this.addr.host}\`, or set SPFS_REGISTRY_USER and SPFS_REGISTRY_PASSWORD`;
  }

  #credentials(): Promise<Credentials | undefined> {
    return this.#creds ??= credentialsFor(this.addr.host);
  }

  /** Answers a 401 challenge: Basic with credentials, or fetches a bearer token for `scope`. */
  async #answer(challenge: string, scope: Scope): Promise<void> {
    const creds = await this.#credentials();
    const [scheme, params] = parseChallenge(challenge);
    if (scheme === "basic") {
      if (!creds) throw this.#needLogin();
      this.#auth.set(scope, `Basic ${btoa(`${creds.username}:${creds.password}`)}`);
      return;
    }
    if (scheme !== "bearer" || !params.realm) {
      throw new SpfsError(
        "RemoteError",
        `${this.label} sent an auth challenge spfs does not know: ${scheme}`,
      );
    }
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set("service", params.service);
    u.searchParams.set("scope", `repository:${this.addr.repository}:${scope}`);
    const headers: Record<string, string> = {};
    if (creds) headers.Authorization = `Basic ${btoa(`${creds.username}:${creds.password}`)}`;
    let res: Response;
    try {
      res = await fetch(u, { headers });
    } catch (e) {
      throw new SpfsError("RemoteUnreachable", `${this.label}: its token service ${u.host} is unreachable`, {
        cause: e,
      });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw creds
        ? new SpfsError("RemoteAuthRequired", `${this.label} refused the credentials from ${creds.source}`, {
          hint: this.#loginHint(),
        })
        : this.#needLogin();
    }
    if (!res.ok) throw await this.#failure("GET", "token", res);
    const tok = await res.json() as { token?: string; access_token?: string };
    const token = tok.token ?? tok.access_token;
    if (!token) throw new SpfsError("RemoteError", `${this.label}: the token service sent no token`);
    this.#auth.set(scope, `Bearer ${token}`);
  }

  #needLogin(): SpfsError {
    return new SpfsError("RemoteAuthRequired", `${this.label} needs credentials and none are configured`, {
      hint: this.#loginHint(),
    });
  }

  /** The manifest at a tag or digest, or undefined on 404. */
  async getManifest(ref: string): Promise<{ bytes: Uint8Array; digest: Digest } | undefined> {
    const res = await this.request("GET", `/manifests/${ref}`, {
      headers: { Accept: OCI_MANIFEST },
      ok: [404],
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { bytes, digest: res.headers.get("docker-content-digest") ?? "" };
  }

  /** True when a manifest exists at `ref` (HEAD). */
  async hasManifest(ref: string, scope: Scope = "pull"): Promise<boolean> {
    const res = await this.request("HEAD", `/manifests/${ref}`, {
      headers: { Accept: OCI_MANIFEST },
      ok: [404],
      scope,
    });
    return res.status !== 404;
  }

  /** Stores a manifest under a tag or digest. */
  async putManifest(ref: string, bytes: Uint8Array): Promise<void> {
    const res = await this.request("PUT", `/manifests/${ref}`, {
      headers: { "Content-Type": OCI_MANIFEST },
      body: () => bytes as BodyInit,
      scope: "pull,push",
    });
    await res.body?.cancel();
  }

  /** True when the repository has the blob (HEAD). */
  async hasBlob(digest: Digest, scope: Scope = "pull"): Promise<boolean> {
    const res = await this.request("HEAD", `/blobs/${digest}`, { ok: [404], scope });
    return res.status !== 404;
  }

  /** A blob's bytes as a stream (the caller verifies them). */
  async getBlob(digest: Digest): Promise<ReadableStream<Uint8Array>> {
    const res = await this.request("GET", `/blobs/${digest}`);
    if (!res.body) throw new SpfsError("RemoteError", `${this.label}: blob ${digest} came with no body`);
    return res.body;
  }

  /**
   * Uploads a blob unless the repository has it: tries a cross-repository mount from each of
   * `mountFrom` (same registry), then a monolithic POST + PUT with `Content-Type:
   * application/octet-stream`. `body` is a factory so a retry can resend. Returns false if skipped.
   */
  async putBlob(
    digest: Digest,
    size: number,
    body: () => BodyInit,
    mountFrom: string[] = [],
  ): Promise<boolean> {
    if (await this.hasBlob(digest, "pull,push")) return false;
    let location: string | undefined;
    for (const from of mountFrom) {
      const q = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
      const res = await this.request("POST", `/blobs/uploads/${q}`, { scope: "pull,push" });
      await res.body?.cancel();
      if (res.status === 201) return true;
      location = res.headers.get("location") ?? undefined;
      break;
    }
    if (!location) {
      const res = await this.request("POST", "/blobs/uploads/", { scope: "pull,push" });
      await res.body?.cancel();
      location = res.headers.get("location") ?? undefined;
      if (!location) throw new SpfsError("RemoteError", `${this.label}: upload started without a Location`);
    }
    const u = new URL(location, this.base);
    u.searchParams.set("digest", digest);
    const res = await this.request("PUT", "", {
      url: u.href,
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
      body,
      scope: "pull,push",
    });
    await res.body?.cancel();
    return true;
  }

  /** Every tag of the repository (follows `Link` pagination). */
  async listTags(): Promise<string[]> {
    const out: string[] = [];
    let url: string | undefined = `${this.base}/tags/list?n=1000`;
    while (url) {
      const res: Response = await this.request("GET", "/tags/list", { url, ok: [404] });
      if (res.status === 404) {
        await res.body?.cancel();
        return out;
      }
      const v = await res.json() as { tags?: string[] | null };
      out.push(...(v.tags ?? []));
      const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "");
      url = next ? new URL(next[1], this.base).href : undefined;
    }
    return out;
  }
}

/** Splits `Bearer realm="…",service="…"` into the scheme (lowercase) and its parameters. */
export function parseChallenge(h: string): [string, Record<string, string>] {
  const m = /^\s*(\w+)\s*(.*)$/.exec(h);
  if (!m) return ["", {}];
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))/g)) {
    params[p[1].toLowerCase()] = p[2] ?? p[3];
  }
  return [m[1].toLowerCase(), params];
}

/** Sleeps before retry `attempt` (1-based): Retry-After when the server sent one, else doubling ±25 %. */
export function backoff(p: RetryPolicy, attempt: number, retryAfter?: string | null): Promise<void> {
  const after = Number(retryAfter);
  const ms = Number.isFinite(after) && after > 0
    ? Math.min(after * 1000, 30_000)
    : p.baseMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
  return new Promise((r) => setTimeout(r, ms));
}
