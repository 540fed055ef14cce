// Mount namespaces of the tree (mntns.c, a busybox rootfs, unshare): every
// mount of the tree's own namespace goes into mountpoints-N.img (tmpfs contents
// in tmpfs-dev-N.tar.gz.img) and is made again in a new namespace on restore,
// its root from --root, a host file bound in from --external mnt[KEY]:PATH.
// Undeclared host bind mounts and file systems cryo does not carry are refused
// at dump, the tree running on; nothing of a restore shows in cryo's mounts.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, Session, childrenOf, critDecodeAll, exists, runningFree, waitFor, type Target, signalPid } from './harness.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
const myMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8');

/** Upstream crit (/work/criu) reads an image, when that tree is here; else Debian's. */
function upstreamDecode(image: string): Array<Record<string, unknown>> {
  const lib = fs.existsSync('/work/criu/lib/pycriu') ? '/work/criu/lib' : '/usr/lib/python3/dist-packages';
  const py = `import sys, json; sys.path.insert(0, ${JSON.stringify(lib)}); from pycriu import images\nprint(json.dumps(images.load(open(sys.argv[1], 'rb'))['entries']))`;
  const r = spawnSync('/usr/bin/python3', ['-c', py, image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

/** restore -d with a pid file; the root is pid 1 of a new pid namespace, another pid here. */
async function restoreNs(s: Session, images: string, original: Target, extra: string[]): Promise<Target> {
  const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, ...extra]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const r = s.adopt(host, original);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  return r;
}

async function startMntns(s: Session, mode?: string): Promise<{ parent: Target; kid: number }> {
  const parent = await s.start('mntns', { args: mode ? [s.dir, mode] : [s.dir] });
  const kid = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(kid && exists(kid), s.report());
  return { parent, kid };
}

test('mount namespace: tmpfs with files, a read-only bind, proc, shared peers, an open fd, a FIFO, deleted files (a ghost, a link remap) and the cwd on the tmpfs come back in a new namespace', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'mntns');
  const before = myMounts();
  const { parent, kid } = await startMntns(s);
  assert.notEqual(nsLink(kid, 'mnt'), nsLink('self', 'mnt'));
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log', '--link-remap']));
  await s.check(waitFor(`pid ${kid} to go`, () => !exists(kid), 10_000));
  const names = fs.readdirSync(images);
  const mnts = names.find((n) => /^mountpoints-\d+\.img$/.test(n));
  assert.ok(mnts, `no mountpoints image in ${names.join(' ')}`);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const entries = upstreamDecode(path.join(images, mnts));
  const mine = (sub: string) => entries.find((e) => e['mountpoint'] === path.join(s.dir, sub));
  assert.deepEqual([mine('t')?.['fstype'], mine('t')?.['options'], mine('t')?.['source']], [5, 'size=2048k,mode=751', 'cryotest']);
  assert.equal(mine('b')?.['root'], '/sub');
  assert.equal(mine('p')?.['fstype'], 1);
  assert.ok(Number(mine('s1')?.['shared_id']) > 0 && mine('s1')?.['shared_id'] === mine('s2')?.['shared_id'], 'the peers have no common group in the image');
  // The tmpfs is a tarball CRIU's restore (and tar) reads.
  const tarball = path.join(images, `tmpfs-dev-${mine('t')!['root_dev']}.tar.gz.img`);
  const list = spawnSync('tar', ['-tzvf', tarball], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /^lrwxrwxrwx .* \.\/link -> data$/m);
  assert.match(list.stdout, /^-rw-r----- .* \.\/data$/m);
  // The fd's reg-file entry names the tmpfs mount (mnt_id), as CRIU's.
  const files = upstreamDecode(path.join(images, 'files.img'));
  const data = files.find((f) => (f['reg'] as { name?: string } | undefined)?.name === path.join(s.dir, 't/data'));
  assert.equal((data?.['reg'] as { mnt_id?: number }).mnt_id, mine('t')!['mnt_id'], s.report());
  // The dead child's /proc file: a dead pid remap (its pid in the tree's namespace), as CRIU's.
  const remaps = upstreamDecode(path.join(images, 'remap-fpath.img'));
  assert.deepEqual(remaps.filter((e) => e['remap_type'] === 3 || e['remap_type'] === 'PROCFS').map((e) => e['remap_id']), [2], s.report());

  const r = await restoreNs(s, images, parent, ['--root', '/']);
  assert.notEqual(nsLink(r.pid, 'mnt'), nsLink('self', 'mnt'), `the restored tree is in cryo's mount namespace${s.report()}`);
  assert.equal(myMounts(), before, 'the restore changed cryo\'s mount table');
  await s.expectPass(r);

  // The images are left as they were: a second restore, whose checks must see the change (SIGUSR2).
  const again = await restoreNs(s, images, parent, ['--root', '/']);
  again.signal('SIGUSR2');
  const st = await again.wait(10_000);
  assert.equal(st?.exited, 1, s.report());
  assert.match(again.output(), /^FAIL: .*t\/data holds "Jello/m, s.report());
});

test('mount namespace: a file system cryo does not carry (ramfs) is refused in one line naming the task, the mount and its type; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mntns-ramfs');
  const { parent, kid } = await startMntns(s, 'ramfs');
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${kid} \\(mntns\\): mount \\d+ at ${path.join(s.dir, 'r')} \\(ramfs\\) is a file system cryo does not dump`), s.report());
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /\(ramfs\) is a file system cryo does not dump/);
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  assert.ok(runningFree(kid), s.report());
  await s.killTree(parent);
});

/** A busybox root file system: /bin/busybox and a directory for each mount. */
function rootfs(dir: string): string {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'tmp', 'dev', 'old']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(root, 'bin/sh'));
  fs.writeFileSync(path.join(root, 'dev/null'), '');
  return root;
}

/**
 * pid 1 of new mount and pid namespaces pivots into the rootfs, with a tmpfs
 * on /tmp, the host's /dev/null bound on /dev/null and its own /proc, then
 * counts into /tmp/count.
 */
async function startContainer(s: Session, root: string): Promise<{ outer: Target; init: number }> {
  const inner = '/bin/busybox umount -l /old; /bin/busybox mount -t proc proc /proc; echo READY; exec >/tmp/log 2>&1 </dev/null; ' +
    'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; /bin/busybox sleep 0.1; done';
  const setup = `set -e; R=${root}; mount --bind $R $R; mount -t tmpfs -o size=1m,mode=1777 ctmp $R/tmp; mount --bind /dev/null $R/dev/null; ` +
    `cd $R; pivot_root . old; exec /bin/busybox sh -c '${inner}'`;
  const outer = await s.startCommand('container', ['unshare', '--mount', '--pid', '--fork', '--propagation', 'private', '/bin/sh', '-c', setup]);
  const init = childrenOf(outer.pid)[0]!;
  assert.ok(init, s.report());
  await s.check(waitFor('the count to reach 3', () => Number(readCount(init)) >= 3, 10_000));
  return { outer, init };
}

const readCount = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/root/tmp/count`, 'utf8').trim();
  } catch {
    return '';
  }
};

