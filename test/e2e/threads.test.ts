import { test } from 'node:test';
import * as path from 'node:path';
import { ROOT, Session } from './harness.js';

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

test('threads under constant garbage collection in cryo (buffers handed to the kernel stay alive)', { timeout: 60_000 }, async (t) => {
  // node --stress-scavenge runs a scavenge every few allocations: a Buffer whose
  // address went into a syscall but that was not held would be freed mid-call.
  const before = process.env.CRYO;
  process.env.CRYO = `${process.execPath} --stress-scavenge=20 ${path.join(ROOT, 'bin/cryo')}`;
  try {
    const s = Session.for(t, 'threads-gc');
    await s.cycle('threads');
  } finally {
    if (before === undefined) delete process.env.CRYO;
    else process.env.CRYO = before;
  }
});

test('threads: dump --leave-running puts every thread back (registers, masks) and it PASSes', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'threads-leave');
  const target = await s.start('threads');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.expectPass(target);
});
