// Freezing a process tree: seize every task, parents before children, so that no
// task can fork behind our back (a stopped task cannot fork).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { parseStat, type ProcStat } from '../proc/stat.js';
import { seizeWith, ptraceInterrupt, waitForStop, releaseThread, findSyscallInsn } from '../tracer/seize.js';
import { Remote, TaskGoneError, TaskTracedError } from '../tracer/remote.js';
import { PTRACE_O, SysError, kill, SIG, waitpid, __WALL } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';
import type { CgroupFreezer } from '../objects/cgroup-freezer.js';

export interface FrozenTask {
  pid: number;
  stat: ProcStat;
  /** null for a zombie: it cannot be seized and has nothing but its exit code. */
  rem: Remote | null;
  /**
   * Stopped by job control when we came: the stop signal (SIGSTOP, SIGTSTP, SIGTTIN,
   * SIGTTOU) the kernel reported at our seize (also for a stop signal that was
   * still pending then), else 0.
   */
  stopSig: number;
  /**
   * Ids as the tree itself sees them (its root's pid namespace's): what the images
   * hold. Equal to ours unless the tree lives in a pid namespace of its own. A
   * task in a pid namespace nested in the root's has a pid at each level below
   * (`levels`, outermost first, its own namespace's last), as do its threads.
   * `depth`: how many levels the root's pid namespace is below cryo's.
   */
  ns: { depth: number; pid: number; pgid: number; sid: number; tids: Map<number, number>; levels: number[]; tidLevels: Map<number, number[]>; sidLevels: number[]; pgidLevels: number[] };
  /** Every thread id, the leader first. */
  threads: number[];
  /** Remotes of the threads other than the leader, once taken. */
  threadRems: Map<number, Remote>;
  parent: number;
  children: number[];
}

/** The signals that stop a task by job control. */
const STOP_SIGNALS: number[] = [SIG.STOP, SIG.TSTP, SIG.TTIN, SIG.TTOU];

function readStat(pid: number): ProcStat {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const txt = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
    if (txt) out.push(...txt.split(/\s+/).map(Number));
  }
  return out;
}

/** The values of an NS* line of /proc/PID/status, outermost (cryo's) first. */
function nsLine(status: string, key: string): number[] {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status);
  return m?.[1]?.trim().split(/\s+/).filter(Boolean).map(Number) ?? [];
}

/**
 * The task's pid, pgid, sid and thread ids in the pid namespace `depth` levels
 * below cryo's (the root's), and the levels below that one where it is nested.
 */
