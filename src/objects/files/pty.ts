// Restoring the pseudo-terminal pairs the tree made itself (/dev/ptmx master,
// /dev/pts/N slaves) and the sessions they are the controlling terminal of.
//
// The pair comes back with its index N, as CRIU does it: devpts hands out the
// lowest free index, so cryo opens /dev/ptmx again and again (holding the
// smaller ones) until it gets N. If N is taken by someone else the restore
// fails: programs keep the name /dev/pts/N (ptsname, $SSH_TTY, utmp), and a
// pair under another number would break them quietly.
//
// Everything is opened in cryo, before the tasks take their copies: the master,
// then every slave open file description through TIOCGPTPEER (no path lookup,
// so no race with a new /dev/pts/N). A session leader gets its controlling
// terminal right after its setsid(), before it forks, so that the members of
// its session inherit it as they did; the foreground group is set once every
// group exists.
import { closeSync, fchmodSync, fchownSync, fstatSync } from 'node:fs';
import { FdTypes, TtyType, type FileEntry, type TtyInfoEntry } from '../../images/index.js';
import { AT_FDCWD, F, FD_CLOEXEC, NR, O, RESOLVE_NO_MAGICLINKS, TIOC, openInRoot, syscall, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';
import { major, minor, type KindStore, type PtyPair as Pair, type RestoreFilesEnv } from './kind.js';
import { applyParams, ioctlInt, setInt } from './termios.js';
import { putQueued } from './ttydata.js';
import { checkTreeDevpts, ptmxBeside } from './ptyns.js';

/** The restore's terminals, kept in the kinds' store: tty-info.img by id, tty-data.img by tty-info id. */
export const ttyInfosOf = (s: KindStore) => s.get<Map<number, TtyInfoEntry>>('tty:infos', () => new Map());
export const ttyDataOf = (s: KindStore) => s.get<Map<number, Uint8Array>>('tty:data', () => new Map());
/** Pseudo-terminal pairs recreated so far, by index. */
export const ptysOf = (s: KindStore) => s.get<Map<number, Pair>>('tty:ptys', () => new Map());
/**
 * Terminals cryo holds until the restore ends: devices (a virtual terminal...)
 * opened to be a session's controlling terminal ("dev:INFO-ID"; the last close
 * of a terminal takes it from its session) and hung-up pty slaves ("hung:FILE-ID").
 */
export const heldTtysOf = (s: KindStore) => s.get<Map<string, number>>('tty:held', () => new Map());
/**
 * Masters of the pty slaves bind-mounted in the tree's mount namespace (runc's
 * /dev/console), made with its devpts, by index: the pair of that index is made from it.
 */
export const boundPtysOf = (s: KindStore) => s.get<Map<number, number>>('tty:bound', () => new Map());

/** A pty master: /dev/ptmx (5:2) or one of the Unix98 master majors. */
export function isPtyMasterRdev(rdev: number): boolean {
  const m = major(rdev);
  return (m === 5 && minor(rdev) === 2) || (m >= 128 && m <= 135);
}

export function isPtyMaster(info: TtyInfoEntry): boolean {
  return info.type === TtyType.PTY && isPtyMasterRdev(info.rdev);
}


/**
 * Flags to open a terminal with for an fd of the images: its own, never a
 * controlling terminal, and without O_CLOEXEC, which would stay in the open
 * file's flags (F_GETFL); cryo's fd gets FD_CLOEXEC at once instead.
 */
export const openFlags = (f: number) => (f & ~(O.CREAT | O.TRUNC | O.EXCL | O.CLOEXEC)) | O.NOCTTY;

function setCloexec(fd: number): number {
  syscall('fcntl(F_SETFD)', NR.fcntl, fd, F.SETFD, FD_CLOEXEC);
  return fd;
}

/** open(2) a terminal with exactly `flags` (Node's open adds O_CLOEXEC to the file's flags). */
export function openTty(path: string, flags: number): number {
  return setCloexec(syscall(`open(${path})`, NR.openat, AT_FDCWD, Buffer.from(path + '\0'), flags & ~O.CLOEXEC, 0));
}

/**
 * A terminal by a path of the images: in the tree's own mount namespace
 * (`nsRoot`) from its root, never leading out of it (its /dev/ptmx is not
 * cryo's: a pty made through cryo's would be of the host's devpts).
 */
export function openTreeTty(path: string, flags: number, nsRoot: number | undefined): number {
  if (nsRoot === undefined) return openTty(path, flags);
  return setCloexec(openInRoot(nsRoot, path, flags & ~O.CLOEXEC, 0, RESOLVE_NO_MAGICLINKS));
}

interface Side {
  fe: FileEntry;
  info: TtyInfoEntry;
}

/** The file entries of pty `index`: its master (if the tree held it) and its slaves. */
function sides(index: number, env: RestoreFilesEnv): { masters: Side[]; slaves: Side[] } {
  const masters: Side[] = [];
  const slaves: Side[] = [];
  for (const fe of env.files.values()) {
    if (fe.type !== FdTypes.TTY || !fe.tty) continue;
    const info = ttyInfosOf(env.kinds).get(fe.tty.ttyInfoId);
    if (!info || info.type !== TtyType.PTY || info.pty?.index !== index) continue;
    (isPtyMaster(info) ? masters : slaves).push({ fe, info });
  }
  return { masters, slaves };
}

/** Did the tree hold the master of pty `index` (so cryo recreates the pair)? */
export function ownsPair(index: number, env: RestoreFilesEnv): boolean {
  return sides(index, env).masters.length > 0;
}

/**
 * Open `path` (a ptmx; from `nsRoot`, the tree's root, if given) until the
 * kernel hands out `index`; the smaller ones are held meanwhile. From the tree's
 * root, the pty must be of the devpts that path leads to there.
 */
export function openPtmxAt(path: string, index: number, flags: number, nsRoot?: number): number {
  const held: number[] = [];
  const where = nsRoot !== undefined ? " in the tree's mount namespace" : '';
  try {
    for (;;) {
      let fd: number;
      try {
        fd = openTreeTty(path, flags, nsRoot);
      } catch (e) {
        throw new CryoError(`cannot open ${path}${where} for pseudo-terminal ${index}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const got = ioctlInt(fd, TIOC.GPTN);
      if (got === index) {
        if (nsRoot !== undefined) {
          try {
            checkTreeDevpts(fd, nsRoot, path, index);
          } catch (e) {
            closeSync(fd);
            throw e;
          }
        }
        return fd;
      }
      held.push(fd);
      if (got === undefined || got > index) {
        const what = nsRoot !== undefined ? `${index} of ${path} in the tree's mount namespace` : `/dev/pts/${index}`;
        throw new CryoError(`pseudo-terminal ${what} is in use on this system; the tree needs that index back (the kernel gave ${got})`);
      }
    }
  } finally {
    for (const fd of held) closeSync(fd);
  }
}

/** A new slave fd of the pair (TIOCGPTPEER refuses while the master is locked). */
function peer(pair: Pair, flags: number, locked: boolean): number {
  if (locked) setInt(pair.master, TIOC.SPTLCK, 0);
  try {
    return setCloexec(syscall('ioctl(TIOCGPTPEER)', NR.ioctl, pair.master, TIOC.GPTPEER, flags & ~O.CLOEXEC));
  } finally {
    if (locked) setInt(pair.master, TIOC.SPTLCK, 1);
  }
}

/**
 * Recreate pty `index` in cryo, once: master with its parameters, packet mode and
 * lock, every slave open file description with the slave's parameters, owner and
 * mode, and its exclusive flag.
 */
export function ensurePair(index: number, env: RestoreFilesEnv): Pair {
  const have = ptysOf(env.kinds).get(index);
  if (have) return have;
  const { masters, slaves } = sides(index, env);
  const m = masters[0];
  if (!m || masters.length > 1) throw new CryoError(`pseudo-terminal ${index}: want one master in files.img, found ${masters.length}`);
  const path = (m.fe.tty!.regfId !== undefined && env.files.get(m.fe.tty!.regfId)?.reg?.name) || '/dev/ptmx';
  // A slave of it bind-mounted in the tree's namespace made the pair already (as CRIU's fdstore'd master).
  const bound = boundPtysOf(env.kinds).get(index);
  boundPtysOf(env.kinds).delete(index);
  const pair: Pair = { master: bound ?? openPtmxAt(path, index, openFlags(m.fe.tty!.flags), env.nsRoot), slaves: new Map() };
  ptysOf(env.kinds).set(index, pair); // from here on the restore's cleanup closes it
  setInt(pair.master, TIOC.SPTLCK, 0);
  applyParams(pair.master, m.info);
  if (m.info.packetMode) setInt(pair.master, TIOC.PKT, 1);
  let first = true;
  for (const s of slaves) {
    const fd = peer(pair, openFlags(s.fe.tty!.flags), false);
    pair.slaves.set(s.fe.id, fd);
    if (first) {
      // One tty behind every slave fd: its state is set once.
      applyParams(fd, s.info);
      const reg = s.fe.tty!.regfId !== undefined ? env.files.get(s.fe.tty!.regfId)?.reg : undefined;
      const st = fstatSync(fd);
      if (s.info.uid !== undefined && s.info.gid !== undefined) {
        // The images hold the owner as the tree sees it (CRIU's userns_uid); cryo sets it in its own view.
        const what = `the slave of pseudo-terminal ${index}`;
        const uid = env.ids ? env.ids.hostUid(s.info.uid, what) : s.info.uid;
        const gid = env.ids ? env.ids.hostGid(s.info.gid, what) : s.info.gid;
        if (st.uid !== uid || st.gid !== gid) fchownSync(fd, uid, gid);
      }
      if (reg?.mode !== undefined && (st.mode & 0o7777) !== (reg.mode & 0o7777)) fchmodSync(fd, reg.mode & 0o7777);
      if (s.info.exclusive) syscall('ioctl(TIOCEXCL)', NR.ioctl, fd, TIOC.EXCL);
      first = false;
    }
  }
  // What each side had queued for reading, once its parameters are set.
  const what = (side: string) => `/dev/pts/${index} (${side})`;
  putQueued(pair.master, true, ttyDataOf(env.kinds).get(m.info.id) ?? new Uint8Array(), what('master'));
  const slaveData = ttyDataOf(env.kinds).get(m.info.id & ~1);
  if (slaveData?.length) {
    const first = pair.slaves.values().next().value as number | undefined;
    const fd = first ?? peer(pair, O.RDWR | O.NOCTTY, false);
    try {
      putQueued(fd, false, slaveData, what('slave'));
    } finally {
      if (first === undefined) closeSync(fd);
    }
  }
  if (m.info.locked) setInt(pair.master, TIOC.SPTLCK, 1);
  return pair;
}

/** A terminal dumped hung up (a pty slave whose master was closed): CRIU writes no termios for it. */
export function isHung(info: TtyInfoEntry): boolean {
  return !info.termios;
}

/**
 * A hung-up slave of pty `index`: a new pair with that number, a slave open
 * file description for every file entry of it, then the master closed, which
 * hangs them all up (and frees the number again). cryo keeps the slaves until
 * the restore ends.
 */
export function hungSlaveFd(fe: FileEntry, info: TtyInfoEntry, env: RestoreFilesEnv): number {
  const index = info.pty!.index;
  const key = (id: number) => `hung:${id}`;
  if (!heldTtysOf(env.kinds).has(key(fe.id))) {
    // In the tree's own mount namespace, through the ptmx of the slave's devpts (as CRIU's inverted path).
    const name = devicePath(fe, env);
    if (env.nsRoot !== undefined && !name) throw new CryoError(`bad image: terminal ${fe.id} has no path of its slave`);
    const master = env.nsRoot !== undefined ? openPtmxAt(ptmxBeside(name!), index, O.RDWR | O.NOCTTY | O.CLOEXEC, env.nsRoot) : openPtmxAt('/dev/ptmx', index, O.RDWR | O.NOCTTY | O.CLOEXEC);
    try {
      setInt(master, TIOC.SPTLCK, 0);
      for (const s of sides(index, env).slaves) {
        if (isHung(s.info)) heldTtysOf(env.kinds).set(key(s.fe.id), peer({ master, slaves: new Map() }, openFlags(s.fe.tty!.flags), false));
      }
    } finally {
      closeSync(master);
    }
  }
  return dupCloexec(heldTtysOf(env.kinds).get(key(fe.id))!);
}

/** A shell job's pty whose master was outside the tree, to be handed out with orphan_pts_master. */
export function isOrphanSlave(info: TtyInfoEntry, env: RestoreFilesEnv): boolean {
  // As CRIU: a shell job's terminal, or a session's controlling terminal (runc's console).
  return !!env.orphanPtsMaster && (env.shellJob || !!info.sid) && info.type === TtyType.PTY && !!info.pty && !isPtyMaster(info) && !ownsPair(info.pty.index, env);
}

/**
 * The new pair for an orphan slave (as CRIU: same number, unlocked, the dumped
 * terminal settings); its master goes to the RPC client once, when it is made.
 */
function orphanPair(fe: FileEntry, info: TtyInfoEntry, env: RestoreFilesEnv): Pair {
  const index = info.pty!.index;
  const have = ptysOf(env.kinds).get(index);
  if (have) return have;
  const bound = boundPtysOf(env.kinds).get(index);
  boundPtysOf(env.kinds).delete(index);
  const pair: Pair = { master: bound ?? openPtmxAt(orphanPtmx(fe, env), index, O.RDWR | O.NOCTTY | O.CLOEXEC, env.nsRoot), slaves: new Map() };
  ptysOf(env.kinds).set(index, pair);
  setInt(pair.master, TIOC.SPTLCK, 0);
  // The slave stays open until the restore ends: once one was opened and closed,
  // the master reads EIO until another is, and the client may read it at once.
  const s = peer(pair, O.RDWR | O.NOCTTY | O.CLOEXEC, false);
  heldTtysOf(env.kinds).set(`orphan:${index}`, s);
  applyParams(s, info);
  env.orphanPtsMaster!(pair.master);
  return pair;
}

/**
 * The ptmx to open an orphan's new pair from: cryo's own, or, in the tree's own
 * mount namespace, the one of the devpts its slave was on (runc's container
 * console: a devpts instance of the container's), reached through the
 * namespace's root.
 */
function orphanPtmx(fe: FileEntry, env: RestoreFilesEnv): string {
  if (env.nsRoot === undefined) return '/dev/ptmx';
  const name = fe.tty!.regfId !== undefined ? env.files.get(fe.tty!.regfId)?.reg?.name : undefined;
  if (!name?.startsWith('/')) throw new CryoError(`bad image: terminal ${fe.id} has no path of its slave in the mount namespace`);
  return ptmxBeside(name); // opened from the tree's root
}

/** A new open file description of an orphan slave, in cryo. */
export function orphanSlaveFd(fe: FileEntry, info: TtyInfoEntry, env: RestoreFilesEnv): number {
  return peer(orphanPair(fe, info, env), (fe.tty!.flags & ~O.CLOEXEC) | O.NOCTTY | O.CLOEXEC, false);
}

/**
 * Run `fn` while the pty that is session `sid`'s terminal is unlocked: any open
 * of a slave (also through /dev/tty) fails on a locked pair, and a failed open
 * leaves the slave returning EIO to everyone (pty_open sets TTY_IO_ERROR).
 */
export function withSessionPtyUnlocked<T>(sid: number, env: RestoreFilesEnv, fn: () => T): T {
  const info = sessionTerminals(env, sid).find(isPtyMaster);
  if (!info?.locked) return fn();
  const pair = ensurePair(info.pty!.index, env);
  setInt(pair.master, TIOC.SPTLCK, 0);
  try {
    return fn();
  } finally {
    setInt(pair.master, TIOC.SPTLCK, 1);
  }
}

/** cryo's fd (a new reference to the same open file description) for a TTY entry of an owned pair. */
export function pairFd(fe: FileEntry, info: TtyInfoEntry, env: RestoreFilesEnv): number {
  const pair = ensurePair(info.pty!.index, env);
  const fd = isPtyMaster(info) ? pair.master : pair.slaves.get(fe.id);
  if (fd === undefined) throw new CryoError(`file id ${fe.id}: slave of pseudo-terminal ${info.pty!.index} was not opened`);
  return dupCloexec(fd);
}

/**
 * The console, and (but for a shell job, whose terminal it is) a virtual terminal
 * or serial line: devices of the system, reopened by their path with their
 * parameters, as CRIU's open_simple_tty.
 */
export function reopenedByPath(type: TtyType, shellJob: boolean): boolean {
  return type === TtyType.CONSOLE || (!shellJob && (type === TtyType.VT || type === TtyType.SERIAL));
}

/** The path of a terminal's file entry (its reg-file entry), if it has one. */
export function devicePath(fe: FileEntry, env: RestoreFilesEnv): string | undefined {
  return fe.tty?.regfId !== undefined ? env.files.get(fe.tty.regfId)?.reg?.name : undefined;
}

/** The path of some fd of terminal `info` (the device's, for one reopened by path). */
function pathOfInfo(info: TtyInfoEntry, env: RestoreFilesEnv): string | undefined {
  for (const fe of env.files.values()) {
    if (fe.type === FdTypes.TTY && fe.tty?.ttyInfoId === info.id) {
      const p = devicePath(fe, env);
      if (p) return p;
    }
  }
  return undefined;
}

/**
 * The terminals that were the controlling terminal of session `sid` (ids as in
 * the images): a pty pair of the tree (by its master's entry) or an external
 * terminal given back with --inherit-fd.
 */
function sessionTerminals(env: RestoreFilesEnv, sid?: number): TtyInfoEntry[] {
  const out: TtyInfoEntry[] = [];
  for (const info of ttyInfosOf(env.kinds).values()) {
    if (!info.sid || (sid !== undefined && info.sid !== sid)) continue;
    if (isPtyMaster(info) && ownsPair(info.pty!.index, env)) out.push(info);
    else if (isOrphanSlave(info, env)) out.push(info);
    else if (info.type === TtyType.EXT_TTY && env.inherited.has(ttyKey(info.rdev, info.dev ?? 0))) out.push(info);
    else if (reopenedByPath(info.type, env.shellJob) && pathOfInfo(info, env)) out.push(info);
  }
  return out;
}

export function ttyKey(rdev: number, dev: number): string {
  return `tty[${rdev.toString(16)}:${dev.toString(16)}]`;
}

/** A fresh fd of the terminal's slave side, in cryo (the caller closes it). */
function terminalFd(info: TtyInfoEntry, env: RestoreFilesEnv): number {
  if (info.type === TtyType.EXT_TTY) {
    const inh = env.inherited.get(ttyKey(info.rdev, info.dev ?? 0))!;
    inh.used = true;
    return dupCloexec(inh.fd);
  }
  if (isOrphanSlave(info, env)) {
    const fe = [...env.files.values()].find((f) => f.type === FdTypes.TTY && f.tty?.ttyInfoId === info.id);
    if (!fe) throw new CryoError(`bad image: terminal ${info.id} (the controlling terminal of session ${info.sid}) has no file of its slave`);
    return peer(orphanPair(fe, info, env), O.RDWR | O.NOCTTY | O.CLOEXEC, false);
  }
  if (reopenedByPath(info.type, env.shellJob)) {
    let fd = heldTtysOf(env.kinds).get(`dev:${info.id}`);
    if (fd === undefined) {
      const path = pathOfInfo(info, env)!;
      try {
        fd = openTreeTty(path, O.RDWR | O.NOCTTY, env.nsRoot);
      } catch (e) {
        throw new CryoError(`cannot open the terminal ${path} (the controlling terminal of session ${info.sid}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      heldTtysOf(env.kinds).set(`dev:${info.id}`, fd);
    }
    return dupCloexec(fd);
  }
  const master = sides(info.pty!.index, env).masters[0]!;
  return peer(ensurePair(info.pty!.index, env), O.RDWR | O.NOCTTY | O.CLOEXEC, master.info.locked);
}

/** Run `fn` with a copy of the terminal's fd planted in the task. */
function withTerminal(rem: Remote, info: TtyInfoEntry, env: RestoreFilesEnv, cryoPidfd: bigint, fn: (tfd: bigint) => void): void {
  const fd = terminalFd(info, env);
  try {
    const tfd = rem.call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, fd, 0);
    try {
      fn(tfd);
    } finally {
      rem.call('close', NR.close, tfd);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Called in a session leader right after its setsid(), before it forks: make
 * the session's terminal its controlling terminal, so that the tasks it forks
 * have it too. An external terminal may be some other session's: it is taken
 * (TIOCSCTTY with force, as CRIU does).
 */
export function restoreCtty(rem: Remote, sid: number, env: RestoreFilesEnv, cryoPidfd: bigint): void {
  const infos = sessionTerminals(env, sid);
  if (infos.length > 1) throw new CryoError(`session ${sid} has ${infos.length} controlling terminals in tty-info.img`);
  for (const info of infos) {
    withTerminal(rem, info, env, cryoPidfd, (tfd) => {
      rem.call('ioctl(TIOCSCTTY)', NR.ioctl, tfd, TIOC.SCTTY, info.type === TtyType.EXT_TTY ? 1 : 0);
    });
  }
}

/** Once every process group exists: each session terminal's foreground group, set by its leader. */
export function restoreTtyPgrps(rems: Map<number, Remote>, env: RestoreFilesEnv, cryoPidfd: bigint): void {
  for (const info of sessionTerminals(env)) {
    const leader = rems.get(info.sid);
    if (!leader && isOrphanSlave(info, env)) continue; // the shell's session, outside the tree
    if (!leader) throw new CryoError(`terminal ${info.id}: the leader of its session ${info.sid} is not in the images`);
    if (!info.pgrp || info.pgrp === info.sid) continue; // TIOCSCTTY made the leader's group the foreground one
    withTerminal(leader, info, env, cryoPidfd, (tfd) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(info.pgrp, 0);
      leader.call('ioctl(TIOCSPGRP)', NR.ioctl, tfd, TIOC.SPGRP, leader.put(b));
    });
  }
}
