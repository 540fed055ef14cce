// Interval timers (setitimer) and POSIX timers (timer_create), both ways. POSIX
// timers come back with their ids: Linux 6.15+ lets a process ask timer_create()
// for a given id (PR_TIMER_CREATE_RESTORE_IDS), older kernels hand out ids in
// order, so we create and delete until the wanted id comes up, as CRIU does.
import { readFileSync } from 'node:fs';
import { NR, PR_TIMER_CREATE_RESTORE_IDS } from '../sys/index.js';
import { itimerspec, itimerval, sigevent } from '../abi/index.js';
import {
  create, TaskTimersEntrySchema, ItimerEntrySchema, PosixTimerEntrySchema,
  type TaskTimersEntry, type PosixTimerEntry, type ItimerEntry,
} from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import { RemoteError } from '../tracer/remote.js';
import type { TaskStateModule } from './task-state.js';

const SIGEV_SIGNAL = 0;
const SIGEV_NONE = 1;
const SIGEV_THREAD_ID = 4;

interface ProcTimer {
  id: number;
  signo: number;
  sival: bigint;
  notify: number;
  notifyTid: number;
  clock: number;
}

/** Parse /proc/PID/timers. */
export function parseProcTimers(text: string): ProcTimer[] {
  const out: ProcTimer[] = [];
  let cur: ProcTimer | undefined;
  for (const line of text.split('\n')) {
    const [k, v] = [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()];
    if (k === 'ID') {
      cur = { id: Number(v), signo: 0, sival: 0n, notify: SIGEV_SIGNAL, notifyTid: 0, clock: 0 };
      out.push(cur);
    } else if (cur && k === 'signal') {
      const [sig, val] = v.split('/');
      cur.signo = Number(sig);
      cur.sival = BigInt('0x' + (val ?? '0'));
    } else if (cur && k === 'notify') {
      const [how, who] = v.split('/');
      const thread = who?.startsWith('tid.');
      cur.notify = how === 'none' ? SIGEV_NONE : thread ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
      cur.notifyTid = thread ? Number(who!.slice(4)) : 0;
    } else if (cur && k === 'ClockID') {
      cur.clock = Number(v);
    }
  }
  return out;
}

/**
 * When a timer restored as [value, interval] next fires. An expired timer whose
 * signal is still pending shows value 0 (the kernel re-arms it only when the signal
 * is taken): its next period then starts one interval on. Null: disarmed.
 */
export function nextExpiry(vsec: bigint, vsub: bigint, isec: bigint, isub: bigint): [bigint, bigint] | null {
  if (vsec || vsub) return [vsec, vsub];
  return isec || isub ? [isec, isub] : null;
}

/** ITIMER_REAL, _VIRTUAL and _PROF, read in one batch into three slots at `scratch`. */
function itimers(rem: Remote, scratch: bigint): ItimerEntry[] {
  const size = itimerval.size;
  rem.batch([0, 1, 2].map((which) => ({ name: 'getitimer', nr: NR.getitimer, args: [which, scratch + BigInt(which * size)] })));
  const all = rem.mem.read(scratch, 3 * size);
  return [0, 1, 2].map((which) => {
    const { it_interval: i, it_value: v } = itimerval.decode(all.subarray(which * size, (which + 1) * size));
    return create(ItimerEntrySchema, { isec: i.tv_sec, iusec: i.tv_usec, vsec: v.tv_sec, vusec: v.tv_usec });
  });
}

