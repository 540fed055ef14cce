// cgroups: membership of every task and thread in every hierarchy (v1, named,
// v2), --manage-cgroups modes, --cgroup-root re-rooting, properties, nested
// groups, a failed restore undone, and the RPC fields. Every test makes its own
// groups (memory ones below the test's own memory cgroup) and removes them.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, exists, processTree, ticks, waitFor, type Target } from './harness.js';
import { Cryo } from '../../src/index.js';
import { CriuCgMode } from '../../src/images/index.js';
import { Groups, HIERARCHIES, kernelName, put, get, groupsOf, type Hier } from './cgroup-groups.js';

const tag = (s: string) => `cryo-test-${process.pid}-${s}`;

/**
 * The target's groups: NAME in every hierarchy with the process, NAME/sub with
 * its child, cpu NAME/thr with its second thread; with `props`, properties of
 * each controller set to values no new group has.
 */
function makeTree(g: Groups, name: string, props: boolean): void {
  const b = (h: Hier) => Groups.base(h, name);
  for (const h of HIERARCHIES) g.mk(h, b(h));
  // Before the children exist: a parent's cpus cannot shrink below a child's,
  // and a devices group with children cannot deny everything.
  put('cpuset', b('cpuset'), 'cpuset.cpus', '1');
  if (props) {
    put('devices', b('devices'), 'devices.deny', 'a');
    for (const l of ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:9 r']) put('devices', b('devices'), 'devices.allow', l);
  }
  for (const h of HIERARCHIES) g.mk(h, `${b(h)}/sub`);
  g.mk('cpu', `${b('cpu')}/thr`);
  put('cpu', b('cpu'), 'cpu.shares', '512');
  if (!props) return;
  put('cpu', b('cpu'), 'cpu.cfs_period_us', '50000');
  put('cpu', b('cpu'), 'cpu.cfs_quota_us', '25000');
  put('cpu', b('cpu'), 'notify_on_release', '1');
  put('cpu', `${b('cpu')}/sub`, 'cpu.shares', '256');
  put('memory', b('memory'), 'memory.limit_in_bytes', String(256 << 20));
  put('memory', b('memory'), 'memory.soft_limit_in_bytes', String(128 << 20));
  put('memory', b('memory'), 'memory.swappiness', '30');
  put('pids', b('pids'), 'pids.max', '100');
  fs.chownSync(`${Groups.dir('pids', b('pids'))}/pids.max`, 1234, 1235);
  fs.chmodSync(Groups.dir('pids', b('pids')), 0o750);
  put('unified', b('unified'), 'cgroup.max.descendants', '5');
  put('unified', b('unified'), 'cgroup.max.depth', '3');
}

/** Start the cgroups program and put it, its child and its thread into the tree NAME. */
async function startInTree(s: Session, name: string): Promise<{ target: Target; child: number; thread: number }> {
  const target = await s.start('cgroups');
  const out = target.output();
  const child = Number(/^child (\d+)$/m.exec(out)?.[1]);
  const thread = Number(/^thread (\d+)$/m.exec(out)?.[1]);
  for (const h of HIERARCHIES) {
    put(h, Groups.base(h, name), 'cgroup.procs', String(target.pid));
    put(h, `${Groups.base(h, name)}/sub`, 'cgroup.procs', String(child));
  }
  put('cpu', `${Groups.base('cpu', name)}/thr`, 'tasks', String(thread));
  return { target, child, thread };
}

/** Where each hierarchy's tree goes on restore: its new root, by the kernel's name. */
type Roots = (kernel: string) => string;

/** A cgroup file's text with every group of tree `from` moved to the roots. */
function remap(text: string, from: string, roots: Roots): string {
  return text.replace(/^(\d+):([^:]*):(.*)$/gm, (_l, id: string, name: string, p: string) => {
    const h = HIERARCHIES.find((x) => kernelName(x) === name)!;
    const old = Groups.base(h, from);
    const moved = p === old || p.startsWith(`${old}/`) ? roots(name) + p.slice(old.length) : p;
    return `${id}:${name}:${moved}`;
  });
}

/** The cgroup files of the process, its thread and its child, as they are now. */
function cgroupFiles(pid: number, child: number, thread: number): { self: string; thread: string; child: string } {
  const r = (f: string) => fs.readFileSync(f, 'utf8');
  return { self: r(`/proc/${pid}/cgroup`), thread: r(`/proc/${pid}/task/${thread}/cgroup`), child: r(`/proc/${child}/cgroup`) };
}

/** Tell the program where it must be (and where SIGUSR2 moves it); check from here too. */
function expectGroups(s: Session, pid: number, child: number, thread: number, want: { self: string; thread: string; child: string }): void {
  fs.writeFileSync(path.join(s.dir, 'expect-self'), want.self);
  fs.writeFileSync(path.join(s.dir, 'expect-thread'), want.thread);
  fs.writeFileSync(path.join(s.dir, 'expect-child'), want.child);
  fs.writeFileSync(path.join(s.dir, 'corrupt'), '/sys/fs/cgroup/pids/cgroup.procs');
  assert.deepEqual(cgroupFiles(pid, child, thread), want, s.report());
}

const simpleRoots = (name: string): Roots => (k) => (k === 'memory' ? Groups.base('memory', name) : `/${name}`);
const simpleArgs = (name: string) => ['--cgroup-root', `/${name}`, '--cgroup-root', `memory:${Groups.base('memory', name)}`];

function crit(file: string): { entries: Array<Record<string, unknown>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> };
}

