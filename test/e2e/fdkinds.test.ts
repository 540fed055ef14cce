import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Session, critDecodeAll } from './harness.js';

test('signalfd (mask, pending signal), timerfd (periodic, unread expirations), a FIFO with data, an O_PATH fd, a pidfd of a child', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fdkinds');
  await s.cycle('fdkinds');
});

test('signalfd, timerfd, FIFO images decode with CRIU\'s crit', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fdkinds-crit');
  const target = await s.start('fdkinds');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(target);
});

test('pidfds of processes that exited and were reaped: pidfds of one dead process stay one (also across tasks), of two stay two', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'pidfddead');
  const target = await s.start('pidfddead');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});
