// Character devices safe to reopen by path (/dev/null, zero, full, random,
// urandom): dumped as regular-file entries, as CRIU does, and reopened with
// their flags; --evasive-devices for a node whose path now leads to another.
// /dev/tty and pty pairs are in pty.test.ts.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, Session, compileProgram, critDecodeAll, runningFree, waitFor } from './harness.js';

test('/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom come back with their flags and behave as before', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'chardev');
  await s.cycle('chardev', {
    afterDump: (images) => {
      assert.deepEqual(critDecodeAll(images), [], s.report());
      const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, 'files.img')], { encoding: 'utf8' });
      const names = (JSON.parse(r.stdout) as { entries: Array<{ type: string; reg?: { name: string } }> }).entries
        .filter((e) => e.type === 'REG')
        .map((e) => e.reg!.name);
      for (const d of ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']) {
        assert.ok(names.includes(d), `no regular-file entry for ${d}: ${names.join(' ')}`);
      }
    },
  });
});

test('chardev without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2', { timeout: 30_000 }, async (t) => {
  for (const [sig, want, code] of [['SIGUSR1', /^PASS$/m, 0], ['SIGUSR2', /^FAIL: fd \d+ is not \/dev\/zero/m, 1]] as const) {
    const s = Session.for(t, `chardev-plain-${sig}`);
    const target = await s.start('chardev');
    const { status, output } = await s.finish(target, sig);
    assert.equal(status?.exited, code, s.report());
    assert.match(output, want, s.report());
  }
});

/** Runs argv in the mount namespace of `holder`; throws with its stderr on failure. */
function inNs(holder: number, ...argv: string[]): void {
  const r = spawnSync('nsenter', [`--mount=/proc/${holder}/ns/mnt`, '--', ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

test('--evasive-devices: a device whose path now names another node of the same device is refused without it, taken with it, and restored', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'evasive-devices');
  // A mount namespace of the test's own (private: nothing reaches the machine's),
  // held by a sleeper; the target and cryo run in it.
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sleep', '600'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  const h = holder.pid!;
  await s.check(waitFor('the holder to have its own mount namespace', () => {
    try {
      return fs.readlinkSync(`/proc/${h}/ns/mnt`) !== fs.readlinkSync('/proc/self/ns/mnt');
    } catch {
      return false;
    }
  }, 5_000));
  const dev = path.join(s.dir, 'dev');
  fs.mkdirSync(dev);
  const freshNode = (major: number, minor: number) => {
    inNs(h, 'mount', '-t', 'tmpfs', 'cryo-dev', dev);
    inNs(h, 'mknod', '-m', '666', path.join(dev, 'null'), 'c', String(major), String(minor));
  };
  freshNode(1, 3);
  const exe = compileProgram('devnode');
  const target = await s.startCommand('devnode', ['nsenter', `--mount=/proc/${h}/ns/mnt`, '--', exe, s.dir]);
  freshNode(1, 3); // over the first: the fd's path now names another inode of the same device

  const saved = process.env.CRYO;
  process.env.CRYO = `nsenter --mount=/proc/${h}/ns/mnt -- ${path.join(ROOT, 'bin/cryo')}`;
  t.after(() => {
    if (saved === undefined) delete process.env.CRYO;
    else process.env.CRYO = saved;
  });
  const dump = (...extra: string[]) => s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log', ...extra]);
  const refused = await dump();
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr, new RegExp(`^Error: task ${target.pid}: fd \\d+ is the device 1:3 opened as ${dev}/null, but that path now names another node of the same device \\(dump with --evasive-devices to take it\\)\\n$`), s.report());
  assert.ok(runningFree(target.pid), s.report());

  // Another device at the path: refused even with --evasive-devices.
  freshNode(1, 5);
  const other = await dump('--evasive-devices');
  assert.equal(other.code, 1, s.report());
  assert.match(other.stderr, /but that path now names another file \(device 1:5\)\n$/, s.report());
  assert.ok(runningFree(target.pid), s.report());
  inNs(h, 'umount', dev);

  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '--evasive-devices']));
  await s.check(s.gone(target, [target.pid]));
  const restored = await s.restore(images, target);
  await s.expectPass(restored);
});
