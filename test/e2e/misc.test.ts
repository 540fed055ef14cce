// Task state; the rseq area is read with PTRACE_GET_RSEQ_CONFIGURATION (check feature get_rseq_conf).
import { test } from 'node:test';
import { Session } from './harness.js';

test('misc: dump, restore -d: sigactions, masks, pending signals, name, cwd, umask, rseq, robust list, tid address, rlimits', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'misc').cycle('misc');
});
