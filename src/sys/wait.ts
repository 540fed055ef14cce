import { readdirSync } from 'node:fs';
import { prctl, syscall } from './libc.js';
import { PR, NR, F, FD_CLOEXEC } from './nr.js';

export interface WaitStatus {
  exited?: number;
  signaled?: number;
  stopped?: number;
  /** For a ptrace event stop: status >> 16 (PTRACE_EVENT_*). */
  event?: number;
}

/** Decode a wait status word (WIFEXITED, WTERMSIG, WSTOPSIG, ptrace event). */
export function decodeWaitStatus(status: number): WaitStatus {
  if ((status & 0x7f) === 0) return { exited: (status >> 8) & 0xff };
  if ((status & 0xff) === 0x7f) {
    const ev = (status >> 16) & 0xff;
    return ev ? { stopped: (status >> 8) & 0xff, event: ev } : { stopped: (status >> 8) & 0xff };
  }
  return { signaled: status & 0x7f };
}

/** Make this process a child subreaper: orphans below it are reparented here. */
export function setChildSubreaper(): void {
  prctl(PR.SET_CHILD_SUBREAPER, 1);
}

/**
 * Mark every fd above stderr close-on-exec, so that programs started from here
 * get stdio only (tests, the demo and the bench start targets this way: fds they
 * inherited from a CI runner would otherwise leak into the targets).
 */
export function closeOnExecInherited(): void {
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    try {
      const fl = syscall('fcntl', NR.fcntl, fd, F.GETFD);
      if (!(fl & FD_CLOEXEC)) syscall('fcntl', NR.fcntl, fd, F.SETFD, fl | FD_CLOEXEC);
    } catch {
      /* the readdir's own fd, closed meanwhile */
    }
  }
}
