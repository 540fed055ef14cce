// The fds of a task and what /proc/PID/fd/N names (readlink): none for a task
// gone or without an fd table any more (a zombie: ENOENT), an fd closed while
// read left out; any other error is thrown.
import { readdirSync, readlinkSync } from 'node:fs';

export function fdLinks(pid: number): Array<{ fd: number; link: string }> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: Array<{ fd: number; link: string }> = [];
  for (const n of fds) {
    try {
      out.push({ fd: Number(n), link: readlinkSync(`/proc/${pid}/fd/${n}`) });
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}
