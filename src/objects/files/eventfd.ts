// eventfd: its counter and flags (EFD_SEMAPHORE too), from /proc/PID/fdinfo.
import { create, FdTypes, FileEntrySchema, EventfdFileEntrySchema } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind } from './kind.js';

const EFD_SEMAPHORE = 1;

export const eventfd: FdKind = {
  name: 'eventfd',
  type: FdTypes.EVENTFD,
  match: (p) => p.link === 'anon_inode:[eventfd]',
  dump(p, env) {
    const count = BigInt('0x' + (p.info.extra.get('eventfd-count') ?? '0').trim());
    const sem = (p.info.extra.get('eventfd-semaphore') ?? '0').trim() === '1';
    const id = env.files.newId();
    const fown = noFown();
    // CRIU keeps the file's flags; EFD_SEMAPHORE (= O_RDONLY's slot, 1) rides along
    // in the low bit, which an eventfd's access mode (always O_RDWR) never uses.
    const flags = (p.info.flags & ~O.CLOEXEC) | (sem ? EFD_SEMAPHORE : 0);
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.EVENTFD, id, efd: create(EventfdFileEntrySchema, { id, flags, fown, counter: count }),
    }));
    return id;
  },
  open(fe) {
    const e = fe.efd;
    if (!e) throw new CryoError(`file id ${fe.id}: eventfd entry without its efd field`);
    const flags = (e.flags & O.NONBLOCK) | O.CLOEXEC | (e.flags & EFD_SEMAPHORE);
    return syscall('eventfd2', NR.eventfd2, Number(e.counter), flags);
  },  check(entries) {
    for (const fe of entries) {
      const e = partOf(fe, 'efd');
      if (e.counter > 0xffffffffn) throw badFile(fe, `eventfd counter ${e.counter} is beyond what eventfd2 can set`);
    }
  },
};
