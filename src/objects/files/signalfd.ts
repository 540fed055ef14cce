// signalfd: the signal mask it reads, from /proc/PID/fdinfo.
import { create, FdTypes, FileEntrySchema, SignalfdEntrySchema } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { partOf, type FdKind } from './kind.js';


export const signalfd: FdKind = {
  name: 'signalfd',
  type: FdTypes.SIGNALFD,
  match: (p) => p.link === 'anon_inode:[signalfd]',
  dump(p, env) {
    const sigmask = BigInt('0x' + (p.info.extra.get('sigmask') ?? '0').trim());
    const id = env.files.newId();
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.SIGNALFD, id, sgfd: create(SignalfdEntrySchema, { id, flags: p.info.flags & ~O.CLOEXEC, fown, sigmask }),
    }));
    return id;
  },
  open(fe) {
    const e = fe.sgfd;
    if (!e) throw new CryoError(`file id ${fe.id}: signalfd entry without its sgfd field`);
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(e.sigmask, 0);
    return syscall('signalfd4', NR.signalfd4, -1, mask, 8, (e.flags & O.NONBLOCK) | O.CLOEXEC);
  },  check(entries) {
    for (const fe of entries) partOf(fe, 'sgfd');
  },
};
