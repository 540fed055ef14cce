// Unix sockets bound to path names, an inotify watch and fanotify marks of a tree with its own
// mount namespace (unixmnt.c): the names are the tree's, bound and connected in
// there at restore, never in cryo's own view. The host keeps a socket file of its
// own at one of the names, and the directory of another, under the tree's tmpfs:
// a restore that bound, cleared or replaced names from cryo's side would change
// that file, or leave files beside it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, critEntries, exists, runningFree, waitFor, type Target } from './harness.js';

/** restore -d with a pid file; the root is pid 1 of a new pid namespace, another pid here. */
async function restoreNs(s: Session, images: string, original: Target): Promise<Target> {
  const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--root', '/']));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const r = s.adopt(host, original);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  return r;
}

test('mount namespace: unix sockets bound to path names (a listener with connections, a datagram socket with its queue, a relative name, a deleted one, one under a mount made over its directory), an inotify watch and fanotify marks come back in the tree\'s namespace; the host\'s file at one of the names is untouched', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'unixmnt');
  const parent = await s.start('unixmnt');
  const kid = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(kid && exists(kid), s.report());
  const hostDir = path.join(s.dir, 't');
  const hostFile = () => fs.lstatSync(path.join(hostDir, 'host.sock'));
  const before = hostFile();
  assert.ok(before.isSocket());
  const hostSide = () => {
    assert.deepEqual(fs.readdirSync(hostDir).sort(), ['host.sock', 'sub'], `files appeared in the host's ${hostDir}${s.report()}`);
    assert.deepEqual(fs.readdirSync(path.join(hostDir, 'sub')), [], `files appeared in the host's ${hostDir}/sub${s.report()}`);
    const now = hostFile();
    assert.ok(now.isSocket() && now.ino === before.ino && now.mtimeMs === before.mtimeMs, `the host's host.sock changed${s.report()}`);
  };
  hostSide();

  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${kid} to go`, () => !exists(kid), 10_000));
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // As CRIU's: each name keeps the mount its file is on, the tmpfs of the tree.
  const mnts = critEntries(images, fs.readdirSync(images).find((n) => /^mountpoints-\d+\.img$/.test(n))!);
  const tmpfs = mnts.find((m) => m['mountpoint'] === hostDir);
  assert.ok(tmpfs, s.report());
  const named = critEntries(images, 'files.img').flatMap((f) => (f['usk'] ? [f['usk'] as Record<string, unknown>] : []))
    .filter((u) => typeof u['name'] === 'string' && (u['name'] as string).length > 0);
  assert.ok(named.length >= 5, JSON.stringify(named));
  for (const u of named) assert.equal(u['mnt_id'], tmpfs['mnt_id'], JSON.stringify(u));
  assert.ok(named.some((u) => u['deleted'] === true), 'gone.sock is not marked deleted');
  hostSide();

  const r = await restoreNs(s, images, parent);
  hostSide();
  await s.expectPass(r);
  hostSide();

  // The checks can fail: listen.sock unlinked first (SIGUSR2).
  const again = await restoreNs(s, images, parent);
  again.signal('SIGUSR2');
  const st = await again.wait(10_000);
  assert.equal(st?.exited, 1, s.report());
  assert.match(again.output(), /^FAIL: .*listen\.sock/m, s.report());
  hostSide();
});

test('mount namespace: a unix socket bound before the tree\'s namespace was made (its file on a mount of the host\'s) is refused in one line naming the task and the socket; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unixmnt-outside');
  const parent = await s.start('unixmnt', { args: [s.dir, 'outside'] });
  const kid = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(kid && exists(kid), s.report());
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${kid} fd \\d+ \\(unix socket \\d+\\): bound to ${path.join(s.dir, 'pre.sock')}, a file on mount \\d+, which is not in the tree's mount namespace`), s.report());
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  assert.ok(runningFree(kid), s.report());
  await s.killTree(parent);
});
