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

test('fds of the task\'s own namespaces (/proc/self/ns/*) come back as files of its namespaces; one of a namespace no task is in fails the dump', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'nsfiles');
  await s.cycle('nsfiles');
  const foreign = await s.start('nsfiles', { args: [s.dir, 'foreign'] });
  const r = await s.cryo(['dump', '-t', String(foreign.pid), '-D', s.mkdir()]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${foreign.pid}: fd \\d+ is a file of a uts namespace \\(uts:\\[\\d+\\]\\) no task of the tree is in, which cannot be dumped\\n$`), s.report());
  await s.expectPass(foreign);
  // The check can fail: SIGUSR2 puts /dev/null in the net fd's place.
  const again = await s.start('nsfiles');
  const images = s.mkdir();
  await s.dump(again, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const { output } = await s.finish(await s.restore(images, again), 'SIGUSR2');
  assert.match(output, /^FAIL: fd \d+ is not the task's net namespace/m, s.report());
});
