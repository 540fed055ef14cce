// Per-thread state other than registers, signals and credentials: the name,
// scheduling policy, priority and nice value, the robust futex list, the
// alternate signal stack, the parent-death signal, the rseq registration and
// the tid address. Read by the thread itself (remote calls) or from /proc on
// dump, and set again by the thread itself on restore.
import { readFileSync } from 'node:fs';
import { NR, PR, getRobustList, ptrace } from '../sys/index.js';
import { create, RseqEntrySchema, ThreadSasEntrySchema, type CoreEntry, type RseqEntry, type ThreadCoreEntry } from '../images/index.js';
import { parseStat } from '../proc/stat.js';
import { CryoError } from '../context.js';
import type { BatchCall, Remote } from '../tracer/remote.js';
import { MemIO } from '../tracer/memio.js';
import { schedParam, stackT } from '../abi/index.js';
import { restorePending } from './signals.js';
import type { TaskStateModule } from './task-state.js';

type ThreadState = Pick<ThreadCoreEntry, 'futexRla' | 'futexRlaLen' | 'schedNice' | 'schedPolicy' | 'schedPrio' | 'sas' | 'pdeathSig' | 'comm' | 'rseqEntry'>;

/** struct rseq_cs's flag: a signal (or a checkpoint) does not abort the critical section. */
const RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL = 2;

/** A thread's rseq registration, and where it must resume if it sits in a critical section. */
export interface RseqState {
  entry?: RseqEntry;
  abortIp?: bigint;
}

/**
 * Before any call of ours runs in the thread: the kernel clears the critical
 * section pointer on the way back to user space outside the section. As CRIU's
 * fixup_thread_rseq, a thread stopped inside a section resumes at its abort
 * handler (the kernel would abort it too), which -R and a failed dump also use.
 * With NO_RESTART_ON_SIGNAL it stays where it is, and the pointer is kept for
 * the restore to put back after its last call.
 */
export function dumpRseq(tid: number): RseqState {
  let rc;
  try {
    rc = ptrace.getRseqConfig(tid);
  } catch (e) {
    // As CRIU: a registration cryo cannot read would be lost on restore.
    throw new CryoError(`thread ${tid}: cannot read its rseq registration: ${(e as Error).message}`);
  }
  if (!rc.rseqAbiPointer) return {};
  const base = { rseqAbiPointer: rc.rseqAbiPointer, rseqAbiSize: rc.rseqAbiSize, signature: rc.signature };
  const mem = new MemIO(tid);
  try {
    const rseq = mem.read(rc.rseqAbiPointer, 32);
    const csPtr = rseq.readBigUInt64LE(8);
    if (csPtr === 0n) return { entry: create(RseqEntrySchema, base) };
    let cs: Buffer;
    try {
      cs = mem.read(csPtr, 32);
    } catch {
      throw new CryoError(`thread ${tid}: its rseq critical section descriptor at 0x${csPtr.toString(16)} cannot be read`);
    }
    const version = cs.readUInt32LE(0);
    if (version !== 0) throw new CryoError(`thread ${tid}: rseq critical section descriptor of ABI version ${version}, which cryo does not know`);
    if ((cs.readUInt32LE(4) | rseq.readUInt32LE(16)) & RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL) {
      return { entry: create(RseqEntrySchema, { ...base, rseqCsPointer: csPtr }) };
    }
    const ip = ptrace.getRegs(tid).get('ip');
    const start = cs.readBigUInt64LE(8);
    const inside = ip >= start && ip < start + cs.readBigUInt64LE(16);
    return { entry: create(RseqEntrySchema, base), ...(inside ? { abortIp: cs.readBigUInt64LE(24) } : {}) };
  } finally {
    mem.close();
  }
}

/**
 * After the thread's last remote call (which ran outside its critical section,
 * so the kernel cleared the pointer): the saved rseq_cs pointer goes back.
 */
export function rseqCsRestorer(core: CoreEntry): ((mem: MemIO) => void) | undefined {
  const rs = core.threadCore?.rseqEntry;
  if (!rs?.rseqAbiPointer || !rs.rseqCsPointer) return undefined;
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(rs.rseqCsPointer);
  return (mem) => mem.write(rs.rseqAbiPointer + 8n, b);
}

