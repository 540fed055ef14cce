// Creating the restored tasks with their exact pids: the seed clones the root
// (CLONE_PARENT, so the root is cryo's child), each task clones its children.
import { closeSync, readFileSync } from 'node:fs';
import { parseStat } from '../proc/stat.js';
import { NR, CLONE, SIG, F, PR, PTRACE_O, CAP, hasCap, ptrace, waitpid, kill, syscall, pidfdOpen, SysError, errnoName, __WALL, WNOHANG } from '../sys/index.js';
import { Remote, RemoteError, TaskGoneError } from '../tracer/remote.js';
import { findSyscallInsn, waitForStop } from '../tracer/seize.js';
import { CryoError, type Logger } from '../context.js';
import { isZombieState, type CoreEntry, type PstreeEntry } from '../images/index.js';
import { spawnSeed } from './seed.js';

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
    if (SysError.is(e, 'EEXIST')) throw new CryoError(`pid ${pid} is already in use`);
    throw e;
  } finally {
    closeSync(own);
    if (inherit >= 0) closeSync(inherit);
  }
  try {
    ptrace.seize(got, restorePtraceOpts());
    ptrace.interrupt(got);
    waitForStop(got);
    const rem = new Remote(got, { syscallIp: findSyscallInsn(got) });
    rem.scratch(4096);
    return { rem, cryoPidfd: BigInt(inherit) };
  } catch (e) {
    killAndReap(got);
    throw e;
  }
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

/**
 * Make a freshly cloned task end as the dumped zombie did: `status` is the wait
 * status CRIU keeps (exit code << 8, or the killing signal in the low bits).
 */
export function becomeZombie(rem: Remote, status: number): void {
  const sig = status & 0x7f;
  if (sig) {
    if (!killsByDefault(sig)) throw new CryoError(`zombie ${rem.pid}: its wait status says signal ${sig} killed it, which no signal of that number does`);
    // As CRIU: not dumpable, so dying of SIGSEGV or SIGQUIT writes no core file.
    rem.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, 0, 0, 0, 0);
    // Default action, unblocked, then let it go with the signal: it dies of it.
    // (SIGKILL's action cannot be changed, nor need it be.)
    if (sig !== SIG.KILL) rem.call('rt_sigaction', NR.rt_sigaction, sig, rem.put(Buffer.alloc(32)), 0, 8);
    rem.releaseScratch();
    ptrace.setSigmask(rem.pid, 0n);
    ptrace.detach(rem.pid, sig);
    return;
  }
  try {
    rem.callRaw(NR.exit_group, (status >> 8) & 0xff);
  } catch (e) {
    if (e instanceof TaskGoneError) return; // the tracer's wait took only the ptrace side
    throw e;
  }
  throw new Error(`task ${rem.pid} did not exit`);
}

/** A signal whose default action ends the process (not one that stops, continues or is ignored). */
function killsByDefault(sig: number): boolean {
  const harmless: number[] = [SIG.STOP, SIG.TSTP, SIG.TTIN, SIG.TTOU, SIG.CONT, SIG.CHLD, 23 /* SIGURG */, 28 /* SIGWINCH */];
  return sig >= 1 && sig <= 64 && !harmless.includes(sig);
}

/**
 * The signal that stops a restored task as it was stopped. SIGTSTP, SIGTTIN and
 * SIGTTOU are dropped by the kernel for a task of an orphaned process group (no
 * member has a parent in another group of its session): there only SIGSTOP stops
 * it. The root's parent is cryo's (or cryo's parent's), outside the tree's sessions.
 */
export function stopSignal(tasks: readonly TreeTask[], t: TreeTask, rootHost: number, log: Logger): number {
  const sig = t.core.tc?.stopSigno || SIG.STOP;
  if (sig === SIG.STOP) return sig;
  const byPid = new Map<number, { pgid: number; sid: number }>(tasks.map((x) => [x.pstree.pid, x.pstree]));
  const { pgid, sid } = t.pstree;
  const anchored = tasks.some(({ pstree: m }, i) => {
    if (m.pgid !== pgid) return false;
    const p = i === 0 ? parentIds(rootHost) : byPid.get(m.ppid);
    return p !== undefined && p.pgid !== pgid && p.sid === sid;
  });
  if (anchored) return sig;
  log.warn(`task ${t.pstree.pid}: stopped by signal ${sig}, which cannot stop a task of its orphaned process group ${pgid} here; stopped by SIGSTOP`);
  return SIG.STOP;
}

