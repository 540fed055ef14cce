// Freezing a process tree: seize every task, parents before children, so that no
// task can fork behind our back (a stopped task cannot fork).
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { parseStat, type ProcStat } from '../proc/stat.js';
import { seizeWith, ptraceInterrupt, waitForStop, releaseThread, findSyscallInsn } from '../tracer/seize.js';
import { Remote, TaskGoneError } from '../tracer/remote.js';
import { PTRACE_O, SysError, kill, SIG, waitpid, __WALL } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';
import type { CgroupFreezer } from '../objects/cgroup-freezer.js';

export interface FrozenTask {
  pid: number;
  stat: ProcStat;
  /** null for a zombie: it cannot be seized and has nothing but its exit code. */
  rem: Remote | null;
  /** Stopped by job control when we came (the state before our seize). */
  stopped: boolean;
  /**
   * Ids as the tree itself sees them (its pid namespace's): what the images hold.
   * Equal to ours unless the tree lives in a pid namespace of its own.
   */
  ns: { pid: number; pgid: number; sid: number; tids: Map<number, number> };
  /** Every thread id, the leader first. */
  threads: number[];
  /** Remotes of the threads other than the leader, once taken. */
  threadRems: Map<number, Remote>;
  parent: number;
  children: number[];
}

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

/** The last (innermost) value of an NS* line of /proc/PID/status. */
function innermost(status: string, key: string): number | undefined {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status);
  const v = m?.[1]?.trim().split(/\s+/).pop();
  return v === undefined ? undefined : Number(v);
}

/** The task's pid, pgid, sid and thread ids in its own pid namespace. */
function nsIds(pid: number, threads: number[]): FrozenTask['ns'] {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const tids = new Map<number, number>();
  for (const tid of threads) {
    let v = tid;
    try {
      v = innermost(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'), 'NSpid') ?? tid;
    } catch {
      /* gone: keep ours */
    }
    tids.set(tid, v);
  }
  return {
    pid: innermost(st, 'NSpid') ?? pid,
    pgid: innermost(st, 'NSpgid') ?? 0,
    sid: innermost(st, 'NSsid') ?? 0,
    tids,
  };
}

/**
 * The root's pid namespace, if it is not cryo's: then the root must be its init
 * (pid 1 there), as CRIU requires, so that the whole namespace is in the tree.
 */
function checkPidns(root: number): boolean {
  if (readlinkSync(`/proc/${root}/ns/pid`) === readlinkSync('/proc/self/ns/pid')) return false;
  const v = innermost(readFileSync(`/proc/${root}/status`, 'utf8'), 'NSpid');
  if (v !== 1) throw new CryoError(`task ${root} lives in a pid namespace of its own but is not its init (it is pid ${v} there); dump the namespace's pid 1`);
  return true;
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
export function freezeTree(root: number, log: Logger, freezer?: CgroupFreezer): FrozenTask[] {
  const tasks: FrozenTask[] = [];
  if (existsSync(`/proc/${root}`) && checkPidns(root)) log.info(`task ${root} is the init of its own pid namespace`);
  const pre = freezer ? seizeFrozen(freezer, log) : new Set<number>();
  try {
    const queue: Array<{ pid: number; parent: number }> = [{ pid: root, parent: 0 }];
    while (queue.length) {
      const { pid, parent } = queue.shift()!;
      let stat: ProcStat;
      try {
        stat = readStat(pid);
      } catch {
        if (pid === root) throw new CryoError(`process ${pid} does not exist`);
        continue; // a child that exited meanwhile
      }
      if (stat.state === 'Z') {
        tasks.push({ pid, stat, rem: null, stopped: false, ns: nsIds(pid, [pid]), threads: [pid], threadRems: new Map(), parent, children: [] });
        continue;
      }
      // `ns` is read once every thread is seized (below).
      const t: FrozenTask = {
        pid, stat, rem: null, stopped: stat.state === 'T', ns: { pid, pgid: 0, sid: 0, tids: new Map() },
        threads: [], threadRems: new Map(), parent, children: [],
      };
      try {
        seizeThreads(t, pre);
      } catch (e) {
        if (e instanceof TaskGoneError && e.pid === pid) {
          if (pid === root) throw new CryoError(`process ${pid} exited before it could be frozen`);
          continue;
        }
        thawTree([t], log);
        throw e instanceof CryoError ? e : new CryoError(`cannot seize task ${pid}: ${(e as Error).message}`);
      }
      t.stat = readStat(pid);
      t.ns = nsIds(pid, t.threads);
      tasks.push(t);
      t.children = childrenOf(pid);
      for (const c of t.children) queue.push({ pid: c, parent: pid });
      log.debug(`seized ${pid} (${t.stat.comm}), children [${t.children.join(' ')}]`);
    }
  } catch (e) {
    thawTree(tasks, log);
    for (const tid of pre) releaseAfterStop(tid);
    throw e;
  }
  for (const tid of pre) freezer!.hold(tid);
  return tasks;
}

/**
 * Seize every thread of a process. Threads may be created while we go: list
 * again until a pass finds no new one (a stopped thread cannot clone).
 */
function seizeThreads(t: FrozenTask, pre: Set<number>): void {
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
        if (pre.delete(tid)) waitForStop(tid); // seized while its cgroup was frozen
        else {
          seizeOnly(tid);
          ptraceInterrupt(tid);
          waitForStop(tid);
        }
      } catch (e) {
        if (e instanceof TaskGoneError && tid !== t.pid) continue; // a thread that just exited
        throw e;
      }
      seized.add(tid);
      t.threads.push(tid);
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