test('mount namespace: a file open on a mount hidden since under another mount is refused in one line naming the task and the file; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mntns-overmount');
  const { parent, kid } = await startMntns(s, 'overmount');
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log', '--link-remap']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${kid}: .*${path.join(s.dir, 's1/under')} on mount \\d+, which that path in its mount namespace no longer reaches`), s.report());
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  assert.ok(runningFree(kid), s.report());
  await s.killTree(parent);
});

test('mount namespace: a busybox container that pivoted into its rootfs comes back with --root, its host /dev/null bind external; undeclared, that bind is refused', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'mntns-rootfs');
  const root = rootfs(s.dir);
  const before = myMounts();
  const { outer, init } = await startContainer(s, root);
  // Undeclared: the host's /dev/null bound in is refused; the container counts on.
  const refused = s.mkdir();
  const r1 = await s.cryo(['dump', '-t', String(init), '-D', refused, '-v4', '-o', 'dump.log']);
  assert.equal(r1.code, 1, s.report());
  assert.match(r1.stderr, new RegExp(`task ${init} \\(busybox\\): mount \\d+ at /dev/null \\(devtmpfs\\) is a bind mount of /null of a file system mounted outside its mount namespace; declare it with --external mnt\\[/dev/null\\]:KEY`), s.report());
  const n = Number(readCount(init));
  await s.check(waitFor('the count to go on after the refused dump', () => Number(readCount(init)) > n + 2, 10_000));

  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(init), '-D', images, '-v4', '-o', 'dump.log', '--external', 'mnt[/dev/null]:devnull']));
  await s.check(waitFor(`pid ${init} to go`, () => !exists(init), 10_000));
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const mnts = fs.readdirSync(images).find((x) => x.startsWith('mountpoints-'))!;
  const entries = upstreamDecode(path.join(images, mnts));
  assert.deepEqual(entries.map((e) => [e['mountpoint'], e['ext_key'] ?? null]).sort(), [['/', null], ['/dev/null', 'devnull'], ['/proc', null], ['/tmp', null]], s.report());
  // Without --root, or without the external's path, the restore refuses before making anything.
  const noRoot = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore-noroot.log', '--external', 'mnt[devnull]:/dev/null']);
  assert.equal(noRoot.code, 1);
  assert.match(noRoot.stderr, /give it with --root PATH/);
  const noExt = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore-noext.log', '--root', root]);
  assert.equal(noExt.code, 1);
  assert.match(noExt.stderr, /mount \d+ at \/dev\/null is external \(key devnull\): give its path with --external mnt\[devnull\]:PATH/);

  const r = await restoreNs(s, images, outer, ['--root', root, '--external', 'mnt[devnull]:/dev/null']);
  assert.notEqual(nsLink(r.pid, 'mnt'), nsLink('self', 'mnt'), s.report());
  const last = Number(readCount(r.pid));
  await s.check(waitFor('the restored count to go on', () => Number(readCount(r.pid)) >= last + 3, 10_000));
  const mi = fs.readFileSync(`/proc/${r.pid}/mountinfo`, 'utf8');
  for (const m of [/ \/ rw,relatime - ext4 /, / \/tmp rw,relatime - tmpfs ctmp rw,size=1024k$/m, / \/proc rw,relatime - proc proc rw$/m, /\/null \/dev\/null rw,\S+ - devtmpfs /]) {
    assert.match(mi, m, `restored mountinfo:\n${mi}${s.report()}`);
  }
  assert.equal(mi.trim().split('\n').length, 4, mi);
  assert.equal(fs.readFileSync(`/proc/${r.pid}/root/proc/1/comm`, 'utf8'), 'busybox\n', 'its /proc is not of its pid namespace');
  assert.equal(myMounts(), before, 'mounts of the container show in cryo\'s namespace');
  await s.killTree(r);
  await s.killTree(outer);
});

