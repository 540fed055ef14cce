// Names of unix sockets of a tree with its own mount namespace, on restore.
// Every path is the tree's: cryo reaches it from the tree's root (openat2
// RESOLVE_IN_ROOT, then *at calls on the directory), never through its own
// view, where a name would be a file of the host. bind(2) alone cannot be done
// that way: the kernel keeps the very sun_path given as the socket's address,
// so it runs in a helper of cryo's that has entered the tree's mount namespace
// and its root (as CRIU's prep_unix_sk_cwd), the socket lent to it by
// pidfd_getfd. connect(2) goes through an O_PATH fd of the socket's file
// (/proc/self/fd/N): it reaches that inode, whatever cryo's view holds.
import { chmodSync, closeSync, fstatSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { UnixSkEntry } from '../../images/index.js';
import { AT_EMPTY_PATH, AT_REMOVEDIR, CLONE, NR, O, SysError, openInRoot, sock, syscall } from '../../sys/index.js';
import { RemoteError, type Remote } from '../../tracer/remote.js';
import { CryoError } from '../../context.js';
import { connectTo, isPath, pathOf, show, type UnixNames } from './unix-names.js';

const cstr = (s: string) => Buffer.from(`${s}\0`);
const why = (e: unknown) => (SysError.is(e) || e instanceof RemoteError ? e.message : (e as NodeJS.ErrnoException).code ?? (e as Error).message);

/**
 * Make the helper `rem` (a seed of cryo's) a stand-in of the tree: into the
 * mount namespace of task `pid` (cryo's pid) and its root.
 */
export function enterTreeRoot(rem: Remote, pid: number): void {
  const ns = rem.call('open(ns/mnt)', NR.open, rem.put(cstr(`/proc/${pid}/ns/mnt`)), O.RDONLY | O.CLOEXEC);
  // Opened before the helper moves: the task's root, which the images' paths are from.
  const root = rem.call('open(root)', NR.open, rem.put(cstr(`/proc/${pid}/root`)), O.PATH | O.DIRECTORY | O.CLOEXEC);
  rem.call('setns(mnt)', NR.setns, ns, CLONE.NEWNS);
  rem.call('fchdir(root)', NR.fchdir, root);
  rem.call('chroot(.)', NR.chroot, rem.put(cstr('.')));
  rem.call('close', NR.close, ns);
  rem.call('close', NR.close, root);
}

/** A helper in the tree's root (enterTreeRoot) that binds cryo's sockets there. */
export function treeBinder(rem: Remote): (fd: number, name: Uint8Array, dir: string) => void {
  const cryo = rem.call('pidfd_open(cryo)', NR.pidfd_open, process.pid, 0);
  return (fd, name, dir) => {
    const h = rem.call('pidfd_getfd', NR.pidfd_getfd, cryo, fd, 0);
    try {
      rem.call(`chdir(${dir})`, NR.chdir, rem.put(cstr(dir)));
      const a = Buffer.alloc(2 + name.length);
      a.writeUInt16LE(1 /* AF_UNIX */, 0);
      a.set(name, 2);
      rem.call('bind', NR.bind, h, rem.put(a, 8192), a.length);
    } finally {
      rem.call('close', NR.close, h);
    }
  };
}

/**
 * The names of a tree in its own mount namespace: `root` is cryo's O_PATH fd of
 * the tree's root, `bindIn` binds in it (treeBinder).
 */
export function treeNames(root: number, bindIn: (fd: number, name: Uint8Array, dir: string) => void): UnixNames {
  const rel = (ue: UnixSkEntry) => ue.name[0] !== 0x2f /* / */;
  /** The name's path from the tree's root (a relative one in the directory it was bound in). */
  const full = (ue: UnixSkEntry) => (rel(ue) ? `${ue.nameDir ?? ''}/${pathOf(ue.name)}`.replace(/^\/\//, '/') : pathOf(ue.name));
  const open = (p: string, flags: number) => openInRoot(root, p, flags | O.CLOEXEC);
  const lstat = (p: string): Stats | undefined => {
    let fd: number;
    try {
      fd = open(p, O.PATH | O.NOFOLLOW);
    } catch (e) {
      if (SysError.is(e, 'ENOENT') || SysError.is(e, 'ENOTDIR')) return undefined;
      throw e;
    }
    try {
      return fstatSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  /** fn on the directory of `p` (an O_PATH fd) and its last component. */
  const inDir = <T>(p: string, fn: (dir: number, base: Buffer) => T): T => {
    const dir = open(dirname(p), O.PATH | O.DIRECTORY);
    try {
      return fn(dir, cstr(basename(p)));
    } finally {
      closeSync(dir);
    }
  };
  const unlink = (p: string, flags = 0) => inDir(p, (d, b) => syscall(`unlinkat(${p})`, NR.unlinkat, d, b, flags));
  const rename = (from: string, to: string) =>
    inDir(from, (d, b) => inDir(to, (d2, b2) => syscall(`renameat(${from})`, NR.renameat, d, b, d2, b2)));

  const bindHere = (fd: number, ue: UnixSkEntry): void => {
    try {
      bindIn(fd, ue.name, rel(ue) ? ue.nameDir || '/' : '/');
    } catch (e) {
      throw new CryoError(`cannot bind ${show(ue)} in the tree's mount namespace: ${why(e)}`);
    }
    if (!ue.filePerms) return;
    const f = open(full(ue), O.PATH | O.NOFOLLOW);
    try {
      // An O_PATH fd takes no fchmod; its /proc/self/fd link leads to the inode itself.
      chmodSync(`/proc/self/fd/${f}`, ue.filePerms.mode & 0o7777);
      syscall('fchownat', NR.fchownat, f, cstr(''), ue.filePerms.uid, ue.filePerms.gid, AT_EMPTY_PATH);
    } finally {
      closeSync(f);
    }
  };

  const clear = (ue: UnixSkEntry): void => {
    if (!isPath(ue.name)) return;
    const p = full(ue);
    if (lstat(p)?.isSocket()) unlink(p);
  };

  /** As bindGhost (unix-names.ts), every step from the tree's root. */
  const bindGhost = (fd: number, ue: UnixSkEntry): number => {
    const p = full(ue);
    const made: string[] = [];
    try {
      for (let d = dirname(p); d !== '/' && !lstat(d); d = dirname(d)) made.unshift(d);
      for (const d of made) inDir(d, (dir, b) => syscall(`mkdirat(${d})`, NR.mkdirat, dir, b, 0o755));
      let aside: string | undefined;
      if (lstat(p)) {
        aside = `${p}.cryo-ghost`;
        for (let i = 1; lstat(aside); i++) aside = `${p}.cryo-ghost.${i}`;
        rename(p, aside);
      }
      try {
        bindHere(fd, ue);
        try {
          return open(p, O.PATH | O.NOFOLLOW);
        } finally {
          unlink(p);
        }
      } finally {
        if (aside !== undefined) rename(aside, p);
      }
    } catch (e) {
      if (e instanceof CryoError) throw e;
      throw new CryoError(`cannot bind ${show(ue)} to its removed name in the tree's mount namespace: ${why(e)}`);
    } finally {
      for (const d of made.reverse()) {
        try {
          unlink(d, AT_REMOVEDIR);
        } catch {
          /* not empty: left as it is */
        }
      }
    }
  };

  return {
    bind(fd, ue) {
      if (!ue.name.length) return undefined;
      // Abstract names belong to the network namespace: bound by cryo as they are.
      if (!isPath(ue.name)) {
        try {
          sock.bindUnix(fd, ue.name);
        } catch (e) {
          throw new CryoError(`cannot bind ${show(ue)}: ${why(e)}`);
        }
        return undefined;
      }
      if (ue.deleted) return bindGhost(fd, ue);
      clear(ue);
      bindHere(fd, ue);
      return undefined;
    },
    connect(fd, ue, to, ghost) {
      if (ghost !== undefined || !isPath(to.name)) return connectTo(fd, ue, to, ghost);
      let f: number;
      try {
        f = open(full(to), O.PATH);
      } catch (e) {
        throw new CryoError(`cannot connect ${show(ue)} to ${show(to)} in the tree's mount namespace: ${why(e)}`);
      }
      try {
        const r = sock.connectUnix(fd, Buffer.from(`/proc/self/fd/${f}`));
        if (r < 0) throw new CryoError(`cannot connect ${show(ue)} to ${show(to)}: errno ${-r}`);
      } finally {
        closeSync(f);
      }
    },
    clear,
  };
}
