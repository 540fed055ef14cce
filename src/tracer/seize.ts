// Taking hold of tasks with PTRACE_SEIZE + PTRACE_INTERRUPT, and letting go.
import { readFileSync } from 'node:fs';
import { ptrace, waitpid, decodeWaitStatus, __WALL, PTRACE_EVENT, SIG, SysError } from '../sys/index.js';
import { parseMaps, type Vma } from '../proc/maps.js';
import { MemIO } from './memio.js';
import { TaskGoneError } from './remote.js';

/**
 * Wait for `tid` to reach a ptrace stop. A signal-delivery stop that comes first is
 * passed on (the signal was due anyway) and we wait again for the interrupt stop.
 * Returns the signal held back if the caller asked not to deliver it.
 */
export function waitForStop(tid: number): void {
  for (;;) {
    const { status } = waitpid(tid, __WALL);
    const ws = decodeWaitStatus(status);
    if (ws.exited !== undefined) throw new TaskGoneError(tid, `exited with status ${ws.exited}`);
    if (ws.signaled !== undefined) throw new TaskGoneError(tid, `was killed by signal ${ws.signaled}`);
    if (ws.event === PTRACE_EVENT.STOP) return;
    if (ws.event !== undefined) {
      // Another event stop (clone, exec, exit): keep going until our interrupt lands.
      ptrace.cont(tid, 0);
      continue;
    }
    // Signal-delivery stop: deliver it and wait for the interrupt stop.
    const sig = ws.stopped ?? 0;
    ptrace.cont(tid, sig === SIG.TRAP ? 0 : sig);
  }
}

/** PTRACE_SEIZE one thread (not yet stopped); a thread that is gone is a TaskGoneError. */
export function seizeWith(tid: number, options: number): void {
  try {
    ptrace.seize(tid, options);
  } catch (e) {
    if (SysError.is(e, 'ESRCH')) throw new TaskGoneError(tid, 'does not exist');
    throw e;
  }
}

/** PTRACE_INTERRUPT a seized thread: it stops as soon as it can (at once, or when thawed). */
export function ptraceInterrupt(tid: number): void {
  ptrace.interrupt(tid);
}

/** Seize and interrupt one thread; returns once it is in a ptrace stop. */
export function seizeThread(tid: number, options: number): void {
  seizeWith(tid, options);
  ptrace.interrupt(tid);
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
