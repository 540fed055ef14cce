// The pure parts of cgroups: /proc/PID/cgroup, hierarchy matching, --cgroup-root
// re-rooting (also of a combined cpu,cpuacct hierarchy, which this machine has
// not), --cgroup-props, property values.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { CgroupEntrySchema, type CgroupEntry } from '../../src/images/index.js';
import { parseCgroupFile, hierarchiesOf } from '../../src/proc/cgroup.js';
import { cgroupContains, namesAny, canonical, isUnder, rebase, yardDirName } from '../../src/objects/cgroup-fs.js';
import { rootFor } from '../../src/objects/cgroup.js';
import { rewriteRoots, synthesizeDirs } from '../../src/objects/cgroup-restore.js';
import { parsePropsStream, propTables, propsFor, imageValue, ifpriomapLines, subtreeControlWrite, propMatches } from '../../src/objects/cgroup-props.js';
import { parseCgroupRoot } from '../../src/options/values.js';

const FILE = `12:pids:/c
11:cpu,cpuacct:/c/x:y
1:name=systemd:/c
0::/c
`;

test('parseCgroupFile: name and path (colons in the path kept), sorted by name as CRIU sorts them', () => {
  assert.deepEqual(parseCgroupFile(FILE), [
    { name: '', path: '/c' }, { name: 'cpu,cpuacct', path: '/c/x:y' }, { name: 'name=systemd', path: '/c' }, { name: 'pids', path: '/c' },
  ]);
  assert.deepEqual(hierarchiesOf(FILE), [['pids'], ['cpu', 'cpuacct'], ['name=systemd'], ['']]);
  assert.throws(() => parseCgroupFile('garbage\n'));
});

test('hierarchy matching: every controller of a hierarchy in a name (cgroup_contains), any for --cgroup-root; v2 only by ""', () => {
  assert.equal(cgroupContains(['cpu', 'cpuacct'], 'cpu,cpuacct'), true);
  assert.equal(cgroupContains(['cpu', 'cpuacct'], 'cpuacct,cpu'), true);
  assert.equal(cgroupContains(['cpu', 'cpuacct'], 'cpu'), false);
  assert.equal(cgroupContains(['cpu'], 'cpuset'), false);
  assert.equal(cgroupContains(['name=systemd'], 'name=systemd'), true);
  assert.equal(cgroupContains([''], ''), true);
  assert.equal(cgroupContains([''], 'cpu'), false);
  assert.equal(cgroupContains(['cpu'], ''), false);
  assert.equal(namesAny(['cpu', 'cpuacct'], 'cpu'), true);
  assert.equal(namesAny(['cpuacct'], 'cpu,cpuacct'), true);
  assert.equal(namesAny(['cpuset'], 'cpu,cpuacct'), false);
  assert.equal(yardDirName(['cpu', 'cpuacct']), 'cpu,cpuacct');
  assert.equal(yardDirName(['name=systemd']), 'systemd');
  assert.equal(yardDirName(['']), 'unified');
});

test('paths: canonical, below, moved', () => {
  assert.equal(canonical('a//b/'), '/a/b');
  assert.equal(canonical(''), '/');
  assert.throws(() => canonical('/a/../b'), /goes up/);
  assert.equal(isUnder('/a/b', '/a'), true);
  assert.equal(isUnder('/ab', '/a'), false);
  assert.equal(isUnder('/x', '/'), true);
  assert.equal(rebase('/a/b/c', '/a', '/n'), '/n/b/c');
  assert.equal(rebase('/a', '/a', '/n'), '/n');
  assert.equal(rebase('/a', '/', '/n'), '/n/a');
});

test('rootFor: a root naming the hierarchy wins over the global one; two different ones are refused', () => {
  const roots = ['/c2', 'cpu,cpuacct:/special', 'name=systemd:/sd'].map(parseCgroupRoot);
  assert.equal(rootFor(['memory'], roots), '/c2');
  assert.equal(rootFor(['cpu', 'cpuacct'], roots), '/special');
  assert.equal(rootFor(['cpu'], roots), '/special');
  assert.equal(rootFor(['name=systemd'], roots), '/sd');
  assert.equal(rootFor([''], roots), '/c2');
  assert.equal(rootFor(['memory'], []), undefined);
  assert.throws(() => rootFor(['cpu', 'cpuacct'], ['cpu:/a', 'cpuacct:/b'].map(parseCgroupRoot)), /both given for the hierarchy cpu,cpuacct/);
});

function image(): CgroupEntry {
  const ctls = (p: string) => ['blkio', 'cpu,cpuacct', 'memory', 'name=systemd'].map((name) => ({ name, path: p }));
  return create(CgroupEntrySchema, {
    sets: [{ id: 2, ctls: ctls('/c') }, { id: 3, ctls: ctls('/c/sub') }],
    controllers: [
      { cnames: ['memory'], dirs: [{ dirName: 'c', children: [{ dirName: 'sub' }] }] },
      { cnames: ['cpu', 'cpuacct'], dirs: [{ dirName: 'c', children: [{ dirName: 'sub' }] }] },
      { cnames: ['blkio'], dirs: [{ dirName: 'c', children: [{ dirName: 'sub' }] }] },
      { cnames: ['name=systemd'], dirs: [{ dirName: 'c', children: [{ dirName: 'sub' }] }] },
    ],
  });
}

