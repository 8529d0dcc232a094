/**
 * Registry credentials, looked up in the order a user expects: `SPFS_REGISTRY_USER` and
 * `SPFS_REGISTRY_PASSWORD`, then Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`): `credHelpers[host]`, `auths[host]`, then `credsStore`. Helpers are
 * `docker-credential-NAME get` with the host on stdin, run through the command runner
 * (docker-credential-helpers protocol). Secrets stay in memory: nothing here logs or prints them.
 */
import { join } from "node:path";
import { runner } from "../../runner.ts";

/** A username and its password or token. */
export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for messages (never the secret). */
  source: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function dockerConfigPath(): string {
  const dir = Deno.env.get("DOCKER_CONFIG") ?? join(Deno.env.get("HOME") ?? "/", ".docker");
  return join(dir, "config.json");
}

function readDockerConfig(path: string): DockerConfig {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return {};
  }
}

/** The `auths` entry for a host: keys may be bare or carry a scheme and `/v1/`-style path. */
function authsEntry(cfg: DockerConfig, host: string) {
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    if (k.replace(/^https?:\/\//, "").replace(/\/.*$/, "") === host) return v;
  }
  return undefined;
}

/** Runs `docker-credential-<helper> get`; undefined when it has nothing for the host. */
async function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  const r = await runner().run([`docker-credential-${helper}`, "get"], { stdin: host, timeoutMs: 30_000 });
  if (r.code !== 0) return undefined;
  try {
    const v = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
    if (v.Secret) {
      return { username: v.Username ?? "", password: v.Secret, source: `docker-credential-${helper}` };
    }
  } catch { /* not JSON: treat as none */ }
  return undefined;
}

/** Credentials for a registry host (`host[:port]`), or undefined for anonymous access. */
export async function credentialsFor(host: string): Promise<Credentials | undefined> {
  const user = Deno.env.get("SPFS_REGISTRY_USER");
  const pass = Deno.env.get("SPFS_REGISTRY_PASSWORD");
  if (user !== undefined && pass !== undefined) {
    return { username: user, password: pass, source: "SPFS_REGISTRY_USER/SPFS_REGISTRY_PASSWORD" };
  }
  const path = dockerConfigPath();
  const cfg = readDockerConfig(path);
  const helper = cfg.credHelpers?.[host];
  if (helper) return await fromHelper(helper, host);
  const a = authsEntry(cfg, host);
  if (a?.auth) {
    const plain = atob(a.auth);
    const i = plain.indexOf(":");
    if (i > 0) return { username: plain.slice(0, i), password: plain.slice(i + 1), source: path };
  }
  if (a?.username && a.password) return { username: a.username, password: a.password, source: path };
  if (cfg.credsStore) return await fromHelper(cfg.credsStore, host);
  return undefined;
}
