import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT, Session, critDecodeAll } from './harness.js';

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
  // As CRIU writes them: nspid -1 for a dead process, flags without O_RDWR (CRIU passes them to pidfd_open).
  // (Debian's crit predates pidfd entries: cryo's crit reads them.)
  const r = spawnSync(path.join(ROOT, 'bin/cryo'), ['crit', 'decode', '-i', path.join(images, 'files.img')], { encoding: 'utf8' });
  const pidfds = (JSON.parse(r.stdout) as { entries: Array<{ pidfd?: { nspid: number; flags: number } }> }).entries.flatMap((e) => (e.pidfd ? [e.pidfd] : []));
  assert.equal(pidfds.filter((p) => p.nspid === -1).length, 4, JSON.stringify(pidfds));
  assert.deepEqual(pidfds.filter((p) => p.flags & 2), [], JSON.stringify(pidfds));
  await s.expectPass(await s.restore(images, target));
});
