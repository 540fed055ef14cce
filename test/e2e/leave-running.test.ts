// dump --leave-running: the task runs on exactly as before (no leftover
// mapping, registers untouched) and can be dumped again.
import { test } from 'node:test';
import { Session } from './harness.js';

test('dump --leave-running twice: memory runs on untouched and PASSes', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'leave-running-memory');
  const target = await s.start('memory');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.expectPass(target);
});

test('dump --leave-running, then dump and restore: regs PASSes', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'leave-running-regs');
  const target = await s.start('regs');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  const images = s.mkdir();
  await s.dump(target, images);
  await s.expectPass(await s.restore(images, target));
});
