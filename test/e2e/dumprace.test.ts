// Dump races: tasks that come and go while the tree is being seized, zombies,
// two dumps of one tree at once. Every dump either succeeds with images that
// restore, or fails with one line and leaves the tree running untouched.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session } from './harness.js';

test('a tree that forks without pause: 25 dumps in a row all succeed, the last one restores and passes', { timeout: 240_000 }, async (t) => {
  const s = Session.for(t, 'forkstorm');
  const target = await s.start('forkstorm');
  let images = '';
  for (let i = 0; i < 25; i++) {
    images = s.mkdir();
    // The last one kills the tree (with every task frozen: none forks or exits meanwhile).
    await s.dump(target, images, { leaveRunning: i < 24 });
  }
  await s.expectPass(await s.restore(images, target));
});
