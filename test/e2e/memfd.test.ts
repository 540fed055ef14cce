import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, checkPageCounts, critDecodeAll, critEntries } from './harness.js';

const decode = (images: string, name: string) => ({ entries: critEntries(images, name) });

test('memfds: fds and mappings (shared, private, mapping only), one in flight in a socket, names, contents with holes, seals, flags, positions, one object with a child', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'memfd');
  await s.cycle('memfd', { afterDump: (dir) => checkPageCounts(dir) });
});

test('a memfd whose contents changed is caught (SIGUSR2 corrupts it after restore)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'memfd-corrupt');
  const target = await s.start('memfd');
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.restore(images, target);
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: A: the contents changed/m, s.report());
});

test('memfd images decode with CRIU\'s crit: memfd.img, MEMFD file entries, memfd VMAs, shmem pagemaps', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'memfd-crit');
  const target = await s.start('memfd');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const inodes = decode(images, 'memfd.img').entries as Array<{ name: string; seals: string; size: number; shmid: number; inode_id: number }>;
  const byName = new Map(inodes.map((i) => [i.name, i]));
  assert.deepEqual([...byName.keys()].sort(), ['cryo test: one', 'future', 'in flight', 'mapped only', 'noexec', 'sealed'], JSON.stringify(inodes));
  assert.equal(byName.get('cryo test: one')!.size, 8 * 4096 + 100);
  assert.equal(Number(byName.get('sealed')!.seals), 0x8 | 0x1); // F_SEAL_WRITE | F_SEAL_SEAL
  assert.equal(Number(byName.get('future')!.seals), 0x10); // F_SEAL_FUTURE_WRITE
  const files = decode(images, 'files.img').entries as Array<{ type: string; memfd?: { inode_id: number; flags: string; pos: number } }>;
  const memfds = files.filter((f) => f.type === 'MEMFD');
  // fds a1, a2, b, c, e and the mappings (A shared rw, A private, B ro, D rw, E rw).
  assert.ok(memfds.length >= 8, JSON.stringify(memfds));
  assert.ok(memfds.some((f) => f.memfd?.pos === 1234), JSON.stringify(memfds));
  // A's contents: pages 0-2 and 7 only (3-6 are holes), by offset in the file.
  const a = byName.get('cryo test: one')!;
  // (Debian's crit knows only the old 32-bit page count, which CRIU 4 leaves 0: count the pages file.)
  const pm = decode(images, `pagemap-shmem-${a.shmid}.img`).entries as Array<{ vaddr?: number; pages_id?: number }>;
  assert.deepEqual(pm.slice(1).map((e) => Number(e.vaddr)), [0, 7 * 4096], JSON.stringify(pm));
  assert.equal(fs.statSync(path.join(images, `pages-${pm[0]!.pages_id}.img`)).size, 5 * 4096);
  const mm = decode(images, `mm-${target.pid}.img`).entries[0] as { vmas: Array<{ status: number; shmid: number }> };
  const memfdVmas = mm.vmas.filter((v) => v.status & (1 << 14)); // VMA_AREA_MEMFD
  assert.equal(memfdVmas.length, 5, JSON.stringify(mm.vmas.map((v) => v.status)));
  await s.expectPass(target);
});
