// Creating the restored tasks with their exact pids: the seed clones the root
// (CLONE_PARENT, so the root is cryo's child), each task clones its children.
import { NR, CLONE, SIG, PTRACE_O, ptrace, waitpid, kill, __WALL } from '../sys/index.js';
import { Remote, RemoteError, TaskGoneError } from '../tracer/remote.js';
import { findSyscallInsn, waitForStop } from '../tracer/seize.js';
import { CryoError } from '../context.js';
import { spawnSeed } from './seed.js';

export const RESTORE_PTRACE_OPTS = PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACECLONE | PTRACE_O.TRACEFORK | PTRACE_O.EXITKILL;

/** clone3() with set_tid inside `parent`; returns the new task, stopped and seized. */
export function cloneTask(parent: Remote, pid: number, flags: number): Remote {
  const args = Buffer.alloc(88);
  args.writeBigUInt64LE(BigInt(flags), 0);
  // With CLONE_PARENT or CLONE_THREAD the kernel wants exit_signal 0.
  args.writeBigUInt64LE(flags & (CLONE.PARENT | CLONE.THREAD) ? 0n : BigInt(SIG.CHLD), 32);
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(pid, 0);
  const tidAddr = parent.put(tid, 256);
  args.writeBigUInt64LE(tidAddr, 64);
  args.writeBigUInt64LE(1n, 72);
  let got: bigint;
  try {
    got = parent.call('clone3', NR.clone3, parent.put(args, 0), 88);
  } catch (e) {
    if (e instanceof RemoteError && e.code === 'EEXIST') throw new CryoError(`pid ${pid} is already in use`);
    throw e;
  }
  if (Number(got) !== pid) throw new CryoError(`clone3 created pid ${got} instead of ${pid}`);
  waitForStop(pid); // auto-attached by PTRACE_O_TRACECLONE, starts in an event stop
  return new Remote(pid, { syscallIp: parent.syscallIp });
}

export interface Seed {
  pid: number;
  rem: Remote;
  /** pidfd of cryo, open in the seed (and so in every task cloned from it). */
  cryoPidfd: bigint;
}

export function startSeed(): Seed {
  const pid = spawnSeed();
  try {
    ptrace.seize(pid, RESTORE_PTRACE_OPTS);
    ptrace.interrupt(pid);
    waitForStop(pid);
    const rem = new Remote(pid, { syscallIp: findSyscallInsn(pid) });
    const cryoPidfd = rem.call('pidfd_open', NR.pidfd_open, process.pid, 0);
    rem.scratch(4096);
    return { pid, rem, cryoPidfd };
  } catch (e) {
    killAndReap(pid);
    throw e;
  }
}

/** SIGKILL a task of ours and collect it. Never throws. */
export function killAndReap(pid: number): void {
  try {
    kill(pid, SIG.KILL);
  } catch {
    return;
  }
  try {
    waitpid(pid, __WALL);
  } catch {
    /* not ours */
  }
}

/** Make a freshly cloned task exit with `code` so that it stays a zombie. */
export function becomeZombie(rem: Remote, code: number): void {
  try {
    rem.callRaw(NR.exit, code);
  } catch (e) {
    if (e instanceof TaskGoneError) return; // the tracer's wait reaped only the ptrace side
    throw e;
  }
  throw new Error(`task ${rem.pid} did not exit`);
}
