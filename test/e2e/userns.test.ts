// A tree in a user namespace of its own (issue #14), with uts, ipc, net and pid
// namespaces made from inside it and a uid map that is not the identity
// (test/programs/userns.c): dumped as CRIU does (userns-ID.img with the maps,
// credentials and SysV owners as the tree sees them), restored into a new user
// namespace made first, its maps written, the other namespaces made from inside
// it. The program checks its ids, maps, setgroups, namespace owners, host name,
// queue owner, the owners of a deleted file, a memfd and a unix socket's name
// (in the images as the tree sees them), and its unprivileged child itself. What cryo cannot carry (a user
// namespace nested in the tree's) is refused in one line and runs on.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, critEntries, exists, reapUntilGone, runningFree, waitFor, type Target } from './harness.js';

async function startTree(s: Session, mode: string): Promise<{ launcher: Target; root: number }> {
  const launcher = await s.start('userns', { args: [s.dir, mode] });
  const root = childrenOf(launcher.pid)[0];
  assert.ok(root, `the launcher has no child${s.report()}`);
  return { launcher, root };
}

async function cycle(s: Session, mode: string): Promise<{ images: string; host: number }> {
  const { launcher, root } = await startTree(s, mode);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  const pidfile = path.join(s.dir, `restored-${mode}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, launcher);
  await s.check(waitFor(`restored pid ${host} to run`, () => runningFree(host), 5_000));
  // Seen from here: the maps, and a user namespace other than cryo's and than the dumped one.
  const nums = (f: string) => fs.readFileSync(`/proc/${host}/${f}`, 'utf8').trim().split(/\s+/).map(Number);
  assert.deepEqual(nums('uid_map'), [0, 100000, 65536], s.report());
  assert.deepEqual(nums('gid_map'), [0, 200000, 65536], s.report());
  assert.notEqual(fs.readlinkSync(`/proc/${host}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), s.report());
  await s.expectPass(restored);
  return { images, host };
}

test('user namespace: a tree with a non-identity map, its uts/ipc/net/pid namespaces owned by it, comes back with its ids inside', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'userns');
  const { images } = await cycle(s, 'allow');
  // The images hold what CRIU's do: the maps, creds and SysV owners as the tree sees them.
  const files = fs.readdirSync(images);
  const usernsImg = files.find((f) => /^userns-\d+\.img$/.test(f));
  assert.ok(usernsImg, `no userns-ID.img in ${files.join(' ')}`);
  const ids = critEntries(images, 'ids-1.img')[0] as { user_ns_id: number };
  assert.equal(usernsImg, `userns-${ids.user_ns_id}.img`);
  const e = critEntries(images, usernsImg)[0] as { uid_map: unknown[]; gid_map: unknown[] };
  assert.deepEqual(e.uid_map, [{ first: 0, lower_first: 100000, count: 65536 }]);
  assert.deepEqual(e.gid_map, [{ first: 0, lower_first: 200000, count: 65536 }]);
  const creds = (pid: number) => ((critEntries(images, `core-${pid}.img`)[0] as { thread_core: { creds: Record<string, unknown> } }).thread_core.creds);
  assert.deepEqual([creds(1).uid, creds(1).gid, creds(1).euid], [0, 0, 0]);
  assert.deepEqual([creds(2).uid, creds(2).gid, creds(2).fsuid, creds(2).groups], [1000, 1001, 1000, [1001, 1002]]);
  const msgImg = files.find((f) => /^ipcns-msg-\d+\.img$/.test(f))!;
  const desc = (critEntries(images, msgImg)[0] as { desc: Record<string, number> }).desc;
  assert.deepEqual([desc.uid, desc.gid, desc.cuid, desc.cgid], [7, 8, 0, 0]);
  // Owners of the files cryo makes again itself too, as CRIU's userns_uid writes them.
  const ghostImg = files.find((f) => /^ghost-file-[0-9a-f]+\.img$/.test(f))!;
  const ghost = critEntries(images, ghostImg)[0] as { uid: number; gid: number };
  assert.deepEqual([ghost.uid, ghost.gid], [7, 8]);
  const memfd = critEntries(images, 'memfd.img')[0] as { uid: number; gid: number };
  assert.deepEqual([memfd.uid, memfd.gid], [9, 10]);
});

test('check --feature userns says yes: its probe makes a root in a user namespace as the restore does', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'userns-check');
  const r = await s.cryo(['check', '--no-default-config', '--feature', 'userns']);
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'userns is supported\n', ''], s.report());
});

test('user namespace with setgroups denied: it is denied again, written before the gid_map', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'userns-deny');
  await cycle(s, 'deny');
});