test('cgroups: every hierarchy (v1, cpu,cpuacct and name=systemd re-rooted on their own, v2), nested groups, a thread\'s own group, properties and permissions', { timeout: 90_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'cgroups');
  const A = tag('a');
  const B = tag('b');
  makeTree(g, A, true);
  const { target, child, thread } = await startInTree(s, A);
  const before = cgroupFiles(target.pid, child, thread);
  // One more cpu property than CRIU's list has, by --cgroup-props-file.
  put('cpu', Groups.base('cpu', A), 'cpu.cfs_burst_us', '1000');
  const propsFile = path.join(s.dir, 'props.yaml');
  fs.writeFileSync(propsFile, '"cpu":\n - "strategy": "merge"\n - "properties": ["cpu.cfs_burst_us"]\n');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--manage-cgroups', '--cgroup-props-file', propsFile] });

  assert.deepEqual(critDecodeAll(images), [], s.report());
  const cg = crit(path.join(images, 'cgroup.img')).entries[0] as {
    sets: Array<{ ctls: Array<{ name: string; path: string }> }>;
    controllers: Array<{ cnames: string[]; dirs?: Array<{ dir_name: string; properties?: Array<{ name: string; value: string }>; children?: Array<{ dir_name: string }> }> }>;
  };
  assert.ok(cg.sets.some((x) => x.ctls.some((c) => c.name === 'name=systemd' && c.path === `/${A}`)), JSON.stringify(cg.sets));
  const cpu = cg.controllers.find((c) => c.cnames.join() === 'cpu')!.dirs![0]!;
  assert.equal(cpu.dir_name, A);
  assert.equal(cpu.properties!.find((p) => p.name === 'cpu.shares')?.value, '512');
  assert.deepEqual(cpu.children!.map((c) => c.dir_name).sort(), ['sub', 'thr']);
  const core = crit(path.join(images, `core-${target.pid}.img`)).entries[0] as { tc: { cg_set?: number } };
  assert.ok((core.tc.cg_set ?? 0) > 1, `core's cg_set: ${JSON.stringify(core.tc)}`);

  // As the example: one root for all, cpu,cpuacct (here two hierarchies,
  // both named by it) and name=systemd each their own; memory stays below ours.
  const roots: Roots = (k) => (k === 'memory' ? Groups.base('memory', B) : k === 'cpu' || k === 'cpuacct' ? `/${B}-sp` : k === 'name=systemd' ? `/${B}-sd` : `/${B}`);
  for (const h of HIERARCHIES) g.track(h, roots(kernelName(h)));
  const r = await s.restore(images, target, {
    extra: ['--manage-cgroups', '--cgroup-root', `/${B}`, '--cgroup-root', `memory:${Groups.base('memory', B)}`,
      '--cgroup-root', `cpu,cpuacct:/${B}-sp`, '--cgroup-root', `name=systemd:/${B}-sd`],
  });
  const want = { self: remap(before.self, A, roots), thread: remap(before.thread, A, roots), child: remap(before.child, A, roots) };
  assert.match(want.self, new RegExp(`:name=systemd:/${B}-sd$`, 'm'));
  expectGroups(s, r.pid, child, thread, want);

  const nb = (h: Hier) => roots(kernelName(h));
  const props: Array<[Hier, string, string, string]> = [
    ['cpu', nb('cpu'), 'cpu.shares', '512'], ['cpu', nb('cpu'), 'cpu.cfs_period_us', '50000'],
    ['cpu', nb('cpu'), 'cpu.cfs_quota_us', '25000'], ['cpu', nb('cpu'), 'notify_on_release', '1'],
    ['cpu', `${nb('cpu')}/sub`, 'cpu.shares', '256'], ['cpu', nb('cpu'), 'cpu.cfs_burst_us', '1000'],
    ['cpuset', nb('cpuset'), 'cpuset.cpus', '1'], ['cpuset', nb('cpuset'), 'cpuset.mems', '0'],
    ['memory', nb('memory'), 'memory.limit_in_bytes', String(256 << 20)],
    ['memory', nb('memory'), 'memory.soft_limit_in_bytes', String(128 << 20)],
    ['memory', nb('memory'), 'memory.swappiness', '30'],
    ['pids', nb('pids'), 'pids.max', '100'],
    ['devices', nb('devices'), 'devices.list', 'c 1:3 rwm\nc 1:5 rwm\nc 1:9 r'],
    ['unified', nb('unified'), 'cgroup.max.descendants', '5'], ['unified', nb('unified'), 'cgroup.max.depth', '3'],
  ];
  for (const [h, grp, f, v] of props) assert.equal(get(h, grp, f), v, `${h}:${grp}/${f}${s.report()}`);
  const pm = fs.statSync(`${Groups.dir('pids', nb('pids'))}/pids.max`);
  assert.deepEqual([pm.uid, pm.gid], [1234, 1235], 'owner of pids.max');
  assert.equal(fs.statSync(Groups.dir('pids', nb('pids'))).mode & 0o7777, 0o750, 'mode of the pids group');
  await s.expectPass(r);
});

