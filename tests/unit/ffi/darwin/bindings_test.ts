/**
 * Every libSystem binding against its C prototype, copied from the xnu-11417.101.15 / Libc headers
 * (sys/stat.h, unistd.h, sys/signal.h, stdio.h, fcntl.h, sys/xattr.h, sys/clonefile.h, sys/event.h, poll.h,
 * libproc.h, sys/mount.h, sys/errno.h), for arm64 and x86_64; and the rule that no variadic
 * argument is ever passed through FFI on macOS.
 */
import assert from "node:assert/strict";
import { DARWIN_FS, libSystemSymbols } from "../../../../ffi/darwin/libsystem.ts";
import { DARWIN_ERRNOS } from "../../../../ffi/errno.ts";
import { openFile, renamexFlags } from "../../../../ffi/fsops.ts";
import { O_CREAT, O_RDONLY, RENAME_EXCHANGE, RENAME_NOREPLACE } from "../../../../ffi/sys.ts";

/** The C prototypes, as the headers spell them (parameter names dropped). */
const PROTOTYPES: Record<string, string> = {
  proc_pidinfo: "int proc_pidinfo(int, int, uint64_t, void *, int)",
  clonefile: "int clonefile(const char *, const char *, uint32_t)",
  statfs: "int statfs(const char *, struct statfs *)",
  __error: "int * __error(void)",
  open: "int open(const char *, int, ...)",
  openat: "int openat(int, const char *, int, ...)",
  dup: "int dup(int)",
  close: "int close(int)",
  pread: "ssize_t pread(int, void *, size_t, off_t)",
  pwrite: "ssize_t pwrite(int, const void *, size_t, off_t)",
  fstat: "int fstat(int, struct stat *)",
  fsync: "int fsync(int)",
  flock: "int flock(int, int)",
  read: "ssize_t read(int, void *, size_t)",
  write: "ssize_t write(int, const void *, size_t)",
  write_off_thread: "ssize_t write(int, const void *, size_t)",
  lstat: "int lstat(const char *, struct stat *)",
  mkdir: "int mkdir(const char *, mode_t)",
  rmdir: "int rmdir(const char *)",
  unlink: "int unlink(const char *)",
  symlink: "int symlink(const char *, const char *)",
  link: "int link(const char *, const char *)",
  readlink: "ssize_t readlink(const char *, char *, size_t)",
  mknod: "int mknod(const char *, mode_t, dev_t)",
  chmod: "int chmod(const char *, mode_t)",
  fchmod: "int fchmod(int, mode_t)",
  lchown: "int lchown(const char *, uid_t, gid_t)",
  fchown: "int fchown(int, uid_t, gid_t)",
  truncate: "int truncate(const char *, off_t)",
  ftruncate: "int ftruncate(int, off_t)",
  utimensat: "int utimensat(int, const char *, const struct timespec *, int)",
  futimens: "int futimens(int, const struct timespec *)",
  renameatx_np: "int renameatx_np(int, const char *, int, const char *, unsigned int)",
  getxattr: "ssize_t getxattr(const char *, const char *, void *, size_t, u_int32_t, int)",
  setxattr: "int setxattr(const char *, const char *, const void *, size_t, u_int32_t, int)",
  listxattr: "ssize_t listxattr(const char *, char *, size_t, int)",
  removexattr: "int removexattr(const char *, const char *, int)",
  poll_here: "int poll(struct pollfd *, nfds_t, int)",
  pipe: "int pipe(int *)",
  kqueue: "int kqueue(void)",
  kevent: "int kevent(int, const struct kevent *, int, struct kevent *, int, const struct timespec *)",
  kevent_wait: "int kevent(int, const struct kevent *, int, struct kevent *, int, const struct timespec *)",
  execvp: "int execvp(const char *, char * const *)",
  // sys/signal.h spells it `void (*signal(int, void (*)(int)))(int)`; sig_t is that handler type
  signal: "sig_t signal(int, sig_t)",
};

/** Darwin LP64 typedefs (sys/_types.h, sys/_types/*.h) as Deno FFI types. */
const C_TYPES: Record<string, string[]> = {
  int: ["i32"],
  "unsigned int": ["u32"],
  uint32_t: ["u32"],
  u_int32_t: ["u32"],
  uint64_t: ["u64"],
  size_t: ["usize"],
  ssize_t: ["isize"],
  off_t: ["i64"],
  mode_t: ["u16"], // __darwin_mode_t is __uint16_t
  dev_t: ["i32"], // __darwin_dev_t is __int32_t
  uid_t: ["u32"],
  gid_t: ["u32"],
  nfds_t: ["u32"], // unsigned int on Darwin (unsigned long on Linux)
  sig_t: ["pointer"], // typedef void (*sig_t)(int)
};
const ffiTypes = (c: string) => c.includes("*") ? ["buffer", "pointer"] : C_TYPES[c];

function parse(proto: string) {
  const m = /^(.+?)\s*\b(\w+)\((.*)\)$/.exec(proto)!;
  const params = m[3] === "void" ? [] : m[3].split(",").map((p) => p.trim());
  return { result: m[1].trim(), name: m[2], params, variadic: params.at(-1) === "..." };
}

