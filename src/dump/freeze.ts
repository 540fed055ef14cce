// Freezing a process tree: seize every task, parents before children, so that no
// task can fork behind our back (a stopped task cannot fork).
import { readdirSync, readFileSync } from 'node:fs';
import { parseStat, type ProcStat } from '../proc/stat.js';
import { seizeThread, releaseThread, findSyscallInsn } from '../tracer/seize.js';
import { Remote, TaskGoneError } from '../tracer/remote.js';
import { PTRACE_O, kill, SIG, waitpid, __WALL } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';

export interface FrozenTask {
  pid: number;
  stat: ProcStat;
  /** null for a zombie: it cannot be seized and has nothing but its exit code. */
  rem: Remote | null;
  /** Stopped by job control when we came (the state before our seize). */
  stopped: boolean;
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

/** Seize the tree rooted at `root`; on failure everything seized is let go. */
export function freezeTree(root: number, log: Logger): FrozenTask[] {
  const tasks: FrozenTask[] = [];
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
        tasks.push({ pid, stat, rem: null, stopped: false, threads: [pid], threadRems: new Map(), parent, children: [] });
        continue;
      }
      const t: FrozenTask = { pid, stat, rem: null, stopped: stat.state === 'T', threads: [], threadRems: new Map(), parent, children: [] };
      try {
        seizeThreads(t);
      } catch (e) {
        if (e instanceof TaskGoneError && e.pid === pid) {
          if (pid === root) throw new CryoError(`process ${pid} exited before it could be frozen`);
          continue;
        }
        thawTree([t], log);
        throw e instanceof CryoError ? e : new CryoError(`cannot seize task ${pid}: ${(e as Error).message}`);
      }
      t.stat = readStat(pid);
      tasks.push(t);
      t.children = childrenOf(pid);
      for (const c of t.children) queue.push({ pid: c, parent: pid });
      log.debug(`seized ${pid} (${t.stat.comm}), children [${t.children.join(' ')}]`);
    }
  } catch (e) {
    thawTree(tasks, log);
    throw e;
  }
  return tasks;
}

/**
 * Seize every thread of a process. Threads may be created while we go: list
 * again until a pass finds no new one (a stopped thread cannot clone).
 */
function seizeThreads(t: FrozenTask): void {
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
        // A seccomp filter of the task must not block the calls we make it do.
        seizeThread(tid, PTRACE_O.TRACESYSGOOD | PTRACE_O.SUSPEND_SECCOMP);
      } catch (e) {
        if (e instanceof TaskGoneError && tid !== t.pid) continue; // a thread that just exited
        throw e;
      }
      seized.add(tid);
      t.threads.push(tid);
    }
  }
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
        releaseThread(tid, rem?.deferred ?? []);
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
  for (const t of tasks) {
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
