// Names of unix sockets of a tree with its own mount namespace, on restore.
// Every path is the tree's: cryo reaches it from the tree's root (openat2
// RESOLVE_IN_ROOT, then *at calls on the directory), never through its own
// view, where a name would be a file of the host. bind(2) alone cannot be done
// that way: the kernel keeps the very sun_path given as the socket's address,
// so it runs in a helper of cryo's that has entered the tree's mount namespace
// and its root (as CRIU's prep_unix_sk_cwd), the socket lent to it by
// pidfd_getfd. connect(2) goes through an O_PATH fd of the socket's file
// (/proc/self/fd/N): it reaches that inode, whatever cryo's view holds.
// A removed name under a mount made over its directory since (zdtm
// overmount_sock) is bound below that mount, in a helper's private copy of the
// namespace: the socket then holds no reference to the mount over it.
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, renameSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { UnixSkEntry } from '../../images/index.js';
import {
  AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, CLONE, MOVE_MOUNT, MS, NR, O, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, SysError,
  asOwnerIfRefused, openInRoot, pidfdGetfd, pidfdOpen, sock, syscall,
} from '../../sys/index.js';
import { RemoteError, type Remote } from '../../tracer/remote.js';
import { remoteAsFsIds, remoteOwner } from '../../tracer/fsids.js';
import { CryoError } from '../../context.js';
import { connectTo, isPath, pathOf, show, type UnixNames } from './unix-names.js';

const EOVERFLOW = 75n;
const cstr = (s: string) => Buffer.from(`${s}\0`);
const why = (e: unknown) => (SysError.is(e) || e instanceof RemoteError ? e.message : (e as NodeJS.ErrnoException).code ?? (e as Error).message);

/** bind(2) of cryo's socket `fd` to `name`, in directory `dir` of the tree. */
export type BindIn = (fd: number, name: Uint8Array, dir: string) => void;

/** A helper in the tree's root (enterTreeRoot) that binds cryo's sockets there. */
export function treeBinder(rem: Remote): BindIn {
  const cryo = rem.call('pidfd_open(cryo)', NR.pidfd_open, process.pid, 0);
  return (fd, name, dir) => {
    const h = rem.call('pidfd_getfd', NR.pidfd_getfd, cryo, fd, 0);
    try {
      rem.call(`chdir(${dir})`, NR.chdir, rem.put(cstr(dir)));
      const a = Buffer.alloc(2 + name.length);
      a.writeUInt16LE(1 /* AF_UNIX */, 0);
      a.set(name, 2);
      const addr = rem.put(a, 8192);
      const r = rem.callRaw(NR.bind, h, addr, a.length);
      if (r === -EOVERFLOW) {
        // A file system of the tree's user namespace: the file made as its directory's owner.
        const parent = dirname(Buffer.from(name).toString('latin1').replace(/\0.*$/s, ''));
        const o = remoteOwner(rem, parent);
        if (typeof o === 'bigint') throw new RemoteError(rem.pid, `stat(${parent})`, -Number(o));
        remoteAsFsIds(rem, o.uid, o.gid, () => rem.call('bind', NR.bind, h, addr, a.length), () => { throw new RemoteError(rem.pid, 'bind', -Number(r)); });
      } else if (r < 0n) {
        throw new RemoteError(rem.pid, 'bind', -Number(r));
      }
    } finally {
      rem.call('close', NR.close, h);
    }
  };
}

/** Path operations on the tree's files, every path the tree's. */
export interface TreeFs {
  /** open(2) into cryo (an O_PATH fd to stat, connect through, or keep for a ghost name). */
  open(p: string, flags: number): number;
  mkdir(p: string): void;
  /** unlinkat(2); AT_REMOVEDIR for a directory. */
  unlink(p: string, flags?: number): void;
  rename(from: string, to: string): void;
  bind: BindIn;
}

