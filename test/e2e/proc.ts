// Process plumbing for the e2e tests: /proc readers, waiting, reaping.
//
// Importing this module makes the test process a child subreaper, so that
// restored tasks (orphans once `cryo restore -d` exits) are reparented to it
// and can be reaped here with waitpid(). Node's child_process reaps only the
// children it spawned itself, and PID 1 reaps orphans only every few seconds.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { __WALL, WNOHANG, decodeWaitStatus, setChildSubreaper, waitpid, closeOnExecInherited } from '../../src/sys/index.js';

setChildSubreaper();

// Targets must start with stdio only: fds this test process inherited from whoever
// started it (a CI runner's pipes, say) would otherwise leak into them.
closeOnExecInherited();

export { WNOHANG, __WALL, decodeWaitStatus, waitpid };

// ---------------------------------------------------------------------------
// Small utilities

/**
 * process.kill for one process: 0 or a negative pid (an empty pid file read as
 * Number('')) would signal the whole process group, the test runner and CI's shell in it.
 */
export function signalPid(pid: number, sig: NodeJS.Signals | number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`signalPid: refusing pid ${pid}`);
  process.kill(pid, sig);
}

/** How a process ended. */
export interface ExitStatus {
  exited?: number;
  signaled?: number;
}

export function describeStatus(s: ExitStatus | undefined): string {
  if (s === undefined) return 'still running';
  if (s.exited !== undefined) return `exit ${s.exited}`;
  if (s.signaled !== undefined) return `killed by signal ${s.signaled}`;
  return 'unknown status';
}

export function exists(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

/** Fields of /proc/PID/stat from the 3rd (state) on; undefined when gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  } catch {
    return undefined;
  }
}

/** The one-letter state of a task (R, S, D, T, t, Z, ...), undefined when gone. */
export function procState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

export function parentPid(pid: number): number | undefined {
  const f = statFields(pid);
  return f === undefined ? undefined : Number(f[1]);
}

export function tracerPid(pid: number): number | undefined {
  try {
    const m = /^TracerPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function exeOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Why a pid will never run again (gone or a zombie), or undefined. */
export function ended(pid: number): string | undefined {
  const state = procState(pid);
  if (state === undefined) return `pid ${pid} is gone`;
  if (state === 'Z') return `pid ${pid} exited (a zombie now)`;
  return undefined;
}

/** Running (not a zombie, not stopped, not traced). */
export function runningFree(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && 'RSD'.includes(s) && tracerPid(pid) === 0;
}

/** Children of pid (all its threads), from /proc/PID/task/TID/children. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    } catch {
      // the thread is gone
    }
  }
  return out;
}

/** pid and all its descendants, parents first. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (out.includes(p) || !exists(p)) continue;
    out.push(p);
    queue.push(...childrenOf(p));
  }
  return out;
}

/** Polls cond every 10 ms until it is true; throws `what` after timeoutMs. */
export async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs: number,
  stop?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return;
    const why = stop?.();
    if (why !== undefined) throw new Error(`gave up waiting for ${what}: ${why}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/**
 * Reaps pid if it is our child (or our orphan), or waits until someone else
 * does, until /proc/PID is gone. Never call it on a child of child_process:
 * libuv would then miss that child's exit.
 */
export async function reapUntilGone(pid: number, timeoutMs: number): Promise<ExitStatus | undefined> {
  let status: ExitStatus | undefined;
  const deadline = Date.now() + timeoutMs;
  while (exists(pid)) {
    try {
      const r = waitpid(pid, WNOHANG | __WALL);
      if (r.pid === pid) status = decodeWaitStatus(r.status);
    } catch (e) {
      if (!isErrno(e, 'ECHILD')) throw e;
    }
    if (!exists(pid)) break;
    if (Date.now() > deadline) {
      throw new Error(
        `pid ${pid} is still there after ${timeoutMs} ms (state ${procState(pid)}, parent ${parentPid(pid)})`,
      );
    }
    await sleep(10);
  }
  return status;
}

export function tail(text: string, lines: number): string {
  const all = text.split('\n');
  if (all.length <= lines) return text;
  return `[... ${all.length - lines} lines before]\n${all.slice(-lines).join('\n')}`;
}

export function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** A pid that no process has right now. */
export async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  const pid = child.pid!;
  await waitFor(`pid ${pid} to leave /proc`, () => !exists(pid), 5_000);
  return pid;
}

/** Our own children right now (node's and orphans reparented to us). */
export function ourChildren(): number[] {
  return childrenOf(process.pid);
}
