// UTS and IPC namespaces of the tree (ipcns.c): the root's own namespaces are
// dumped into CRIU's images (utsns-N, ipcns-var/shm/sem/msg-N, the segments'
// contents in pagemap-shmem + pages) and made anew on restore, with the same
// host name, objects, ids, contents and sysctls, never in cryo's own. A tree
// where only some task has a namespace of its own, a POSIX message queue with
// a notification, and SysV segments of cryo's own ipc namespace are refused;
// SysV objects of cryo's own namespace are not the tree's and are not dumped.
// POSIX message queues come back with their messages (cryo's own field of
// ipcns-var, as CRIU keeps none).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, compileProgram, critDecodeAll, imagePids, runningFree, waitFor, signalPid } from './harness.js';
import { reapUntilGone } from './proc.js';
import { ImageDir } from '../../src/images/index.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

function cryoCrit(image: string): unknown {
  const r = spawnSync(new URL('../../bin/cryo', import.meta.url).pathname, ['crit', 'decode', '-i', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function debianCrit(image: string): { entries: Array<Record<string, unknown>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('uts+ipc namespaces of its own: host name, SysV shm (contents, attachments, a destroyed one), semaphores, messages, sysctls come back in new namespaces', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc');
  const hostname = os.hostname();
  const target = await s.start('ipcns');
  assert.notEqual(nsLink(target.pid, 'uts'), nsLink('self', 'uts'));
  const images = s.mkdir();
  await s.dump(target, images);
  const names = fs.readdirSync(images);
  for (const re of [/^utsns-\d+\.img$/, /^ipcns-var-\d+\.img$/, /^ipcns-shm-\d+\.img$/, /^ipcns-sem-\d+\.img$/, /^ipcns-msg-\d+\.img$/]) {
    assert.ok(names.some((n) => re.test(n)), `no ${re} in ${names.join(' ')}${s.report()}`);
  }
  const img = (prefix: string) => path.join(images, names.find((n) => n.startsWith(prefix))!);
  // Debian's crit reads them all; the names, sets and queues as cryo's crit does.
  assert.deepEqual(critDecodeAll(images), [], s.report());
  for (const p of ['utsns-', 'ipcns-var-', 'ipcns-sem-', 'ipcns-msg-']) assert.deepEqual(debianCrit(img(p)), cryoCrit(img(p)), p);
  assert.deepEqual(debianCrit(img('utsns-')).entries, [{ nodename: 'cryo-uts-test', domainname: 'cryo.example' }]);
  const sems = (cryoCrit(img('ipcns-sem-')) as { entries: Array<{ desc: { key: number; id: number }; extra: number[] }> }).entries;
  assert.deepEqual(sems.find((e) => e.desc.key === 0x2345), { desc: { key: 0x2345, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 77 }, nsems: 5, extra: [1, 2, 3, 4, 30000] });
  const shms = (cryoCrit(img('ipcns-shm-')) as { entries: Array<{ desc: { key: number }; size: number; in_pagemaps: boolean }> }).entries;
  assert.deepEqual(shms.map((e) => [e.desc.key, e.size, e.in_pagemaps]), [[0x1234, 3 * 4096 + 100, true], [0, 4096, true], [0x1236, 8192, true], [0, 4096, true], [0x1239, 4096, true]]);
  // The segments' contents are shmem pagemaps, as CRIU keeps them (ids 0..3, page 1 of shm A a hole).
  const a = (cryoCrit(path.join(images, 'pagemap-shmem-0.img')) as { entries: Array<Record<string, unknown>> }).entries;
  assert.deepEqual(a.slice(1).map((e) => [e['vaddr'], e['nr_pages']]), [[0, 1], [8192, 2]], s.report());
  // The SysV attachments are VMA_AREA_SYSVIPC mappings of their segment.
  const mm = debianCrit(path.join(images, `mm-${target.pid}.img`)).entries[0] as { vmas: Array<{ status: number; shmid: number }> };
  assert.deepEqual(mm.vmas.filter((v) => v.status & (1 << 10)).map((v) => v.shmid).sort(), [0, 1, 1, 3, 4], s.report());

  const r = await s.restore(images, target);
  for (const kind of ['uts', 'ipc'] as const) {
    const now = nsLink(r.pid, kind);
    assert.notEqual(now, nsLink('self', kind), `the restored task is in cryo's ${kind} namespace${s.report()}`);
    for (const kid of childrenOf(r.pid)) assert.equal(nsLink(kid, kind), now, `child ${kid} is not in the root's ${kind} namespace`);
  }
  assert.equal(os.hostname(), hostname, 'the host name of cryo\'s namespace changed');
  await s.expectPass(r);
});

test('uts+ipc: images with SysV attachments but no ipc namespace are refused; the checks see a semaphore changed after restore (SIGUSR2)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-corrupt');
  const target = await s.start('ipcns');
  const images = s.mkdir();
  await s.dump(target, images);
  // Images whose root shares the dumper's ipc namespace, but whose tasks attach SysV segments: refused before anything is made.
  const edited = s.mkdir();
  for (const n of fs.readdirSync(images)) fs.copyFileSync(path.join(images, n), path.join(edited, n));
  const inv = cryoCrit(path.join(edited, 'inventory.img')) as { entries: Array<{ root_ids: Record<string, number> }> };
  const rootIds = (cryoCrit(path.join(edited, `ids-${target.pid}.img`)) as { entries: Array<Record<string, number>> }).entries[0]!;
  inv.entries[0]!.root_ids['ipc_ns_id'] = rootIds['ipc_ns_id']!;
  fs.writeFileSync(path.join(s.dir, 'inv.json'), JSON.stringify(inv));
  const enc = spawnSync(new URL('../../bin/cryo', import.meta.url).pathname, ['crit', 'encode', '-i', path.join(s.dir, 'inv.json'), '-o', path.join(edited, 'inventory.img')], { encoding: 'utf8' });
  assert.equal(enc.status, 0, enc.stderr);
  const bad = await s.cryo(['restore', '-d', '-D', edited, '-v4', '-o', 'restore.log']);
  assert.equal(bad.code, 1, s.report());
  assert.match(bad.stderr, new RegExp(`^Error: bad image: mm-${target.pid}\\.img: VMA 0x[0-9a-f]+ is SysV shared memory, but the tree has no ipc namespace of its own in the images$`, 'm'), s.report());
  assert.ok(!fs.existsSync(`/proc/${target.pid}`), 'the refused restore left a task');

  const r = await s.restore(images, target);
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: semaphores are 1 2 9 4 30000, want 1 2 3 4 30000$/m, s.report());
});