/** The tree's files reached by cryo from the tree's root (`root`, an O_PATH fd); bind() by `bindIn`. */
export function rootFs(root: number, bindIn: BindIn): TreeFs {
  const open = (p: string, flags: number) => openInRoot(root, p, flags | O.CLOEXEC);
  /** fn on the directory of `p` (an O_PATH fd) and its last component. */
  const inDir = <T>(p: string, fn: (dir: number, base: Buffer) => T): T => {
    const dir = open(dirname(p), O.PATH | O.DIRECTORY);
    try {
      return fn(dir, cstr(basename(p)));
    } finally {
      closeSync(dir);
    }
  };
  return {
    open,
    // Owned, on a file system of the tree's user namespace, as the directory it is made in.
    mkdir: (p) => void inDir(p, (d, b) => asOwnerIfRefused(() => syscall(`mkdirat(${p})`, NR.mkdirat, d, b, 0o755), () => fstatSync(d))),
    unlink: (p, flags = 0) => void inDir(p, (d, b) => syscall(`unlinkat(${p})`, NR.unlinkat, d, b, flags)),
    rename: (from, to) => void inDir(from, (d, b) => inDir(to, (d2, b2) => syscall(`renameat(${from})`, NR.renameat, d, b, d2, b2))),
    bind: bindIn,
  };
}

/** Files as cryo itself sees them (a tree in cryo's mount namespace); bind() in the name's directory. */
export function hostFs(): TreeFs {
  return {
    open: (p, flags) => openSync(p, flags | O.CLOEXEC),
    mkdir: (p) => mkdirSync(p, 0o755),
    unlink: (p, flags = 0) => (flags & AT_REMOVEDIR ? rmdirSync(p) : unlinkSync(p)),
    rename: (from, to) => renameSync(from, to),
    bind(fd, name, dir) {
      const back = process.cwd();
      process.chdir(dir);
      try {
        sock.bindUnix(fd, name);
      } finally {
        process.chdir(back);
      }
    },
  };
}

/**
 * The tree's files as the helper `rem` (enterTreeRoot) sees them, every call
 * made there; what it opens is taken into cryo (pidfd_getfd).
 */
export function helperFs(rem: Remote): TreeFs {
  const bind = treeBinder(rem);
  const str = (p: string, at = 0) => rem.put(cstr(p), at);
  return {
    open(p, flags) {
      const h = Number(rem.call(`open(${p})`, NR.open, str(p), flags | O.CLOEXEC));
      const pidfd = pidfdOpen(rem.pid);
      try {
        return pidfdGetfd(pidfd, h);
      } finally {
        closeSync(pidfd);
        rem.call('close', NR.close, h);
      }
    },
    mkdir: (p) => void rem.call(`mkdirat(${p})`, NR.mkdirat, AT_FDCWD, str(p), 0o755),
    unlink: (p, flags = 0) => void rem.call(`unlinkat(${p})`, NR.unlinkat, AT_FDCWD, str(p), flags),
    rename: (from, to) => void rem.call(`renameat(${from})`, NR.renameat, AT_FDCWD, str(from), AT_FDCWD, str(to, 4096)),
    bind,
  };
}

/**
 * In the helper `rem`, in the tree's root: a mount namespace of its own where the
 * mount at `mountpoint` has nothing over it (a clone of it alone put on top, or
 * made the root), so that a path whose directory the tree has mounted something
 * over reaches the file system underneath, as the dumped socket's file did. The
 * copy's mounts are made private first: nothing done in it reaches the tree's.
 */
