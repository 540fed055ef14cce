import { test } from 'node:test';
import { Session } from './harness.js';

test('creds: uids, gids, fsuid/fsgid, groups, capabilities (eff/prm/inh/ambient/bounding), securebits, no_new_privs, dumpable, pdeath_signal', { timeout: 30_000, skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  await Session.for(t, 'creds').cycle('creds');
});
