/**
 * Unix socket addresses of any length. `sun_path` holds at most 107 bytes on Linux (103 on
 * macOS), so a socket in a deep runtime dir cannot be bound or reached by its path. On Linux the
 * same socket is reached through an open fd of its directory: `/proc/self/fd/N/name` is short and
 * bind(2)/connect(2) resolve it like any path.
 */
import { SpfsError } from "../errors.ts";
import { platform } from "./facts.ts";

const dirFds = new Map<string, number>();

/**
 * A path for bind/connect that names the Unix socket `path` and fits in `sun_path`: `path` itself
 * when short enough, else (Linux) `/proc/self/fd/N/<name>` through an `O_PATH` fd of its directory
 * that stays open for this process's life, one per directory. The FFI bindings load only for a
 * long path, so a CLI with a short one starts without them.
 * @throws SpfsError UsageError when the path is too long and this OS has no such alias, or its
 *   directory cannot be opened.
 */
export async function socketAddress(path: string): Promise<string> {
  const max = platform.socketPathMax;
  if (new TextEncoder().encode(path).length <= max) return path;
  // `path` comes from runtimePaths: absolute and normalised, so its last "/" splits dir and name
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash) || "/", name = path.slice(slash + 1);
  const tooLong = (why: string) =>
    new SpfsError("UsageError", `the socket path ${path} is too long for a Unix socket (${why})`, {
      hint: "set SPFS_RUNTIME_DIR to a shorter directory",
      details: { path, max_bytes: max },
    });
  if (!platform.procFdPaths) throw tooLong(`over ${max} bytes`);
  let fd = dirFds.get(dir);
  if (fd === undefined) {
    const { cstr, errno, libc, O_CLOEXEC, O_DIRECTORY, O_PATH, O_RDONLY } = await import("../../ffi/sys.ts");
    fd = libc().open(cstr(dir), O_PATH | O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw tooLong(`and its directory cannot be opened: errno ${errno()}`);
    dirFds.set(dir, fd);
  }
  const alias = `/proc/self/fd/${fd}/${name}`;
  if (new TextEncoder().encode(alias).length > max) throw tooLong(`its name alone is over ${max} bytes`);
  return alias;
}