export function uncover(rem: Remote, mountpoint: string): void {
  const str = (p: string, at = 0) => rem.put(cstr(p), at);
  // Cloned in the tree's own namespace: in a copy owned by another user namespace (cryo's,
  // the tree's being in one of its own) its mounts would be locked together, none cloned alone.
  const clone = rem.call(`open_tree(${mountpoint})`, NR.open_tree, AT_FDCWD, str(mountpoint), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  rem.call('unshare(CLONE_NEWNS)', NR.unshare, CLONE.NEWNS);
  rem.call('mount(/, MS_REC|MS_PRIVATE)', NR.mount, 0, str('/'), 0, MS.REC | MS.PRIVATE, 0);
  if (mountpoint === '/') {
    // A mount over "/" is not seen from "/" itself: the clone becomes the root.
    rem.call('fchdir', NR.fchdir, clone);
    rem.call('chroot(.)', NR.chroot, str('.'));
  } else {
    rem.call(`move_mount(${mountpoint})`, NR.move_mount, clone, str('', 0), AT_FDCWD, str(mountpoint, 1), MOVE_MOUNT.F_EMPTY_PATH);
  }
  rem.call('close', NR.close, clone);
}

/** The name's path from the tree's root (a relative one in the directory it was bound in). */
export function treePath(ue: UnixSkEntry): string {
  const p = pathOf(ue.name);
  return p.startsWith('/') ? p : `${ue.nameDir ?? ''}/${p}`.replace(/^\/\//, '/');
}

/**
 * The names of a tree in its own mount namespace: `fs` reaches its files from
 * its root. `covered` gives, for a removed name whose directory has a mount
 * made over it since its file was made there, a way to reach the files below
 * (uncover); undefined for every other name.
 */
export function treeNames(fs: TreeFs, covered: (ue: UnixSkEntry) => (<T>(fn: (fs: TreeFs) => T) => T) | undefined = () => undefined, where = " in the tree's mount namespace"): UnixNames {
  const rel = (ue: UnixSkEntry) => ue.name[0] !== 0x2f /* / */;
  const lstat = (f: TreeFs, p: string): Stats | undefined => {
    let fd: number;
    try {
      fd = f.open(p, O.PATH | O.NOFOLLOW);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
    try {
      return fstatSync(fd);
    } finally {
      closeSync(fd);
    }
  };

  const bindHere = (f: TreeFs, fd: number, ue: UnixSkEntry): void => {
    try {
      f.bind(fd, ue.name, rel(ue) ? ue.nameDir || '/' : '/');
    } catch (e) {
      throw new CryoError(`cannot bind ${show(ue)}${where}: ${why(e)}`);
    }
    if (!ue.filePerms) return;
    const h = f.open(treePath(ue), O.PATH | O.NOFOLLOW);
    try {
      // An O_PATH fd takes no fchmod; its /proc/self/fd link leads to the inode itself.
      chmodSync(`/proc/self/fd/${h}`, ue.filePerms.mode & 0o7777);
      syscall('fchownat', NR.fchownat, h, cstr(''), ue.filePerms.uid, ue.filePerms.gid, AT_EMPTY_PATH);
    } finally {
      closeSync(h);
    }
  };

  const clear = (ue: UnixSkEntry): void => {
    if (!isPath(ue.name)) return;
    const p = treePath(ue);
    if (lstat(fs, p)?.isSocket()) fs.unlink(p);
  };

  /**
   * Bind `fd` to a path name whose file is gone: the missing directories are made
   * and whatever the path holds now is moved aside; once bound, the socket's file
   * is unlinked and everything is put back as it was. Returns an O_PATH fd of the
   * socket's file, to connect to it by.
   */
  const bindGhost = (f: TreeFs, fd: number, ue: UnixSkEntry): number => {
    const p = treePath(ue);
    const made: string[] = [];
    try {
      for (let d = dirname(p); d !== '/' && !lstat(f, d); d = dirname(d)) made.unshift(d);
      for (const d of made) f.mkdir(d);
      let aside: string | undefined;
      if (lstat(f, p)) {
        aside = `${p}.cryo-ghost`;
        for (let i = 1; lstat(f, aside); i++) aside = `${p}.cryo-ghost.${i}`;
        f.rename(p, aside);
      }
      try {
        bindHere(f, fd, ue);
        try {
          return f.open(p, O.PATH | O.NOFOLLOW);
        } finally {
          f.unlink(p);
        }
      } finally {
        if (aside !== undefined) f.rename(aside, p);
      }
    } catch (e) {
      if (e instanceof CryoError) throw e;
      throw new CryoError(`cannot bind ${show(ue)} to its removed name${where}: ${why(e)}`);
    } finally {
      for (const d of made.reverse()) {
        try {
          f.unlink(d, AT_REMOVEDIR);
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
      if (ue.deleted) {
        const below = covered(ue);
        return below ? below((f) => bindGhost(f, fd, ue)) : bindGhost(fs, fd, ue);
      }
      clear(ue);
      bindHere(fs, fd, ue);
      return undefined;
    },
    connect(fd, ue, to, ghost) {
      if (ghost !== undefined || !isPath(to.name)) return connectTo(fd, ue, to, ghost);
      let f: number;
      try {
        f = fs.open(treePath(to), O.PATH);
      } catch (e) {
        throw new CryoError(`cannot connect ${show(ue)} to ${show(to)}${where}: ${why(e)}`);
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

/** Names as cryo itself sees them (a tree in cryo's mount namespace); connect(2) by the name. */
export const hostNames: UnixNames = { ...treeNames(hostFs(), undefined, ''), connect: connectTo };
