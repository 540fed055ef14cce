// Private memory, its present pages found by PAGEMAP_SCAN (check feature pagemap_scan).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, checkPageCounts, critDecodeAll } from './harness.js';

test('memory: dump, restore -d: contents, layout and brk intact; anonymous pages go in by userfaultfd', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'memory');
  let images = '';
  await s.cycle('memory', { afterDump: (dir) => void (images = dir) });
  const m = /(\d+) private pages, (\d+) of them by userfaultfd/.exec(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'));
  assert.ok(m && Number(m[2]) > 0, `no page went in by userfaultfd: ${m?.[0]}`);
});

test("memory: every image but pages-*.img decodes with CRIU's crit", { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'memory-crit');
  const target = await s.start('memory');
  const images = s.mkdir();
  await s.dump(target, images);
  const failures = critDecodeAll(images);
  assert.deepEqual(failures, [], `crit failed on ${failures.length} image(s)${s.report()}`);
  // As CRIU writes them (its restorer reads the dumped vdso, and refuses more than 44 auxv words).
  const decode = (name: string) => JSON.parse(spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, name)], { encoding: 'utf8' }).stdout).entries;
  const mm = decode(`mm-${target.pid}.img`)[0] as { vmas: Array<{ start: number; end: number; status: number }>; mm_saved_auxv: number[] };
  const VDSO = 1 << 3;
  const vdso = mm.vmas.find((v) => v.status & VDSO)!;
  assert.ok(vdso, 'no vdso VMA in mm.img');
  const runs = decode(`pagemap-${target.pid}.img`).slice(1) as Array<{ vaddr: number }>;
  assert.ok(runs.some((r) => r.vaddr >= vdso.start && r.vaddr < vdso.end), 'the vdso pages are not in the pagemap');
  assert.ok(mm.mm_saved_auxv.length <= 44, `${mm.mm_saved_auxv.length} auxv words`);
});

test('shared anonymous memory stays one object between a parent and its child (three VMAs at offsets into it)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'shmem');
  await s.cycle('shmem', { afterDump: (dir) => checkPageCounts(dir) });
});
