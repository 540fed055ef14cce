import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, critDecodeAll } from './harness.js';

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
