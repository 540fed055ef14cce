// Taking hold of tasks with PTRACE_SEIZE + PTRACE_INTERRUPT, and letting go.
import { readFileSync } from 'node:fs';
import { ptrace, waitpid, decodeWaitStatus, __WALL, WNOHANG, PTRACE_EVENT, SIG, SysError } from '../sys/index.js';
import { CryoError } from '../context.js';
import { parseMaps, type Vma } from '../proc/maps.js';
import { MemIO } from './memio.js';
import { TaskGoneError, TaskTracedError } from './remote.js';
import { parseStatus } from '../proc/stat.js';

/**
 * Wait for `tid` to reach a ptrace stop. A signal-delivery stop that comes first is
 * passed on (the signal was due anyway; also a SIGTRAP: none of ours is in flight
 * yet) and we wait again for the interrupt stop. Returns the stop's signal:
 * SIGTRAP for an interrupt, the stop signal (SIGSTOP, SIGTSTP...) of a task in a
 * job-control stop. With a deadline (performance.now() ms), as CRIU's --timeout
 * alarm: a task held in a vfork() wait (uninterruptible until its child execs or
 * exits: no ptrace stop reaches it) is polled, and fails the seize if it has not
 * stopped by then. Others are waited for as before: a task taking signals fast
 * (a timer every 100 us) did not get to its interrupt stop while polled.
 */
export function waitForStop(tid: number, deadline?: number): number {
  for (;;) {
    let status: number;
    try {
      status = deadline !== undefined && inVforkWait(tid) ? waitUntil(tid, deadline) : waitpid(tid, __WALL).status;
    } catch (e) {
      // No longer our tracee: it exited and was released.
      if (SysError.is(e, 'ECHILD')) throw new TaskGoneError(tid, 'exited');
      throw e;
    }
    const ws = decodeWaitStatus(status);
    if (ws.exited !== undefined) throw new TaskGoneError(tid, `exited with status ${ws.exited}`);
    if (ws.signaled !== undefined) throw new TaskGoneError(tid, `was killed by signal ${ws.signaled}`);
    if (ws.event === PTRACE_EVENT.STOP) return ws.stopped ?? SIG.TRAP;
    // Any ptrace stop clears a pending interrupt (the kernel's ptrace_stop), so it
    // is asked for again: a task taking a signal every 100 us otherwise goes from
    // one signal-delivery stop to the next and never reaches an interrupt stop.
    ptraceInterrupt(tid);
    // Another event stop (clone, exec, exit) goes on as it was; a signal-delivery
    // stop gets its signal delivered.
    ptrace.cont(tid, ws.event !== undefined ? 0 : (ws.stopped ?? 0));
  }
}

function waitUntil(tid: number, deadline: number): number {
  for (let pause = 0.02; ; pause = Math.min(pause * 2, 20)) {
    const r = waitpid(tid, __WALL | WNOHANG);
    if (r.pid !== 0) return r.status;
    if (performance.now() > deadline) throw new CryoError(`task ${tid} did not stop for the seize in time (--timeout)${stuckIn(tid)}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
  }
}

/** In a vfork() wait: its wait channel is the one of kernel_clone, where that wait is inlined (wait_for_vfork_done on older kernels). */
function inVforkWait(tid: number): boolean {
  try {
    const wchan = readFileSync(`/proc/${tid}/wchan`, 'utf8').trim();
    return wchan.includes('vfork') || wchan === 'kernel_clone';
  } catch {
    return false;
  }
}

function stuckIn(tid: number): string {
  return inVforkWait(tid) ? ': it waits in vfork() for its child to exec or exit' : '';
}

/**
 * PTRACE_SEIZE one thread (not yet stopped). A thread that is gone, or exiting
 * (the kernel answers EPERM for one whose exit has begun), is a TaskGoneError; one
 * that another tracer holds is a TaskTracedError, never gone.
 */
export function seizeWith(tid: number, options: number): void {
  try {
    ptrace.seize(tid, options);
  } catch (e) {
    if (SysError.is(e, 'ESRCH')) throw new TaskGoneError(tid, 'does not exist');
    if (SysError.is(e, 'EPERM')) whyNotSeized(tid);
    throw e;
  }
}

/**
 * ptrace answers EPERM alike for a task that is exiting, one that is already
 * traced and one we may not trace: tell them apart by /proc/TID/status, read
 * after the refusal (a task that has begun to exit never comes back). Throws for
 * the first two; returns for anything else.
 */
function whyNotSeized(tid: number): void {
  let status: Map<string, string>;
  try {
    status = parseStatus(readFileSync(`/proc/${tid}/status`, 'utf8'));
  } catch {
    throw new TaskGoneError(tid, 'exited');
  }
  const state = status.get('State')?.[0];
  if (state === 'Z' || state === 'X') throw new TaskGoneError(tid, 'is exiting');
  const tracer = Number(status.get('TracerPid') ?? 0);
  if (tracer !== 0 && tracer !== process.pid) throw new TaskTracedError(tid, tracer, commOf(tracer));
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/**
 * PTRACE_INTERRUPT a seized thread: it stops as soon as it can (at once, or when
 * thawed). ESRCH: it died since the seize; its exit is then ours to wait for.
 */
export function ptraceInterrupt(tid: number): void {
  try {
    ptrace.interrupt(tid);
  } catch (e) {
    if (!SysError.is(e, 'ESRCH')) throw e;
  }
}

/** Seize and interrupt one thread; returns once it is in a ptrace stop. */
export function seizeThread(tid: number, options: number): void {
  seizeWith(tid, options);
  ptraceInterrupt(tid);
  waitForStop(tid);
}

/** Let a thread go. */
export function releaseThread(tid: number): void {
  try {
    ptrace.detach(tid, 0);
  } catch (e) {
    if (!SysError.is(e, 'ESRCH')) throw e;
  }
}

/**
 * Find a `syscall` instruction (0f 05) in the task: first in its vDSO, else in any
 * executable mapping. We never write code into the target.
 */
export function findSyscallInsn(pid: number, vmas?: Vma[]): bigint {
  const maps = vmas ?? parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  const exec = maps.filter((v) => v.perms[2] === 'x' && v.name !== '[vsyscall]');
  exec.sort((a, b) => (a.name === '[vdso]' ? -1 : b.name === '[vdso]' ? 1 : 0));
  const mem = new MemIO(pid);
  try {
    for (const v of exec) {
      const len = Number(v.end - v.start);
      for (let off = 0; off < len; off += 1 << 20) {
        const n = Math.min(1 << 20, len - off);
        let b: Buffer;
        try {
          b = mem.read(v.start + BigInt(off), n);
        } catch {
          break;
        }
        const i = b.indexOf(Buffer.from([0x0f, 0x05]));
        if (i >= 0) return v.start + BigInt(off + i);
      }
    }
  } finally {
    mem.close();
  }
  throw new Error(`task ${pid} has no syscall instruction in any executable mapping`);
}