/** The group and session of a task's parent, from /proc; undefined if unreadable. */
function parentIds(pid: number): { pgid: number; sid: number } | undefined {
  try {
    return parseStat(readFileSync(`/proc/${parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).ppid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export interface TreeTask {
  pstree: PstreeEntry;
  core: CoreEntry;
}

/**
 * Create every task below the root with its pid, parents first, and give each its
 * session and process group as CRIU does: a session leader calls setsid() before
 * it forks (its children inherit the session), and process groups are joined once
 * every task exists (a group's leader may be anywhere in the tree). Zombies exit
 * last, after taking their session and group.
 *
 * A session or group whose leader is gone (a daemon's double fork) gets a helper
 * task with the leader's pid: it calls setsid() (or setpgid) and forks the task
 * with CLONE_PARENT, so the task has its real parent and the old session; the
 * helper then exits and its parent reaps it, as CRIU's helpers do.
 *
 * `onSetsid` runs in each session leader right after its setsid(); `onClone` in
 * each task right after its creation, before it runs or creates anything;
 * `beforeForks` in each live task before it forks its children (and helpers).
 */
export function buildTree(
  tasks: TreeTask[], rems: Map<number, Remote>, created: number[], log: Logger,
  onSetsid?: (rem: Remote, sid: number) => void,
  onClone?: (rem: Remote, task: TreeTask, parent: TreeTask) => void,
  beforeForks?: (rem: Remote, task: TreeTask) => void,
): void {
  const zombies = new Map<number, { rem: Remote; status: number }>();
  const helpers: Array<{ rem: Remote; parent: Remote }> = [];
  const all = new Map<number, Remote>(rems);
  const inTree = new Set(tasks.map((t) => t.pstree.pid));
  const root = tasks[0]!.pstree;
  // The root's session may be cryo's own (a shell job): that one needs no helper.
  const external = new Set(root.sid === root.pid ? [] : [root.sid]);
  const helperFor = new Map<number, Remote>();
  for (const t of tasks) {
    const rem = all.get(t.pstree.pid);
    if (!rem) throw new CryoError(`task ${t.pstree.pid}: its parent ${t.pstree.ppid} is not in the image`);
    if (t.pstree.sid === t.pstree.pid) {
      rem.call('setsid', NR.setsid);
      onSetsid?.(rem, t.pstree.sid); // its controlling terminal, before it forks the members
    }
    if (isZombieState(t.core.tc?.taskState)) continue; // a zombie has no children
    beforeForks?.(rem, t);
    for (const c of tasks.filter((x) => x.pstree.ppid === t.pstree.pid)) {
      const sid = c.pstree.sid;
      let forker: Remote = rem;
      let flags = 0;
      if (sid !== t.pstree.sid && sid !== c.pstree.pid && !inTree.has(sid) && !external.has(sid)) {
        let h = helperFor.get(sid);
        if (!h) {
          h = cloneTask(rem, sid, 0);
          created.push(h.pid);
          h.call('setsid', NR.setsid);
          helperFor.set(sid, h);
          helpers.push({ rem: h, parent: rem });
          log.debug(`helper ${sid} stands in for the gone leader of session ${sid}`);
        }
        forker = h;
        flags = CLONE.PARENT; // the task's parent is t, its session the helper's
      }
      // As CRIU: a child with its parent's fd table id shares that table (CLONE_FILES).
      if (sharesFdTable(c, t)) {
        if (forker !== rem) throw new CryoError(`task ${c.pstree.pid} shares its fd table with its parent and needs a helper for its session: cryo cannot restore that yet`);
        flags |= CLONE.FILES;
      }
      const r = cloneTask(forker, c.pstree.pid, flags);
      created.push(r.pid);
      onClone?.(r, c, t);
      all.set(c.pstree.pid, r);
      if (isZombieState(c.core.tc?.taskState)) zombies.set(c.pstree.pid, { rem: r, status: c.core.tc!.exitCode });
      else rems.set(c.pstree.pid, r);
    }
  }
  // A group whose leader is gone (it exited, its members live on) gets a helper
  // with the leader's pid, a child of the first member: it makes the group, the
  // members join it, and it goes (as CRIU's helpers). Not in a session outside
  // the tree (a shell job's), where the group is the shell's business.
  const groupHelpers: Array<{ rem: Remote; parent: Remote; pid: number }> = [];
  for (const t of tasks) {
    const p = t.pstree;
    if (!p.pgid || p.pgid === p.pid || all.has(p.pgid) || helperFor.has(p.pgid) || external.has(p.sid)) continue;
    const parent = all.get(p.pid)!;
    const h = cloneTask(parent, p.pgid, 0);
    created.push(h.pid);
    h.call('setpgid', NR.setpgid, 0, 0);
    all.set(p.pgid, h);
    groupHelpers.push({ rem: h, parent, pid: p.pgid });
    log.debug(`helper ${p.pgid} stands in for the gone leader of process group ${p.pgid}`);
  }
  // Group leaders first, then the members.
  const order = [...tasks].sort((a, b) => Number(b.pstree.pgid === b.pstree.pid) - Number(a.pstree.pgid === a.pstree.pid));
  for (const t of order) {
    const p = t.pstree;
    const rem = all.get(p.pid)!;
    if (p.sid === p.pid) continue; // setsid made it its own group already
    if (Number(rem.call('getpgid', NR.getpgid, 0)) === p.pgid) continue;
    const r = rem.callRaw(NR.setpgid, 0, p.pgid === p.pid ? 0 : p.pgid);
    if (r >= 0n) continue;
    // Inside the tree's own sessions every group can be made: failing there would restore a wrong tree.
    if (!external.has(p.sid)) throw new CryoError(`task ${p.pid}: cannot join process group ${p.pgid}: ${errnoName(Number(-r))}`);
    log.warn(`task ${p.pid}: cannot join process group ${p.pgid} (errno ${-r})`);
  }
  // Group helpers go before any task becomes a zombie: their parent reaps them.
  for (const h of groupHelpers) {
    becomeZombie(h.rem, 0);
    h.parent.call('wait4', NR.wait4, h.pid, 0, 0, 0); // the pid as the parent sees it
  }
  for (const z of zombies.values()) becomeZombie(z.rem, z.status);
  // Helpers go; the group they lead lives on while a member does.
  for (const h of helpers) {
    becomeZombie(h.rem, 0);
    h.parent.call('wait4', NR.wait4, h.rem.pid, 0, 0, 0);
  }
  // Those exits queued SIGCHLDs the dumped tasks never had: drop every pending
  // signal now (the dumped ones are queued again later, from the images).
  for (const r of rems.values()) drainSignals(r);
}

/** Does task `c` share the fd table of its parent `p` (one files_id in the images)? */
export function sharesFdTable(c: TreeTask, p: TreeTask): boolean {
  if (isZombieState(c.core.tc?.taskState) || isZombieState(p.core.tc?.taskState)) return false;
  return c.core.ids !== undefined && p.core.ids !== undefined && c.core.ids.filesId === p.core.ids.filesId;
}

/** Dequeue every pending signal of the task (shared and its own) without delay. */
function drainSignals(rem: Remote): void {
  const set = Buffer.alloc(8, 0xff);
  const zero = Buffer.alloc(16);
  const setAddr = rem.put(set, 0);
  const tsAddr = rem.put(zero, 64);
  for (let i = 0; i < 4096; i++) {
    if (rem.callRaw(NR.rt_sigtimedwait, setAddr, 0, tsAddr, 8) < 0n) return; // EAGAIN: none left
  }
}
