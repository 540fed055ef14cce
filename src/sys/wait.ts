import { prctl } from './libc.js';
import { PR } from './nr.js';

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