test('mount namespace: python3 in `unshare --mount --propagation private` with a tmpfs of its own keeps its file there and goes on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'mntns-python');
  const mnt = path.join(s.dir, 'm');
  fs.mkdirSync(mnt);
  const py = [
    'import os, time, ctypes',
    `p = ${JSON.stringify(mnt)}`,
    'libc = ctypes.CDLL(None, use_errno=True)',
    // This machine mounts a second /dev/shm and /dev/pts over the first: the hidden tmpfs is dumped through a copy.
    "assert libc.mount(b'pytmp', p.encode(), b'tmpfs', 0, b'size=1m') == 0",
    "f = open(p + '/log', 'w+')",
    'i = 0',
    'print("READY", flush=True)',
    'while True:',
    '    i += 1',
    "    f.write(f'{i}\\n'); f.flush()",
    "    print('tick', i, os.path.getsize(p + '/log'), flush=True)",
    '    time.sleep(0.1)',
  ].join('\n');
  const target = await s.startCommand('python', ['unshare', '--mount', '--propagation', 'private', '/usr/bin/python3', '-c', py]);
  await s.check(waitFor('three ticks', () => /^tick 3 /m.test(target.output()), 10_000));
  const images = s.mkdir();
  await s.dump(target, images);
  const at = Math.max(...[...target.output().matchAll(/^tick (\d+) /gm)].map((m) => Number(m[1])));
  const r = await restoreNs(s, images, target, ['--root', '/']);
  assert.equal(r.pid, target.pid, 'no pid namespace: the same pid');
  await s.check(waitFor('ticks after the restore', () => new RegExp(`^tick ${at + 3} `, 'm').test(target.output()), 10_000));
  // The file on its tmpfs kept every line: each tick's size is the sum of the lines before.
  for (const m of target.output().matchAll(/^tick (\d+) (\d+)$/gm)) {
    const i = Number(m[1]);
    let want = 0;
    for (let k = 1; k <= i; k++) want += String(k).length + 1;
    assert.equal(Number(m[2]), want, `tick ${i}${s.report()}`);
  }
  assert.ok(!fs.existsSync(path.join(mnt, 'log')), 'the tmpfs shows in cryo\'s namespace');
  await s.killTree(r);
});