/** The thread's state, read in it (`scratch`: memory of the task's for the calls). */
export function dumpThreadState(rem: Remote, pid: number, tid: number, scratch: bigint, rseq: RseqState): ThreadState {
  const tstat = parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
  const robust = getRobustList(tid);
  const rseqEntry = rseq.entry;
  // One batch: the alternate stack at `scratch`, the parent-death signal 64 bytes on.
  const [, , policy] = rem.batch([
    { name: 'sigaltstack', nr: NR.sigaltstack, args: [0, scratch] },
    { name: 'prctl(PR_GET_PDEATHSIG)', nr: NR.prctl, args: [PR.GET_PDEATHSIG, scratch + 64n] },
    { name: 'sched_getscheduler', nr: NR.sched_getscheduler, args: [0] },
  ]);
  const got = rem.mem.read(scratch, 68);
  const ss = stackT.decode(got.subarray(0, stackT.size));
  const pdeathSig = got.readInt32LE(64);
  return {
    futexRla: robust.head, futexRlaLen: Number(robust.len), schedNice: tstat.nice,
    // As CRIU, from sched_getscheduler(): the policy with SCHED_RESET_ON_FORK (stat has no flag).
    schedPolicy: Number(policy), schedPrio: tstat.rtPriority,
    sas: create(ThreadSasEntrySchema, { ssSp: ss.ss_sp, ssFlags: ss.ss_flags, ssSize: ss.ss_size }),
    pdeathSig, comm: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, ''),
    ...(rseqEntry ? { rseqEntry } : {}),
  };
}

/** Per-thread state, run in the thread itself: name, rseq, robust list, tid address... */
export function restoreThreadState(rem: Remote, core: CoreEntry): void {
  const th = core.threadCore;
  // One batch; what the calls read is put at offsets of its own.
  const calls: BatchCall[] = [];
  const comm = th?.comm || core.tc?.comm;
  if (comm !== undefined) calls.push({ name: 'prctl(PR_SET_NAME)', nr: NR.prctl, args: [PR.SET_NAME, rem.put(Buffer.from(comm.slice(0, 15) + '\0'))] });
  if (th) {
    if (th.schedPolicy !== undefined) {
      const prm = schedParam.encode({ sched_priority: th.schedPrio ?? 0 });
      calls.push({ name: 'sched_setscheduler', nr: NR.sched_setscheduler, args: [0, th.schedPolicy, rem.put(prm, 512)] });
    }
    if (th.schedNice !== undefined) calls.push({ name: 'setpriority', nr: NR.setpriority, args: [0 /* PRIO_PROCESS */, 0, th.schedNice] });
    if (th.futexRla) calls.push({ name: 'set_robust_list', nr: NR.set_robust_list, args: [th.futexRla, th.futexRlaLen] });
    const sas = th.sas;
    if (sas && !(sas.ssFlags & 2 /* SS_DISABLE */)) {
      const s = stackT.encode({ ss_sp: sas.ssSp, ss_flags: sas.ssFlags & ~1 /* SS_ONSTACK */, ss_size: sas.ssSize });
      calls.push({ name: 'sigaltstack', nr: NR.sigaltstack, args: [rem.put(s, 1024), 0] });
    }
    const rs = th.rseqEntry;
    if (rs && rs.rseqAbiPointer) calls.push({ name: 'rseq', nr: NR.rseq, args: [rs.rseqAbiPointer, rs.rseqAbiSize, 0, rs.signature] });
  }
  const ti = core.threadInfo;
  if (ti) calls.push({ name: 'set_tid_address', nr: NR.set_tid_address, args: [ti.clearTidAddr] });
  rem.batch(calls);
  if (th) restorePending(rem, th.signalsP, false);
}

export const threadStateModule: TaskStateModule = {
  name: 'thread-state',
  dumpThread(_d, t) {
    Object.assign(t.tcore, dumpThreadState(t.rem, t.pid, t.tid, t.scratch, t.rseq));
  },
  restore: {
    threads: (t) => {
      for (const x of t.threads) restoreThreadState(x.rem, x.core);
    },
    // Last: a thread in an rseq critical section has its descriptor put back as it was.
    final: (t) => {
      for (const x of t.threads) {
        const last = rseqCsRestorer(x.core);
        if (last) x.last = last;
      }
    },
  },
};
