// A task stopped by job control (SIGSTOP) is dumped as stopped and comes back
// stopped; SIGCONT lets it go on.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, exists, procState, tracerPid, waitFor, signalPid } from './harness.js';

test('a stopped task is restored stopped, and runs on after SIGCONT', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'stopped');
  const target = await s.start('misc');
  target.signal('SIGSTOP');
  await s.check(waitFor(`pid ${target.pid} to stop`, () => procState(target.pid) === 'T', 5_000));
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']);
  s.ok(r);
  await s.check(waitFor(`pid ${target.pid} to go`, () => !exists(target.pid), 10_000));
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const pid = Number(fs.readFileSync(pidfile, 'utf8'));
  await s.check(waitFor(`restored pid ${pid} to be stopped and untraced`, () => procState(pid) === 'T' && tracerPid(pid) === 0, 5_000));
  const restored = s.adopt(pid, target);
  signalPid(pid, 'SIGCONT');
  await s.check(waitFor(`pid ${pid} to run`, () => procState(pid) !== 'T', 5_000));
  assert.notEqual(procState(pid), 'T', s.report());
  await s.expectPass(restored);
});
