import { test } from 'node:test';
import { Session } from './harness.js';

test('seccomp: filter chains per thread (one inherited, one own), installed again with their effects', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'seccomp');
  await s.cycle('seccomp');
});
