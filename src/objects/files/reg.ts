// Regular files, directories, symlinks (O_PATH fds) and the memory character
// devices (/dev/null, zero..., also a node of one made elsewhere).
// Files deleted while open or mapped are recorded here too, as CRIU does: a file
// nobody can reach any more (no link left) gets its contents saved in a ghost file,
// one still linked elsewhere gets a link_remap.N link next to where it was
// (--link-remap). Both are tied to the file's entry by remap-fpath.img.
import { openSync, closeSync, fstatSync, lstatSync, readFileSync, readlinkSync, statSync, statfsSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import {
  create, FdTypes, RemapFilePathEntrySchema, RemapType, isFieldSet,
  RegFileEntrySchema, type FileEntry, type RegFileEntry, type RemapFilePathEntry, type FileLockEntry,
} from '../../images/index.js';
import { O, NR, AT_FDCWD, AT_SYMLINK_FOLLOW, SysError, syscall, openInRoot, asOwnerIfRefused, ipc } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, major, minor, partOf, type MntView, type RegDumpEnv, type FdKind, type Ghost, type KindStore, type RestoreFilesEnv } from './kind.js';
import type { FileTable } from './table.js';
import { isShmemObject } from './memfd.js';
import { dumpGhost, writeGhosts, closeGhosts, readGhostImage } from './ghost.js';
import { remapOf } from './remap.js';
import { fdinfoMntId } from '../../proc/fdinfo.js';

const MEM_MAJOR = 1;
/** statfs f_type of proc. */
const PROC_SUPER_MAGIC = 0x9fa0;
const MQUEUE_MAGIC = 0x19800202;
const DELETED = ' (deleted)';

function fsMagic(p: string): number | undefined {
  try {
    return statfsSync(p).type;
  } catch {
    return undefined;
  }
}

/**
 * Open a path of the images in cryo: as it is, or, in the tree's own mount
 * namespace (`nsRoot`, an O_PATH fd of its root), from its root, never leading
 * out of it. A failure is one line naming the path (`what`: "a file", "the FIFO").
 */
export function openTreePath(name: string, flags: number, nsRoot: number | undefined, what: string): number {
  try {
    return nsRoot !== undefined ? openInRoot(nsRoot, name, flags) : openSync(name, flags);
  } catch (e) {
    const code = SysError.is(e) ? e.code : (e as NodeJS.ErrnoException).code;
    const where = nsRoot !== undefined ? " in the tree's mount namespace" : '';
    throw new CryoError(`cannot open ${what} ${name}${where}: ${code ?? (e as Error).message}`);
  }
}

/** The link_remap.N links the dump made (--link-remap), taken back. */
function removeLinkRemaps(files: FileTable): void {
  for (const { link, root } of files.linkRemaps) {
    try {
      const at = linkTarget(link, root);
      try {
        syscall('unlinkat', NR.unlinkat, at.dirfd, Buffer.from(at.name + '\0'), 0);
      } finally {
        at.close();
      }
    } catch {
      /* already gone */
    }
  }
}

/** remap-fpath.img (reg-file entries pointed at ghost files or links), the ghost files, and file-locks.img. */
export const regImagesOf = (s: KindStore) =>
  s.get<{ remaps: RemapFilePathEntry[]; ghosts: Map<number, Ghost>; locks: FileLockEntry[] }>('reg:images', () => ({ remaps: [], ghosts: new Map(), locks: [] }));

