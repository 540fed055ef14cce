import { test } from 'node:test';
import { Session } from './harness.js';

test('threads: futex, sleeping and spinning threads, each with its own TLS, tid, name, mask', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'threads');
  await s.cycle('threads');
});

test('threads: dump, restore, dump, restore', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'threads-twice');
  const target = await s.start('threads');
  const a = s.mkdir();
  await s.dump(target, a);
  const once = await s.restore(a, target);
  const b = s.mkdir();
  await s.dump(once, b);
  const twice = await s.restore(b, target);
  await s.expectPass(twice);
});
