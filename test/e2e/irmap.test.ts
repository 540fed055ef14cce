// inotify watches whose file handle does not give a usable path: the path is
// found by scanning (irmap), with --force-irmap, --irmap-scan-path and the
// irmap-cache image; or restore opens the handle.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, describeStatus, readOr, runningFree } from './harness.js';

interface Wd { wd: number; f_handle: { path?: string } }

function crit(file: string): Array<Record<string, unknown>> {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `crit decode ${file}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> }).entries;
}

/** The inotify watches of files.img, by wd. */
function watches(images: string): Map<number, Wd> {
  const ify = crit(path.join(images, 'files.img')).filter((e) => e['type'] === 'INOTIFY');
  assert.equal(ify.length, 1, JSON.stringify(ify));
  return new Map((ify[0]!['ify'] as { wd: Wd[] }).wd.map((w) => [w.wd, w]));
}

function sh(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/**
 * DIR/a/F and DIR/h/F2 are one inode (F2 made first, so that the kernel names
 * the inode by F when it opens the handle); the program watches DIR/a/F and
 * DIR/h; then a tmpfs hides DIR/a. The handle still opens, as DIR/a/F, a name
 * that now leads into the tmpfs.
 */
async function overmounted(s: Session) {
  const a = path.join(s.dir, 'a');
  const h = path.join(s.dir, 'h');
  fs.mkdirSync(a);
  fs.mkdirSync(h);
  fs.writeFileSync(path.join(h, 'F2'), 'data\n');
  fs.linkSync(path.join(h, 'F2'), path.join(a, 'F'));
  const target = await s.start('inotify', { args: [path.join(a, 'F'), path.join(h, 'F2'), h] });
  sh('mount', '-t', 'tmpfs', 'cryo-irmap-test', a);
  return { a, h, target };
}

test('--force-irmap: a watch whose name is overmounted is dumped as the path the scan finds, and restored', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'irmap-force');
  let a: string | undefined;
  try {
    const o = await overmounted(s);
    a = o.a;
    const images = s.mkdir();
    await s.dump(o.target, images, { extra: ['--force-irmap', '--irmap-scan-path', o.h] });
    assert.deepEqual(critDecodeAll(images), [], s.report());
    const w = watches(images);
    assert.equal(w.get(1)?.f_handle.path, path.join(o.h, 'F2'), s.report());
    assert.equal(w.get(2)?.f_handle.path, o.h, s.report());
    // The scan, not the handle, named it: the log says so, and the cache holds it.
    assert.match(readOr(path.join(images, 'dump.log'), ''), new RegExp(`irmap: scanned ${path.join(o.h, 'F2')}$`, 'm'), s.report());
    const cache = crit(path.join(images, 'irmap-cache')).map((e) => e['path']).sort();
    assert.deepEqual(cache, [o.h, path.join(o.h, 'F2')], s.report());
    sh('umount', o.a);
    a = undefined;
    await s.expectPass(await s.restore(images, o.target));
  } finally {
    if (a) spawnSync('umount', ['-l', a]);
  }
});

test('without --force-irmap the same watch is dumped without a path and restored by its file handle', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'irmap-handle');
  let a: string | undefined;
  try {
    const o = await overmounted(s);
    a = o.a;
    const images = s.mkdir();
    await s.dump(o.target, images);
    const w = watches(images);
    assert.equal(w.get(1)?.f_handle.path, undefined, s.report());
    assert.equal(w.get(2)?.f_handle.path, o.h, s.report());
    assert.doesNotMatch(readOr(path.join(images, 'dump.log'), ''), /irmap: scann/, s.report());
    // DIR/a is still hidden: only the handle leads to the inode.
    await s.expectPass(await s.restore(images, o.target));
  } finally {
    if (a) spawnSync('umount', ['-l', a]);
  }
});

test('the irmap cache of one dump names the inode for the next (work dir), checked again before use', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'irmap-cache');
  let a: string | undefined;
  try {
    const o = await overmounted(s);
    a = o.a;
    const first = s.mkdir();
    await s.dump(o.target, first, { leaveRunning: true, extra: ['--force-irmap', '--irmap-scan-path', o.h] });
    const second = s.mkdir();
    const log = path.join(s.dir, 'second.log');
    // No scan path this time: only the cache in the work dir knows where F2 is.
    const r = await s.cryo(['dump', '-t', String(o.target.pid), '-D', second, '-W', first, '-v4', '-o', log, '--force-irmap']);
    s.ok(r);
    assert.match(readOr(log, ''), new RegExp(`irmap: found ${path.join(o.h, 'F2')} in cache$`, 'm'), s.report());
    assert.equal(watches(second).get(1)?.f_handle.path, path.join(o.h, 'F2'), s.report());
    await s.gone(o.target, [o.target.pid]);
    // A cache entry that no longer leads to the inode is dropped: the dump fails
    // (nothing else finds it) and the task runs on.
    const again = await s.startCommand('inotify-2', [compileProgram('inotify'), path.join(o.h, 'F2'), path.join(o.h, 'F2'), o.h]);
    fs.renameSync(path.join(o.h, 'F2'), path.join(o.h, 'F3'));
    const stale = await s.cryo(['dump', '-t', String(again.pid), '-D', s.mkdir(), '-W', first, '-v4', '-o', path.join(s.dir, 'stale.log'), '--force-irmap']);
    assert.notEqual(stale.code, 0, s.report());
    assert.match(stale.stderr, /inotify watch 1: cannot find a path to the watched inode/, s.report());
    assert.match(readOr(path.join(s.dir, 'stale.log'), ''), new RegExp(`irmap: cached ${path.join(o.h, 'F2')} is no longer `), s.report());
    assert.ok(runningFree(again.pid), s.report());
  } finally {
    if (a) spawnSync('umount', ['-l', a]);
  }
});

test('overlayfs cannot open its file handles: the watches are found by scanning --irmap-scan-path, or the dump fails clearly', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'irmap-overlay');
  const ov = (n: string) => path.join(s.dir, 'ov', n);
  for (const d of ['l', 'u', 'w', 'm']) fs.mkdirSync(ov(d), { recursive: true });
  fs.writeFileSync(path.join(ov('l'), 'f'), 'lower\n');
  sh('mount', '-t', 'overlay', 'cryo-irmap-test', '-o', `lowerdir=${ov('l')},upperdir=${ov('u')},workdir=${ov('w')}`, ov('m'));
  try {
    const f = path.join(ov('m'), 'f');
    const target = await s.start('inotify', { args: [f, f, ov('m')] });
    const failed = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
    assert.notEqual(failed.code, 0, s.report());
    assert.match(failed.stderr, /inotify watch \d: cannot find a path to the watched inode .*--irmap-scan-path/, s.report());
    assert.ok(runningFree(target.pid), `the task must run on after the failed dump${s.report()}`);
    const images = s.mkdir();
    await s.dump(target, images, { extra: ['--irmap-scan-path', ov('m')] });
    assert.deepEqual(critDecodeAll(images), [], s.report());
    const w = watches(images);
    assert.equal(w.get(1)?.f_handle.path, f, s.report());
    assert.equal(w.get(2)?.f_handle.path, ov('m'), s.report());
    await s.expectPass(await s.restore(images, target));
  } finally {
    spawnSync('umount', ['-l', ov('m')]);
  }
});

test('inotify watches on tmpfs (a file, its directory) are dumped by path and restored', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'inotify-tmpfs');
  const dir = path.join(s.dir, 't');
  fs.mkdirSync(dir);
  sh('mount', '-t', 'tmpfs', 'cryo-irmap-test', dir);
  try {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, '');
    const target = await s.start('inotify', { args: [f, f, dir] });
    const images = s.mkdir();
    await s.dump(target, images);
    assert.deepEqual(critDecodeAll(images), [], s.report());
    const w = watches(images);
    assert.deepEqual([w.get(1)?.f_handle.path, w.get(2)?.f_handle.path], [f, dir], s.report());
    await s.expectPass(await s.restore(images, target));
  } finally {
    spawnSync('umount', ['-l', dir]);
  }
});

test('inotify.c after restore notices a lost watch (SIGUSR2 removes wd 1)', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'inotify-corrupt');
  const f = path.join(s.dir, 'f');
  fs.writeFileSync(f, '');
  const target = await s.start('inotify', { args: [f, f, s.dir] });
  const images = s.mkdir();
  await s.dump(target, images);
  const { status, output } = await s.finish(await s.restore(images, target), 'SIGUSR2');
  assert.equal(status?.exited, 1, `${describeStatus(status)}${s.report()}`);
  assert.match(output, /^FAIL: fdinfo changed/m, s.report());
  assert.match(output, /^check failed: watch 1 .*: events 0x0, want IN_MODIFY\|IN_CLOSE_WRITE$/m, s.report());
});
