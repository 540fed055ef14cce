// seccomp state per thread: filter chains (check feature seccomp_filters:
// PTRACE_SECCOMP_GET_FILTER reads them) and strict mode, in which cryo's calls
// into the thread work only because of PTRACE_O_SUSPEND_SECCOMP (seccomp_suspend).
import { test } from 'node:test';
import { Session } from './harness.js';

test('seccomp: filter chains per thread (one inherited, one own), installed again with their effects', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'seccomp');
  await s.cycle('seccomp');
});

test('seccomp strict mode: a thread allowed only read/write/exit is dumped (suspended seccomp) and comes back strict, still echoing', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'seccomp-strict');
  await s.cycle('seccompstrict');
});
