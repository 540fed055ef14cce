// Pid namespaces nested below the tree's (pidnest.c: the root is pid 1 of its
// namespace, a child unshares CLONE_NEWPID so its child is pid 1 of a second,
// and one below it makes a third). CRIU refuses them ("Can't dump nested pid
// namespace"); cryo keeps each task's pid at every level in its own fields of
// pstree.img (crit still decodes it) and makes each namespace again, cloning
// its init with CLONE_NEWPID. After restore every task has the same pids,
// parents, sessions and groups at every level, and the tasks that unshared bear
// their next children in the namespace they made. And a real program:
// `unshare --pid --fork` run by bash in cryo's own pid namespace.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, compileProgram, critEntries, exists, reapUntilGone, runningFree, waitFor } from './harness.js';

function nspid(pid: number): number[] {
  const m = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return (m?.[1] ?? '').trim().split(/\s+/).map(Number);
}

function descendants(pid: number): number[] {
  const kids = childrenOf(pid);
  return [...kids, ...kids.flatMap(descendants)];
}

/** Each task's pids below cryo's level (what a restore keeps), in tree order. */
const levelsBelowHost = (root: number) => [root, ...descendants(root)].map((p) => nspid(p).slice(1).join(' '));

test('nested pid namespaces (two levels below the tree\'s) come back with every task\'s pid at every level, its parent, session and group', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'pidnest');
  const unshare = await s.startCommand('pidnest', ['unshare', '--fork', '--pid', compileProgram('pidnest'), s.dir]);
  const root = childrenOf(unshare.pid)[0]!;
  assert.ok(root, `unshare has no child${s.report()}`);
  const tasks = [root, ...descendants(root)];
  assert.equal(tasks.length, 8, `pidnest has ${tasks.length} tasks${s.report()}`);
  // Levels below the tree's: the deepest task sees itself two namespaces deeper than the root.
  const depth = Math.max(...tasks.map((p) => nspid(p).length)) - nspid(root).length;
  assert.equal(depth, 2, s.report());
  const before = levelsBelowHost(root);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  // CRIU's crit reads the tree (cryo's fields are past CRIU's), with the root namespace's pids.
  const pstree = critEntries(images, 'pstree.img');
  assert.deepEqual(pstree.map((e) => e['pid']), before.map((l) => Number(l.split(' ')[0])), s.report());
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.deepEqual(levelsBelowHost(host), before, `the pids below cryo's level differ after restore${s.report()}`);
  restored.signal('SIGUSR1');
  await s.check(waitFor('pidnest to print PASS or FAIL', () => /^(PASS|FAIL)/m.test(unshare.output()), 15_000));
  assert.match(unshare.output(), /^PASS$/m, s.report());
  // D's and E's gone leaders were stood in for in namespace B.
  const log = fs.readFileSync(path.join(images, 'restore.log'), 'utf8');
  assert.match(log, /helper \d+ stands in for the gone leader of session/, s.report());
  assert.match(log, /helper \d+ stands in for the gone leader of process group/, s.report());
  await s.killTree(restored);
});

