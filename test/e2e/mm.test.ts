// What an address space is beyond its pages: copy-on-write sharing with a child,
// madvise bits, locks, guard regions, the access mode of mapped files, private
// mappings of shared memory, membarrier registrations, huge pages, AIO rings.
// Each program checks its own state after restore (test/programs/*.c).
// Features: aio_remap, pagemap_scan_guard_pages (guard regions are found by PAGEMAP_SCAN).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, Session, critDecodeAll, critEntries } from './harness.js';

const restoreLog = (images: string) => fs.readFileSync(path.join(images, 'restore.log'), 'utf8');

const decode: (images: string, name: string) => unknown[] = critEntries;

test('copy-on-write: pages a parent and its child shared since the fork are still one page each, the rest their own', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'cow');
  let images = '';
  await s.cycle('cow', { afterDump: (dir) => void (images = dir) });
  const m = /(\d+) vmas from its parent, (\d+) pages shared with it, (\d+) of its pages dropped/.exec(restoreLog(images));
  assert.ok(m && Number(m[2]) >= 43, `the child shares too little with its parent: ${m?.[0]}${s.report()}`);
});

test('mapping flags: madvise bits, mlock and MAP_LOCKED after setuid, MAP_DROPPABLE, guard regions, file access mode, shared memory mapped privately, membarrier', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'mapflags');
  let images = '';
  await s.cycle('mapflags', { afterDump: (dir) => void (images = dir) });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const pid = Number(fs.readdirSync(images).find((n) => /^mm-\d+\.img$/.test(n))!.slice(3, -4));
  const [mm] = decode(images, `mm-${pid}.img`) as Array<{ vmas: Array<{ status: number; start: number; end: number }> }>;
  const GUARD = 1 << 16;
  assert.equal(mm!.vmas.filter((v) => v.status === GUARD).length, 2, 'two guard regions, as CRIU writes them');
  // Debian's crit predates the field: cryo's own crit reads it.
  const r = spawnSync(path.join(ROOT, 'bin/cryo'), ['crit', 'decode', '-i', path.join(images, `core-${pid}.img`)], { encoding: 'utf8' });
  const [core] = JSON.parse(r.stdout).entries as Array<{ tc: { membarrier_registration_mask?: number } }>;
  assert.equal(core!.tc.membarrier_registration_mask, (1 << 2) | (1 << 4) | (1 << 6));
});

test('huge pages: MAP_HUGETLB shared (with a child) and private memory, a hugetlb memfd mapped both ways', { timeout: 60_000 }, async (t) => {
  const free = Number(/HugePages_Free:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  assert.ok(free >= 7, `this test needs 7 free 2 MiB huge pages (vm.nr_hugepages), there are ${free}`);
  const s = Session.for(t, 'hugetlb');
  let images = '';
  await s.cycle('hugetlb', { afterDump: (dir) => void (images = dir) });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const [inode] = decode(images, 'memfd.img') as Array<{ hugetlb_flag?: number }>;
  assert.equal(inode!.hugetlb_flag, 4 | (21 << 26), 'MFD_HUGETLB | MFD_HUGE_2MB, as CRIU writes it');
});

test('AIO rings: size, head, tail and the events not collected come back; check --feature aio_remap says so', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'aio');
  const check = spawnSync(path.join(ROOT, 'bin/cryo'), ['check', '--feature', 'aio_remap'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  let images = '';
  await s.cycle('aio', { afterDump: (dir) => void (images = dir) });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const pid = Number(fs.readdirSync(images).find((n) => /^mm-\d+\.img$/.test(n))!.slice(3, -4));
  const [mm] = decode(images, `mm-${pid}.img`) as Array<{ aios: Array<{ nr_req: number; ring_len: number }> }>;
  assert.equal(mm!.aios.length, 2, JSON.stringify(mm!.aios));
  for (const a of mm!.aios) assert.ok(a.ring_len % 4096 === 0 && a.nr_req > 0, JSON.stringify(a));
});

test('a task that unmapped its vDSO and vvar (and the child it forked then) comes back without them, and runs', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'novdso');
  await s.cycle('novdso');
  // The check can fail: SIGUSR2 kills the child first.
  const again = await s.start('novdso');
  const images = s.mkdir();
  await s.dump(again, images);
  const { output } = await s.finish(await s.restore(images, again), 'SIGUSR2');
  assert.match(output, /^FAIL: .*the child does not answer/m, s.report());
});

test('transparent huge pages per process across forks (on, off, on again) with memory shared copy-on-write: each task has its own setting and contents back, though cryo keeps THP off while it fills the tree', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'thpfork');
  await s.cycle('thpfork');
});

test('a changed THP setting is caught (SIGUSR2)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'thpfork-corrupt');
  const target = await s.start('thpfork');
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.restore(images, target);
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: gen 0: PR_GET_THP_DISABLE 1, want 0/m, s.report());
});