/** `tids`: thread ids as the task sees them, by ours (timers name threads by tid). */
export function dumpTimers(rem: Remote, pid: number, tids: Map<number, number>): TaskTimersEntry {
  const scratch = rem.scratch(4096);
  const posix: PosixTimerEntry[] = [];
  for (const t of parseProcTimers(readFileSync(`/proc/${pid}/timers`, 'utf8'))) {
    rem.call('timer_gettime', NR.timer_gettime, t.id, scratch);
    const { it_interval: i, it_value: v } = itimerspec.decode(rem.mem.read(scratch, itimerspec.size));
    const overrun = Number(rem.call('timer_getoverrun', NR.timer_getoverrun, t.id));
    posix.push(create(PosixTimerEntrySchema, {
      itId: t.id, clockId: t.clock, siSigno: t.signo, itSigevNotify: t.notify, sivalPtr: t.sival, overrun,
      isec: i.tv_sec, insec: i.tv_nsec, vsec: v.tv_sec, vnsec: v.tv_nsec,
      ...(t.notify === SIGEV_THREAD_ID ? { notifyThreadId: tids.get(t.notifyTid) ?? t.notifyTid } : {}),
    }));
  }
  const [real, virt, prof] = itimers(rem, scratch);
  return create(TaskTimersEntrySchema, { real, virt, prof, posix });
}

function createTimer(rem: Remote, t: PosixTimerEntry, withIds: boolean): void {
  const ev = sigevent.encode({ sigev_value: t.sivalPtr, sigev_signo: t.siSigno, sigev_notify: t.itSigevNotify, sigev_notify_thread_id: t.notifyThreadId ?? 0 });
  const idBuf = Buffer.alloc(4);
  idBuf.writeInt32LE(t.itId, 0);
  const evAddr = rem.put(ev, 0);
  const idAddr = rem.put(idBuf, 128);
  if (withIds) {
    rem.call('timer_create', NR.timer_create, t.clockId, evAddr, idAddr);
    return;
  }
  // Older kernels: ids come in order; burn the ones we do not want.
  const burnt: number[] = [];
  for (let tries = 0; tries < 1 << 16; tries++) {
    rem.call('timer_create', NR.timer_create, t.clockId, evAddr, idAddr);
    const got = rem.mem.read(idAddr, 4).readInt32LE(0);
    if (got === t.itId) break;
    if (got > t.itId) throw new RemoteError(rem.pid, `timer_create (wanted id ${t.itId}, got ${got})`, 17);
    burnt.push(got);
  }
  for (const id of burnt) rem.call('timer_delete', NR.timer_delete, id);
}

export function restoreTimers(rem: Remote, timers: TaskTimersEntry | undefined): void {
  if (!timers) return;
  [timers.real, timers.virt, timers.prof].forEach((it, which) => {
    if (!it) return;
    const next = nextExpiry(it.vsec, it.vusec, it.isec, it.iusec);
    if (!next) return;
    const [vsec, vusec] = next;
    const v = itimerval.encode({ it_interval: { tv_sec: it.isec, tv_usec: it.iusec }, it_value: { tv_sec: vsec, tv_usec: vusec } });
    rem.call('setitimer', NR.setitimer, which, rem.put(v), 0);
  });
  const posix = [...timers.posix].sort((a, b) => a.itId - b.itId);
  if (!posix.length) return;
  const withIds = rem.callRaw(NR.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) === 0n;
  try {
    for (const t of posix) createTimer(rem, t, withIds);
  } finally {
    if (withIds) rem.callRaw(NR.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
  }
  for (const t of posix) {
    const next = nextExpiry(t.vsec, t.vnsec, t.isec, t.insec);
    if (!next) continue; // disarmed
    const [vsec, vnsec] = next;
    const its = itimerspec.encode({ it_interval: { tv_sec: t.isec, tv_nsec: t.insec }, it_value: { tv_sec: vsec, tv_nsec: vnsec } });
    rem.call('timer_settime', NR.timer_settime, t.itId, 0, rem.put(its, 256), 0);
  }
}

export const timersModule: TaskStateModule = {
  name: 'timers',
  dumpTask(d) {
    d.tc.timers = dumpTimers(d.rem, d.pid, d.nsTids);
  },
  restore: {
    // After the threads: a timer may be aimed at one of them (SIGEV_THREAD_ID).
    threads: (t) => restoreTimers(t.rem, t.img.core.tc?.timers),
  },
};