test('--manage-cgroups modes: none and props need the groups, soft and full create them, props and full write existing ones, strict refuses them; no option leaves the task where cryo is', { timeout: 120_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'cgroup-modes');
  const A = tag('ma');
  const B = tag('mb');
  makeTree(g, A, false);
  const { target, child, thread } = await startInTree(s, A);
  const before = cgroupFiles(target.pid, child, thread);
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--manage-cgroups'] });
  for (const h of HIERARCHIES) g.track(h, Groups.base(h, B));
  const want = { self: remap(before.self, A, simpleRoots(B)), thread: remap(before.thread, A, simpleRoots(B)), child: remap(before.child, A, simpleRoots(B)) };
  const bExists = () => HIERARCHIES.filter((h) => fs.existsSync(Groups.dir(h, Groups.base(h, B))));
  const restoreAs = async (mode: string | null) => {
    const r = await s.restore(images, target, { extra: mode === null ? [] : [`--manage-cgroups=${mode}`, ...simpleArgs(B)] });
    const c = Number(fs.readFileSync(`/proc/${r.pid}/task/${r.pid}/children`, 'utf8').trim());
    assert.equal(c, child, 'the restored child');
    return r;
  };
  const fails = async (mode: string, why: RegExp) => {
    const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', `restore-${mode}.log`, `--manage-cgroups=${mode}`, ...simpleArgs(B)]);
    assert.notEqual(r.code, 0, `restore --manage-cgroups=${mode} succeeded${s.report()}`);
    assert.match(r.stderr, why, s.report());
    assert.equal(exists(target.pid), false, 'a task of the failed restore is left');
  };
  const shares = () => get('cpu', Groups.base('cpu', B), 'cpu.shares');

  // No option: the tasks stay in the restorer's groups, nothing is made.
  let r = await restoreAs(null);
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8');
  assert.deepEqual(cgroupFiles(r.pid, child, thread), { self: own, thread: own, child: own }, s.report());
  assert.deepEqual(bExists(), []);
  await s.killTree(r);

  await fails('props', /does not exist \(--manage-cgroups=props creates none\)/);
  await fails('none', /does not exist/);
  assert.deepEqual(bExists(), [], 'a refused restore left groups behind');

  makeTree(g, B, false);
  put('cpu', Groups.base('cpu', B), 'cpu.shares', '100');
  for (const [mode, sharesAfter] of [['none', '100'], ['soft', '100'], ['props', '512'], ['full', '512']] as const) {
    r = await restoreAs(mode);
    expectGroups(s, r.pid, child, thread, want);
    assert.equal(shares(), sharesAfter, `cpu.shares after --manage-cgroups=${mode}`);
    put('cpu', Groups.base('cpu', B), 'cpu.shares', '100');
    await s.killTree(r);
  }

  await fails('strict', /already exists \(--manage-cgroups=strict\)/);
  assert.equal(bExists().length, HIERARCHIES.length, 'strict removed groups it did not make');
  assert.equal(shares(), '100');

  await g.removeAll();
  r = await restoreAs('strict');
  expectGroups(s, r.pid, child, thread, want);
  assert.equal(shares(), '512');
  // The check can fail: SIGUSR2 moves the process elsewhere first.
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, output);
  assert.match(output, /^FAIL: the process is in other cgroups/m);
});

