import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Session, critDecodeAll, runningFree } from './harness.js';

function critDecode(dir: string, name: string): unknown {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(dir, name)], { encoding: 'utf8' });
  return JSON.parse(r.stdout);
}

test('a file deleted while open comes back deleted, with its contents and offset (ghost file)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost');
  await s.cycle('ghost');
});

test('ghost file images decode with CRIU\'s crit', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost-crit');
  const target = await s.start('ghost');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(target);
});

test('--ghost-limit: a deleted file taking more on disk than the limit fails the dump by name, the task runs on; at the limit it is carried', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ghost-limit');
  const target = await s.start('ghost');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--ghost-limit', '4096']);
  assert.equal(r.code, 1, s.report());
  const m = new RegExp(`^Error: task ${target.pid}: fd \\d+ is a deleted regular file of (\\d+) bytes on disk, more than --ghost-limit 4096\\n$`).exec(r.stderr);
  assert.ok(m, r.stderr + s.report());
  assert.ok(runningFree(target.pid), s.report());
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--ghost-limit', m[1]!] });
  await s.expectPass(await s.restore(images, target));
});

test('deleted files with holes come back with their holes; a large sparse one is kept by its data, not its size', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'sparseghost');
  // FIEMAP's extents (the default) and SEEK_DATA/SEEK_HOLE (--no-ghost-fiemap).
  for (const how of ['--ghost-fiemap', '--no-ghost-fiemap']) {
    const target = await s.start('sparseghost');
    const images = s.mkdir();
    await s.dump(target, images, { extra: [how] });
    assert.deepEqual(critDecodeAll(images), [], s.report());
    // As CRIU's dumps without mount namespaces: no mnt_id (CRIU's restore could not link the ghosts back).
    const files = critDecode(images, 'files.img') as { entries: Array<{ reg?: Record<string, unknown> }> };
    assert.deepEqual(files.entries.filter((e) => e.reg && 'mnt_id' in e.reg), [], s.report());
    await s.expectPass(await s.restore(images, target));
  }
});

test('a deleted file whose data exceeds --ghost-limit is refused, and the task runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sparseghost-limit');
  const target = await s.start('sparseghost');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--ghost-limit', '12K']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /fd \d+ is a deleted regular file of \d+ bytes on disk, more than --ghost-limit 12288/);
  await s.expectPass(target);
});

test('deleted directories (an fd, the cwd), FIFOs, device nodes and symlinks come back deleted', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'deletedkinds');
  const target = await s.start('deletedkinds');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
  // The ghosts made for the restore are gone again; the session dir holds what it held.
  assert.deepEqual(fs.readdirSync(s.dir).filter((n) => !/^(images-\d+|restore-\d+\.pid|deletedkinds\.out|lnk)$/.test(n)), []);
});

test('an inotify watch on a deleted file is put on its ghost, the inode its fd gets; the restore\'s own events are not queued', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'inotifyghost');
  const target = await s.start('inotifyghost');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // The ghost names its inode as the watch does (the kernel's device number, as CRIU writes it).
  const files = critDecode(images, 'files.img') as { entries: Array<{ ify?: { wd: Array<{ wd: number; s_dev: number; i_ino: number }> } }> };
  const watch = files.entries.flatMap((e) => e.ify?.wd ?? []).find((w) => w.wd === 2);
  const ghost = critDecode(images, fs.readdirSync(images).find((n) => n.startsWith('ghost-file-'))!) as { entries: Array<{ dev: number; ino: number }> };
  assert.ok(watch, s.report());
  assert.deepEqual([ghost.entries[0]!.dev, ghost.entries[0]!.ino], [watch.s_dev, watch.i_ino], s.report());
  await s.expectPass(await s.restore(images, target));
  // The check can fail: SIGUSR2 drops the watch first.
  const again = await s.start('inotifyghost', { args: [s.mkdir('again')] });
  const images2 = s.mkdir();
  await s.dump(again, images2);
  const { output } = await s.finish(await s.restore(images2, again), 'SIGUSR2');
  assert.match(output, /^FAIL: .*watch 2/m, s.report());
});

test('a cwd and an fd in the /proc directory of a process that died come back so (a process of cryo\'s takes its pid while they are opened)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'deadproc');
  const target = await s.start('deadproc');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const remaps = critDecode(images, 'remap-fpath.img') as { entries: Array<{ remap_type: string }> };
  assert.deepEqual(remaps.entries.map((e) => e.remap_type), ['PROCFS', 'PROCFS'], s.report());
  await s.expectPass(await s.restore(images, target));
  // The check can fail: SIGUSR2 leaves the directory first.
  const again = await s.start('deadproc');
  const images2 = s.mkdir();
  await s.dump(again, images2);
  const { output } = await s.finish(await s.restore(images2, again), 'SIGUSR2');
  assert.match(output, /^FAIL: getcwd works/m, s.report());
});
