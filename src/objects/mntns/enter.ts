// A helper of cryo's (a seed) made a stand-in of the tree: in one of its mount
// namespaces and that namespace's root, to do there what only a process inside
// may (bind a unix name, set a mount's attributes).
import { CLONE, NR, O } from '../../sys/index.js';
import type { Remote } from '../../tracer/remote.js';

const cstr = (s: string) => Buffer.from(`${s}\0`);

/**
 * Make the helper `rem` (a seed of cryo's) a stand-in of the tree: into the
 * mount namespace of task `pid` (cryo's pid) and its root.
 */
export function enterTreeRoot(rem: Remote, pid: number): void {
  const ns = rem.call('open(ns/mnt)', NR.open, rem.put(cstr(`/proc/${pid}/ns/mnt`)), O.RDONLY | O.CLOEXEC);
  // Opened before the helper moves: the task's root, which the images' paths are from.
  const root = rem.call('open(root)', NR.open, rem.put(cstr(`/proc/${pid}/root`)), O.PATH | O.DIRECTORY | O.CLOEXEC);
  enterAt(rem, ns, root);
}

/** In the helper: into mount namespace `ns` and root `root` (its fds, closed after). */
function enterAt(rem: Remote, ns: bigint, root: bigint): void {
  rem.call('setns(mnt)', NR.setns, ns, CLONE.NEWNS);
  rem.call('fchdir(root)', NR.fchdir, root);
  rem.call('chroot(.)', NR.chroot, rem.put(cstr('.')));
  rem.call('close', NR.close, ns);
  rem.call('close', NR.close, root);
}

/**
 * Task `rem` joins the namespace of kind `flag` (CLONE_NEW*) open at cryo's fd
 * `cryoFd`: setns with its copy, taken through its fd of cryo's pidfd.
 */
export function joinCryoNs(rem: Remote, cryoPidfd: bigint, cryoFd: number, flag: number, what: string): void {
  const fd = rem.call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, cryoFd, 0);
  try {
    rem.call(`setns(${what})`, NR.setns, fd, flag);
  } finally {
    rem.call('close', NR.close, fd);
  }
}

/**
 * The same, into another mount namespace of the tree, by cryo's fds of it and of
 * its root (`made`), lent to the helper by pidfd_getfd.
 */
export function enterMntNs(rem: Remote, made: { ns: number; root: number }): void {
  const cryo = rem.call('pidfd_open(cryo)', NR.pidfd_open, process.pid, 0);
  try {
    const ns = rem.call('pidfd_getfd(ns)', NR.pidfd_getfd, cryo, made.ns, 0);
    const root = rem.call('pidfd_getfd(root)', NR.pidfd_getfd, cryo, made.root, 0);
    enterAt(rem, ns, root);
  } finally {
    rem.call('close', NR.close, cryo);
  }
}
