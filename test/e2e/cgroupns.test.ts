// Cgroup namespaces (cgroupns.c): a tree whose root is in a cgroup namespace
// of its own is dumped with the namespace's root in each of its groups
// (cgns_prefix in cgroup.img, as CRIU) and restored into a new one rooted at
// the same group: the tasks see the same /proc/self/cgroup. The test's groups
// are made below the memory cgroup the test runs in, and removed.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, critDecodeAll } from './harness.js';
import { Groups, groupsOf } from './cgroup-groups.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

function crit(image: string): { entries: Array<Record<string, unknown>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** A memory group for the test, with inner and inner/kid below it; its path from the hierarchy's root. */
function groups(t: Parameters<typeof Session.for>[0], name: string): string {
  const g = new Groups(t);
  const base = Groups.base('memory', name);
  g.mk('memory', base);
  g.mk('memory', `${base}/inner`);
  g.mk('memory', `${base}/inner/kid`);
  return base;
}

test('cgroup namespace of its own: restored into a new one rooted at the same group, the tasks see the same cgroup files', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'cgroupns');
  const base = groups(t, `cryo-cgns-${process.pid}`);
  const target = await s.start('cgroupns', { args: [s.dir, Groups.dir('memory', base)] });
  assert.notEqual(nsLink(target.pid, 'cgroup'), nsLink('self', 'cgroup'));
  assert.equal(groupsOf(`/proc/${target.pid}/cgroup`).get('memory'), `${base}/inner`);
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // The memory groups carry the namespace's root as a prefix of their paths.
  const cg = crit(path.join(images, 'cgroup.img')).entries[0] as { sets: Array<{ ctls: Array<{ name: string; path: string; cgns_prefix?: number }> }> };
  const mem = cg.sets.flatMap((x) => x.ctls).filter((c) => c.name === 'memory');
  assert.deepEqual(mem.map((c) => [c.path, c.cgns_prefix]).sort(), [[`${base}/inner`, base.length], [`${base}/inner/kid`, base.length]], JSON.stringify(cg));
  const r = await s.restore(images, target, { extra: ['--manage-cgroups'] });
  const now = nsLink(r.pid, 'cgroup');
  assert.notEqual(now, nsLink('self', 'cgroup'), `the restored tree is in cryo's cgroup namespace${s.report()}`);
  for (const kid of childrenOf(r.pid)) assert.equal(nsLink(kid, 'cgroup'), now, `child ${kid} is not in the root's cgroup namespace`);
  assert.equal(groupsOf(`/proc/${r.pid}/cgroup`).get('memory'), `${base}/inner`, s.report());
  await s.expectPass(r);
});

test('cgroup namespace: the check sees the root moved to the namespace\'s root group (SIGUSR2); a restore without --manage-cgroups refuses the images', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'cgroupns-corrupt');
  const base = groups(t, `cryo-cgns2-${process.pid}`);
  const target = await s.start('cgroupns', { args: [s.dir, Groups.dir('memory', base)] });
  const images = s.mkdir();
  await s.dump(target, images);
  const bad = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore-ignore.log']);
  assert.equal(bad.code, 1, s.report());
  assert.match(bad.stderr, /^Error: the tree is in a cgroup namespace of its own, rooted at its groups: restoring it needs --manage-cgroups \(a mode other than ignore\)$/m, s.report());
  assert.ok(!fs.existsSync(`/proc/${target.pid}`), 'the refused restore left a task');
  const r = await s.restore(images, target, { extra: ['--manage-cgroups'] });
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: \/proc\/self\/cgroup is \[/m, s.report());
});
