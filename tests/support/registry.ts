/**
 * A real OCI registry for tests and benchmarks: Debian's `docker-registry` (CNCF distribution 2.8)
 * on 127.0.0.1 with its own config and temp storage, and optionally a small token server for the
 * bearer flow (the registry's `silly` auth challenges with our realm; the token server checks
 * Basic credentials and hands out tokens).
 */
import { join } from "node:path";

/** A free TCP port on loopback. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Credentials the token server accepts. */
export const TOKEN_USER = "ci-bot";
export const TOKEN_PASSWORD = "s3cret-Pa55word";

export class TestRegistry {
  readonly dir: string;
  readonly port: number;
  #proc?: Deno.ChildProcess;
  #tokens?: Deno.HttpServer;
  /** Requests the token server saw, with whether the credentials were right. */
  readonly tokenRequests: { scope: string; authorized: boolean }[] = [];
  /** With `accessLog`: each request the registry answered, as "METHOD /path STATUS". */
  readonly requests: string[] = [];
  #accessLog = false;
  #pump?: Promise<void>;

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
  }

  /** `127.0.0.1:PORT` */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** An `oci://` address for `repo` on this registry. */
  address(repo = "team/spfs"): string {
    return `oci://${this.host}/${repo}`;
  }

  /**
   * Starts a registry; with `auth`, it requires a bearer token from a token server started here;
   * with `accessLog`, the requests it answers are kept in `requests`.
   * @throws Error when docker-registry is missing or does not answer within 15 s.
   */
  static async start(opts: { auth?: boolean; accessLog?: boolean } = {}): Promise<TestRegistry> {
    const r = new TestRegistry(Deno.makeTempDirSync({ prefix: "spfs-registry-" }), freePort());
    r.#accessLog = opts.accessLog ?? false;
    let auth = "";
    if (opts.auth) {
      const tokenPort = freePort();
      r.#tokens = Deno.serve({ hostname: "127.0.0.1", port: tokenPort, onListen() {} }, (req) => {
        const ok = req.headers.get("authorization") === `Basic ${btoa(`${TOKEN_USER}:${TOKEN_PASSWORD}`)}`;
        r.tokenRequests.push({ scope: new URL(req.url).searchParams.get("scope") ?? "", authorized: ok });
        if (!ok) return new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', { status: 401 });
        return Response.json({ token: `tok-${crypto.randomUUID()}` });
      });
      auth = `auth:\n  silly:\n    realm: http://127.0.0.1:${tokenPort}/token\n    service: spfs-test\n`;
    }
    Deno.writeTextFileSync(
      join(r.dir, "config.yml"),
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: ${!r.#accessLog}\nstorage:\n` +
        `  filesystem:\n    rootdirectory: ${join(r.dir, "data")}\n  delete:\n    enabled: true\n` +
        `http:\n  addr: ${r.host}\n${auth}`,
    );
    await r.restart();
    return r;
  }

  /** Starts (again) the registry process on the same port and storage. */
  async restart(): Promise<void> {
    this.#proc = new Deno.Command("docker-registry", {
      args: ["serve", join(this.dir, "config.yml")],
      stdout: this.#accessLog ? "piped" : "null",
      stderr: "null",
    }).spawn();
    if (this.#accessLog) this.#pump = this.#keepRequests(this.#proc.stdout);
    for (let i = 0; i < 600; i++) {
      try {
        const res = await fetch(`http://${this.host}/v2/`);
        await res.body?.cancel();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    throw new Error(`docker-registry did not answer on ${this.host}`);
  }

  /** Reads the access log (combined log format) into `requests` until the registry exits. */
  async #keepRequests(out: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of out.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const l of lines) {
        const m = /"(\w+) (\S+) HTTP\/[\d.]+" (\d+)/.exec(l);
        if (m) this.requests.push(`${m[1]} ${m[2]} ${m[3]}`);
      }
    }
  }

  /** SIGKILLs the registry (a crash mid-transfer); storage stays for restart(). */
  async kill(): Promise<void> {
    try {
      this.#proc?.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#proc?.status;
    await this.#pump; // the access log up to the kill
  }

  /** The file holding a blob in the registry's storage (to damage it). */
  blobPath(digest: string): string {
    const hex = digest.slice(7);
    return join(this.dir, "data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
  }

  /** Every blob file in the registry's storage, biggest first. */
  blobs(): { digest: string; size: number }[] {
    const root = join(this.dir, "data/docker/registry/v2/blobs/sha256");
    const out: { digest: string; size: number }[] = [];
    for (const a of Deno.readDirSync(root)) {
      for (const b of Deno.readDirSync(join(root, a.name))) {
        out.push({
          digest: `sha256:${b.name}`,
          size: Deno.statSync(join(root, a.name, b.name, "data")).size,
        });
      }
    }
    return out.sort((x, y) => y.size - x.size);
  }

  async stop(): Promise<void> {
    await this.kill();
    await this.#tokens?.shutdown();
    Deno.removeSync(this.dir, { recursive: true });
  }
}
