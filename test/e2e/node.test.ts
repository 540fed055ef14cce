// A real program nobody wrote for us: node with timers (its libuv loop sits in
// epoll_wait; V8's and libuv's threads; eventfds and pipes inside).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { PROGRAMS_DIR, Session, ticks, waitFor } from './harness.js';

test('node with timers ticks on after restore; its thread pool still works', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'node');
  const target = await s.startCommand('node', [process.execPath, path.join(PROGRAMS_DIR, 'nodetimers.cjs')], {
    ready: /^tick 3$/m,
    timeoutMs: 20_000,
  });
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = Math.max(...ticks(target.output()));
  const restored = await s.restore(images, target);
  await s.check(waitFor(`3 more ticks after tick ${atDump}`, () => Math.max(...ticks(restored.output())) >= atDump + 3, 10_000));
  await s.expectPass(restored);
  const all = ticks(target.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `ticks are not consecutive from 1${s.report()}`);
});