test('a user namespace nested in the tree\'s is refused in one line naming the task, and the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'userns-nested');
  const { root } = await startTree(s, 'nested');
  const kid = childrenOf(root)[0]!;
  const r = await s.cryo(['dump', '-t', String(root), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${kid} \\(userns\\) is in a user namespace \\(user:\\[\\d+\\]\\) other than the tree root's \\(one of its own\\), which cryo cannot dump: as CRIU, every task must be in the root's$`, 'm'), s.report());
  assert.ok(runningFree(root) && runningFree(kid), s.report());
});

test('a tree in a user namespace of its own but in cryo\'s pid namespace: one task comes back, and a python3 with threads and a child (pids by ns_last_pid)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'userns-nopidns');
  // unshare as root: uid 0 maps to 0 alone, setgroups denied; python stays the one task.
  const py = 'import socket, time, os\nsocket.sethostname("one")\nprint("READY", flush=True)\ni = 0\nwhile True:\n    i += 1\n    print(i, socket.gethostname(), os.getuid(), " ".join(open("/proc/self/uid_map").read().split()), flush=True)\n    time.sleep(0.1)';
  const one = await s.startCommand('userns-one', ['unshare', '--user', '--map-root-user', '--uts', '/usr/bin/python3', '-c', py]);
  const images = s.mkdir();
  await s.dump(one, images);
  const lines = () => [...one.output().matchAll(/^(\d+) (\S+) (\d+) (.*)$/gm)];
  const atDump = lines().length;
  const r = await s.restore(images, one);
  await s.check(waitFor('the count to go on', () => lines().length >= atDump + 3, 10_000));
  for (const m of lines()) assert.deepEqual([m[2], m[3], m[4]], ['one', '0', '0 0 1'], s.report());
  assert.equal(fs.readFileSync(`/proc/${r.pid}/setgroups`, 'utf8').trim(), 'deny', s.report());
  await s.killTree(r);

  // More tasks and threads: their pids come from cryo's writes of ns_last_pid (set_tid from inside is refused).
  const py2 = [
    'import subprocess, threading, time, os',
    'kid = subprocess.Popen(["/bin/sleep", "1000"])',
    'for k in range(4): threading.Thread(target=lambda: [time.sleep(0.05) for _ in iter(int, 1)], daemon=True).start()',
    'i = 0',
    'while True:',
    '    i += 1',
    '    print(i, kid.pid, len(os.listdir("/proc/self/task")), kid.poll(), flush=True)',
    '    time.sleep(0.1)',
  ].join('\n');
  const two = await s.startCommand('userns-two', ['unshare', '--user', '--map-root-user', '--fork', '/usr/bin/python3', '-c', py2], { ready: /^3 \d+ 5 None$/m });
  const root = childrenOf(two.pid)[0]!;
  const kid = childrenOf(root)[0]!;
  const tids = () => fs.readdirSync(`/proc/${root}/task`).map(Number).sort((a, b) => a - b);
  const before = tids();
  assert.equal(before.length, 5, s.report());
  const images2 = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images2, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  await reapUntilGone(kid, 10_000);
  const counts = () => [...two.output().matchAll(/^(\d+) (\d+) (\d+) (\S+)$/gm)];
  const atDump2 = counts().length;
  const r2 = await s.restore(images2, { ...two, pid: root } as Target);
  assert.deepEqual(tids(), before, `the threads' ids differ after restore${s.report()}`);
  assert.deepEqual(childrenOf(root), [kid], `the child is not back with its pid${s.report()}`);
  assert.notEqual(fs.readlinkSync(`/proc/${root}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), s.report());
  assert.equal(fs.readFileSync(`/proc/${kid}/uid_map`, 'utf8').split(/\s+/).filter(Boolean).join(' '), '0 0 1', s.report());
  await s.check(waitFor('the count to go on', () => counts().length >= atDump2 + 3, 10_000));
  for (const m of counts()) assert.deepEqual([Number(m[2]), m[3], m[4]], [kid, '5', 'None'], s.report());
  await s.killTree(r2);
});

/** Mount points and file system types of a task's mount namespace, sorted (the restore makes them in an order of its own). */
const mounts = (pid: number) => fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((l) => {
  const f = l.split(' ');
  return `${f[4]} ${f[f.indexOf('-') + 1]}`;
}).sort();

test('a tree of its own user and mount namespaces in cryo\'s pid and network namespaces (`unshare -Urm --fork`): its proc, sysfs, devtmpfs and cgroup mounts, which the tree may not mount, are made by cryo, and it counts on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'userns-mnt');
  const sh = 'i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.1; done';
  const top = await s.startCommand('userns-mnt', ['unshare', '--user', '--map-root-user', '--mount', '--fork', '/bin/sh', '-c', sh], { ready: /^3$/m });
  const root = childrenOf(top.pid)[0]!;
  const before = mounts(root);
  const kids = childrenOf(root); // its sleep, now and then
  assert.ok(before.includes('/proc proc') && before.includes('/sys sysfs') && before.some((m) => / devtmpfs$/.test(m)), before.join('\n'));
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  for (const k of kids) await reapUntilGone(k, 10_000);
  const counts = () => [...top.output().matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));
  const atDump = Math.max(...counts());
  const r = await s.restore(images, { ...top, pid: root } as Target, { extra: ['--root', '/'] });
  assert.deepEqual(mounts(root), before, `the mounts differ after restore${s.report()}`);
  assert.notEqual(fs.readlinkSync(`/proc/${root}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), s.report());
  assert.notEqual(fs.readlinkSync(`/proc/${root}/ns/mnt`), fs.readlinkSync('/proc/self/ns/mnt'), s.report());
  // Its proc is one of cryo's pid namespace: the task is there by its pid.
  assert.ok(fs.existsSync(`/proc/${root}/root/proc/${root}/stat`), s.report());
  await s.check(waitFor(`the count to pass ${atDump + 3}`, () => Math.max(...counts()) >= atDump + 3, 10_000));
  await s.killTree(r);
});
