import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, critEntries } from './harness.js';

const decode = critEntries;

test('mappings of deleted files, a deleted executable and a file replaced by another come back from ghost files', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mapdel');
  await s.cycle('mapdel');
});

test('a deleted mapped file whose contents changed is caught (SIGUSR2)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mapdel-corrupt');
  const target = await s.start('mapdel');
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.restore(images, target);
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: mapped.dat: the contents changed/m, s.report());
});

test('ghost files of mappings decode with CRIU\'s crit: one ghost per file, shared by its fd and mappings', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'mapdel-crit');
  const target = await s.start('mapdel');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const ghosts = fs.readdirSync(images).filter((n) => /^ghost-file-[0-9a-f]+\.img$/.test(n));
  // The executable, mapped.dat, maponly.dat, replaced.dat.
  assert.equal(ghosts.length, 4, ghosts.join(' '));
  const remaps = decode(images, 'remap-fpath.img') as Array<{ orig_id: number; remap_id: number; remap_type: string | number }>;
  const files = decode(images, 'files.img') as Array<{ id: number; reg?: { name: string } }>;
  const nameOf = (id: number) => files.find((f) => f.id === id)?.reg?.name ?? '?';
  const mapped = remaps.filter((r) => nameOf(r.orig_id).endsWith('/mapped.dat'));
  // The fd, and the shared and the private mapping (one entry: both of the file as the task opened it, O_RDWR): one ghost.
  assert.equal(mapped.length, 2, JSON.stringify(remaps));
  assert.equal(new Set(mapped.map((r) => r.remap_id)).size, 1, JSON.stringify(mapped));
  assert.ok(remaps.some((r) => nameOf(r.orig_id).endsWith('/mapdel-exe')), JSON.stringify(remaps));
  await s.expectPass(target);
});
