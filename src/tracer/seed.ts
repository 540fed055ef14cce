// Making tasks and ending them. The seed: a 130-byte static ELF that loops on
// pause(). cryo starts it as the tree's root, with the root's pid (clone3 set_tid;
// as cryo's sibling with --restore-sibling); every restored task starts as a copy
// of this tiny address space, which it then replaces. Each task then clones its
// own children (clone3 with set_tid, made to run in it); killAndReap ends one.
import { closeSync, writeSync } from 'node:fs';
import { NR, CLONE, SIG, F, MFD, PR, PTRACE_O, CAP, hasCap, ptrace, waitpid, kill, syscall, pidfdOpen, memfdCreate, spawnAs, SysError, EEXIST, __WALL, WNOHANG } from '../sys/index.js';
import { cloneArgs } from '../abi/index.js';
import { CryoError } from '../context.js';
import { Remote, RemoteError } from './remote.js';
import { findSyscallInsn, waitForStop } from './seize.js';

const BASE = 0x200000n;
const CODE = Buffer.from([
  0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
  0x0f, 0x05, //                   syscall
  0xeb, 0xf7, //                   jmp back to mov
]);

/** Build the seed executable image. */
export function seedElf(): Buffer {
  const ehdr = 64;
  const phdr = 56;
  const size = ehdr + phdr + CODE.length;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELF64, little endian, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // x86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BASE + BigInt(ehdr + phdr), 24); // entry
  b.writeBigUInt64LE(BigInt(ehdr), 32); // phoff
  b.writeUInt16LE(ehdr, 52);
  b.writeUInt16LE(phdr, 54);
  b.writeUInt16LE(1, 56); // phnum
  const p = ehdr;
  b.writeUInt32LE(1, p); // PT_LOAD
  b.writeUInt32LE(5, p + 4); // R+X
  b.writeBigUInt64LE(0n, p + 8);
  b.writeBigUInt64LE(BASE, p + 16);
  b.writeBigUInt64LE(BASE, p + 24);
  b.writeBigUInt64LE(BigInt(size), p + 32);
  b.writeBigUInt64LE(BigInt(size), p + 40);
  b.writeBigUInt64LE(0x1000n, p + 48);
  CODE.copy(b, ehdr + phdr);
  return b;
}


/** Start a seed with pid `pid` (0: any), as cryo's child or sibling, in new namespaces `ns`. */
export function spawnSeed(pid: number, sibling: boolean, ns = 0): number {
  const fd = memfdCreate('cryo-seed', MFD.CLOEXEC);
  try {
    const elf = seedElf();
    writeSync(fd, elf, 0, elf.length, 0);
    return spawnAs(fd, 'cryo-seed', { pid, sibling, ns });
  } finally {
    closeSync(fd);
  }
}

/**
 * Seed and tasks are traced with these (inherited through clone). Suspending
 * seccomp needs CAP_SYS_ADMIN, which a worker acting for an unprivileged client
 * lacks; it then restores no task with filters (see restoreTree).
 */
export function restorePtraceOpts(): number {
  const base = PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACECLONE | PTRACE_O.TRACEFORK | PTRACE_O.EXITKILL;
  return hasCap(CAP.SYS_ADMIN) ? base | PTRACE_O.SUSPEND_SECCOMP : base;
}