test('mount namespace: a file of a tmpfs under another tmpfs mounted over its directory is dumped (through a clone of the lower mount alone) and there again once the upper one is unmounted', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'mntns-under');
  const mnt = path.join(s.dir, 'm');
  fs.mkdirSync(mnt);
  const py = [
    'import os, time, ctypes, signal',
    `p = ${JSON.stringify(mnt)}`,
    'libc = ctypes.CDLL(None, use_errno=True)',
    "libc.umount2(b'/dev/shm', 2); libc.umount2(b'/dev/pts', 2)",
    "assert libc.mount(b'lower', p.encode(), b'tmpfs', 0, b'size=1m') == 0",
    "os.mkdir(p + '/sub'); open(p + '/sub/f', 'w').write('hidden\\n')",
    "assert libc.mount(b'upper', (p + '/sub').encode(), b'tmpfs', 0, b'size=1m') == 0",
    "open(p + '/sub/top', 'w').write('top\\n')",
    'def check(*a):',
    "    top = open(p + '/sub/top').read().strip()",
    "    assert libc.umount2((p + '/sub').encode(), 0) == 0",
    "    under = open(p + '/sub/f').read().strip() if os.path.exists(p + '/sub/f') else 'missing'",
    "    print('top', top, 'under', under, flush=True)",
    'signal.signal(signal.SIGUSR1, check)',
    'print("READY", flush=True)',
    'while True: time.sleep(0.1)',
  ].join('\n');
  const target = await s.startCommand('python', ['unshare', '--mount', '--propagation', 'private', '/usr/bin/python3', '-c', py]);
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await restoreNs(s, images, target, ['--root', '/']);
  signalPid(r.pid, 'SIGUSR1');
  await s.check(waitFor('the check', () => /^top \S+ under \S+$/m.test(target.output()), 10_000));
  assert.match(target.output(), /^top top under hidden$/m, s.report());
  await s.killTree(r);
});

