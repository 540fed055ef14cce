import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, processTree } from './harness.js';

const linkRemaps = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('link_remap.'));

test('--link-remap: files deleted or replaced under their name but linked elsewhere come back as the same file', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'linkremap');
  const target = await s.start('linkremap');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--link-remap'] });
  // The dump keeps each file by a link of its own in the file's directory (or the nearest one left).
  assert.equal(linkRemaps(s.dir).length, 3, fs.readdirSync(s.dir).join(' '));
  const r = await s.restore(images, target);
  await s.expectPass(r);
});

test('without --link-remap such a file fails the dump clearly, and the task runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'linkremap-refused');
  const target = await s.start('linkremap');
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /linked.dat, deleted but still linked elsewhere \(1 links\); dump with --link-remap/, s.report());
  assert.deepEqual(linkRemaps(s.dir), []);
  await s.expectPass(target);
});

test('a dump that fails after making link remaps takes them back', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'linkremap-rollback');
  const target = await s.start('linkremap');
  const tree = processTree(target.pid);
  assert.equal(tree.length, 2, `tree ${tree.join(' ')}`);
  const images = s.mkdir();
  // The child dies once frozen: the parent is dumped (links made), then the dump fails.
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '--link-remap'], {
    env: { CRYO_FAULT: 'kill-task-after-freeze' },
  });
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /died during the dump/, s.report());
  assert.deepEqual(linkRemaps(s.dir), [], s.report());
  await s.expectPass(target);
});

test('link remap images decode with CRIU\'s crit (REMAP_TYPE LINKED to link_remap.N entries); with -R the links are removed and the task passes its check', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'linkremap-crit');
  const target = await s.start('linkremap');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true, extra: ['--link-remap'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const decode = (name: string) => {
    const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, name), '--pretty'], { encoding: 'utf8' });
    return (JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> }).entries;
  };
  const remaps = decode('remap-fpath.img') as Array<{ orig_id: number; remap_id: number; remap_type: string }>;
  const files = decode('files.img') as Array<{ id: number; reg?: { name: string } }>;
  const nameOf = (id: number) => files.find((f) => f.id === id)?.reg?.name ?? '?';
  const pairs = remaps.map((r) => `${r.remap_type} ${path.basename(nameOf(r.orig_id))} -> ${path.basename(nameOf(r.remap_id)).replace(/\d+$/, 'N')}`);
  // linked.dat twice: its fd and its mapping.
  assert.deepEqual(pairs.sort(), [
    'LINKED deep.dat -> link_remap.N', 'LINKED linked.dat -> link_remap.N', 'LINKED linked.dat -> link_remap.N',
    'LINKED swapped.dat -> link_remap.N',
  ], JSON.stringify(remaps));
  // As CRIU: the tree runs on, so the links go (its own check would see them).
  assert.deepEqual(linkRemaps(s.dir), []);
  await s.expectPass(target);
});

test('a link_remap.N name another file has (a dump beside ours) is left alone: the link takes the next free name; python3 reads its deleted file after restore', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'linkremap-taken');
  const d = s.mkdir('files');
  // Every name CRIU's scheme could pick for this small tree is someone else's.
  const foreign = Array.from({ length: 64 }, (_, i) => `link_remap.${i}`);
  for (const n of foreign) fs.writeFileSync(path.join(d, n), `foreign ${n}\n`);
  const py = [
    'import os, time, sys',
    `d = ${JSON.stringify(d)}`,
    'f = open(os.path.join(d, "kept.dat"), "w+"); f.write("kept contents"); f.flush()',
    'os.link(os.path.join(d, "kept.dat"), os.path.join(d, "other.dat")); os.unlink(os.path.join(d, "kept.dat"))',
    'print("READY", flush=True)',
    'signal.sigwait([signal.SIGUSR1])',
    'f.seek(0); print("PASS" if f.read() == "kept contents" else "FAIL: contents", flush=True)',
  ].join('\n');
  const target = await s.startCommand('linkremap-taken', ['/usr/bin/python3', '-c', `import signal; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n${py}`]);
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--link-remap'] });
  const made = linkRemaps(d).filter((n) => !foreign.includes(n));
  assert.equal(made.length, 1, fs.readdirSync(d).join(' '));
  assert.match(made[0]!, /^link_remap\.\d+\.\d+$/);
  const r = await s.restore(images, target);
  await s.expectPass(r);
  assert.deepEqual(linkRemaps(d).sort(), [...foreign].sort(), 'the restore left its link, or took a foreign one');
  for (const n of foreign) assert.equal(fs.readFileSync(path.join(d, n), 'utf8'), `foreign ${n}\n`);
});