export const regular: FdKind = {
  name: 'regular file',
  type: FdTypes.REG,
  dumpCleanup(files, cl, env) {
    // -R: the tasks run on, and the links would only be litter; else the restore needs them.
    if (env.opts.leaveRunning) cl.always('link_remap files made', () => removeLinkRemaps(files));
    else cl.onFailure('link_remap files made', () => removeLinkRemaps(files));
    cl.always('ghost files held', () => closeGhosts(files));
  },
  writeImages(dir, files, env) {
    if (files.locks.length) dir.write('fileLocks', files.locks);
    if (files.remaps.length) dir.write('remapFpath', files.remaps);
    writeGhosts(dir, files, env.opts.ghostFiemap);
  },
  // Ghost files and link remaps: gone after a failure; on success once every file is in place.
  holdCleanup: (_store, cl, env) => cl.onFailure('ghost files and links made', () => env.remaps.cleanup(false)),
  allPlaced: (env) => env.remaps.cleanup(true),
  loadImages(dir, store) {
    const r = regImagesOf(store);
    r.remaps.push(...(dir.tryRead('remapFpath') ?? []).map(remapOf));
    for (const m of r.remaps) {
      if (m.remapType === RemapType.GHOST && !r.ghosts.has(m.remapId)) r.ghosts.set(m.remapId, readGhostImage(dir, m.remapId));
    }
    r.locks.push(...(dir.tryRead('fileLocks') ?? []));
  },
  // Not memfds (nor shared anonymous memory): they look like deleted files but have a name, seals and no directory.
  match: (p) =>
    ((p.st.isFile() && !isShmemObject(p.link, `/proc/${p.pid}/fd/${p.fd}`, p.st)) || p.st.isDirectory() || p.st.isSymbolicLink() ||
      (p.st.isCharacterDevice() && major(p.st.rdev) === MEM_MAJOR)),
  dump(p, env) {
    if (isMqueue(p.st, p.link, `/proc/${p.pid}/fd/${p.fd}`)) return dumpMqDescriptor(p.pid, p.fd, p.link, p.st, p.info.flags, env);
    return dumpRegFile(
      { pid: p.pid, proc: `/proc/${p.pid}/fd/${p.fd}`, link: p.link, st: p.st, what: `fd ${p.fd}` },
      // As CRIU, only a dump of a mount namespace names mounts (-1, the default,
      // tells CRIU's restore to take paths from the root; a mount id of cryo's
      // would name a mount its restore does not know).
      { flags: p.info.flags & ~O.CLOEXEC, pos: p.info.pos, ...(env.mntns ? { mntId: onTreeMount(p.pid, `fd ${p.fd}`, p.link, p.st, p.info.mntId, env.mntns) } : {}) },
      env,
    );
  },
  open(fe: FileEntry, env) {
    const r = fe.reg;
    if (!r) throw new CryoError(`file id ${fe.id}: regular file entry without its reg field`);
    const flags = openFlags(r.flags);
    if (isFieldSet(r, RegFileEntrySchema.field.cryoMqIpcNs)) return openMqDescriptor(r.name, flags, r.cryoMqIpcNs, env);
    let fd: number;
    if (env.remaps.has(fe.id)) {
      fd = env.remaps.open(fe.id, r.name, flags | O.CLOEXEC);
    } else {
      fd = openTreePath(r.name, flags | O.CLOEXEC, env.mntNsOf?.(r.mntId)?.root ?? env.nsRoot, 'a file');
    }
    try {
      checkRegSize(r, `/proc/self/fd/${fd}`);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (r.pos) syscall('lseek', NR.lseek, fd, r.pos, 0);
    return fd;
  },
  // CRIU names a file by its path without the leading slash.
  inheritKey: (fe) => fe.reg?.name.replace(/^\//, ''),
  check(entries) {
    for (const fe of entries) {
      const r = partOf(fe, 'reg');
      if (!r.name || r.name.includes('\0')) throw badFile(fe, `regular file entry with the name ${JSON.stringify(r.name)}`);
      if (r.pos > 0x7fffffffffffffffn) throw badFile(fe, `position ${r.pos} is beyond any file`);
    }
  },
};

/**
 * The mount an fd's file is on (fdinfo's mnt_id): one of the tree's namespace.
 * A file opened before the namespace was made is on a mount of the old one
 * (CRIU refuses it); cryo takes it when its path in the namespace leads to the
 * very same file, and names the mount that path is on.
 */
function onTreeMount(pid: number, what: string, link: string, st: Stats, mntId: number, ns: MntView): number {
  // On a mount of any of the tree's namespaces: its path is that namespace's (the kernel's d_path from its root).
  if (ns.of(mntId)) return mntId;
  const refuse = () => new CryoError(`task ${pid}: ${what} (${link}) is on mount ${mntId}, which is not in the tree's mount namespace, and that path there leads to another file`);
  let now: { st: Stats; mntId: number };
  try {
    now = whereNow(ns.root + link);
  } catch {
    throw refuse();
  }
  if (now.st.dev !== st.dev || now.st.ino !== st.ino || !ns.ids.has(now.mntId)) throw refuse();
  return now.mntId;
}

/** What a path leads to now (a last symlink itself): its inode and the mount it is reached through. Throws where it opens no more. */
function whereNow(p: string): { st: Stats; mntId: number } {
  const fd = openSync(p, O.PATH | O.NOFOLLOW | O.CLOEXEC);
  try {
    return { st: fstatSync(fd), mntId: fdinfoMntId(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')) };
  } finally {
    closeSync(fd);
  }
}

/** The mount the file behind a /proc magic link (fd, map_files, cwd, exe) is on; undefined if it cannot be opened. */
function mountOf(proc: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(proc, O.PATH | O.CLOEXEC);
  } catch {
    return undefined;
  }
  try {
    const id = fdinfoMntId(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    return Number.isNaN(id) ? undefined : id;
  } finally {
    closeSync(fd);
  }
}

/** O_TMPFILE without its O_DIRECTORY: what marks the file as made unnamed. */
const __O_TMPFILE = 0o20000000;

/**
 * The flags to open a dumped file with: never create or truncate it; an unnamed
 * temporary file (O_TMPFILE) comes back as its ghost, opened as a plain file (as CRIU).
 */
export function openFlags(flags: number): number {
  const f = flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.CLOEXEC);
  return f & __O_TMPFILE ? f & ~O.TMPFILE : f;
}


/** Open write-only for appending: CRIU records no size for such a file (files-reg.c, should_check_size). */
function isAppendOnly(flags: number): boolean {
  return (flags & O.ACCMODE) === O.WRONLY && (flags & O.APPEND) !== 0;
}

/**
 * As CRIU's validate_file(): a file whose entry holds a size must have that size
 * now, or it is not the file that was dumped (or it changed since). `opened` is a
 * path to the file as opened for restore (/proc/.../fd/N).
 */
export function checkRegSize(r: RegFileEntry, opened: string): void {
  if (!isFieldSet(r, RegFileEntrySchema.field.size)) return;
  const now = BigInt(statSync(opened).size);
  if (now !== r.size) throw new CryoError(`file ${r.name} has size ${now}, not ${r.size} as when it was dumped`);
}

/** A file to record: what /proc says of it and where it can still be opened. */
export interface RegSource {
  pid: number;
  /** /proc/PID/fd/N or /proc/PID/map_files/A-B: opens this very file, deleted or not. */
  proc: string;
  /** readlink of `proc`. */
  link: string;
  st: Stats;
  /** "fd 3", "the mapping at 0x...": for messages. */
  what: string;
}

/**
 * The reg-file entry of a file an fd or a mapping refers to; `key` deduplicates
 * (one entry per mapped file). A deleted file gets its remap (ghost or link).
 */
export function dumpRegFile(src: RegSource, init: { flags: number; pos: bigint; mntId?: number }, env: RegDumpEnv, key?: string): number {
  if (key !== undefined) {
    const have = env.files.lookup(key);
    if (have !== undefined) return have;
  }
  const deleted = src.link.endsWith(DELETED);
  const name = deleted ? src.link.slice(0, -DELETED.length) : src.link;
  // A POSIX message queue descriptor names its queue as if it were a path from "/": never reopen that.
  if (isMqueue(src.st, name, src.proc)) throw new CryoError(`task ${src.pid}: ${src.what} is POSIX message queue ${name} (a descriptor of mq_open), which cryo cannot dump yet`);
  // The namespace the file's mount is in (the task's own, or another of the tree's): its paths are that one's.
  // A mapping, a cwd or an executable is named by its mount too, as CRIU's, where it is one of the tree's.
  // One on a mount of no namespace of the tree, whose path there leads elsewhere, is refused (as CRIU's
  // "Can't lookup mount"): reopened by that path, it would be another file.
  if (env.mntns && init.mntId === undefined) {
    const id = mountOf(src.proc);
    if (id !== undefined) init = { ...init, mntId: onTreeMount(src.pid, src.what, src.link.replace(/ \(deleted\)$/, ''), src.st, id, env.mntns) };
  }
  if (env.mntns && init.mntId !== undefined) env = { ...env, mntns: env.mntns.of(init.mntId) ?? env.mntns };
  const dead = deadProcFile(src, name, env.mntns?.root ?? '');
  if (!deleted && (src.st.isCharacterDevice() || src.st.isBlockDevice())) checkDevicePath(src, name, env.evasiveDevices, env.mntns?.root ?? '');
  else if (!deleted && dead === undefined && env.mntns && init.mntId !== undefined) checkReachable(src, name, init.mntId, env.mntns.root);
  // As CRIU: the size of a regular file is kept to check on restore that it is the
  // same file, but for one open O_WRONLY|O_APPEND (a log), which may grow meanwhile.
  const size = src.st.isFile() && !isAppendOnly(init.flags) ? { size: BigInt(src.st.size) } : {};
  const id = env.files.addReg({ ...init, name, ...size, mode: src.st.mode }, key);
  // Its name is gone or now names another file (replaced by a rename): the file
  // itself is reached through a ghost copy or a link of our own on restore.
  if (dead !== undefined) {
    env.files.remaps.push(create(RemapFilePathEntrySchema, { origId: id, remapId: dead, remapType: RemapType.PROCFS }));
  } else if (deleted) {
    if (src.st.nlink === 0) dumpGhost(src, id, env);
    else dumpLinkRemap(src, name, id, env, init);
  }
  return id;
}

/** A file of an mqueue file system, which a descriptor of mq_open is (its name one component: only such files are asked for their file system). */
function isMqueue(st: Stats, name: string, proc: string): boolean {
  return st.isFile() && /^\/[^/]+$/.test(name) && fsMagic(proc) === MQUEUE_MAGIC;
}

/**
 * A descriptor of a POSIX message queue of the tree's own ipc namespace, whose
 * queues the ipc namespace's image holds: its name and flags (access, O_NONBLOCK)
 * in a reg entry with cryo's own cryo_mq_ipc_ns. One of another ipc namespace
 * (the host's, or one the tree does not own) is refused: its queue is not carried.
 */
function dumpMqDescriptor(pid: number, fd: number, name: string, st: Stats, flags: number, env: RegDumpEnv): number {
  if (!env.mqueue || st.dev !== env.mqueue.dev) {
    throw new CryoError(`task ${pid}: fd ${fd} is POSIX message queue ${name} (a descriptor of mq_open) of an ipc namespace that is not the tree's own, whose queues cryo does not carry`);
  }
  return env.files.addReg({ flags: flags & ~O.CLOEXEC, pos: 0n, name, mode: st.mode, cryoMqIpcNs: env.mqueue.nsId });
}

/** The descriptor again: mq_open of its queue (made with the ipc namespace) in that namespace, as one of its tasks holds it. */
function openMqDescriptor(name: string, flags: number, nsId: number, env: RestoreFilesEnv): number {
  const holder = env.nsHolder('ipcNsId', nsId);
  if (holder === undefined) throw new CryoError(`POSIX message queue ${name}: no task of ipc namespace ${nsId} is restored to open it in`);
  try {
    return ipc.inNamespace(`/proc/${holder}/ns/ipc`, 'ipc', () => ipc.mqOpen(name.slice(1), (flags & (O.ACCMODE | O.NONBLOCK)) | O.CLOEXEC));
  } catch (e) {
    throw new CryoError(`POSIX message queue ${name} of ipc namespace ${nsId}: cannot open it again: ${(e as Error).message}`);
  }
}

/**
 * The pid of the dead process whose /proc directory holds this file ("/proc/N",
 * "/proc/N/..."), as CRIU's dead pid remap; else undefined. A file in a dead
 * process's directory is not always shown deleted (CRIU looks for /proc/N): it
 * is dead when its path (from the tree's root, `root`) no longer leads to this
 * very inode, gone or its pid taken by another process since. The restore makes
 * the directory exist again with a process of that pid in the tree's pid
 * namespace, so that must be the namespace of the proc it is on.
 */
function deadProcFile(src: RegSource, name: string, root: string): number | undefined {
  const m = /^\/proc\/(\d+)(\/|$)/.exec(name.endsWith(DELETED) ? name.slice(0, -DELETED.length) : name);
  if (!m || !Number(m[1])) return undefined;
  if (fsMagic(src.proc) !== PROC_SUPER_MAGIC) return undefined;
  try {
    const now = lstatSync(root + name);
    if (now.dev === src.st.dev && now.ino === src.st.ino) return undefined;
  } catch {
    /* gone: dead */
  }
  // The proc it is on shows the task itself by its pid there (the innermost of NSpid), the same process.
  const who = (proc: string): string | undefined => {
    try {
      const stat = readFileSync(`${proc}/stat`, 'utf8');
      return `${readlinkSync(`${proc}/ns/pid`)} ${stat.slice(stat.lastIndexOf(')')).split(' ')[20]}`;
    } catch {
      return undefined;
    }
  };
  const inner = /^NSpid:.*?(\d+)\s*$/m.exec(readFileSync(`/proc/${src.pid}/status`, 'utf8'))?.[1];
  const self = who(`/proc/${src.pid}`);
  if (inner === undefined || self === undefined || who(`${root}/proc/${inner}`) !== self) {
    throw new CryoError(`task ${src.pid}: ${src.what} is ${name}, a dead process's /proc file on a proc of another pid namespace than the task's: cryo does not carry it`);
  }
  return Number(m[1]);
}

/**
 * A file of the tree's mount namespace is reopened by its path from the root on
 * restore: that path must lead to this very file on its mount. One on a mount
 * hidden since under another (zdtm overmount_file) would come back as whatever
 * the path shows now, or not at all: refused.
 */
function checkReachable(src: RegSource, name: string, mntId: number, root: string): void {
  let now: { st: Stats; mntId: number };
  try {
    now = whereNow(root + name);
  } catch (e) {
    throw new CryoError(`task ${src.pid}: ${src.what} is ${name} on mount ${mntId}, which that path in its mount namespace no longer reaches (${(e as NodeJS.ErrnoException).code})`);
  }
  const same = now.st.dev === src.st.dev && now.st.ino === src.st.ino;
  if (!same || now.mntId !== mntId) {
    throw new CryoError(`task ${src.pid}: ${src.what} is ${name} on mount ${mntId}, but that path in its mount namespace now leads to ${same ? `it through mount ${now.mntId}` : `another file (on mount ${now.mntId})`}: the mount is hidden under another, which cryo cannot reopen it through`);
  }
}

/**
 * A device file is reopened by its path on restore: that path must still lead to
 * it (CRIU: "Unaccessible path opened"). With --evasive-devices another node of
 * the same device there will do (/dev rebuilt, or a new devtmpfs over it).
 */
function checkDevicePath(src: RegSource, name: string, evasive: boolean, root: string): void {
  let now: Stats;
  try {
    now = statSync(root + name);
  } catch (e) {
    throw new CryoError(`task ${src.pid}: ${src.what} is the device ${name}, which that path no longer reaches (${(e as NodeJS.ErrnoException).code})`);
  }
  if (now.dev === src.st.dev && now.ino === src.st.ino) return;
  const sameDevice = now.rdev === src.st.rdev && now.isCharacterDevice() === src.st.isCharacterDevice() && now.isBlockDevice() === src.st.isBlockDevice();
  if (evasive && sameDevice) return;
  const dev = (st: Stats) => `${major(st.rdev)}:${minor(st.rdev)}`;
  throw new CryoError(
    `task ${src.pid}: ${src.what} is the device ${dev(src.st)} opened as ${name}, but that path now names another ` +
    (sameDevice ? 'node of the same device (dump with --evasive-devices to take it)' : `file (${now.isCharacterDevice() || now.isBlockDevice() ? `device ${dev(now)}` : 'not that device'})`),
  );
}

/**
 * Deleted here but linked elsewhere: a hard link "link_remap.N" in the file's
 * directory (or the nearest one that still exists) keeps it, as CRIU's --link-remap.
 */
function dumpLinkRemap(src: RegSource, name: string, origId: number, env: RegDumpEnv, init: { mntId?: number }): void {
  const { st } = src;
  // One link per namespace it is reached in: a link cannot be made across mounts (EXDEV).
  const key = `link:${st.dev}:${st.ino}${env.mntns ? `:${env.mntns.root}` : ''}`;
  let linkId = env.files.lookup(key);
  if (linkId === undefined) {
    if (!env.linkRemap) {
      throw new CryoError(`task ${src.pid}: ${src.what} is ${name}, deleted but still linked elsewhere (${st.nlink} links); dump with --link-remap`);
    }
    let dir = path.dirname(name);
    let link: string;
    // CRIU's name, then with a suffix where another file (of a dump beside ours) has it.
    for (let k = 0; ; ) {
      link = path.join(dir, k ? `link_remap.${origId}.${k}` : `link_remap.${origId}`);
      try {
        // linkat through the /proc magic link: the file itself, not its old name.
        const at = linkTarget(link, env.mntns?.root);
        try {
          asOwnerIfRefused(() => syscall('linkat', NR.linkat, AT_FDCWD, Buffer.from(src.proc + '\0'), at.dirfd, Buffer.from(at.name + '\0'), AT_SYMLINK_FOLLOW), () => st);
        } finally {
          at.close();
        }
        env.files.linkRemaps.push({ link, root: env.mntns?.root });
        break;
      } catch (e) {
        if (SysError.is(e, 'ENOENT') && dir !== '/') {
          dir = path.dirname(dir); // its directory is gone too: the parent's
          continue;
        }
        // Left by an earlier dump of the same task (-R): reuse it if it is our file.
        if (SysError.is(e, 'EEXIST') && sameFile(env.mntns ? `${env.mntns.root}${link}` : link, st)) break;
        if (SysError.is(e, 'EEXIST') && ++k < 100) continue;
        throw new CryoError(`task ${src.pid}: cannot link ${name} (deleted) back as ${link}: ${SysError.is(e) ? e.code : (e as Error).message}`);
      }
    }
    // On the file's own mount: the restore reaches it in that mount's namespace.
    linkId = env.files.addReg({ flags: 0, pos: 0n, name: link, ...(init.mntId !== undefined ? { mntId: init.mntId } : {}) }, key);
  }
  env.files.remaps.push(create(RemapFilePathEntrySchema, { origId, remapId: linkId, remapType: RemapType.LINKED }));
}

/**
 * Where a link of cryo's is made: at `link` itself, or in the tree's own mount
 * namespace at that path as the tree sees it, its directory reached from the tree's
 * root (`root`, its /proc/PID/root) without ever leaving it.
 */
function linkTarget(link: string, root: string | undefined): { dirfd: number; name: string; close(): void } {
  if (root === undefined) return { dirfd: AT_FDCWD, name: link, close: () => undefined };
  const r = openSync(root, O.PATH | O.DIRECTORY | O.CLOEXEC);
  let d: number;
  try {
    d = openInRoot(r, path.dirname(link), O.PATH | O.DIRECTORY | O.CLOEXEC);
  } finally {
    closeSync(r);
  }
  return { dirfd: d, name: path.basename(link), close: () => closeSync(d) };
}

function sameFile(p: string, st: Stats): boolean {
  try {
    const o = statSync(p);
    return o.ino === st.ino && o.dev === st.dev;
  } catch {
    return false;
  }
}
