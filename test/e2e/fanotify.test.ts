// fanotify marks, also on mounts: their mount is found by mnt_id (check feature mnt_id).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { clone, FanotifyFileEntrySchema, FdTypes, ImageDir } from '../../src/images/index.js';
import { Session, critDecodeAll, describeStatus, runningFree } from './harness.js';

interface Mark { type: string; mflags: string; mask: string; ignored_mask: string; me?: { path?: string }; ie?: { f_handle?: { path?: string } } }

function decode(file: string): { entries: Array<Record<string, unknown>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `crit decode ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> };
}

/** The program bind-mounts DIR/mnt on itself; undo it whatever happened. */
function unmount(s: Session): void {
  spawnSync('umount', ['-l', path.join(s.dir, 'mnt')]);
}

test('fanotify: inode, directory and mount marks with masks, ignored masks and mark flags; events after restore', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'fanotify');
  try {
    const target = await s.start('fanotify');
    const images = s.mkdir();
    await s.dump(target, images);
    assert.deepEqual(critDecodeAll(images), [], s.report());
    const groups = decode(path.join(images, 'files.img')).entries.filter((e) => e['type'] === 'FANOTIFY');
    assert.equal(groups.length, 2, s.report());
    const marks = groups.flatMap((g) => (g['ffy'] as { mark: Mark[] }).mark);
    assert.deepEqual(marks.map((m) => m.type).sort(), ['INODE', 'INODE', 'INODE', 'MOUNT'], JSON.stringify(marks));
    assert.equal(marks.find((m) => m.type === 'MOUNT')?.me?.path, path.join(s.dir, 'mnt'));
    assert.deepEqual(marks.filter((m) => m.ie).map((m) => m.ie?.f_handle?.path).sort(),
      ['mnt/watched', 'wdir', 'wdir2'].map((n) => path.join(s.dir, n)));
    await s.expectPass(await s.restore(images, target));
  } finally {
    unmount(s);
  }
});

test('fanotify: the restored program notices a mark lost (SIGUSR2 removes FAN_MODIFY)', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'fanotify-corrupt');
  try {
    const target = await s.start('fanotify');
    const images = s.mkdir();
    await s.dump(target, images);
    const { status, output } = await s.finish(await s.restore(images, target), 'SIGUSR2');
    assert.equal(status?.exited, 1, `${describeStatus(status)}${s.report()}`);
    assert.match(output, /^FAIL: group A fdinfo changed/m, s.report());
    assert.match(output, /^check failed: file mark: events 0x8 .* want FAN_MODIFY\|FAN_CLOSE_WRITE$/m, s.report());
  } finally {
    unmount(s);
  }
});

test('fanotify in the older layout (fanotify.img, marks in fanotify-mark.img) restores with --deprecated, and only with it', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'fanotify-legacy');
  try {
    const target = await s.start('fanotify');
    const images = s.mkdir();
    await s.dump(target, images);
    // Move the groups out of files.img: group entries without marks, marks apart.
    const dir = ImageDir.open(images, { write: true });
    try {
      const files = dir.read('files');
      const groups = files.filter((f) => f.type === FdTypes.FANOTIFY).map((f) => f.ffy!);
      assert.equal(groups.length, 2);
      dir.write('files', files.filter((f) => f.type !== FdTypes.FANOTIFY));
      dir.write('fanotify', groups.map((g) => {
        const bare = clone(FanotifyFileEntrySchema, g);
        bare.mark = [];
        return bare;
      }));
      dir.write('fanotifyMark', groups.flatMap((g) => g.mark));
    } finally {
      dir.close();
    }
    assert.deepEqual(critDecodeAll(images), [], s.report());
    const refused = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'refused.log']);
    assert.notEqual(refused.code, 0, s.report());
    assert.match(refused.stderr, /fanotify-mark\.img .*--deprecated/, s.report());
    await s.expectPass(await s.restore(images, target, { extra: ['--deprecated'] }));
  } finally {
    unmount(s);
  }
});

test('fanotify: a filesystem mark, which CRIU\'s images cannot hold, fails the dump clearly and the task runs on', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'fanotify-sb');
  try {
    const target = await s.start('fanotify', { args: [s.dir, 'filesystem'] });
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
    assert.notEqual(r.code, 0, s.report());
    assert.match(r.stderr, /^Error: task \d+ fd 3: a fanotify mark CRIU's images have no place for .*: fanotify sdev:[0-9a-f]+ mflags:0 mask:8 ignored_mask:0$/m, s.report());
    assert.ok(runningFree(target.pid), `the task must run on after the failed dump${s.report()}`);
  } finally {
    unmount(s);
  }
});
