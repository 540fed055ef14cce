// Pseudo-terminals of a tree's own devpts in its own mount namespace
// (test/programs/ptymnt.c): the pairs come back with their indices in the
// restored tree's devpts, made through its ptmx from its root (never cryo's
// /dev/ptmx, whose devpts is the host's), with their parameters, lock, queued
// data, session and controlling terminal. A pty of a devpts the tree shares
// with the host, or no longer mounted in the tree's namespace, is refused at
// dump in one line naming the task and fd. A hung-up slave comes back hung up,
// of the tree's devpts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, critEntries, exists, runningFree, waitFor, type Target } from './harness.js';

const myPts = () => fs.readdirSync('/dev/pts').sort().join(' ');
/** cryo's mounts a pty restore could touch: devpts ones, those on /dev, those below the session's dir (not the rest: other programs of the host mount). */
const myMounts = (dir: string) => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => {
  const at = l.split(' ')[4] ?? '';
  return / - devpts /.test(l) || at === '/dev' || at.startsWith('/dev/') || at.startsWith(dir);
}).join('\n');

async function restoreNs(s: Session, images: string, original: Target): Promise<Target> {
  const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--root', '/']));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const r = s.adopt(host, original);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  return r;
}

test('ptys of the tree\'s own devpts in its mount namespace: same indices in that devpts, termios, window size, packet mode, lock, queued data, session and controlling terminal; data both ways', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'ptymnt');
  const hostPts = myPts();
  const before = myMounts(s.dir);
  const parent = await s.start('ptymnt');
  const kid = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(kid && exists(kid), s.report());
  assert.match(parent.output(), /^ptys 1 2$/m);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${kid} to go`, () => !exists(kid), 10_000));
  assert.deepEqual(critDecodeAll(images), [], s.report());

  // As CRIU's images: the masters' paths as the tree opened them, the pairs by index.
  const infos = critEntries(images, 'tty-info.img');
  const ids = infos.map((i) => i['id'] as number).sort((a, b) => a - b);
  assert.deepEqual(ids, [(1 << 1), (1 << 1) | 1, (2 << 1), (2 << 1) | 1, (3 << 1)], JSON.stringify(infos));
  // The slave of 3, hung up: as CRIU writes it, without termios.
  assert.equal(infos.find((i) => i['id'] === 3 << 1)?.['termios'], undefined, JSON.stringify(infos));
  const regs = critEntries(images, 'files.img').map((f) => (f['reg'] as { name?: string } | undefined)?.name).filter((n) => n);
  for (const p of ['/dev/ptmx', '/dev/pts/ptmx', '/dev/pts/1', '/dev/pts/2', '/dev/pts/3']) assert.ok(regs.includes(p), `no reg-file entry of ${p}: ${regs.join(' ')}`);

  const r = await restoreNs(s, images, parent);
  // Made in the tree's devpts: cryo's own /dev/pts and mounts are as they were.
  assert.equal(myPts(), hostPts, `cryo's /dev/pts changed${s.report()}`);
  assert.equal(myMounts(s.dir), before, 'the restore changed cryo\'s mount table');
  // The hung-up slave of 3 is of the tree's devpts too (ptymnt checks): a pair made there and closed again.
  assert.equal(fs.readdirSync(`/proc/${r.pid}/root/dev/pts`).sort().join(' '), '1 2 ptmx', s.report());
  await s.expectPass(r);

  // The checks can fail: a second restore from the same images, corrupted (SIGUSR2).
  const again = await restoreNs(s, images, parent);
  again.signal('SIGUSR2');
  const st = await again.wait(10_000);
  assert.equal(st?.exited, 1, s.report());
  assert.match(again.output(), /^FAIL: .*A: window size 1x1/m, s.report());
});

test('a pty of a devpts the tree shares with the host, in a tree with its own mount namespace, is refused in one line naming the task and fd; the tree runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptymnt-host');
  const py = [
    'import os, time, ctypes',
    'libc = ctypes.CDLL(None, use_errno=True)',
    "libc.umount2(b'/dev/shm', 2)",
    'm, sl = os.openpty()',
    'i = 0',
    'print("READY", flush=True)',
    'while True:',
    '    i += 1',
    "    print('tick', i, flush=True)",
    '    time.sleep(0.1)',
  ].join('\n');
  const target = await s.startCommand('python', ['unshare', '--mount', '--propagation', 'private', '/usr/bin/python3', '-c', py]);
  await s.check(waitFor('a tick', () => /^tick 1$/m.test(target.output()), 10_000));
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${target.pid}: fd \\d+ is the terminal /dev/(ptmx|pts/\\d+), which cryo cannot restore in the tree's own mount namespace: it is a pty of a devpts that is also mounted in cryo's mount namespace`), s.report());
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  const at = Math.max(...[...target.output().matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1])));
  await s.check(waitFor('ticks after the refused dump', () => new RegExp(`^tick ${at + 3}$`, 'm').test(target.output()), 10_000));
  await s.killTree(target);
});

test('a pty opened before the tree took a mount namespace and devpts of its own (its devpts not mounted there) is refused in one line naming the task and fd; the tree runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptymnt-gone');
  const py = [
    'import os, time, ctypes',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'm, sl = os.openpty()',
    'assert libc.unshare(0x20000) == 0',
    "assert libc.mount(None, b'/', None, (1 << 14) | (1 << 18), None) == 0",
    "while libc.umount2(b'/dev/pts', 2) == 0: pass",
    "while libc.umount2(b'/dev/shm', 2) == 0: pass",
    "assert libc.mount(b'gone', b'/dev/pts', b'devpts', 0, b'newinstance,ptmxmode=0666') == 0",
    'i = 0',
    'print("READY", flush=True)',
    'while True:',
    '    i += 1',
    "    print('tick', i, flush=True)",
    '    time.sleep(0.1)',
  ].join('\n');
  const target = await s.startCommand('python', ['/usr/bin/python3', '-c', py]);
  await s.check(waitFor('a tick', () => /^tick 1$/m.test(target.output()), 10_000));
  assert.notEqual(fs.readlinkSync(`/proc/${target.pid}/ns/mnt`), fs.readlinkSync('/proc/self/ns/mnt'));
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${target.pid}: fd \\d+ is the terminal /dev/(ptmx|pts/\\d+), which cryo cannot restore in the tree's own mount namespace: it is a pty of a devpts not mounted in the tree's mount namespace`), s.report());
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  const at = Math.max(...[...target.output().matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1])));
  await s.check(waitFor('ticks after the refused dump', () => new RegExp(`^tick ${at + 3}$`, 'm').test(target.output()), 10_000));
  await s.killTree(target);
});
