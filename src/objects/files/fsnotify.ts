// What inotify and fanotify share: a watched inode is named by a file handle in
// fdinfo. Dump turns it into a path (CRIU's check_open_handle): open the handle
// through a mount of its device, take the name the kernel gives, and keep it if
// that name still leads to the inode. Where no mount can open the handle
// (overlayfs), or the name leads elsewhere (an overmounted directory) and either
// --force-irmap is given or the inode is on tmpfs, the inode is looked for by
// scanning (irmap.ts); else the image has no path. Restore opens the
// path, or the handle when the image has none, and watches /proc/self/fd/N: that
// names the inode itself, a symlink too. A tree with its own mount namespace has
// its watches reached from its root, through its own mounts (as CRIU, which
// opens handles on a mount fd of the tree's and paths from its root): cryo's
// view of the file system is never asked.
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { create, FhEntrySchema, type FhEntry } from '../../images/index.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import type { FdinfoHandle } from '../../proc/fsnotify.js';
import { NR, O, openInRoot, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { DumpFilesEnv, RestoreFilesEnv } from './kind.js';
import type { Remaps } from './remap.js';

/** FH_ENTRY_SIZES.min_entries: CRIU always writes the handle as 16 words (MAX_HANDLE_SZ bytes). */
const FH_WORDS = 16;

/** fdinfo's handle as an FhEntry (no path yet). */
export function fhEntry(fh: FdinfoHandle | undefined): FhEntry {
  const raw = Buffer.alloc(FH_WORDS * 8);
  fh?.handle.copy(raw, 0, 0, raw.length);
  const handle = Array.from({ length: FH_WORDS }, (_, i) => raw.readBigUInt64LE(i * 8));
  return create(FhEntrySchema, { bytes: fh?.bytes ?? 0, type: fh?.type ?? 0, handle });
}

/** struct file_handle for open_by_handle_at(). */
function fileHandle(fh: FhEntry): Buffer {
  const words = Buffer.alloc(Math.max(fh.handle.length, 1) * 8);
  fh.handle.forEach((w, i) => words.writeBigUInt64LE(w, i * 8));
  const b = Buffer.alloc(8 + fh.bytes);
  b.writeUInt32LE(fh.bytes, 0);
  b.writeInt32LE(fh.type, 4);
  words.copy(b, 8, 0, fh.bytes);
  return b;
}

function devName(sdev: number): string {
  return `${sdev >>> 20}:${sdev & 0xfffff}`;
}

function inodeName(sdev: number, ino: bigint): string {
  return `inode ${ino} on ${devName(sdev)}`;
}

/**
 * Where paths are looked up: cryo's own view, or the tree's mount namespace (an
 * O_PATH fd of its root, `mounts` its mountinfo, read from `/proc/PID/mountinfo`).
 */
export interface WatchRoot {
  root: number;
  mounts: readonly MountInfo[];
}

function mountsOf(sdev: number, tree: WatchRoot | undefined): MountInfo[] {
  const all = tree ? tree.mounts : parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  return all.filter((m) => m.sdev === sdev);
}

/** Open a path as the tree sees it: from its root when it has its own mount namespace. */
export function openAt(p: string, flags: number, tree: WatchRoot | undefined): number {
  return tree ? openInRoot(tree.root, p, flags | O.CLOEXEC) : openSync(p, flags | O.CLOEXEC);
}

/** The mount's root, opened; undefined when that path now leads to another mount (overmounted). */
function openMount(m: MountInfo, tree: WatchRoot | undefined): number | undefined {
  let fd: number;
  try {
    // Not O_PATH: open_by_handle_at() refuses such a mount fd (EBADF).
    fd = openAt(m.mountpoint, O.RDONLY | O.DIRECTORY, tree);
  } catch {
    return undefined;
  }
  const id = /^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (Number(id?.[1]) === m.mntId) return fd;
  closeSync(fd);
  return undefined;
}

/** The inode opened O_PATH through the first mount of its device that can; undefined if none can. */
function openByHandle(sdev: number, fh: FhEntry, mounts: MountInfo[], tree: WatchRoot | undefined): number | undefined {
  if (fh.bytes === 0) return undefined;
  const h = fileHandle(fh);
  for (const m of mounts) {
    const mnt = openMount(m, tree);
    if (mnt === undefined) continue;
    try {
      const fd = trySyscall(NR.open_by_handle_at, mnt, h, O.PATH | O.CLOEXEC);
      if (fd >= 0) return fd;
    } finally {
      closeSync(mnt);
    }
  }
  return undefined;
}

function inoOf(path: string, tree: WatchRoot | undefined): bigint | undefined {
  let fd: number | undefined;
  try {
    fd = openAt(path, O.PATH | O.NOFOLLOW, tree);
    return fstatSync(fd, { bigint: true }).ino;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The tree's mount namespace as the watches of a dump see it (undefined: cryo's is the tree's). */
function dumpRoot(env: DumpFilesEnv): WatchRoot | undefined {
  const ns = env.mntns;
  if (!ns) return undefined;
  return { root: openSync(ns.root, O.PATH | O.DIRECTORY | O.CLOEXEC), mounts: ns.mounts };
}

/**
 * Find the path a watched inode is dumped as and store it in fh.path (left unset
 * when restore is to open the handle). `what` names the watch in messages.
 */
export function resolveWatch(what: string, sdev: number, ino: bigint, fh: FhEntry, env: DumpFilesEnv): void {
  // An inode on no mount of the task's namespace: through another of the tree's that has its file system
  // (the mount it opens through is kept, fh.mnt_id, as CRIU's: the restore reaches it in that namespace).
  const other = env.mntns && !env.mntns.mounts.some((m) => m.sdev === sdev)
    ? env.mntns.all.find((v) => v.mounts.some((m) => m.sdev === sdev)) : undefined;
  const tree = dumpRoot(other ? { ...env, mntns: other } : env);
  try {
    findPath(what, sdev, ino, fh, env, tree);
    if (other) fh.mntId = other.mounts.find((m) => m.sdev === sdev)!.mntId;
  } finally {
    if (tree) closeSync(tree.root);
  }
}

function findPath(what: string, sdev: number, ino: bigint, fh: FhEntry, env: DumpFilesEnv, tree: WatchRoot | undefined): void {
  const { log } = env.irmap;
  const mounts = mountsOf(sdev, tree);
  let opened = false;
  for (const m of mounts) {
    const fd = openByHandle(sdev, fh, [m], tree);
    if (fd === undefined) continue;
    opened = true;
    let name: string;
    try {
      name = readlinkSync(`/proc/self/fd/${fd}`);
    } finally {
      closeSync(fd);
    }
    // The name must lead back to the inode: an overmount or a rename can break it.
    if (inoOf(name, tree) === ino) {
      log.debug(`${what}: the handle of ${inodeName(sdev, ino)} opens as ${name}${tree ? " in the tree's mount namespace" : ''}`);
      fh.path = name;
      // The irmap cache holds cryo's paths.
      if (!tree) env.irmap.note(sdev, ino, name);
      return;
    }
    log.debug(`${what}: the handle opens through mount ${m.mntId} as ${name}, a name that leads elsewhere now`);
  }
  // tmpfs inodes get new numbers on every mount, so a handle is worth nothing
  // there: look for a name (CRIU gives up at once).
  const tmpfs = ['tmpfs', 'devtmpfs'].includes(mounts[0]?.fstype ?? '');
  if (opened && !tmpfs && !env.forceIrmap) {
    log.debug(`${what}: no path for ${inodeName(sdev, ino)}; restore will open its file handle (--force-irmap would scan)`);
    return;
  }
  // The irmap scans cryo's own view: no use for a tree of its own mount namespace.
  if (tree) throw new CryoError(`${what}: cannot find a path to the watched ${inodeName(sdev, ino)} in the tree's mount namespace`);
  if (!opened) log.warn(`${what}: the file handle of ${inodeName(sdev, ino)} cannot be opened; looking for it by name`);
  const path = env.irmap.lookup(sdev, ino);
  if (path === undefined) {
    throw new CryoError(`${what}: cannot find a path to the watched ${inodeName(sdev, ino)}; name a directory above it with --irmap-scan-path`);
  }
  log.debug(`${what}: dumping ${path} as the path of ${inodeName(sdev, ino)}`);
  fh.path = path;
  env.irmap.note(sdev, ino, path);
}

/**
 * Restore: the watched inode opened O_PATH (its ghost when it was a deleted file,
 * else by path, or by file handle when the image has no path). The caller
 * watches /proc/self/fd/N and closes N.
 */
export function openWatched(what: string, sdev: number, ino: bigint, fh: FhEntry | undefined, remaps: Remaps, tree?: WatchRoot): number {
  // A deleted file: the watch goes on its ghost (the same inode its fds get).
  const ghost = remaps.watchPath(sdev, ino);
  if (ghost !== undefined) {
    try {
      return openAt(ghost, O.PATH | O.NOFOLLOW, tree);
    } catch (e) {
      throw new CryoError(`${what}: cannot open ${ghost}, the deleted file it watched: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (fh?.path) {
    try {
      return openAt(fh.path, O.PATH | O.NOFOLLOW, tree);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new CryoError(`${what}: cannot open ${fh.path}${tree ? " in the tree's mount namespace" : ''} to watch it again: ${code}`);
    }
  }
  const fd = fh ? openByHandle(sdev, fh, mountsOf(sdev, tree), tree) : undefined;
  if (fd === undefined) throw new CryoError(`${what}: the image has no path and the file handle of the inode cannot be opened here`);
  return fd;
}

/** The tree's mount namespace as a restore's watches see it (undefined: cryo's is the tree's). */
export function restoreRoot(env: Pick<RestoreFilesEnv, 'nsRoot' | 'nsPid'>): WatchRoot | undefined {
  if (env.nsRoot === undefined || env.nsPid === undefined) return undefined;
  return { root: env.nsRoot, mounts: parseMountinfo(readFileSync(`/proc/${env.nsPid}/mountinfo`, 'utf8')) };
}

/**
 * The tree's mount namespace a watch's handle names (fh.mnt_id, set for an inode
 * on a mount of another namespace than its task's), or `tree` (the root's).
 */
export function watchRoot(env: Pick<RestoreFilesEnv, 'nsRoot' | 'mntNsOf' | 'nsHolder'>, fh: FhEntry | undefined, tree: WatchRoot | undefined): WatchRoot | undefined {
  const m = fh?.mntId ? env.mntNsOf?.(fh.mntId) : undefined;
  if (!m || m.root === env.nsRoot) return tree;
  // Its mounts as a task in it sees them (every task is made before any fd).
  const pid = env.nsHolder('mntNsId', m.nsId);
  return { root: m.root, mounts: pid === undefined ? [] : parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8')) };
}
