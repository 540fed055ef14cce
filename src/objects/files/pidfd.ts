// pidfd: a process fd. It names the process by pid (its pid in the root's
// pid namespace, from fdinfo's NSpid); restored with pidfd_open() once every
// task exists. A pidfd of a process that has exited (and was reaped) has no pid
// any more: as CRIU, its entry says nspid -1 and the inode, which tells the
// pidfds of one dead process from another's; on restore cryo starts a process,
// opens every pidfd of that inode on it and kills it.
import { create, FdTypes, FileEntrySchema, PidfdEntrySchema, type FileEntry } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, SIG, syscall, kill, waitpid } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind, type RestoreFilesEnv } from './kind.js';

export const pidfd: FdKind = {
  name: 'pidfd',
  type: FdTypes.PIDFD,
  match: (p) => p.link === 'anon_inode:[pidfd]',
  dump(p, env) {
    const pid = Number(p.info.extra.get('Pid') ?? -1);
    if (p.info.flags & PIDFD_THREAD) throw new CryoError(`task ${p.pid}: fd ${p.fd} is a pidfd of a thread (PIDFD_THREAD), which cryo does not support yet`);
    if (pid === 0) throw new CryoError(`task ${p.pid}: fd ${p.fd} is a pidfd of a process outside its pid namespace`);
    // NSpid starts at cryo's level: the images name the process at the root's.
    const level = (p.info.extra.get('NSpid') ?? String(pid)).trim().split(/\s+/)[env.pidDepth];
    if (pid > 0 && level === undefined) throw new CryoError(`task ${p.pid}: fd ${p.fd} is a pidfd of process ${pid}, which is outside the tree's pid namespace`);
    const nspid = pid < 0 ? -1 : Number(level);
    const id = env.files.newId();
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.PIDFD, id,
      // As CRIU: without O_RDWR, which every pidfd has (its restore passes the flags to pidfd_open).
      pidfd: create(PidfdEntrySchema, { id, ino: Number(p.st.ino), flags: p.info.flags & ~(O.CLOEXEC | O.RDWR), nspid, fown }),
    }));
    return id;
  },
  open(fe, env) {
    const e = fe.pidfd;
    if (!e) throw new CryoError(`file id ${fe.id}: pidfd entry without its pidfd field`);
    if (e.nspid === -1) return openDead(fe, env);
    const pid = env.hostPid(e.nspid);
    try {
      // PIDFD_NONBLOCK is O_NONBLOCK; a pidfd is always close-on-exec.
      return syscall('pidfd_open', NR.pidfd_open, pid, e.flags & O.NONBLOCK);
    } catch (err) {
      throw new CryoError(`cannot open a pidfd of process ${e.nspid} again: ${(err as Error).message}`);
    }
  },
  check(entries) {
    for (const fe of entries) {
      const e = partOf(fe, 'pidfd');
      if (e.nspid <= 0 && e.nspid !== -1) throw badFile(fe, `pidfd of pid ${e.nspid}`);
    }
  },
};

/** PIDFD_THREAD is O_EXCL. */
const PIDFD_THREAD = O.EXCL;

/** A pidfd of a dead process: every pidfd of its inode is opened on one process that then dies. */
function openDead(fe: FileEntry, env: RestoreFilesEnv): number {
  const ino = fe.pidfd!.ino;
  let fds = env.deadPidfds.get(ino);
  if (!fds) {
    fds = new Map();
    env.deadPidfds.set(ino, fds);
    const pid = env.spawnTemp();
    try {
      for (const other of env.files.values()) {
        const o = other.pidfd;
        if (!o || o.nspid !== -1 || o.ino !== ino) continue;
        fds.set(other.id, syscall('pidfd_open', NR.pidfd_open, pid, o.flags & O.NONBLOCK));
      }
    } finally {
      kill(pid, SIG.KILL);
      waitpid(pid, 0);
    }
  }
  const fd = fds.get(fe.id);
  if (fd === undefined) throw new CryoError(`file id ${fe.id}: the pidfd of a dead process was opened already`);
  fds.delete(fe.id);
  return fd;
}
