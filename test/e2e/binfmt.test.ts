// binfmt_misc (binfmt.c): the entries of the instance a tree has mounted go
// into binfmt-misc.img, CRIU's layout, and are registered again on the new
// mount at restore: the instance of the tree's own user namespace (new and
// empty then), or the host's, whose entries end with its last mount (the
// tree's) unless another keeps them, which the restore then finds as they
// were. The tree checks the entries' text and that a script still runs
// through its binfmt_misc interpreter. The host's instance in a tree of its
// own user namespace is refused at dump.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, exists, runningFree, waitFor, type Target } from './harness.js';

/** The tree's root (pid 1 of its namespaces): its output goes to /log in its root file system. */
async function startTree(s: Session, mode: string, dir = s.dir): Promise<{ launcher: Target; root: number; log: string; rootfs: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const launcher = await s.start('binfmt', { args: [dir, mode] });
  const root = Number(/^child (\d+)$/m.exec(launcher.output())?.[1]);
  assert.ok(root && exists(root), s.report());
  return { launcher, root, log: path.join(dir, 'root/log'), rootfs: path.join(dir, 'root') };
}

async function dump(s: Session, root: number, images: string): Promise<void> {
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
}

async function restore(s: Session, images: string, launcher: Target, log: string, rootfs = path.join(s.dir, 'root')): Promise<Target> {
  const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--root', rootfs, '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  fs.writeFileSync(log, '');
  const r = s.adopt(host, { label: launcher.label, logPath: log, exe: launcher.exe } as Target);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  return r;
}

/** binfmt-misc.img as upstream CRIU's own message class reads it (its crit has no handler for the kind). */
function upstreamEntries(image: string): Array<Record<string, unknown>> {
  const lib = fs.existsSync('/work/criu/lib/pycriu') ? '/work/criu/lib' : '/usr/lib/python3/dist-packages';
  const py = `import sys, struct, json; sys.path.insert(0, ${JSON.stringify(lib)})
from pycriu.images import binfmt_misc_pb2 as b
d = open(sys.argv[1], 'rb').read(); off = 8 if struct.unpack_from('<I', d)[0] in (0x54564319, 0x55105940) else 4; out = []
while off < len(d):
    n, = struct.unpack_from('<I', d, off); e = b.binfmt_misc_entry(); e.ParseFromString(d[off + 4:off + 4 + n]); off += 4 + n
    r = {f.name: v for f, v in e.ListFields()}
    if 'extension' in r: x = e.extension; r['extension'] = (x if isinstance(x, bytes) else x.encode('utf-8', 'surrogateescape')).hex()
    out.append(r)
print(json.dumps(out))`;
  const r = spawnSync('/usr/bin/python3', ['-c', py, image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

/** A mount of the host's instance that this test holds (another namespace's): the host's entries outlive the tree then. */
async function holdHostInstance(s: Session): Promise<{ dir: string; stop: () => void }> {
  const at = path.join(s.dir, 'hold');
  fs.mkdirSync(at);
  const p: ChildProcess = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t binfmt_misc cryo-hold ${at} && echo held && exec sleep 300`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await s.check(waitFor('the host instance to be held', () => out.includes('held'), 5_000));
  return { dir: `/proc/${p.pid}/root${at}`, stop: () => p.kill('SIGKILL') };
}

test('binfmt_misc of the tree\'s user namespace: magic, mask, offset, flags, a disabled entry and an extension of non-UTF-8 bytes come back on the new instance; a script still runs through it', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'binfmt');
  const { launcher, root, log } = await startTree(s, 'userns');
  const images = s.mkdir();
  await dump(s, root, images);
  const entries = upstreamEntries(path.join(images, 'binfmt-misc.img'));
  const byName = new Map(entries.map((e) => [e['name'], e]));
  assert.deepEqual([...byName.keys()].sort(), ['cryo_bytes', 'cryo_fix', 'cryo_magic', 'cryo_run'], s.report());
  assert.deepEqual(byName.get('cryo_magic'), { name: 'cryo_magic', enabled: false, interpreter: '/bin/interpreter', flags: 'POC', magic: '7351ff', mask: 'ff0fff', offset: 9 });
  assert.deepEqual(byName.get('cryo_bytes'), { name: 'cryo_bytes', enabled: true, interpreter: '/bin/bash', flags: '', extension: 'e3467cc254f81be8e78d765a2e63339f' });
  assert.deepEqual(byName.get('cryo_fix'), { name: 'cryo_fix', enabled: true, interpreter: '/bin/sh', flags: 'F', extension: Buffer.from('cryofix').toString('hex') });

  const r = await restore(s, images, launcher, log);
  assert.notEqual(fs.readlinkSync(`/proc/${r.pid}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), s.report());
  await s.expectPass(r);
  // Restored again, the checks see an entry gone (SIGUSR2 removes cryo_run first).
  const again = await restore(s, images, launcher, log);
  again.signal('SIGUSR2');
  const st = await again.wait(10_000);
  assert.equal(st?.exited, 1, s.report());
  assert.match(fs.readFileSync(log, 'utf8'), /^FAIL: entries cryo_bytes cryo_fix cryo_magic , want cryo_bytes cryo_fix cryo_magic cryo_run ; .*exec of \/t\.cryorun exits \d+, want 7$/m);
});