test('external mounts whose source is shared outside the tree: a slave of that group comes back a slave of its source\'s group, a private one private (no peer of the host\'s)', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'mntext');
  // mntext.c's own mount namespace stands for the host: cryo runs in it.
  const parent = await s.start('mntext', { args: [s.dir] });
  const kid = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(kid && exists(kid), s.report());
  const inHost = { command: ['nsenter', `--mount=/proc/${parent.pid}/ns/mnt`, '--', path.join(ROOT, 'bin/cryo')] };
  const ext = (sub: string, key: string) => ['--external', `mnt[${path.join(s.dir, sub)}]:${key}`];
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(kid), '-D', images, '-v4', '-o', 'dump.log', ...ext('dst', 'A'), ...ext('dst2', 'B')], inHost));
  await s.check(waitFor(`pid ${kid} to go`, () => !exists(kid), 10_000));
  const mnts = fs.readdirSync(images).find((x) => x.startsWith('mountpoints-'))!;
  const entries = upstreamDecode(path.join(images, mnts));
  const group = fs.readFileSync(path.join(s.dir, 'group'), 'utf8').trim();
  const dst = entries.find((e) => e['mountpoint'] === path.join(s.dir, 'dst'))!;
  assert.equal(String(dst['master_id']), group, 'the image does not keep the outside master');
  const restore = async (extra: string[]) => {
    const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
    s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--root', '/',
      '--external', `mnt[A]:${path.join(s.dir, 'src/a')}`, '--external', `mnt[B]:${path.join(s.dir, 'src/b')}`, ...extra], inHost));
    const r = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), parent);
    await s.check(waitFor('the restored tree to run', () => runningFree(r.pid), 5_000));
    return r;
  };
  // A source in no peer group here cannot give the slave its master: refused before the tree runs.
  const noGroup = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore-nogroup.log', '--root', '/',
    '--external', `mnt[A]:${path.join(s.dir, 'dst')}`, '--external', `mnt[B]:${path.join(s.dir, 'src/b')}`], inHost);
  assert.equal(noGroup.code, 1, s.report());
  assert.match(noGroup.stderr, /^Error: mount \d+ at \S+\/dst was a slave of a peer group outside the tree \(master:\d+\), but \S+\/dst here is on mount \d+ at \S+, in no peer group to be a slave of$/m, s.report());
  assert.ok(!exists(kid), s.report());
  await s.expectPass(await restore([]));
  // The checks can fail: SIGUSR2 makes dst2 shared first.
  const again = await restore([]);
  again.signal('SIGUSR2');
  await again.wait(10_000);
  assert.match(again.output(), /^FAIL: dst2: "shared:\d+ "/m, s.report());
  await s.killTree(parent);

  // Found outside by --ext-mount-map auto instead of declared: its outside master needs --enable-external-masters.
  const auto = await s.start('mntext', { args: [s.dir, 'again'] });
  const kid2 = Number(/^child (\d+)$/m.exec(auto.output())?.[1]);
  const inHost2 = { command: ['nsenter', `--mount=/proc/${auto.pid}/ns/mnt`, '--', path.join(ROOT, 'bin/cryo')] };
  const refused = await s.cryo(['dump', '-t', String(kid2), '-D', s.mkdir(), '-v4', '-o', 'dump.log', '--ext-mount-map', 'auto'], inHost2);
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr, /^Error: task \d+ \(mntext\): mount \d+ at \S+\/dst \(tmpfs\) is a slave of mounts outside the tree's mount namespaces \(master:\d+\), an autodetected external mount: dump with --enable-external-masters$/m, s.report());
  assert.ok(runningFree(kid2), s.report());
  const images2 = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(kid2), '-D', images2, '-v4', '-o', 'dump.log', '--ext-mount-map', 'auto', '--enable-external-masters'], inHost2));
  await s.check(waitFor(`pid ${kid2} to go`, () => !exists(kid2), 10_000));
  const pidfile = path.join(s.dir, 'restored-auto.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images2, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--root', '/', '--ext-mount-map', 'auto'], inHost2));
  await s.expectPass(s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), auto));
  await s.killTree(auto);
});

test('check --feature move_mount_set_group and openat2 say yes, as the restore uses them; the probe leaves no mount behind', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mntns-check');
  const before = myMounts();
  for (const f of ['move_mount_set_group', 'openat2']) {
    const r = await s.cryo(['check', '--no-default-config', '--feature', f]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `${f} is supported\n`, ''], s.report());
  }
  assert.equal(myMounts(), before, 'the probe changed cryo\'s mount table');
});