test('a group that cannot be written fails the restore with its path and property; the groups made are removed and no task is left', { timeout: 90_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'cgroup-undo');
  const A = tag('ua');
  const B = tag('ub');
  const P = tag('up');
  makeTree(g, A, false);
  const { target, child, thread } = await startInTree(s, A);
  const before = cgroupFiles(target.pid, child, thread);
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--manage-cgroups'] });
  for (const h of HIERARCHIES) g.track(h, Groups.base(h, B));
  // A cpuset parent with cpu 0 only: the dumped cpuset.cpus (1) cannot be written below it.
  g.mk('cpuset', `/${P}`);
  put('cpuset', `/${P}`, 'cpuset.cpus', '0');
  const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore-bad.log', '--manage-cgroups', ...simpleArgs(B), '--cgroup-root', `cpuset:/${P}/x`]);
  assert.notEqual(r.code, 0, s.report());
  assert.match(r.stderr, new RegExp(`cannot write cgroup property cpuset:/${P}/x/cpuset\\.cpus = "1": E[A-Z]+$`, 'm'), s.report());
  assert.equal(exists(target.pid), false, 'a task of the failed restore is left');
  assert.deepEqual(HIERARCHIES.filter((h) => fs.existsSync(Groups.dir(h, Groups.base(h, B)))), [], 'groups made by the failed restore are left');
  assert.equal(fs.existsSync(Groups.dir('cpuset', `/${P}/x`)), false);
  assert.equal(fs.existsSync(Groups.dir('cpuset', `/${P}`)), true, 'the restore removed a group it did not make');

  // --cgroup-yard: hierarchies already mounted (this machine's layout is one); a yard without them is refused.
  const noYard = await s.cryo(['restore', '-D', images, '-d', '--manage-cgroups', ...simpleArgs(B), '--cgroup-yard', s.dir]);
  assert.notEqual(noYard.code, 0);
  assert.match(noYard.stderr, new RegExp(`--cgroup-yard ${s.dir}: the hierarchy \\S+ is not at ${s.dir}/`), s.report());
  const ok = await s.restore(images, target, { extra: ['--manage-cgroups', ...simpleArgs(B), '--cgroup-yard', '/sys/fs/cgroup'] });
  const roots = simpleRoots(B);
  expectGroups(s, ok.pid, child, thread, { self: remap(before.self, A, roots), thread: remap(before.thread, A, roots), child: remap(before.child, A, roots) });
  await s.expectPass(ok);
});

test('over RPC: manage_cgroups_mode and freeze_cgroup on dump, manage_cgroups and cg_root (one without ctrl, for every hierarchy) on restore', { timeout: 90_000 }, async (t) => {
  // First: its cleanup thaws and kills what is left in the groups before the session reaps.
  const g = new Groups(t);
  const s = Session.for(t, 'cgroup-rpc');
  const A = tag('ra');
  const B = tag('rb');
  makeTree(g, A, false);
  const { target, child, thread } = await startInTree(s, A);
  const before = cgroupFiles(target.pid, child, thread);
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const cryo = new Cryo();
  await cryo.dump({
    imagesDir: images,
    opts: { pid: target.pid, manageCgroupsMode: CriuCgMode.SOFT, freezeCgroup: Groups.dir('freezer', `/${A}`), logLevel: 4, logFile: 'dump.log' },
  });
  await s.check(s.gone(target, tree, images));
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /froze cgroup/);
  for (const h of HIERARCHIES) g.track(h, Groups.base(h, B));
  const { pid } = await cryo.restore({
    imagesDir: images,
    opts: { rstSibling: true, manageCgroups: true, cgRoot: [{ path: `/${B}` }, { ctrl: 'memory', path: Groups.base('memory', B) }], logLevel: 4, logFile: 'restore.log' },
  });
  const r = s.adopt(pid, target);
  const roots = simpleRoots(B);
  expectGroups(s, pid, child, thread, { self: remap(before.self, A, roots), thread: remap(before.thread, A, roots), child: remap(before.child, A, roots) });
  await s.expectPass(r);
});