test('binfmt_misc of the host in a tree of cryo\'s user namespace: its entry, gone with the tree\'s mount, is registered again; kept by another mount, it is found as it was', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'binfmt-host');
  const leftovers = () => {
    const hold = fs.existsSync('/proc/sys/fs/binfmt_misc/status') ? '/proc/sys/fs/binfmt_misc' : undefined;
    return hold ? fs.readdirSync(hold).filter((n) => n.startsWith('cryo_host_')) : [];
  };
  // Gone with the tree: registered again by the restore.
  {
    const { launcher, root, log } = await startTree(s, 'host');
    const name = `cryo_host_${launcher.pid}`;
    const images = s.mkdir();
    await dump(s, root, images);
    assert.deepEqual(upstreamEntries(path.join(images, 'binfmt-misc.img')).map((e) => e['name']), [name], s.report());
    const r = await restore(s, images, launcher, log);
    assert.equal(fs.readlinkSync(`/proc/${r.pid}/ns/user`), fs.readlinkSync('/proc/self/ns/user'));
    await s.expectPass(r);
  }
  // Held by another mount: the entry outlives the tree, the restore finds it as it was.
  const held = await holdHostInstance(s);
  try {
    const { launcher, root, log, rootfs } = await startTree(s, 'host', path.join(s.dir, 'held'));
    const name = `cryo_host_${launcher.pid}`;
    const images = s.mkdir();
    await dump(s, root, images);
    assert.ok(fs.existsSync(path.join(held.dir, name)), `the held instance lost ${name}${s.report()}`);
    const r = await restore(s, images, launcher, log, rootfs);
    await s.expectPass(r);
    // The tree removes its entry when it ends.
    assert.ok(!fs.existsSync(path.join(held.dir, name)), `${name} is left on the host${s.report()}`);
  } finally {
    held.stop();
  }
  assert.deepEqual(leftovers(), []);
});

test('binfmt_misc: the host\'s instance in a tree of its own user namespace is refused in one line naming the task and the mount; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'binfmt-hostbind');
  const { launcher, root, log } = await startTree(s, 'hostbind');
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`task ${root} \\(sh\\): mount \\d+ at /bf \\(binfmt_misc\\) is the host's binfmt_misc instance in a tree of its own user namespace`), s.report());
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /is the host's binfmt_misc instance/);
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  assert.ok(runningFree(root), s.report());
  process.kill(root, 'SIGUSR1');
  assert.equal((await launcher.wait(10_000))?.exited, 0, s.report());
  assert.match(fs.readFileSync(log, 'utf8'), /^PASS$/m);
});
