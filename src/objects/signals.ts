// Pending signals, with their siginfo: peeked on dump (PTRACE_PEEKSIGINFO, the
// queue is left as it is), queued again on restore by the task itself in order.
import { NR, ptrace } from '../sys/index.js';
import { create, SignalQueueEntrySchema, SiginfoEntrySchema, type SignalQueueEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import type { TaskStateModule } from './task-state.js';


/** The shared (process-wide) or private (per-thread) queue of `tid`. */
export function dumpPending(tid: number, shared: boolean): SignalQueueEntry {
  const signals = [];
  for (let off = 0; ; ) {
    const batch = ptrace.peekSiginfo(tid, shared, off, 32);
    for (const si of batch) signals.push(create(SiginfoEntrySchema, { siginfo: new Uint8Array(si) }));
    if (batch.length < 32) break;
    off += batch.length;
  }
  return create(SignalQueueEntrySchema, { signals });
}

/** Queue the signals again, from the thread itself (its ids as its own pid namespace numbers them). */
export function restorePending(rem: Remote, q: SignalQueueEntry | undefined, shared: boolean): void {
  if (!q?.signals.length) return;
  const tgid = rem.call('getpid', NR.getpid);
  const tid = rem.call('gettid', NR.gettid);
  for (const s of q.signals) {
    const info = Buffer.from(s.siginfo);
    const sig = info.readInt32LE(0);
    const addr = rem.put(info, 1024);
    if (shared) rem.call(`rt_sigqueueinfo(${sig})`, NR.rt_sigqueueinfo, tgid, sig, addr);
    else rem.call(`rt_tgsigqueueinfo(${sig})`, NR.rt_tgsigqueueinfo, tgid, tid, sig, addr);
  }
}

/** The shared queue; each thread's own queue goes back with its other state (thread-state.ts). */
export const signalsModule: TaskStateModule = {
  name: 'signals',
  dumpTask(d) {
    d.tc.signalsS = dumpPending(d.pid, true);
  },
  dumpThread(_d, t) {
    t.tcore.signalsP = dumpPending(t.tid, false);
  },
  restore: {
    task: (t) => restorePending(t.rem, t.img.core.tc!.signalsS, true),
  },
};