test('bash running `unshare --pid --fork` (a pid namespace nested in cryo\'s, its init a counting bash) counts on after restore, pid 1 there', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'pidnest-unshare');
  // Each line: the count and the inner bash's pid in its namespace ($$).
  const inner = 'i=0; while :; do i=$((i+1)); echo "$i $$"; sleep 0.1; done';
  const target = await s.startCommand('pidnest-unshare', ['/bin/bash', '-c', `unshare --pid --fork /bin/bash -c '${inner}'; echo "unshare ended"`], { ready: /^3 1$/m });
  // bash, unshare and the inner bash (and now and then its sleep).
  const chain = (top: number) => [top, childrenOf(top)[0]!, childrenOf(childrenOf(top)[0]!)[0]!];
  const tree = chain(target.pid);
  const before = tree.map((p) => nspid(p).join(' '));
  assert.equal(nspid(tree[2]!).at(-1), 1, s.report());
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']));
  // The root is node's child; the others come to the test process, their subreaper.
  await s.check(waitFor(`pid ${target.pid} to go`, () => !exists(target.pid), 10_000));
  for (const p of tree.slice(1)) await reapUntilGone(p, 10_000);
  const lines = () => [...target.output().matchAll(/^(\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
  const atDump = Math.max(...lines().map((l) => l[0]));
  const restored = await s.restore(images, target);
  // In cryo's own pid namespace: the very same pids at every level.
  assert.deepEqual(chain(target.pid).map((p) => nspid(p).join(' ')), before, s.report());
  // unshare bears its children in the namespace it made, as before.
  const un = tree[1]!;
  assert.equal(fs.readlinkSync(`/proc/${un}/ns/pid_for_children`), fs.readlinkSync(`/proc/${tree[2]!}/ns/pid`), s.report());
  await s.check(waitFor(`the count to pass ${atDump + 3}`, () => Math.max(...lines().map((l) => l[0])) >= atDump + 3, 10_000));
  const all = lines();
  assert.deepEqual(all.map((l) => l[0]), all.map((_, i) => i + 1), `the count has gaps${s.report()}`);
  for (const [n, self] of all) assert.equal(self, 1, `line ${n}: the inner bash is pid ${self} in its namespace${s.report()}`);
  await s.killTree(restored);
});

/** A line of /proc/PID/status (NSpid, NSsid, NSpgid) below cryo's level. */
const nsIdsBelowHost = (pid: number) => ['NSpid', 'NSsid', 'NSpgid'].map((k) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!.trim().split(/\s+/).slice(1).join(' '));

test('a daemon in a nested pid namespace (`setsid sh -c "sh daemon.sh & exit"` under `unshare --pid --fork bash`): its gone session leader gets a helper of that namespace, and it counts on in that session and group', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'pidnest-daemon');
  const daemon = path.join(s.dir, 'daemon.sh');
  fs.writeFileSync(daemon, 'i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.1; done\n');
  const inner = `setsid /bin/sh -c "/bin/sh ${daemon} & exit"; while :; do sleep 1; done`;
  const target = await s.startCommand('pidnest-daemon', ['/bin/bash', '-c', `unshare --pid --fork /bin/bash -c '${inner}'`], { ready: /^3$/m });
  const find = (top: number) => descendants(top).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('daemon.sh'))!;
  const d = find(target.pid);
  assert.ok(d, s.report());
  const before = nsIdsBelowHost(d);
  // Its session and group are those of the sh that is gone (pid 2 of the namespace), not the init's.
  const [, sid, pgid] = before.map((l) => Number(l.split(' ').at(-1)));
  assert.ok(sid === pgid && sid !== 1 && sid !== Number(before[0]!.split(' ').at(-1)), `the daemon's ids ${before.join(' / ')}`);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${target.pid} to go`, () => !exists(target.pid), 10_000));
  await reapUntilGone(d, 10_000);
  const counts = () => [...target.output().matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));
  const atDump = Math.max(...counts());
  const restored = await s.restore(images, target);
  assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), new RegExp(`helper \\d+ stands in for the gone leader of session`), s.report());
  const d2 = find(target.pid);
  assert.deepEqual(nsIdsBelowHost(d2), before, `the daemon's pid, session and group below cryo's level differ${s.report()}`);
  await s.check(waitFor(`the count to pass ${atDump + 3}`, () => Math.max(...counts()) >= atDump + 3, 10_000));
  const all = counts();
  assert.deepEqual(all, all.map((_, i) => i + 1), `the count has gaps${s.report()}`);
  await s.killTree(restored);
});

test('a pid namespace unshared with no task in it yet is refused at dump in one line', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'pidnest-refused');
  // unshare(CLONE_NEWPID) and no fork: the namespace has no init to dump.
  const py = 'import ctypes, time\nassert ctypes.CDLL(None, use_errno=True).unshare(0x20000000) == 0\nprint("READY", flush=True)\ntime.sleep(600)';
  const lone = await s.startCommand('pidnest-lone', ['/usr/bin/python3', '-c', py]);
  const r = await s.cryo(['dump', '-t', String(lone.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, `not one line: ${r.stderr}`);
  assert.match(r.stderr, /has made a pid namespace for its children \(unshare\(CLONE_NEWPID\), no child in it yet\), which cryo does not dump yet/, s.report());
  assert.ok(runningFree(lone.pid), s.report());
});

/** The pids a proc mount shows (its numeric entries), seen through task `pid`'s root. */
const procPids = (pid: number) => fs.readdirSync(`/proc/${pid}/root/proc`).filter((n) => /^\d+$/.test(n)).map(Number);

test('`unshare --pid --fork --mount-proc` inside a tree of its own mount namespace: the proc of the nested pid namespace comes back that namespace\'s (mounted by its init once it exists), showing its own few tasks', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'pidnest-proc');
  // The inner shell counts, and names the pid its proc gives it (its own namespace's: 1).
  const inner = 'i=0; while :; do i=$((i+1)); echo "$i $(cut -d\\  -f4 /proc/self/stat)"; sleep 0.1; done';
  const script = `unshare --pid --fork --mount-proc /bin/sh -c '${inner}'`;
  const top = await s.startCommand('pidnest-proc', ['unshare', '--mount', '--propagation', 'private', '--fork', '/bin/sh', '-c', script], { ready: /^3 1$/m });
  const root = childrenOf(top.pid)[0]!;
  const un = childrenOf(root)[0]!;
  const init = childrenOf(un)[0]!;
  assert.ok(root && un && init, s.report());
  const before = procPids(init);
  assert.ok(before.includes(1) && before.length < 10, `the nested proc shows ${before.join(' ')}`);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  for (const p of [un, init]) await reapUntilGone(p, 10_000);
  const lines = () => [...top.output().matchAll(/^(\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
  const atDump = Math.max(...lines().map((l) => l[0]));
  const restored = await s.restore(images, { ...top, pid: root } as typeof top, { extra: ['--root', '/'] });
  const rinit = childrenOf(childrenOf(restored.pid)[0]!)[0]!;
  const after = procPids(rinit);
  assert.ok(after.includes(1) && after.length < 10, `the restored nested proc shows ${after.join(' ')}: not its own pid namespace's${s.report()}`);
  assert.throws(() => fs.readlinkSync(`/proc/${rinit}/root/proc/self`), 'cryo shows in the restored nested proc');
  await s.check(waitFor(`the count to pass ${atDump + 3}`, () => Math.max(...lines().map((l) => l[0])) >= atDump + 3, 10_000));
  for (const [n, ppid] of lines()) assert.equal(ppid, 1, `line ${n}: the inner shell is pid ${ppid} in its proc${s.report()}`);
  await s.killTree(restored);
});