test('uts+ipc namespaces made by `unshare --uts --ipc --fork`: the tree below unshare comes back in new ones', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-unshare');
  const exe = compileProgram('ipcns');
  const unshare = await s.startCommand('ipcns', ['unshare', '--uts', '--ipc', '--fork', exe, s.dir, 'given']);
  const inner = childrenOf(unshare.pid)[0]!;
  assert.ok(inner, s.report());
  assert.notEqual(nsLink(inner, 'uts'), nsLink('self', 'uts'));
  const images = s.mkdir();
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['dump', '-t', String(inner), '-D', images, '-v4', '-o', 'dump.log']));
  // Its child (blocked in semop) too, an orphan for us to reap.
  for (const p of imagePids(images)) await s.check(reapUntilGone(p, 10_000));
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.equal(host, inner, s.report());
  // (The namespace unshare made is gone with it: a new one may get its inode number.)
  assert.notEqual(nsLink(host, 'uts'), nsLink('self', 'uts'), s.report());
  assert.notEqual(nsLink(host, 'ipc'), nsLink('self', 'ipc'), s.report());
  signalPid(host, 'SIGUSR1');
  await s.check(waitFor('PASS from the restored tree', () => /^PASS$/m.test(unshare.output()), 10_000, () => (/^FAIL.*$/m.exec(unshare.output()) ?? [])[0]));
  await s.killTree(restored);
});

for (const [mode, re] of [
  ['child', /^Error: task (\d+) \(ipcns\) is in a uts namespace \(uts:\[\d+\]\) other than the tree root's \(cryo's own\), which cryo cannot dump: as CRIU, every task must be in the root's$/m],
  ['mqnotify', /^Error: task (\d+) \(ipcns\): POSIX message queue \/cryo-mq has a notification registered \(mq_notify, by pid \d+\), which cryo cannot carry$/m],
  ['hostshm', /^Error: task (\d+) \(ipcns\): SysV shared memory \d+ is attached at 0x[0-9a-f]+, but the task is in cryo's own ipc namespace, whose objects are not the tree's: cryo dumps SysV IPC only of a tree in an ipc namespace of its own$/m],
] as const) {
  test(`uts+ipc refused (${mode}): one line naming the task, no images, the tree runs on and passes its checks`, { timeout: 30_000 }, async (t) => {
    const s = Session.for(t, `utsipc-${mode}`);
    const target = await s.start('ipcns', { args: [s.dir, mode] });
    const images = s.mkdir();
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']);
    assert.equal(r.code, 1, s.report());
    assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
    assert.match(r.stderr, re, s.report());
    assert.ok(!fs.existsSync(path.join(images, 'inventory.img')), 'a refused dump wrote an inventory');
    assert.ok(runningFree(target.pid), s.report());
    // The refused dump changed nothing: the checks pass in place.
    await s.expectPass(target);
  });
}