function nsIds(pid: number, threads: number[], depth: number): FrozenTask['ns'] {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const at = (v: number[], fallback: number) => v[depth] ?? (v.length ? 0 : fallback);
  const tids = new Map<number, number>();
  const tidLevels = new Map<number, number[]>();
  for (const tid of threads) {
    let v: number[] = [];
    try {
      v = nsLine(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'), 'NSpid');
    } catch {
      /* gone: keep ours */
    }
    tids.set(tid, at(v, tid));
    tidLevels.set(tid, v.slice(depth + 1));
  }
  const pids = nsLine(st, 'NSpid');
  const [pgids, sids] = [nsLine(st, 'NSpgid'), nsLine(st, 'NSsid')];
  return {
    depth, pid: at(pids, pid),
    pgid: at(pgids, 0),
    sid: at(sids, 0),
    tids, levels: pids.slice(depth + 1), tidLevels,
    sidLevels: sids.slice(depth + 1), pgidLevels: pgids.slice(depth + 1),
  };
}

/**
 * The root's pid namespace, if it is not cryo's: then the root must be its init
 * (pid 1 there), as CRIU requires, so that the whole namespace is in the tree.
 * Returns how many levels below cryo's it is (0: cryo's own).
 */
function checkPidns(root: number): number {
  let ns: string;
  let status: string;
  try {
    ns = readlinkSync(`/proc/${root}/ns/pid`);
    status = readFileSync(`/proc/${root}/status`, 'utf8');
  } catch {
    return 0; // gone: the seize says so
  }
  if (ns === readlinkSync('/proc/self/ns/pid')) return 0;
  const v = nsLine(status, 'NSpid');
  if (v.at(-1) !== 1) throw new CryoError(`task ${root} lives in a pid namespace of its own but is not its init (it is pid ${v.at(-1)} there); dump the namespace's pid 1`);
  return v.length - 1;
}

/**
 * With --freeze-cgroup: freeze the group, seize and interrupt every task in it
 * (none can fork or exit meanwhile), thaw it. Returns the tasks seized; their
 * stops are still to be waited for.
 */
function seizeFrozen(freezer: CgroupFreezer, log: Logger): Set<number> {
  const seized = new Set<number>();
  freezer.freeze();
  try {
    for (const tid of freezer.tids()) {
      try {
        seizeOnly(tid);
        ptraceInterrupt(tid);
        seized.add(tid);
      } catch (e) {
        // Gone, or a kernel thread: not ours to hold.
        log.debug(`freezer: cannot seize ${tid}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    for (const tid of seized) releaseAfterStop(tid);
    freezer.thaw();
    throw e;
  }
  freezer.thaw();
  return seized;
}

function releaseAfterStop(tid: number): void {
  try {
    waitForStop(tid);
    releaseThread(tid);
  } catch {
    /* gone */
  }
}

/**
 * Seize the tree rooted at `root`; on failure everything seized is let go. With
 * a cgroup freezer the tasks are seized while the group is frozen; tasks of the
 * group outside the tree are left to the freezer to hold until the dump ends.
 */
export function freezeTree(root: number, log: Logger, freezer?: CgroupFreezer, timeoutS = 10): FrozenTask[] {
  const tasks: FrozenTask[] = [];
  // As CRIU's alarm(--timeout) around its seize: every task stopped by then.
  const deadline = timeoutS > 0 ? performance.now() + timeoutS * 1000 : undefined;
  const depth = checkPidns(root);
  if (depth) log.info(`task ${root} is the init of its own pid namespace`);
  const pre = freezer ? seizeFrozen(freezer, log) : new Set<number>();
  try {
    const t = seizeTask(root, 0, pre, log, deadline, depth);
    if (t === null) throw new CryoError(`process ${root} does not exist`);
    // As CRIU, which cannot seize it: a zombie has no state to save but its exit code.
    if (t.rem === null && t.stat.state === 'Z') throw new CryoError(`task ${root} is a zombie: there is nothing to dump`);
    tasks.push(t);
    collectChildren(tasks, pre, log, deadline, depth);
  } catch (e) {
    thawTree(tasks, log);
    for (const tid of pre) releaseAfterStop(tid);
    throw e;
  }
  for (const tid of pre) freezer!.hold(tid);
  return tasks;
}

/** CRIU's NR_ATTEMPTS: passes over the tree that may still find new tasks. */
const COLLECT_PASSES = 5;

/**
 * Seize the children of every task collected, parents before children, and go
 * over the whole tree again until a pass finds no task it had not seen: a child
 * listed may be gone or a zombie when we come to it, and a child not yet seized
 * can still fork (or clone a sibling with CLONE_PARENT) behind us. The children
 * files are only reliable once every parent is stopped.
 */
function collectChildren(tasks: FrozenTask[], pre: Set<number>, log: Logger, deadline: number | undefined, depth: number): void {
  const known = new Set(tasks.map((t) => t.pid));
  for (let pass = 1; ; pass++) {
    let fresh = 0;
    // `tasks` grows as we go: the children seized in this pass are visited in it.
    for (let i = 0; i < tasks.length; i++) {
      const p = tasks[i]!;
      if (p.rem === null && p.stat.state === 'Z') continue; // a zombie has no children
      for (const c of childrenOf(p.pid)) {
        if (known.has(c)) continue;
        fresh++;
        const t = seizeTask(c, p.pid, pre, log, deadline, depth);
        if (t === null) continue; // gone: a later pass sees it again if it is a zombie now
        known.add(c);
        tasks.push(t);
        p.children.push(c);
      }
    }
    if (fresh === 0) return;
    if (pass === COLLECT_PASSES) {
      throw new CryoError(`the tree of task ${tasks[0]!.pid} keeps changing: ${fresh} new task(s) still appeared in pass ${pass}`);
    }
    log.debug(`collect pass ${pass}: ${fresh} new task(s), going over the tree again`);
  }
}

/**
 * Seize one process and all its threads, or record it as a zombie. Returns null
 * for a task that is gone (exited and reaped, or whose pid now names a process
 * that is not `parent`'s child). Throws for a task that cannot be seized.
 */
function seizeTask(pid: number, parent: number, pre: Set<number>, log: Logger, deadline: number | undefined, depth: number): FrozenTask | null {
  const zombieOrGone = (): FrozenTask | null => {
    let stat: ProcStat;
    try {
      stat = readStat(pid);
    } catch {
      return null;
    }
    if (stat.state !== 'Z' || (parent !== 0 && stat.ppid !== parent)) return null;
    return { pid, stat, rem: null, stopSig: 0, ns: nsIds(pid, [pid], depth), threads: [pid], threadRems: new Map(), parent, children: [] };
  };
  let stat: ProcStat;
  try {
    stat = readStat(pid);
  } catch {
    return null;
  }
  if (stat.state === 'Z' || stat.state === 'X') return zombieOrGone();
  // `ns` is read once every thread is seized (below).
  const t: FrozenTask = {
    pid, stat, rem: null, stopSig: 0, ns: { depth, pid, pgid: 0, sid: 0, tids: new Map(), levels: [], tidLevels: new Map(), sidLevels: [], pgidLevels: [] },
    threads: [], threadRems: new Map(), parent, children: [],
  };
  try {
    seizeThreads(t, pre, deadline);
    t.stat = readStat(pid);
  } catch (e) {
    thawTree([t], log);
    // Exiting (the kernel refuses to seize a task that is) or exited under us.
    if (e instanceof TaskGoneError && e.pid === pid) {
      log.debug(`${e.message} while being seized`);
      return zombieOrGone();
    }
    if (e instanceof CryoError) throw e;
    if (e instanceof TaskTracedError) throw new CryoError(e.message);
    throw new CryoError(`cannot seize task ${pid}: ${(e as Error).message}`);
  }
  // As CRIU: the pid was reused between listing and seizing.
  if (parent !== 0 && t.stat.ppid !== parent) {
    log.debug(`pid ${pid} is no longer a child of ${parent} (its parent is ${t.stat.ppid}): not ours`);
    thawTree([t], log);
    return null;
  }
  t.ns = nsIds(pid, t.threads, depth);
  log.debug(`seized ${pid} (${t.stat.comm})`);
  return t;
}

/**
 * Seize every thread of a process. Threads may be created while we go: list
 * again until a pass finds no new one (a stopped thread cannot clone).
 */
function seizeThreads(t: FrozenTask, pre: Set<number>, deadline: number | undefined): void {
  const seized = new Set<number>();
  for (;;) {
    let tids: number[];
    try {
      tids = readdirSync(`/proc/${t.pid}/task`).map(Number);
    } catch {
      throw new TaskGoneError(t.pid, 'exited');
    }
    tids.sort((a, b) => (a === t.pid ? -1 : b === t.pid ? 1 : a - b));
    const fresh = tids.filter((x) => !seized.has(x));
    if (fresh.length === 0) break;
    for (const tid of fresh) {
      try {
        let sig: number;
        if (pre.delete(tid)) sig = waitForStop(tid, deadline); // seized while its cgroup was frozen
        else {
          seizeOnly(tid);
          ptraceInterrupt(tid);
          sig = waitForStop(tid, deadline);
        }
        // A job-control stop holds the whole thread group: the leader's stop tells.
        if (tid === t.pid) t.stopSig = STOP_SIGNALS.includes(sig) ? sig : 0;
        seized.add(tid);
        t.threads.push(tid);
        refusePendingTrap(t.pid, tid);
      } catch (e) {
        if (e instanceof TaskGoneError && tid !== t.pid && !t.threads.includes(tid)) continue; // a thread that just exited
        throw e;
      }
    }
  }
}

/**
 * As CRIU: a pending SIGTRAP cannot be dumped. cryo's calls run with SIGTRAP
 * unblocked (see Remote), so the first would take it out of the queue before the
 * pending signals are read.
 */
function refusePendingTrap(pid: number, tid: number): void {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  } catch {
    return; // killed meanwhile: the dump finds out
  }
  const bit = 1n << BigInt(SIG.TRAP - 1);
  for (const key of ['SigPnd', 'ShdPnd']) {
    const m = new RegExp(`^${key}:\\s*([0-9a-f]+)`, 'm').exec(status);
    if (m && BigInt('0x' + m[1]) & bit) {
      throw new CryoError(`task ${pid}: a SIGTRAP is pending in thread ${tid}${key === 'ShdPnd' ? ' (for the whole process)' : ''}; cryo cannot dump it (neither can CRIU)`);
    }
  }
}

/**
 * PTRACE_SEIZE one thread. A seccomp filter of the task must not block the calls
 * we make it do; suspending filters needs CAP_SYS_ADMIN, so do without where it
 * is refused.
 */
function seizeOnly(tid: number): void {
  try {
    seizeWith(tid, PTRACE_O.TRACESYSGOOD | PTRACE_O.SUSPEND_SECCOMP);
  } catch (e) {
    if (!SysError.is(e, 'EPERM') && !SysError.is(e, 'EINVAL')) throw e;
    // A filter could then fail or kill the task at cryo's first remote call.
    if (seccompMode(tid) !== 0) throw new CryoError(`task ${tid} runs under seccomp: dumping it needs CAP_SYS_ADMIN (PTRACE_O_SUSPEND_SECCOMP)`);
    seizeWith(tid, PTRACE_O.TRACESYSGOOD);
  }
}

/** The Seccomp: field of a thread's status (0 none, 1 strict, 2 filter). */
function seccompMode(tid: number): number {
  return Number(/^Seccomp:\s+(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'utf8'))?.[1] ?? 0);
}

/** Start driving a frozen task with remote syscalls. */
export function takeRemote(t: FrozenTask): Remote {
  if (!t.rem) t.rem = new Remote(t.pid, { syscallIp: findSyscallInsn(t.pid) });
  return t.rem;
}

/** Drive another thread of a frozen task; it shares the leader's scratch memory. */
export function takeThreadRemote(t: FrozenTask, tid: number): Remote {
  if (tid === t.pid) return takeRemote(t);
  let r = t.threadRems.get(tid);
  if (!r) {
    const leader = takeRemote(t);
    r = new Remote(tid, { syscallIp: leader.syscallIp });
    t.threadRems.set(tid, r);
    r.borrowScratch(leader);
  }
  return r;
}

/** Put every task back as it was and let it run. Never throws. */
export function thawTree(tasks: FrozenTask[], log: Logger): void {
  for (const t of [...tasks].reverse()) {
    if (t.stat.state === 'Z') continue;
    // Other threads first: the leader owns the scratch memory they borrow.
    for (const tid of [...t.threads].reverse()) {
      const rem = tid === t.pid ? t.rem : t.threadRems.get(tid);
      try {
        rem?.finish();
      } catch (e) {
        log.warn(`thread ${tid}: could not put back registers: ${(e as Error).message}`);
      }
      try {
        releaseThread(tid);
      } catch (e) {
        log.warn(`thread ${tid}: detach failed: ${(e as Error).message}`);
      }
    }
    t.rem = null;
    t.threadRems.clear();
  }
}

/** Kill the dumped tree (CRIU's default after a dump). */
export function killTree(tasks: FrozenTask[]): void {
  for (const t of tasks) {
    try {
      kill(t.pid, SIG.KILL);
    } catch {
      /* already gone */
    }
  }
  // We are the tracer: reap the ptrace side so the real parent hears of it at once.
  // Children first: a pid namespace's init exits only after all of its tasks.
  for (const t of [...tasks].reverse()) {
    if (t.stat.state === 'Z') continue;
    // The leader's exit is reported only after every other thread's: it goes last.
    for (const tid of [...t.threads].reverse()) {
      try {
        waitpid(tid, __WALL);
      } catch {
        /* not ours to wait for */
      }
    }
  }
}
