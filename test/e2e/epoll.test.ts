// epoll watches whose fd was closed or reused while the file lives on through
// another fd: found with kcmp(KCMP_EPOLL_TFD) (check feature kcmp_epoll), as
// zdtm's epoll and epoll01 need; a watch no fd of the epoll's task can stand
// for fails the dump.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT, Session, critDecodeAll, runningFree, tracerPid } from './harness.js';

test('check --feature kcmp_epoll: yes', () => {
  const r = spawnSync(path.join(ROOT, 'bin/cryo'), ['check', '--no-default-config', '--feature', 'kcmp_epoll'], { encoding: 'utf8' });
  assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'kcmp_epoll is supported\n', '']);
});

test('epoll: watches through a closed dup, two watches at one reused fd number, a plain one, a second epoll on the same pipe', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'epolldup');
  await s.cycle('epolldup', { afterDump: (images) => assert.deepEqual(critDecodeAll(images), [], s.report()) });
});

test('epoll: a watched file that only another task holds fails the dump in one line; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'epoll-other');
  const target = await s.start('epolldup', { args: [s.dir, 'other-task'] });
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${target.pid} fd \\d+ \\(epoll\\): watches a file \\(inode \\d+, registered as fd 900\\) and task ${target.pid} holds it in no fd; the watch cannot be made again\\n$`), s.report());
  assert.ok(runningFree(target.pid) && tracerPid(target.pid) === 0, `the target was left stopped or traced${s.report()}`);
  await s.expectPass(target);
});
