/**
 * errno values spfs answers FUSE requests with and tests for, per OS, chosen once at load.
 * Sources: Linux asm-generic/errno-base.h + errno.h (linux-libc-dev 6.1); Darwin xnu-11417
 * bsd/sys/errno.h. The low numbers agree; ENOTEMPTY, ENOTSUP, EDQUOT, EILSEQ and the xattr "no such
 * attribute" code differ, and a wrong one reaches the caller as a different error.
 */
import { os } from "./os.ts";

/** The errno names spfs uses. */
export interface Errnos {
  EPERM: number;
  ENOENT: number;
  ESRCH: number;
  EINTR: number;
  EIO: number;
  ENXIO: number;
  EBADF: number;
  EAGAIN: number;
  ENOMEM: number;
  EACCES: number;
  EBUSY: number;
  ENOTTY: number;
  EEXIST: number;
  EXDEV: number;
  ENOTDIR: number;
  EISDIR: number;
  EINVAL: number;
  ENFILE: number;
  EMFILE: number;
  ENOSPC: number;
  EROFS: number;
  ERANGE: number;
  ENAMETOOLONG: number;
  ELOOP: number;
  ENOSYS: number;
  ENOTEMPTY: number;
  /** getxattr of a missing attribute: ENODATA on Linux (= ENOATTR), ENOATTR on Darwin. */
  ENOATTR: number;
  /** EOPNOTSUPP/ENOTSUP (the same value on both). */
  ENOTSUP: number;
  EDQUOT: number;
  /** A name that is not valid UTF-8 (APFS answers it; spfs too, see worker/context.ts `name`). */
  EILSEQ: number;
}

export const LINUX_ERRNOS: Errnos = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  ENOTTY: 25,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ELOOP: 40,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ENOATTR: 61,
  ENOTSUP: 95,
  EDQUOT: 122,
  EILSEQ: 84,
};

export const DARWIN_ERRNOS: Errnos = {
  ...LINUX_ERRNOS,
  EAGAIN: 35,
  ENAMETOOLONG: 63,
  ELOOP: 62,
  ENOSYS: 78,
  ENOTEMPTY: 66,
  ENOATTR: 93,
  ENOTSUP: 45,
  EDQUOT: 69,
  EILSEQ: 92,
};

/** The host's errno values. */
export const E: Readonly<Errnos> = Object.freeze(os === "darwin" ? DARWIN_ERRNOS : LINUX_ERRNOS);

/**
 * The symbolic name of errno `n` on this host ("errno N" when spfs has no name for it). Linux
 * names 95 EOPNOTSUPP (ENOTSUP is its alias there); Darwin keeps the two apart.
 */
export function errnoName(n: number): string {
  if (n === E.ENOTSUP && os === "linux") return "EOPNOTSUPP";
  return Object.entries(E).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

/**
 * errnos of resource exhaustion: a request that meets one gets that errno back rather than EIO, so
 * the caller can tell "out of fds/space/memory" from damage.
 */
export const RESOURCE_ERRNOS: ReadonlySet<number> = new Set([
  E.ENOMEM,
  E.ENFILE,
  E.EMFILE,
  E.ENOSPC,
  E.EDQUOT,
]);
