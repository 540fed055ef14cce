// What inotify and fanotify share: a watched inode is named by a file handle in
// fdinfo. Dump turns it into a path (CRIU's check_open_handle): open the handle
// through a mount of its device, take the name the kernel gives, and keep it if
// that name still leads to the inode. Where no mount can open the handle
// (overlayfs), or the name leads elsewhere (an overmounted directory) and either
// --force-irmap is given or the inode is on tmpfs, the inode is looked for by
// scanning (irmap.ts); else the image has no path. Restore opens the
// path, or the handle when the image has none, and watches /proc/self/fd/N: that
// names the inode itself, a symlink too.
import { closeSync, lstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { create, FhEntrySchema, type FhEntry } from '../../images/index.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import type { FdinfoHandle } from '../../proc/fsnotify.js';
import { NR, O, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { DumpFilesEnv } from './kind.js';
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

function mountsOf(sdev: number): MountInfo[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.sdev === sdev);
}

/** The mount's root, opened; undefined when that path now leads to another mount (overmounted). */
function openMount(m: MountInfo): number | undefined {
  let fd: number;
  try {
    // Not O_PATH: open_by_handle_at() refuses such a mount fd (EBADF).
    fd = openSync(m.mountpoint, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  } catch {
    return undefined;
  }
  const id = /^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (Number(id?.[1]) === m.mntId) return fd;
  closeSync(fd);
  return undefined;
}

/** The inode opened O_PATH through the first mount of its device that can; undefined if none can. */
function openByHandle(sdev: number, fh: FhEntry, mounts: MountInfo[]): number | undefined {
  if (fh.bytes === 0) return undefined;
  const h = fileHandle(fh);
  for (const m of mounts) {
    const mnt = openMount(m);
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

function inoOf(path: string): bigint | undefined {
  try {
    return lstatSync(path, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

/**
 * Find the path a watched inode is dumped as and store it in fh.path (left unset
 * when restore is to open the handle). `what` names the watch in messages.
 */
export function resolveWatch(what: string, sdev: number, ino: bigint, fh: FhEntry, env: DumpFilesEnv): void {
  const { log } = env.irmap;
  const mounts = mountsOf(sdev);
  let opened = false;
  for (const m of mounts) {
    const fd = openByHandle(sdev, fh, [m]);
    if (fd === undefined) continue;
    opened = true;
    let name: string;
    try {
      name = readlinkSync(`/proc/self/fd/${fd}`);
    } finally {
      closeSync(fd);
    }
    // The name must lead back to the inode: an overmount or a rename can break it.
    if (inoOf(name) === ino) {
      log.debug(`${what}: the handle of ${inodeName(sdev, ino)} opens as ${name}`);
      fh.path = name;
      env.irmap.note(sdev, ino, name);
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
export function openWatched(what: string, sdev: number, ino: bigint, fh: FhEntry | undefined, remaps: Remaps): number {
  // A deleted file: the watch goes on its ghost (the same inode its fds get).
  const ghost = remaps.watchPath(sdev, ino);
  if (ghost !== undefined) {
    try {
      return openSync(ghost, O.PATH | O.NOFOLLOW | O.CLOEXEC);
    } catch (e) {
      throw new CryoError(`${what}: cannot open ${ghost}, the deleted file it watched: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (fh?.path) {
    try {
      return openSync(fh.path, O.PATH | O.NOFOLLOW | O.CLOEXEC);
    } catch (e) {
      throw new CryoError(`${what}: cannot open ${fh.path} to watch it again: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const fd = fh ? openByHandle(sdev, fh, mountsOf(sdev)) : undefined;
  if (fd === undefined) throw new CryoError(`${what}: the image has no path and the file handle of the inode cannot be opened here`);
  return fd;
}