test('rewriteRoots: the issue\'s example, a combined and a named hierarchy on their own roots, nested groups moved along', () => {
  const e = image();
  rewriteRoots(e, ['/c2', 'cpu,cpuacct:/special', 'name=systemd:/sd'].map(parseCgroupRoot));
  const paths = (id: number) => Object.fromEntries(e.sets.find((s) => s.id === id)!.ctls.map((c) => [c.name, c.path]));
  assert.deepEqual(paths(2), { 'blkio': '/c2', 'cpu,cpuacct': '/special', 'memory': '/c2', 'name=systemd': '/sd' });
  assert.deepEqual(paths(3), { 'blkio': '/c2/sub', 'cpu,cpuacct': '/special/sub', 'memory': '/c2/sub', 'name=systemd': '/sd/sub' });
  assert.deepEqual(e.controllers.map((c) => c.dirs[0]!.dirName), ['c2', 'special', 'c2', 'sd']);
  assert.equal(e.controllers[0]!.dirs[0]!.children[0]!.dirName, 'sub');
});

test('synthesizeDirs: a hierarchy dumped without groups gets them from the sets, nested, so it can be re-rooted', () => {
  const e = image();
  for (const c of e.controllers) c.dirs = [];
  synthesizeDirs(e);
  const mem = e.controllers[0]!;
  assert.equal(mem.dirs.length, 1);
  assert.equal(mem.dirs[0]!.dirName, 'c');
  assert.deepEqual(mem.dirs[0]!.children.map((d) => d.dirName), ['sub']);
  rewriteRoots(e, [parseCgroupRoot('memory:/m')]);
  assert.deepEqual(e.sets.map((s) => s.ctls.find((c) => c.name === 'memory')!.path), ['/m', '/m/sub']);
});

test('--cgroup-props: CRIU\'s form parsed; merge appends, replace drops; errors say where', () => {
  const text = '"cpu":\n - "strategy": "merge"\n - "properties": ["cpu.idle", "cpu.cfs_burst_us"]\n"memory":\n - "strategy": "replace"\n - "properties": []\n';
  assert.deepEqual(parsePropsStream(text), [
    { controller: 'cpu', strategy: 'merge', props: ['cpu.idle', 'cpu.cfs_burst_us'] },
    { controller: 'memory', strategy: 'replace', props: [] },
  ]);
  const t = propTables(text);
  assert.deepEqual(t.v1.get('cpu')!.slice(-2), ['cpu.idle', 'cpu.cfs_burst_us']);
  assert.equal(t.v1.get('cpu')![0], 'cpu.shares');
  assert.deepEqual(t.v1.get('memory'), []);
  assert.deepEqual(t.v2.get('memory'), []);
  assert.throws(() => propTables('"cpu":\n - "strategy": "sometimes"\n - "properties": []\n'), /--cgroup-props: unknown strategy "sometimes"/);
  assert.throws(() => propTables('cpu:'), /--cgroup-props: expected a controller name in quotes/);
  assert.throws(() => propTables('"cpu":\n - "strategy": "merge"\n - "properties": ["a" "b"]'), /expected ',' or '\]'/);
  assert.throws(() => propTables(undefined, '/nonexistent/props'), /--cgroup-props-file \/nonexistent\/props/);
});

test('propsFor: per controller then the global ones, only files that exist; v2 by the group\'s controllers, with patterns', () => {
  const t = propTables();
  const v1 = new Set(['cpu.shares', 'cpu.cfs_quota_us', 'tasks', 'cgroup.procs', 'notify_on_release', 'cpuacct.usage']);
  assert.deepEqual(propsFor(t, false, ['cpu', 'cpuacct'], v1), ['cpu.shares', 'cpu.cfs_quota_us', 'notify_on_release', 'cgroup.procs', 'tasks']);
  const v2 = new Set(['memory.max', 'memory.high', 'cpu.max', 'hugetlb.2MB.max', 'hugetlb.2MB.rsvd.max', 'hugetlb.2MB.current', 'cgroup.type', 'cgroup.max.depth']);
  assert.deepEqual(propsFor(t, true, ['memory', 'hugetlb'], v2), ['memory.high', 'memory.max', 'hugetlb.2MB.max', 'hugetlb.2MB.rsvd.max', 'cgroup.max.depth', 'cgroup.type']);
  assert.equal(propMatches('hugetlb.*.max', 'hugetlb.1GB.max'), true);
  assert.equal(propMatches('hugetlb.*.max', 'hugetlb.1GB.current'), false);
});

test('property values as CRIU keeps them', () => {
  assert.equal(imageValue('cpu.shares', '1024\n'), '1024');
  assert.equal(imageValue('memory.limit_in_bytes', '9223372036854775807\n'), '-1');
  assert.equal(imageValue('x', '99999999999999999999\n'), '-1');
  assert.equal(imageValue('memory.limit_in_bytes', '9223372036854771712\n'), '9223372036854771712');
  assert.equal(imageValue('memory.oom_control', 'oom_kill_disable 1\nunder_oom 0\noom_kill 0\n'), '1');
  assert.equal(imageValue('tasks', '1\n2\n'), '');
  assert.equal(imageValue('devices.list', 'c 1:3 rwm\nc 1:5 rwm\n'), 'c 1:3 rwm\nc 1:5 rwm');
  assert.deepEqual(ifpriomapLines('lo 0\neth0 5\neth1 0'), ['eth0 5']);
  assert.equal(subtreeControlWrite('cpu memory\n', 'memory pids'), '-cpu -memory +memory +pids');
  assert.equal(subtreeControlWrite('', ''), '');
});
