// Terminals, as CRIU's tty.c sees them: each fd is a TTY file entry (with a
// regular-file entry for its path) pointing at one tty-info entry per terminal
// side, whose id is CRIU's (index << 1 | master). Kinds:
// - pty pairs the tree opened itself (master and slave both held by the tree):
//   recreated with the same index (pty.ts);
// - /dev/tty: reopened by the task itself, which has its controlling terminal again;
// - terminals of the shell a job runs from (--shell-job): reconnected to the
//   terminal cryo runs on, as CRIU does;
// - terminals named with --external tty[RDEV:DEV]: given back on restore with
//   --inherit-fd fd[N]:tty[RDEV:DEV];
// - the console, virtual terminals and serial lines: reopened by their path;
// - pty slaves hung up by the close of their master: slaves of a new pair
//   whose master is closed again.
// Data queued in the tree's own pairs is carried (ttydata.ts).
import { closeSync, fstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import {
  create, isFieldSet, FdTypes, FileEntrySchema, ImageError, TtyDataEntrySchema, TtyFileEntrySchema, TtyInfoEntrySchema, TtyType, TtyPtyEntrySchema,
  type FileEntry, type TtyInfoEntry,
} from '../../images/index.js';
import { noFown } from './table.js';
import { AT_FDCWD, NR, O, TIOC, pidfdOpen, pidfdGetfd, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { parseStat } from '../../proc/stat.js';
import { RemoteError, type Remote } from '../../tracer/remote.js';
import type { FileTable } from './table.js';
import { badFile, hexId, major, minor, partOf, regOf, type FdKind, type FdProbe, type RestoreFilesEnv } from './kind.js';
import { ioctlInt, readParams, applyParams } from './termios.js';
import { takeQueued } from './ttydata.js';
import { ptsOf } from './ptyns.js';
import {
  isPtyMasterRdev, isPtyMaster, ownsPair, pairFd, isOrphanSlave, orphanSlaveFd, ttyKey, withSessionPtyUnlocked, reopenedByPath, devicePath,
  isHung, hungSlaveFd, openFlags, openTty, openTreeTty, ttyInfosOf, ttyDataOf, ptysOf, heldTtysOf, boundPtysOf,
} from './pty.js';

// CRIU's fixed indices for terminals that are not ptys (tty.c).
const CONSOLE_INDEX = 1002;
const VT_INDEX = 1004;
const CTTY_INDEX = 1006;
const STTY_INDEX = 1010;
const ETTY_INDEX = 1012;
const ETTY_INDEX_MAX = 1076;
const MAX_PTY_INDEX = 1000;

interface Driver {
  type: TtyType;
  master: boolean;
  index: number;
}

/** Terminal drivers CRIU knows, by device number (its get_tty_driver()). */
function driverType(rdev: number): TtyType | undefined {
  const ma = major(rdev);
  const mi = minor(rdev);
  if (ma === 5) return mi === 2 ? TtyType.PTY : mi === 1 ? TtyType.CONSOLE : mi === 0 ? TtyType.CTTY : undefined;
  if (ma === 4) return mi >= 1 && mi <= 63 ? TtyType.VT : undefined;
  if (ma === 188 || ma === 204) return TtyType.SERIAL;
  if (ma >= 128 && ma <= 143) return TtyType.PTY;
  return undefined;
}

export function isTty(rdev: number): boolean {
  return driverType(rdev) !== undefined;
}

function driverOf(p: FdProbe, lfd: number, files: FileTable, external: readonly string[]): Driver {
  const rdev = p.st.rdev;
  if (external.includes(ttyKey(rdev, p.st.dev))) {
    const same = files.ttyInfos.find((i) => i.type === TtyType.EXT_TTY && i.rdev === rdev && i.dev === p.st.dev);
    if (same) return { type: TtyType.EXT_TTY, master: false, index: same.id >> 1 };
    const index = ETTY_INDEX + 1 + files.ttyInfos.filter((i) => i.type === TtyType.EXT_TTY).length;
    if (index > ETTY_INDEX_MAX) throw new CryoError(`task ${p.pid}: too many external terminals`);
    return { type: TtyType.EXT_TTY, master: false, index };
  }
  const type = driverType(rdev)!;
  if (type === TtyType.PTY) {
    const master = isPtyMasterRdev(rdev);
    // A slave's index is its device number (136..143 : N), also once it is hung up
    // and its /dev/pts name gone; a master's the kernel tells.
    const index = master ? ioctlInt(lfd, TIOC.GPTN) : (major(rdev) - 136) * 256 + minor(rdev);
    if (index === undefined || !Number.isInteger(index) || index > MAX_PTY_INDEX) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is the pseudo-terminal ${p.link}, whose index cryo cannot tell (or above ${MAX_PTY_INDEX})`);
    }
    return { type, master, index };
  }
  const index = type === TtyType.CONSOLE ? CONSOLE_INDEX : type === TtyType.VT ? VT_INDEX : type === TtyType.CTTY ? CTTY_INDEX : STTY_INDEX;
  return { type, master: false, index };
}

/** The terminal's state, read through cryo's copy of the fd; sid and pgrp as cryo sees them (finishTtys translates). */
function dumpInfo(p: FdProbe, lfd: number, d: Driver, id: number): TtyInfoEntry {
  const params = readParams(lfd);
  if (!params) {
    // A pty slave whose master was closed: as CRIU, an entry without termios (a
    // hung-up terminal), which the restore makes by closing a new master.
    if (d.type === TtyType.PTY && !d.master) {
      return create(TtyInfoEntrySchema, {
        id, type: d.type, locked: false, exclusive: false, packetMode: false, sid: 0, pgrp: 0,
        rdev: p.st.rdev, dev: p.st.dev, uid: p.st.uid, gid: p.st.gid, pty: create(TtyPtyEntrySchema, { index: d.index }),
      });
    }
    throw new CryoError(`task ${p.pid}: fd ${p.fd} is the terminal ${p.link}, which is hung up (its other side is gone); cryo does not support that`);
  }
  let sid = 0;
  let pgrp = 0;
  let locked = false;
  let packetMode = false;
  if (d.type === TtyType.PTY && d.master) {
    // A master answers these for its slave from any process.
    sid = ioctlInt(lfd, TIOC.GSID) ?? 0;
    pgrp = ioctlInt(lfd, TIOC.GPGRP) ?? 0;
    locked = (ioctlInt(lfd, TIOC.GPTLCK) ?? 0) !== 0;
    packetMode = (ioctlInt(lfd, TIOC.GPKT) ?? 0) !== 0;
  } else {
    // Other sides answer only inside the terminal's session (CRIU asks from its
    // parasite, which gets the values only for the task's controlling
    // terminal): the task's stat tells the same.
    const st = parseStat(readFileSync(`/proc/${p.pid}/stat`, 'utf8'));
    if (st.ttyNr !== 0 && (st.ttyNr === p.st.rdev || d.type === TtyType.CTTY)) {
      sid = st.sid;
      pgrp = Math.max(0, st.tpgid);
    }
  }
  return create(TtyInfoEntrySchema, {
    id, type: d.type, locked, exclusive: (ioctlInt(lfd, TIOC.GEXCL) ?? 0) !== 0, packetMode, sid, pgrp,
    rdev: p.st.rdev, dev: p.st.dev, uid: p.st.uid, gid: p.st.gid,
    termios: params.termios, termiosLocked: params.termiosLocked, winsize: params.winsize,
    ...(d.type === TtyType.PTY ? { pty: create(TtyPtyEntrySchema, { index: d.index }) } : {}),
  });
}

function openDevice(fe: FileEntry, info: TtyInfoEntry, env: RestoreFilesEnv): number {
  const name = devicePath(fe, env);
  if (!name) throw new CryoError(`file id ${fe.id}: terminal ${info.id} has no path to reopen it by`);
  let fd: number;
  try {
    fd = openTreeTty(name, openFlags(fe.tty!.flags), env.nsRoot);
  } catch (e) {
    throw new CryoError(`cannot open the terminal ${name}${env.nsRoot !== undefined ? " in the tree's mount namespace" : ''}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.rdev !== info.rdev) throw new CryoError(`${name} is the device ${major(st.rdev)}:${minor(st.rdev)} now, not ${major(info.rdev)}:${minor(info.rdev)} as dumped`);
    applyParams(fd, info);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

interface TreeTask {
  pid: number;
  stat: { pgid: number; sid: number };
  ns: { pid: number; pgid: number; sid: number; levels: number[] };
}

/**
 * Once every task is dumped: a terminal needs its other side in the tree, or
 * --shell-job, or --external; a pty pair of the tree must be the controlling
 * terminal of a session of the tree. Then sid and pgrp become the tree's own
 * ids (they differ from cryo's inside a pid namespace).
 */
export function finishTtys(files: FileTable, tasks: readonly TreeTask[], shellJob: boolean, orphanPtsMaster = false): void {
  try {
    checkTtys(files, tasks, shellJob, orphanPtsMaster);
    // The data queued in the tree's own pairs (a shell's terminal is not the tree's to read).
    for (const info of files.ttyInfos.filter(isPtyMaster)) {
      for (const id of [info.id, info.id & ~1]) {
        const fd = files.ttyQueueFds.get(id);
        if (fd === undefined) continue;
        const data = takeQueued(fd, id === info.id, `/dev/pts/${info.pty!.index} (${id === info.id ? 'master' : 'slave'})`);
        if (data.length) files.ttyData.push(create(TtyDataEntrySchema, { ttyId: id, data }));
      }
    }
  } finally {
    closeTtyQueues(files);
  }
}

/** Is tty-info `infoId` a pty slave whose master is not the tree's (an orphan, for orphan_pts_master)? */
export function isOrphanPty(files: FileTable, infoId: number): boolean {
  const info = files.ttyInfos.find((i) => i.id === infoId);
  if (!info || info.type !== TtyType.PTY || !info.pty || isPtyMaster(info) || isHung(info)) return false;
  return !files.ttyInfos.some((i) => isPtyMaster(i) && i.pty?.index === info.pty!.index);
}

/** A terminal named with --external tty[..]: given back by the caller (--inherit-fd), never reached by a path. */
export function isExternalTty(files: FileTable, infoId: number): boolean {
  return files.ttyInfos.some((i) => i.id === infoId && i.type === TtyType.EXT_TTY);
}

/** Close cryo's copies of pty sides (also after a failed dump). */
export function closeTtyQueues(files: FileTable): void {
  for (const fd of files.ttyQueueFds.values()) closeSync(fd);
  files.ttyQueueFds.clear();
}

function checkTtys(files: FileTable, tasks: readonly TreeTask[], shellJob: boolean, orphanPtsMaster: boolean): void {
  const infos = new Map(files.ttyInfos.map((i) => [i.id, i]));
  const owned = files.ttyInfos.filter(isPtyMaster);
  const ownedIndex = new Set(owned.map((i) => i.pty!.index));
  const ownedSids = new Set(owned.filter((i) => i.sid).map((i) => i.sid));
  for (const r of files.ttyFds) {
    const info = infos.get(r.infoId)!;
    if (info.type === TtyType.EXT_TTY) continue;
    if (info.type === TtyType.PTY && (ownedIndex.has(info.pty!.index) || isHung(info))) continue;
    if (info.type === TtyType.CTTY && ownedSids.has(info.sid)) continue;
    if (reopenedByPath(info.type, shellJob)) continue;
    // orphan_pts_master (runc's console): a slave whose master is the client's comes back as a new pair.
    if (orphanPtsMaster && isOrphanPty(files, info.id)) continue;
    if (!shellJob) throw new CryoError(`task ${r.pid}: fd ${r.fd} is the terminal ${r.link}; dump with --shell-job (-j) if it is a job of this shell`);
  }
  for (const info of files.ttyInfos) {
    const mine = isPtyMaster(info);
    if (info.sid) {
      if (mine && !tasks.some((t) => t.pid === info.sid && t.stat.sid === info.sid)) {
        throw new CryoError(`the pseudo-terminal /dev/pts/${info.pty!.index} is the controlling terminal of session ${info.sid}, whose leader is not in the dumped tree`);
      }
      const leader = tasks.find((t) => t.stat.sid === info.sid);
      // The leader would set the foreground group by a pid of its own namespace, which the images do not hold.
      if (tasks.find((t) => t.pid === info.sid)?.ns.levels.length && info.pgrp && info.pgrp !== info.sid) {
        throw new CryoError(`terminal ${info.id}: the leader of its session ${info.sid} is in a nested pid namespace and another group is in the foreground, which cryo does not dump yet`);
      }
      info.sid = leader?.ns.sid ?? info.sid;
    }
    if (info.pgrp) {
      const g = tasks.find((t) => t.stat.pgid === info.pgrp);
      if (mine && !g) {
        throw new CryoError(`the foreground process group ${info.pgrp} of /dev/pts/${info.pty!.index} is not in the dumped tree`);
      }
      info.pgrp = g?.ns.pgid ?? info.pgrp;
    }
  }
}

/** The terminal cryo runs on (the first of stdin, stdout, stderr that is one). */
export function ownTerminal(): string | null {
  for (const fd of [0, 1, 2]) {
    try {
      const st = statSync(`/proc/self/fd/${fd}`);
      if (st.isCharacterDevice() && isTty(st.rdev)) return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      /* closed */
    }
  }
  return null;
}

function infoOf(fe: FileEntry, env: RestoreFilesEnv): TtyInfoEntry {
  const t = fe.tty;
  if (!t) throw new CryoError(`file id ${fe.id}: terminal entry without its tty field`);
  const info = ttyInfosOf(env.kinds).get(t.ttyInfoId);
  if (!info) throw new CryoError(`file id ${fe.id}: terminal ${t.ttyInfoId} is missing from tty-info.img`);
  return info;
}


export const tty: FdKind = {
  name: 'terminal',
  type: FdTypes.TTY,
  dumpCleanup: (files, cl) => cl.always('pty queues held', () => closeTtyQueues(files)),
  finish: (files, env) => finishTtys(files, env.tasks, env.opts.shellJob, !!env.opts.orphanPtsMaster),
  writeImages(dir, files) {
    if (files.ttyInfos.length) dir.write('ttyInfo', files.ttyInfos);
    if (files.ttyData.length) dir.write('ttyData', files.ttyData);
  },
  loadImages(dir, store) {
    const infos = ttyInfosOf(store);
    for (const i of dir.tryRead('ttyInfo') ?? []) {
      if (infos.has(i.id)) throw new ImageError('IMG_INVALID', 'tty-info.img', undefined, `two entries with id ${hexId(i.id)}`);
      infos.set(i.id, i);
    }
    const data = ttyDataOf(store);
    for (const d of dir.tryRead('ttyData') ?? []) {
      const info = infos.get(d.ttyId);
      if (!info || info.type !== TtyType.PTY) throw new ImageError('IMG_INVALID', 'tty-data.img', undefined, `data for terminal 0x${d.ttyId.toString(16)}, which is no pseudo-terminal of tty-info.img`);
      if (data.has(d.ttyId)) throw new ImageError('IMG_INVALID', 'tty-data.img', undefined, `two entries for terminal 0x${d.ttyId.toString(16)}`);
      data.set(d.ttyId, d.data);
    }
  },
  // Pty pairs made and terminals held, closed when the restore ends.
  holdCleanup(store, cl) {
    cl.always('ptys held', () => {
      for (const p of ptysOf(store).values()) for (const fd of [p.master, ...p.slaves.values()]) closeSync(fd);
      for (const fd of [...heldTtysOf(store).values(), ...boundPtysOf(store).values()]) closeSync(fd);
    });
  },
  match: (p) => p.st.isCharacterDevice() && isTty(p.st.rdev),
  dump(p, env) {
    const files = env.files;
    const lfd = p.copy();
    const d = driverOf(p, lfd, files, env.external);
    const infoId = (d.index << 1) | (d.master ? 1 : 0);
    const info = dumpInfo(p, lfd, d, infoId);
    const have = files.ttyInfos.find((i) => i.id === infoId);
    if (!have) {
      files.ttyInfos.push(info);
      // Its queue is read once the whole tree is seen, if the pair is the tree's.
      if (d.type === TtyType.PTY && !isHung(info)) files.ttyQueueFds.set(infoId, dupCloexec(lfd));
    }
    else if (isHung(have) !== isHung(info)) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is /dev/pts/${d.index}, and so is another fd of the tree, one of them hung up (a pair closed, a new one with its number): CRIU's images cannot tell them apart`);
    }
    const flags = p.info.flags & ~O.CLOEXEC;
    const name = p.link.replace(/ \(deleted\)$/, '');
    // An external terminal has no path of its own: --inherit-fd names it.
    const regfId = d.type === TtyType.EXT_TTY
      ? undefined
      : files.addReg({ flags, pos: 0n, name, mode: p.st.mode, mntId: p.info.mntId });
    const id = files.newId();
    const fown = noFown();
    files.add(create(FileEntrySchema, {
      type: FdTypes.TTY, id,
      tty: create(TtyFileEntrySchema, { id, ttyInfoId: infoId, flags, fown, ...(regfId !== undefined ? { regfId } : {}) }),
    }));
    // Which devpts a pty is of matters only in a mount namespace of the tree's (ptyns.ts).
    const pts = d.type === TtyType.PTY && env.mntns ? ptsOf(lfd, d.master, p.st, p.info.mntId) : undefined;
    files.ttyFds.push({ pid: p.pid, fd: p.fd, link: p.link, infoId, path: name, mntId: p.info.mntId, pts });
    return id;
  },
  open(fe, env, task) {
    const info = infoOf(fe, env);
    if (info.type === TtyType.PTY && info.pty && ownsPair(info.pty.index, env)) return pairFd(fe, info, env);
    if (info.type === TtyType.PTY && info.pty && isHung(info)) return hungSlaveFd(fe, info, env);
    if (isOrphanSlave(info, env)) return orphanSlaveFd(fe, info, env);
    if (info.type === TtyType.CTTY) {
      if (!task) throw new CryoError('/dev/tty in flight in a socket queue cannot be restored');
      return withSessionPtyUnlocked(info.sid, env, () => openCtty(fe, env, task));
    }
    if (info.type === TtyType.EXT_TTY) {
      const key = ttyKey(info.rdev, info.dev ?? 0);
      throw new CryoError(`the tree used the external terminal ${key}: give it back with --inherit-fd fd[N]:${key}`);
    }
    if (reopenedByPath(info.type, env.shellJob)) return openDevice(fe, info, env);
    if (!env.shellJob) throw new CryoError('the tree used a terminal of its shell: restore it with --shell-job (-j)');
    const path = ownTerminal();
    if (!path) throw new CryoError('--shell-job: cryo has no terminal on stdin, stdout or stderr to give the restored job');
    return openTty(path, openFlags(fe.tty!.flags));
  },
  inheritKey: (fe, env) => {
    const info = infoOf(fe, env);
    return ttyKey(info.rdev, info.dev ?? 0);
  },
  check(entries, env) {
    for (const fe of entries) {
      const t = partOf(fe, 'tty');
      if (!ttyInfosOf(env.kinds).has(t.ttyInfoId)) throw badFile(fe, `terminal ${hexId(t.ttyInfoId)} names no entry of tty-info.img`);
      if (isFieldSet(t, TtyFileEntrySchema.field.regfId)) regOf(fe, t.regfId, 'its path, regf_id', env);
    }
  },
  openInherited(fe, fd, env) {
    const c = dupCloexec(fd);
    try {
      applyParams(c, infoOf(fe, env));
    } catch (e) {
      closeSync(c);
      throw e;
    }
    return c;
  },
};

/**
 * /dev/tty stands for the caller's controlling terminal: the task opens it
 * itself (it has its terminal back by now), and cryo takes a copy.
 */
function openCtty(fe: FileEntry, env: RestoreFilesEnv, task: Remote): number {
  const name = (fe.tty!.regfId !== undefined && env.files.get(fe.tty!.regfId)?.reg?.name) || '/dev/tty';
  let tfd: bigint;
  try {
    tfd = task.call(`open(${name})`, NR.openat, AT_FDCWD, task.put(Buffer.from(name + '\0')), openFlags(fe.tty!.flags), 0);
  } catch (e) {
    if (e instanceof RemoteError) throw new CryoError(`task ${task.pid} cannot open ${name} (its controlling terminal): ${e.message}`);
    throw e;
  }
  const pidfd = pidfdOpen(task.pid);
  try {
    return pidfdGetfd(pidfd, Number(tfd));
  } finally {
    closeSync(pidfd);
    task.call('close', NR.close, tfd);
  }
}
