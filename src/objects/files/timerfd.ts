// timerfd: clock, interval, remaining time and expirations not yet read, from
// /proc/PID/fdinfo. Restored relative to now, ticks set with TFD_IOC_SET_TICKS.
import { create, FdTypes, FileEntrySchema, TimerfdEntrySchema } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, TFD_IOC_SET_TICKS, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { partOf, type FdKind } from './kind.js';
import { nextExpiry } from '../timers.js';

const PAIR = /\((\d+),\s*(\d+)\)/;

export const timerfd: FdKind = {
  name: 'timerfd',
  type: FdTypes.TIMERFD,
  match: (p) => p.link === 'anon_inode:[timerfd]',
  dump(p, env) {
    const x = p.info.extra;
    const value = PAIR.exec(x.get('it_value') ?? '') ?? [];
    const interval = PAIR.exec(x.get('it_interval') ?? '') ?? [];
    const id = env.files.newId();
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.TIMERFD, id,
      tfd: create(TimerfdEntrySchema, {
        id, flags: p.info.flags & ~O.CLOEXEC, fown, clockid: Number(x.get('clockid') ?? 0),
        ticks: BigInt(x.get('ticks') ?? 0), settimeFlags: parseInt(x.get('settime flags') ?? '0', 8),
        vsec: BigInt(value[1] ?? 0), vnsec: BigInt(value[2] ?? 0), isec: BigInt(interval[1] ?? 0), insec: BigInt(interval[2] ?? 0),
      }),
    }));
    return id;
  },
  open(fe) {
    const e = fe.tfd;
    if (!e) throw new CryoError(`file id ${fe.id}: timerfd entry without its tfd field`);
    const fd = syscall('timerfd_create', NR.timerfd_create, e.clockid, (e.flags & O.NONBLOCK) | O.CLOEXEC);
    const next = nextExpiry(e.vsec, e.vnsec, e.isec, e.insec);
    if (next) {
      const its = Buffer.alloc(32);
      its.writeBigUInt64LE(e.isec, 0);
      its.writeBigUInt64LE(e.insec, 8);
      its.writeBigUInt64LE(next[0], 16);
      its.writeBigUInt64LE(next[1], 24);
      syscall('timerfd_settime', NR.timerfd_settime, fd, 0, its, 0);
    }
    if (e.ticks) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64LE(e.ticks, 0);
      // Needs CONFIG_CHECKPOINT_RESTORE; without it the pending count is lost.
      trySyscall(NR.ioctl, fd, TFD_IOC_SET_TICKS, t);
    }
    return fd;
  },  check(entries) {
    for (const fe of entries) partOf(fe, 'tfd');
  },
};