/** clone3() with set_tid inside `parent`; returns the new task, stopped and seized. */
export function cloneTask(parent: Remote, pid: number, flags: number): Remote {
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(pid, 0);
  const args = cloneArgs.encode({
    flags: BigInt(flags),
    // With CLONE_PARENT or CLONE_THREAD the kernel wants exit_signal 0.
    exit_signal: flags & (CLONE.PARENT | CLONE.THREAD) ? 0n : BigInt(SIG.CHLD),
    set_tid: parent.put(tid, 256), set_tid_size: 1n,
  });
  let got: bigint;
  try {
    got = parent.call('clone3', NR.clone3, parent.put(args, 0), cloneArgs.size);
  } catch (e) {
    if (e instanceof RemoteError && e.code === 'EEXIST') throw new CryoError(`pid ${pid} is already in use`, 1, EEXIST);
    throw e;
  }
  if (Number(got) !== pid) throw new CryoError(`clone3 created pid ${got} instead of ${pid}`);
  // `got` is the pid in the task's own pid namespace; ptrace wants ours.
  const host = parent.lastChild || pid;
  waitForStop(host); // auto-attached by PTRACE_O_TRACECLONE, starts in an event stop
  return new Remote(host, { syscallIp: parent.syscallIp });
}

export interface Root {
  rem: Remote;
  /** pidfd of cryo, open in the root (and so in every task cloned from it). */
  cryoPidfd: bigint;
}

/**
 * Create the root task with its pid, as a seed process: cryo's child, or with
 * `sibling` a child of cryo's parent (--restore-sibling).
 */
/** The root, made in new namespaces `nsFlags` (CLONE_NEW*): in a new pid namespace it is pid 1. */
export function startRoot(pid: number, sibling: boolean, nsFlags: number): Root {
  const newPidns = (nsFlags & CLONE.NEWPID) !== 0;
  // The root gets a pidfd of cryo by inheritance (a copy without FD_CLOEXEC):
  // from inside a new pid namespace it could not open one itself.
  const own = pidfdOpen(process.pid);
  let inherit = -1;
  let got: number;
  try {
    inherit = syscall('fcntl(F_DUPFD)', NR.fcntl, own, F.DUPFD, 64);
    got = spawnSeed(newPidns ? 0 : pid, sibling, nsFlags);
  } catch (e) {
    if (SysError.is(e, 'EEXIST')) throw new CryoError(`pid ${pid} is already in use`, 1, EEXIST);
    throw e;
  } finally {
    closeSync(own);
    if (inherit >= 0) closeSync(inherit);
  }
  try {
    return { rem: seizeSeed(got), cryoPidfd: BigInt(inherit) };
  } catch (e) {
    killAndReap(got);
    throw e;
  }
}

/** A seed just started, seized and stopped, ready for remote calls. */
function seizeSeed(pid: number): Remote {
  ptrace.seize(pid, restorePtraceOpts());
  ptrace.interrupt(pid);
  waitForStop(pid);
  const rem = new Remote(pid, { syscallIp: findSyscallInsn(pid) });
  rem.scratch(4096);
  return rem;
}

/**
 * Kills what a failed restore made, children first, and reaps all of it. A task
 * whose parent is killed becomes an orphan that init would reap only some
 * seconds later, holding its pid meanwhile (a second restore would find it
 * taken): cryo adopts them as subreaper while it kills, and reaps them itself.
 * (Not with --restore-sibling: the root is not below cryo then.)
 */
export function killAll(created: number[]): void {
  const was = Buffer.alloc(4);
  syscall('prctl(PR_GET_CHILD_SUBREAPER)', NR.prctl, PR.GET_CHILD_SUBREAPER, was);
  syscall('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  try {
    for (const pid of [...created].reverse()) killAndReap(pid);
    for (const pid of created) {
      try {
        waitpid(pid, __WALL | WNOHANG);
      } catch {
        /* reaped already, or not ours */
      }
    }
  } finally {
    syscall('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, was.readInt32LE(0));
  }
}

/**
 * Run `fn` in a helper: a seed of cryo's own (its credentials, its namespaces),
 * seized, and killed and reaped afterwards. A fresh single-threaded process may
 * enter namespaces that cryo's threads cannot (setns of a mount namespace).
 */
export function withHelper<T>(fn: (rem: Remote) => T): T {
  const got = spawnSeed(0, false);
  try {
    return fn(seizeSeed(got));
  } finally {
    killAndReap(got);
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