test('SysV objects of cryo\'s own ipc namespace are not the tree\'s: no ipcns or utsns images, and they stay where they are', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-host');
  const target = await s.start('ipcns', { args: [s.dir, 'host'], ready: /^READY$/m });
  const [, shm, sem] = /^HOSTIPC (\d+) (\d+)$/m.exec(target.output())!.map(Number);
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(fs.readdirSync(images).filter((n) => /^(ipcns|utsns)-/.test(n)), [], s.report());
  assert.ok(!fs.existsSync(path.join(images, `pagemap-shmem-${shm}.img`)), s.report());
  // Still there in the host's namespace (the dumped task did not remove them).
  const sysvipc = (kind: string) => fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8');
  assert.match(sysvipc('shm'), new RegExp(`^\\s*0\\s+${shm}\\s`, 'm'));
  assert.match(sysvipc('sem'), new RegExp(`^\\s*0\\s+${sem}\\s`, 'm'));
  const r = await s.restore(images, target);
  assert.equal(nsLink(r.pid, 'ipc'), nsLink('self', 'ipc'), s.report());
  await s.expectPass(r);
  assert.doesNotMatch(sysvipc('shm'), new RegExp(`^\\s*0\\s+${shm}\\s`, 'm'), 'the restored task did not remove its host segment');
});

test('uts+ipc dump --leave-running takes nothing away: the messages stay queued, the tree passes its checks in place', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-leave');
  const target = await s.start('ipcns');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.ok(fs.readdirSync(images).some((n) => n.startsWith('ipcns-msg-')), s.report());
  await s.expectPass(target);
});

test('POSIX message queues of the ipc namespace: messages in order with their priorities, limits, modes and owners come back in the new namespace; --leave-running leaves every message queued', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-mqueue');
  const target = await s.start('ipcns', { args: [s.dir, 'mqueue'] });
  // Read out and queued again by the dump: the tree finds them as they were.
  const left = s.mkdir();
  await s.dump(target, left, { leaveRunning: true });
  const images = s.mkdir();
  await s.dump(target, images);
  const name = fs.readdirSync(images).find((n) => /^ipcns-var-\d+\.img$/.test(n))!;
  const v = (cryoCrit(path.join(images, name)) as { entries: Array<{ posix_mq: Array<Record<string, unknown>> }> }).entries[0]!;
  const mq = v.posix_mq.find((q) => q['name'] === 'cryo-mq');
  assert.deepEqual([mq?.['mode'], mq?.['uid'], mq?.['gid'], mq?.['maxmsg'], mq?.['msgsize']], [0o640, 1000, 1001, 4, 64], s.report());
  assert.deepEqual((mq?.['msgs'] as Array<{ prio: number }>).map((m) => m.prio), [5, 5, 1]);
  assert.deepEqual(v.posix_mq.map((q) => q['name']).sort(), ['cryo-empty', 'cryo-mq']);
  // Debian's crit still reads the image (the field is one it does not know).
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const r = await s.restore(images, target);
  assert.notEqual(nsLink(r.pid, 'ipc'), nsLink('self', 'ipc'), s.report());
  await s.expectPass(r);
});

test('a POSIX message queue descriptor a task keeps (mq_open, O_NONBLOCK by mq_setattr) comes back as a descriptor of the queue made again in its ipc namespace, with its flags (cryo_mq_ipc_ns)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-mqfd');
  const target = await s.start('ipcns', { args: [s.dir, 'mqfd'] });
  const images = s.mkdir();
  await s.dump(target, images);
  const files = cryoCrit(path.join(images, 'files.img')) as { entries: Array<{ reg?: { name: string; flags: number; cryo_mq_ipc_ns?: number } }> };
  const d = files.entries.find((e) => e.reg?.name === '/cryo-mq')?.reg;
  assert.ok(d && d.cryo_mq_ipc_ns !== undefined && d.flags & 0o4000, JSON.stringify(d) + s.report());
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});

test('SysV shared memory in huge pages (shmhuge.c): an attached segment and one not attached come back in huge pages with their ids, keys, modes, sizes and contents (CRIU\'s hugetlb_flag); SIGUSR2 proves the check', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'utsipc-shmhuge');
  const target = await s.start('shmhuge');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const shm = Number(/^ipcns-shm-(\d+)\.img$/.exec(fs.readdirSync(images).find((n) => /^ipcns-shm-\d+\.img$/.test(n))!)![1]);
  const dir = ImageDir.open(images, { write: false });
  // SHM_HUGETLB | 21 << MAP_HUGE_SHIFT (2 MiB pages), as CRIU writes it.
  const flags = dir.read('ipcShm', shm).map((e) => e.hugetlbFlag);
  dir.close();
  assert.deepEqual(flags, [0x800 | (21 << 26), 0x800 | (21 << 26)]);
  await s.expectPass(await s.restore(images, target));
  const again = await s.start('shmhuge');
  const images2 = s.mkdir();
  await s.dump(again, images2);
  const { status, output } = await s.finish(await s.restore(images2, again), 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: H1: byte 100 is \d+, want \d+$/m, s.report());
});
