// File locks, read from the lock: lines of fdinfo (check feature fdinfo_lock).
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, critDecodeAll, runningFree } from './harness.js';

test('--file-locks: flock, POSIX and OFD locks are held again after restore', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'locks');
  const target = await s.start('locks');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--file-locks'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const restored = await s.restore(images, target, { extra: ['--file-locks'] });
  await s.expectPass(restored);
});

test('a task holding file locks is not dumped without --file-locks; it runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'locks-refused');
  const target = await s.start('locks');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /--file-locks/, s.report());
  assert.ok(runningFree(target.pid), s.report());
  await s.expectPass(target);
});
