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
      const threads = readdirSync(`/proc/${pid}/task`);
      if (stat.state === 'Z') {
        tasks.push({ pid, stat, rem: null, parent, children: [] });
        continue;
      }
      if (threads.length > 1) {
        throw new CryoError(`task ${pid} (${stat.comm}) has ${threads.length} threads; multi-threaded processes are not supported yet`);
      }
      try {
        seizeThread(pid, PTRACE_O.TRACESYSGOOD);
      } catch (e) {
        if (e instanceof TaskGoneError) {
          if (pid === root) throw new CryoError(`process ${pid} exited before it could be frozen`);
          continue;
        }
        throw new CryoError(`cannot seize task ${pid}: ${(e as Error).message}`);
      }
      const t: FrozenTask = { pid, stat: readStat(pid), rem: null, parent, children: [] };
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

/** Start driving a frozen task with remote syscalls. */
export function takeRemote(t: FrozenTask): Remote {
  if (!t.rem) t.rem = new Remote(t.pid, { syscallIp: findSyscallInsn(t.pid) });
  return t.rem;
}

/** Put every task back as it was and let it run. Never throws. */
export function thawTree(tasks: FrozenTask[], log: Logger): void {
  for (const t of [...tasks].reverse()) {
    if (t.stat.state === 'Z') continue;
    try {
      t.rem?.finish();
    } catch (e) {
      log.warn(`task ${t.pid}: could not put back registers: ${(e as Error).message}`);
    }
    try {
      releaseThread(t.pid, t.rem?.deferred ?? []);
    } catch (e) {
      log.warn(`task ${t.pid}: detach failed: ${(e as Error).message}`);
    }
    t.rem = null;
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
    try {
      waitpid(t.pid, __WALL);
    } catch {
      /* not ours to wait for */
    }
  }
}
