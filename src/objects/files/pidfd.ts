// pidfd: a process fd. It names the process by pid (its pid in the task's own
// pid namespace, from fdinfo's NSpid); restored with pidfd_open() once every
// task exists.
import { create, FdTypes, FileEntrySchema, PidfdEntrySchema } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind } from './kind.js';

export const pidfd: FdKind = {
  name: 'pidfd',
  type: FdTypes.PIDFD,
  match: (p) => p.link === 'anon_inode:[pidfd]',
  dump(p, env) {
    const pid = Number(p.info.extra.get('Pid') ?? -1);
    if (pid <= 0) throw new CryoError(`task ${p.pid}: fd ${p.fd} is a pidfd of a process that has exited, which cryo does not support yet`);
    const nspid = Number((p.info.extra.get('NSpid') ?? String(pid)).trim().split(/\s+/).pop());
    const id = env.files.newId();
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.PIDFD, id,
      pidfd: create(PidfdEntrySchema, { id, ino: Number(p.st.ino), flags: p.info.flags & ~O.CLOEXEC, nspid, fown }),
    }));
    return id;
  },
  open(fe, env) {
    const e = fe.pidfd;
    if (!e) throw new CryoError(`file id ${fe.id}: pidfd entry without its pidfd field`);
    const pid = env.hostPid(e.nspid);
    try {
      // PIDFD_NONBLOCK is O_NONBLOCK; a pidfd is always close-on-exec.
      return syscall('pidfd_open', NR.pidfd_open, pid, e.flags & O.NONBLOCK);
    } catch (err) {
      throw new CryoError(`cannot open a pidfd of process ${e.nspid} again: ${(err as Error).message}`);
    }
  },  check(entries) {
    for (const fe of entries) {
      const e = partOf(fe, 'pidfd');
      if (e.nspid <= 0) throw badFile(fe, `pidfd of pid ${e.nspid}`);
    }
  },
};
