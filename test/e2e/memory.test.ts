import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, critDecodeAll } from './harness.js';

test('memory: dump, restore -d: contents, layout and brk intact', { timeout: 60_000 }, async (t) => {
  await Session.for(t, 'memory').cycle('memory');
});

test("memory: every image but pages-*.img decodes with CRIU's crit", { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'memory-crit');
  const target = await s.start('memory');
  const images = s.mkdir();
  await s.dump(target, images);
  const failures = critDecodeAll(images);
  assert.deepEqual(failures, [], `crit failed on ${failures.length} image(s)${s.report()}`);
});

test('shared anonymous memory stays one object between a parent and its child (three VMAs at offsets into it)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'shmem');
  await s.cycle('shmem');
});
