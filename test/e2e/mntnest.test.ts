// Several mount namespaces in one tree (mntnest.c): the root's, a child's made
// private by unshare, a grandchild's unshared from it with a peer group and a
// master shared across the two. Each goes into its own mountpoints-N.img (its
// id in the task's ids), every one is made again on restore, each task enters
// its own; files keep their mounts; propagation across the namespaces works
// after the restore. A task back in cryo's own mount namespace is refused.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, critEntries, exists, runningFree, waitFor, type Target } from './harness.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
const myMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8');

async function restoreNs(s: Session, images: string, original: Target): Promise<Target> {
  const pidfile = path.join(s.dir, `restored-${Date.now()}.pid`);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--root', '/']));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const r = s.adopt(host, original);
  await s.check(waitFor(`restored ${host} to run`, () => runningFree(host), 5_000));
  return r;
}

async function start(s: Session, mode?: string): Promise<{ parent: Target; root: number }> {
  const parent = await s.start('mntnest', { args: mode ? [s.dir, mode] : [s.dir] });
  const root = Number(/^child (\d+)$/m.exec(parent.output())?.[1]);
  assert.ok(root && exists(root), s.report());
  return { parent, root };
}

type Mnt = { mnt_id: number; mountpoint: string; shared_id?: number; master_id?: number };

test('nested mount namespaces: three namespaces of one tree come back distinct, each task in its own, with its mounts, its files and the propagation between them', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'mntnest');
  const before = myMounts();
  const { parent, root } = await start(s);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // One image per namespace, named by the ids the tasks carry.
  const ids = [1, 2, 3].map((p) => (critEntries(images, `ids-${p}.img`)[0] as { mnt_ns_id: number }).mnt_ns_id);
  assert.equal(new Set(ids).size, 3, `the tasks' mnt_ns_id: ${ids.join(' ')}`);
  const byNs = ids.map((id) => critEntries(images, `mountpoints-${id}.img`) as unknown as Mnt[]);
  const at = (n: number, sub: string) => byNs[n]!.find((m) => m.mountpoint === path.join(s.dir, sub));
  assert.ok(at(0, 'a') && !at(0, 'b') && !at(0, 'c'), 'the root\'s namespace holds the root\'s mounts only');
  assert.ok(at(1, 'b') && at(1, 'bb') && !at(1, 'g') && at(2, 'g'), 'the child\'s and grandchild\'s namespaces hold their own');
  // The peer group and the master span the child's and the grandchild's namespaces.
  assert.ok(at(1, 'c')!.shared_id && at(1, 'c')!.shared_id === at(2, 'c')!.shared_id, 'DIR/c: no common peer group in the images');
  assert.ok(at(1, 'd')!.shared_id && at(2, 'd')!.master_id === at(1, 'd')!.shared_id, 'DIR/d: the grandchild\'s is no slave of the child\'s in the images');
  // Files keep the mount they are on, each in its task's namespace.
  const files = critEntries(images, 'files.img') as Array<{ reg?: { name: string; mnt_id: number } }>;
  const reg = (sub: string) => files.find((f) => f.reg?.name === path.join(s.dir, sub))?.reg?.mnt_id;
  assert.equal(reg('a/fa'), at(0, 'a')!.mnt_id);
  assert.equal(reg('bb/fb'), at(1, 'bb')!.mnt_id);
  assert.equal(reg('g/fg'), at(2, 'g')!.mnt_id);
  assert.equal(reg('c/fc'), at(2, 'c')!.mnt_id);

  const r = await restoreNs(s, images, parent);
  assert.notEqual(nsLink(r.pid, 'mnt'), nsLink('self', 'mnt'), `the restored tree is in cryo's mount namespace${s.report()}`);
  assert.equal(myMounts(), before, 'the restore changed cryo\'s mount table');
  await s.expectPass(r);

  // The images are left as they were: a second restore, whose check must see the change (SIGUSR2).
  const again = await restoreNs(s, images, parent);
  again.signal('SIGUSR2');
  const st = await again.wait(10_000);
  assert.equal(st?.exited, 1, s.report());
  assert.match(again.output(), /^FAIL: R: its file on \/a holds "IN a/m, s.report());
});

test('nested mount namespaces: a task of the tree back in cryo\'s own mount namespace is refused in one line naming it and the namespace; the tree runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mntnest-hostns');
  const { parent, root } = await start(s, 'hostns');
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  const mine = nsLink('self', 'mnt').replace(/[[\]]/g, '\\$&');
  assert.match(r.stderr, new RegExp(`task \\d+ \\(mntnest\\) is in cryo's own mount namespace \\(${mine}\\) while the tree's root has one of its own`), s.report());
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')));
  assert.ok(runningFree(root), s.report());
  // Untouched: its checks pass as before (the root's verdict is in its parent's output).
  process.kill(root, 'SIGUSR1');
  const st = await parent.wait(10_000);
  assert.equal(st?.exited, 0, s.report());
  assert.match(parent.output(), /^PASS$/m, s.report());
});
