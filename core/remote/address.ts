/**
 * Remote addresses: `oci://host[:port]/namespace/repo` (an OCI registry repository) and
 * `file:///abs/path` (a shared directory). HTTPS unless the host is loopback or the remote says
 * `insecure = true`.
 */
import type { Config, RemoteConfig } from "../config.ts";
import { SpfsError } from "../errors.ts";

export type RemoteAddress =
  | { kind: "oci"; name: string; address: string; host: string; repository: string; scheme: "http" | "https" }
  | { kind: "file"; name: string; address: string; path: string };

const LOOPBACK = /^(localhost|127(\.\d+){3}|\[::1\])(:\d+)?$/;
// distribution/reference: path components of lowercase alphanumerics joined by separators
const REPO_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/**
 * Parses one remote's address.
 * @throws SpfsError UsageError saying what is wrong and showing a valid address.
 */
export function parseRemote(name: string, r: RemoteConfig): RemoteAddress {
  const bad = (why: string) =>
    new SpfsError("UsageError", `remote "${name}": ${why}`, {
      hint: 'use address = "oci://registry.example.com/team/spfs" or "file:///mnt/shared/spfs"',
    });
  const a = r.address;
  if (a.startsWith("file://")) {
    const path = decodeURIComponent(a.slice(7));
    if (!path.startsWith("/")) throw bad(`"${a}" is not an absolute file:/// path`);
    return { kind: "file", name, address: a, path: path.replace(/\/+$/, "") || "/" };
  }
  if (!a.startsWith("oci://")) throw bad(`"${a}" is neither oci://… nor file:///…`);
  const rest = a.slice(6).replace(/\/+$/, "");
  const slash = rest.indexOf("/");
  if (slash <= 0) throw bad(`"${a}" names no repository after the host`);
  const host = rest.slice(0, slash);
  const repository = rest.slice(slash + 1);
  if (!REPO_RE.test(repository)) {
    throw bad(`"${repository}" is not a valid OCI repository name (lowercase letters, digits, . _ - and /)`);
  }
  const loopback = LOOPBACK.test(host);
  return {
    kind: "oci",
    name,
    address: a,
    host,
    repository,
    scheme: loopback || r.insecure ? "http" : "https",
  };
}

/**
 * The configured remote called `name` (default `origin`).
 * @throws SpfsError UsageError when no such remote is configured, with the command that adds one.
 */
export function remoteNamed(cfg: Config, name = "origin"): RemoteAddress {
  const r = cfg.remotes[name];
  if (!r) {
    const known = Object.keys(cfg.remotes);
    throw new SpfsError("UsageError", `no remote named "${name}" in ${cfg.configFile}`, {
      hint: known.length
        ? `known remotes: ${known.join(", ")}; or add one: spfs remote add ${name} oci://HOST/REPO`
        : `add one: spfs remote add ${name} oci://HOST/REPO (or file:///PATH)`,
    });
  }
  return parseRemote(name, r);
}
