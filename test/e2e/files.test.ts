import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { Session, critDecodeAll } from './harness.js';

test('files: dump, restore -d: fd numbers, offsets, flags, FD_CLOEXEC, shared and separate descriptions', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'files').cycle('files');
});

test('tasks sharing one fd table (CLONE_FILES) share it again, a forked one keeps its own; a high fd number', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fdshare');
  const target = await s.start('fdshare');
  const images = s.mkdir();
  await s.dump(target, images);
  // One fdinfo image for the shared table, one for the forked task's.
  assert.equal(fs.readdirSync(images).filter((n) => n.startsWith('fdinfo-')).length, 2, s.report());
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});

test('owners of files\' signals: F_SETOWN_EX (a process, a process group, with the uids it was set with), F_SETSIG, O_ASYNC', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fown');
  const target = await s.start('fown');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});
