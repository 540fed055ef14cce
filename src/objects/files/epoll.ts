// epoll: every registered fd with its events and data, from the "tfd:" lines of
// /proc/PID/fdinfo. The registrations are made again by the task itself, once all
// its fds are in place: epoll keys them by (file, fd number) in the task.
import { create, FdTypes, FileEntrySchema, EventpollFileEntrySchema, EventpollTfdEntrySchema, type FileEntry } from '../../images/index.js';
import { noFown } from './table.js';
import { F, NR, O, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';
import { badFile, partOf, type FdKind } from './kind.js';

const EPOLL_CTL_ADD = 1;
const TFD = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*([0-9a-f]+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/gm;

export const epoll: FdKind = {
  name: 'epoll',
  type: FdTypes.EVENTPOLL,
  match: (p) => p.link === 'anon_inode:[eventpoll]',
  dump(p, env) {
    const id = env.files.newId();
    const tfd = [...p.fdinfoText.matchAll(TFD)].map((m) => create(EventpollTfdEntrySchema, {
      id, tfd: Number(m[1]), events: parseInt(m[2]!, 16), data: BigInt('0x' + m[3]),
      pos: BigInt('0x' + m[4]), inode: BigInt('0x' + m[5]), dev: parseInt(m[6]!, 16),
    }));
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.EVENTPOLL, id, epfd: create(EventpollFileEntrySchema, { id, flags: p.info.flags & ~O.CLOEXEC, fown, tfd }),
    }));
    return id;
  },
  open(fe) {
    if (!fe.epfd) throw new CryoError(`file id ${fe.id}: epoll entry without its epfd field`);
    const fd = syscall('epoll_create1', NR.epoll_create1, O.CLOEXEC);
    if (fe.epfd.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
    return fd;
  },
  afterPlant(rem: Remote, fe: FileEntry, fd: number) {
    for (const t of fe.epfd?.tfd ?? []) {
      const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64
      ev.writeUInt32LE(t.events, 0);
      ev.writeBigUInt64LE(t.data, 4);
      const r = rem.callRaw(NR.epoll_ctl, fd, EPOLL_CTL_ADD, t.tfd, rem.put(ev, 3072));
      if (r < 0n) throw new CryoError(`task ${rem.pid}: epoll fd ${fd}: cannot watch fd ${t.tfd} again (errno ${-r})`);
    }
  },  check(entries, env) {
    for (const fe of entries) {
      const e = partOf(fe, 'epfd');
      // The task that plants the epoll first watches its targets again: they are its fds.
      const fds = env.fdsOf(fe.id);
      const t = fds && e.tfd.find((x) => !fds.has(x.tfd));
      if (t) throw badFile(fe, `epoll target fd ${t.tfd} is not an fd of the task that holds the epoll`);
    }
  },
};
