// Files of a tree in user and mount namespaces of its own (unsfiles.c, built
// static into the root file system it pivots into): on a tmpfs of its user
// namespace, which maps no id of cryo's, cryo makes the --link-remap link as
// the file's owner (CRIU's linkat_hard); the restored task takes its lease
// again as the file's owner (set_file_lease); an ICMP socket is made with a
// group of the namespace's ping_group_range; a unix socket whose directory a
// tmpfs covers since is bound under it (the tree's own namespace cloned from
// inside, its mounts not locked). zdtm's uns flavour: file_lease*,
// unlink_regular00, mntns_link_remap, socket_icmp, overmount_sock.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PROGRAMS_DIR, Session, exists, runningFree, waitFor, type Target } from './harness.js';

/** unsfiles.c built static into DIR/root (`prepare` adds to it), started, dumped (--link-remap, --file-locks) and gone. */
async function dumped(s: Session, prepare: (rootfs: string) => void): Promise<{ rootfs: string; prog: string; launcher: Target; images: string }> {
  const rootfs = path.join(s.dir, 'root');
  fs.mkdirSync(rootfs);
  const prog = path.join(rootfs, 'prog');
  const cc = spawnSync('gcc', ['-static', '-O1', '-g', '-Wall', '-o', prog, path.join(PROGRAMS_DIR, 'unsfiles.c')], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  prepare(rootfs);
  const launcher = await s.startCommand('unsfiles', [prog, s.dir]);
  const root = Number(/^child (\d+)$/m.exec(launcher.output())?.[1]);
  assert.ok(root && exists(root), s.report());
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log', '--link-remap', '--file-locks']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  return { rootfs, prog, launcher, images };
}

test('user+mount namespaces: a lease, a link remap on the namespace\'s tmpfs, an ICMP socket and a unix socket under an overmount come back', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'unsfiles');
  const { rootfs, prog, launcher, images } = await dumped(s, () => {});
  // The link the dump made is on the tree's tmpfs, in its tarball.
  const tmpfs = fs.readdirSync(images).filter((n) => /^tmpfs-dev-\d+\.tar\.gz\.img$/.test(n));
  const listed = tmpfs.map((n) => spawnSync('tar', ['-tzvf', path.join(images, n)], { encoding: 'utf8' }).stdout).join('');
  assert.match(listed, /^-rw-r----- \S+ +6 .* \.\/link_remap\.\d+$/m, s.report());

  const log = path.join(rootfs, 'log');
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--root', rootfs, '--file-locks', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  fs.writeFileSync(log, '');
  const r = s.adopt(host, { label: launcher.label, logPath: log, exe: prog } as Target);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  assert.notEqual(fs.readlinkSync(`/proc/${host}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), s.report());
  await s.expectPass(r);
  // Again, with the lease dropped first (SIGUSR2): the check sees it.
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--root', rootfs, '--file-locks', '--pidfile', pidfile]));
  const again = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), { label: launcher.label, logPath: log, exe: prog } as Target);
  again.signal('SIGUSR2');
  assert.equal((await again.wait(10_000))?.exited, 1, s.report());
  assert.match(fs.readFileSync(log, 'utf8'), /^FAIL: the lease is 2, want F_RDLCK$/m);
});

test('user+mount namespaces: a tmpfs of the host\'s in the tree, whose owners the tree\'s user namespace does not map, comes back as cryo\'s with its owners (CRIU\'s tar there would write the overflow id)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'unsfiles-host');
  const { rootfs, prog, launcher, images } = await dumped(s, (rootfs) => {
    // Mounted by the host, before the tree's namespaces: the tree gets it with its root (bound with its mounts).
    fs.mkdirSync(path.join(rootfs, 'h'));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'cryo-host', path.join(rootfs, 'h')]).status, 0);
    fs.writeFileSync(path.join(rootfs, 'h', 'f'), 'host');
    fs.chownSync(path.join(rootfs, 'h', 'f'), 5, 200000);
  });
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /at \/h \(tmpfs\) has owners the tree's user namespace does not map/);
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--root', rootfs, '--file-locks', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const log = path.join(rootfs, 'log');
  fs.writeFileSync(log, '');
  const r = s.adopt(host, { label: launcher.label, logPath: log, exe: prog } as Target);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  // The tree's /h: a new tmpfs (not the host's, which is still mounted here) with the host's owners.
  const h = path.join(`/proc/${host}/root`, 'h');
  assert.notEqual(fs.statSync(h).dev, fs.statSync(path.join(rootfs, 'h')).dev, s.report());
  assert.deepEqual([fs.statSync(h).uid, fs.statSync(path.join(h, 'f')).uid, fs.statSync(path.join(h, 'f')).gid, fs.readFileSync(path.join(h, 'f'), 'utf8')], [0, 5, 200000, 'host']);
  await s.expectPass(r);
});