test('--cgroup-root on dump saves the groups from that root down, --cgroup-dump-controller only the hierarchy named; the restored task keeps its place below the new root', { timeout: 60_000 }, async (t) => {
  const g = new Groups(t);
  const s = Session.for(t, 'cgroup-dump-root');
  const P = tag('dp');
  const Q = tag('dq');
  g.mk('pids', `/${P}`);
  g.mk('pids', `/${P}/a`);
  g.mk('pids', `/${P}/b`);
  put('pids', `/${P}`, 'pids.max', '77');
  put('pids', `/${P}/a`, 'pids.max', '50');
  const target = await s.start('sleeper');
  put('pids', `/${P}/a`, 'cgroup.procs', String(target.pid));
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--manage-cgroups', '--cgroup-dump-controller', 'pids', '--cgroup-root', `/${P}`] });
  const cg = crit(path.join(images, 'cgroup.img')).entries[0] as { sets: Array<{ ctls: Array<{ name: string }> }>; controllers: Array<{ cnames: string[]; dirs?: Array<{ dir_name: string; children?: Array<{ dir_name: string }> }> }> };
  assert.deepEqual(cg.sets.map((x) => x.ctls.map((c) => c.name)), [['pids']]);
  assert.deepEqual(cg.controllers.map((c) => c.cnames), [['pids']]);
  assert.equal(cg.controllers[0]!.dirs![0]!.dir_name, P);
  assert.deepEqual(cg.controllers[0]!.dirs![0]!.children!.map((c) => c.dir_name), ['a', 'b']);

  g.track('pids', `/${Q}`);
  const r = await s.restore(images, target, { extra: ['--manage-cgroups', '--cgroup-root', `/${Q}`] });
  const own = groupsOf('/proc/self/cgroup');
  const now = groupsOf(`/proc/${r.pid}/cgroup`);
  assert.equal(now.get('pids'), `/${Q}/a`);
  assert.equal(now.get('memory'), own.get('memory'), 'a hierarchy not dumped moved');
  assert.deepEqual([get('pids', `/${Q}`, 'pids.max'), get('pids', `/${Q}/a`, 'pids.max'), get('pids', `/${Q}/b`, 'pids.max')], ['77', '50', 'max']);
  // Dumped at once after its first tick: it must tick on (the check wants 3) before the signal.
  await s.check(waitFor('the restored sleeper to tick 3 times', () => Math.max(0, ...ticks(r.output())) >= 3, 10_000));
  await s.expectPass(r);
});

test('a hierarchy where the tree is in cryo\'s own group (a named one of the test\'s, with another group in it) is left out of the sets: nothing of it saved or made, the task goes to the restorer\'s group there', { timeout: 60_000 }, async (t) => {
  // One name for every run: the kernel keeps a named hierarchy after its last unmount.
  const name = 'cryo-test';
  const mnt = fs.mkdtempSync('/tmp/cryo-cg-');
  const m = spawnSync('mount', ['-t', 'cgroup', '-o', `none,name=${name}`, 'cgroup', mnt], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  t.after(() => {
    for (const d of fs.readdirSync(mnt)) if (fs.statSync(`${mnt}/${d}`).isDirectory()) fs.rmdirSync(`${mnt}/${d}`);
    spawnSync('umount', [mnt]);
    fs.rmdirSync(mnt);
  });
  fs.mkdirSync(`${mnt}/someone-else`);
  const g = new Groups(t);
  const s = Session.for(t, 'cgroup-own');
  const A = tag('oa');
  const B = tag('ob');
  g.mk('pids', `/${A}`);
  const target = await s.start('sleeper');
  put('pids', `/${A}`, 'cgroup.procs', String(target.pid));
  assert.equal(groupsOf(`/proc/${target.pid}/cgroup`).get(`name=${name}`), '/');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--manage-cgroups'] });
  const cg = crit(path.join(images, 'cgroup.img')).entries[0] as { sets: Array<{ ctls: Array<{ name: string; path: string }> }>; controllers: Array<{ cnames: string[]; dirs?: unknown[] }> };
  assert.ok(cg.sets.every((x) => x.ctls.every((c) => c.name !== `name=${name}`)), JSON.stringify(cg.sets));
  assert.ok(cg.sets.some((x) => x.ctls.some((c) => c.name === 'pids' && c.path === `/${A}`)), JSON.stringify(cg.sets));
  assert.deepEqual(cg.controllers.filter((c) => c.cnames.includes(`name=${name}`) && c.dirs?.length), [], 'groups of the hierarchy saved');

  g.track('pids', `/${B}`);
  const r = await s.restore(images, target, { extra: ['--manage-cgroups', '--cgroup-root', `/${B}`] });
  const now = groupsOf(`/proc/${r.pid}/cgroup`);
  assert.equal(now.get('pids'), `/${B}`);
  assert.equal(now.get(`name=${name}`), '/');
  assert.deepEqual(fs.readdirSync(mnt).filter((d) => fs.statSync(`${mnt}/${d}`).isDirectory()), ['someone-else'], 'the restore made groups in the hierarchy');
  await s.killTree(r);
});