for (const arch of ["aarch64", "x86_64"] as const) {
  Deno.test(`${arch}: every libSystem binding matches its header prototype`, () => {
    const syms = libSystemSymbols(arch) as Record<string, Deno.ForeignFunction & { name?: string }>;
    assert.deepEqual(
      Object.keys(syms).sort(),
      Object.keys(PROTOTYPES).sort(),
      "a binding without a prototype",
    );
    for (const [key, def] of Object.entries(syms)) {
      const p = parse(PROTOTYPES[key]);
      const symbol = def.name ?? key;
      assert.equal(symbol.replace(/\$INODE64$/, ""), p.name, key);
      const fixed = p.variadic ? p.params.slice(0, -1) : p.params;
      assert.equal(
        def.parameters.length,
        fixed.length,
        `${key}: ${def.parameters.length} args for ${PROTOTYPES[key]}`,
      );
      def.parameters.forEach((t, i) => {
        assert.ok(ffiTypes(fixed[i])?.includes(t as string), `${key} arg ${i}: ${t} for ${fixed[i]}`);
      });
      const r = p.result.includes("*") ? ["pointer"] : ffiTypes(p.result);
      assert.ok(r?.includes(def.result as string), `${key} result: ${def.result} for ${p.result}`);
    }
    // struct stat with 64-bit inodes: x86_64 still names it $INODE64 (sys/cdefs.h)
    const inode64 = ["fstat", "lstat", "statfs"];
    for (const k of inode64) assert.equal(syms[k].name, arch === "x86_64" ? `${k}$INODE64` : k);
  });
}

Deno.test("no variadic argument is passed through FFI on macOS", () => {
  for (const arch of ["aarch64", "x86_64"] as const) {
    const syms = libSystemSymbols(arch) as Record<string, Deno.ForeignFunction>;
    const variadic = Object.keys(syms).filter((k) => parse(PROTOTYPES[k]).variadic);
    // open(2) and openat(2) are the only variadic functions bound, with their fixed arguments only
    assert.deepEqual(variadic, ["open", "openat"]);
    assert.deepEqual(syms.open.parameters, ["buffer", "i32"]);
    assert.deepEqual(syms.openat.parameters, ["i32", "buffer", "i32"]);
    for (const never of ["fcntl", "ioctl", "open3", "syscall", "fcopyfile"]) {
      assert.ok(!(never in syms), `${never} must not be bound on macOS`);
    }
  }
  // and open is never asked to create: the mode would be a variadic argument
  assert.throws(() => openFile("/nonexistent", O_RDONLY | O_CREAT), /never creates/);
  // no caller in the overlay or the store passes O_CREAT to libc().open or libc().openat
  const src = [
    "ffi/fsops.ts",
    "core/fs/blobs.ts",
    "core/fs/overlay/overlay.ts",
    "core/fs/overlay/names.ts",
    "core/fs/overlay/upper.ts",
  ].map((f) => Deno.readTextFileSync(new URL(`../../../../${f}`, import.meta.url)));
  for (const text of src) {
    for (const call of text.matchAll(/libc\(\)\.open(?:at)?\(([^;]*)\);/g)) {
      assert.ok(!call[1].replace(/~\([^)]*\)/g, "").includes("O_CREAT"), call[0]);
    }
    assert.ok(!/\.open3\(/.test(text), "open3 (open with a mode) is gone");
  }
});

Deno.test("Darwin constants of the overlay's calls match xnu's headers", () => {
  assert.equal(DARWIN_FS.AT_FDCWD, -2); // sys/fcntl.h
  assert.equal(DARWIN_FS.AT_SYMLINK_NOFOLLOW, 0x20);
  assert.equal(DARWIN_FS.RENAME_SWAP, 0x2); // sys/stdio.h
  assert.equal(DARWIN_FS.RENAME_EXCL, 0x4);
  assert.equal(DARWIN_FS.XATTR_NOFOLLOW, 0x1); // sys/xattr.h
  assert.equal(DARWIN_FS.XATTR_CREATE, 0x2);
  assert.equal(DARWIN_FS.XATTR_REPLACE, 0x4);
  assert.equal(DARWIN_FS.UTIME_NOW, -1n); // sys/stat.h
  assert.equal(DARWIN_FS.UTIME_OMIT, -2n);
  assert.equal(DARWIN_FS.CLONE_NOFOLLOW, 0x1); // sys/clonefile.h
  assert.equal(DARWIN_FS.CLONE_NOOWNERCOPY, 0x2);
  assert.equal(DARWIN_ERRNOS.ENOATTR, 93); // sys/errno.h: a missing xattr
  assert.equal(DARWIN_ERRNOS.ENOTSUP, 45);
  // renameat2 flags (what the overlay speaks) → renameatx_np flags
  assert.equal(renamexFlags(0), 0);
  assert.equal(renamexFlags(RENAME_NOREPLACE), DARWIN_FS.RENAME_EXCL);
  assert.equal(renamexFlags(RENAME_EXCHANGE), DARWIN_FS.RENAME_SWAP);
});
