import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, critDecodeAll, runningFree } from './harness.js';

test('a file deleted while open comes back deleted, with its contents and offset (ghost file)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost');
  await s.cycle('ghost');
});

test('ghost file images decode with CRIU\'s crit', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost-crit');
  const target = await s.start('ghost');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(target);
});

test('--ghost-limit: a deleted file larger than the limit fails the dump by name, the task runs on; at the limit it is carried', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost-limit');
  const target = await s.start('ghost');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--ghost-limit', '9999']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${target.pid}: fd \\d+ is a deleted file of 10000 bytes, more than --ghost-limit 9999\\n$`), s.report());
  assert.ok(runningFree(target.pid), s.report());
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--ghost-limit', '10000'] });
  await s.expectPass(await s.restore(images, target));
});
