// --freeze-cgroup: the tree is frozen with the cgroup freezer (v1 freezer.state,
// v2 cgroup.freeze) while it is seized; tasks of the group outside the tree wait
// and go on; a group frozen before is frozen again after; with --manage-cgroups
// the frozen state comes back on restore.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, processTree, runningFree, tracerPid, waitFor, readOr } from './harness.js';
import { Groups, put, get, groupsOf } from './cgroup-groups.js';

const tag = (s: string) => `cryo-test-${process.pid}-${s}`;

async function freezeV1(s: Session, dir: string): Promise<void> {
  fs.writeFileSync(`${dir}/freezer.state`, 'FROZEN');
  await s.check(waitFor(`${dir} to freeze`, () => fs.readFileSync(`${dir}/freezer.state`, 'utf8').trim() === 'FROZEN', 5_000));
}

test('--freeze-cgroup (v1): the tree and another task of the group run on after dump -R; a frozen group is frozen again; its state comes back with --manage-cgroups', { timeout: 90_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'freeze-v1');
  const F = tag('frz');
  const dir = g.mk('freezer', `/${F}`);
  const target = await s.start('sleeper');
  const other = await s.startCommand('other', ['sleep', '1000'], { ready: /(?:)/ });
  put('freezer', `/${F}`, 'cgroup.procs', String(target.pid));
  put('freezer', `/${F}`, 'cgroup.procs', String(other.pid));

  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true, extra: ['--freeze-cgroup', dir] });
  const log = readOr(path.join(images, 'dump.log'), '');
  assert.match(log, new RegExp(`froze cgroup ${dir} \\(v1\\)`), s.report());
  assert.match(log, new RegExp(`task ${other.pid} of the freezer cgroup`), s.report());
  assert.equal(get('freezer', `/${F}`, 'freezer.state'), 'THAWED');
  await s.check(waitFor('the other task of the group to run on, untraced', () => runningFree(other.pid), 5_000));

  // Frozen before the dump: frozen after it, and no task is left traced.
  await freezeV1(s, dir);
  const r2 = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log', '-R', '--freeze-cgroup', dir]);
  s.ok(r2);
  assert.equal(get('freezer', `/${F}`, 'freezer.state'), 'FROZEN');
  assert.deepEqual([tracerPid(target.pid), tracerPid(other.pid)], [0, 0]);

  // A dump of the frozen group with its state; the restored group is frozen too.
  const tree = processTree(target.pid);
  const images3 = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images3, '-v4', '-o', 'dump.log', '--freeze-cgroup', dir,
    '--manage-cgroups', '--cgroup-dump-controller', 'freezer']));
  await s.check(s.gone(target, tree, images3));
  assert.equal(get('freezer', `/${F}`, 'freezer.state'), 'FROZEN', 'the group was not frozen again');
  const F2 = tag('frz2');
  g.track('freezer', `/${F2}`);
  const pidfile = path.join(s.dir, 'restore.pid');
  s.ok(await s.cryo(['restore', '-D', images3, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile,
    '--manage-cgroups', '--cgroup-root', `freezer:/${F2}`]));
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), target);
  assert.equal(get('freezer', `/${F2}`, 'freezer.state'), 'FROZEN', s.report());
  const cg = groupsOf(`/proc/${restored.pid}/cgroup`);
  assert.equal(cg.get('freezer'), `/${F2}`);
  // Only the freezer hierarchy was dumped: the others are the restorer's.
  assert.equal(cg.get('memory'), groupsOf('/proc/self/cgroup').get('memory'));
  put('freezer', `/${F2}`, 'freezer.state', 'THAWED');
  await s.check(waitFor('the restored task to run', () => runningFree(restored.pid), 5_000));
  await s.expectPass(restored);
});

test('--freeze-cgroup (v2): cgroup.freeze around the seize, the state put back; a path that is no freezer fails before anything is touched', { timeout: 60_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'freeze-v2');
  const F = tag('frz');
  const dir = g.mk('unified', `/${F}`);
  const target = await s.start('sleeper');
  put('unified', `/${F}`, 'cgroup.procs', String(target.pid));

  const bad = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-R', '--freeze-cgroup', s.dir]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /neither freezer\.state \(v1\) nor cgroup\.freeze \(v2\)/);
  assert.ok(runningFree(target.pid));

  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true, extra: ['--freeze-cgroup', dir] });
  assert.match(readOr(path.join(images, 'dump.log'), ''), new RegExp(`froze cgroup ${dir} \\(v2\\)`), s.report());
  assert.equal(get('unified', `/${F}`, 'cgroup.freeze'), '0');

  put('unified', `/${F}`, 'cgroup.freeze', '1');
  await s.check(waitFor('the group to freeze', () => /^frozen 1$/m.test(get('unified', `/${F}`, 'cgroup.events')), 5_000));
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log', '-R', '--freeze-cgroup', dir]));
  assert.equal(get('unified', `/${F}`, 'cgroup.freeze'), '1', 'the group was not frozen again');
  assert.equal(tracerPid(target.pid), 0);
  put('unified', `/${F}`, 'cgroup.freeze', '0');
  await s.check(waitFor('the task to run', () => runningFree(target.pid), 5_000));
  await s.expectPass(target);
});
