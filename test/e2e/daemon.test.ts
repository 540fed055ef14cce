import { test } from 'node:test';
import { Session } from './harness.js';

test('daemon: a double-forked task whose session and group leader is gone comes back in that session (helper task)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'daemon');
  await s.cycle('daemon');
});
