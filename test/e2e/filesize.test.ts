// The size of a regular file, recorded on dump and checked on restore as CRIU
// does (files-reg.c): recorded for every regular file but one open
// O_WRONLY|O_APPEND (a log, which may grow meanwhile); a restore refuses a file
// whose size is no longer the recorded one, in one line naming it.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, imageChecksums, ourChildren, exists } from './harness.js';

/** The reg entries of files.img by file name (CRIU's crit): the size, if recorded. */
function recordedSizes(images: string): Map<string, number | undefined> {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, 'files.img')], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `crit decode files.img: ${r.stderr}`);
  const out = new Map<string, number | undefined>();
  for (const e of (JSON.parse(r.stdout) as { entries: Array<{ reg?: { name: string; size?: number | string } }> }).entries) {
    if (e.reg) out.set(path.basename(e.reg.name), e.reg.size === undefined ? undefined : Number(e.reg.size));
  }
  return out;
}

test('an O_WRONLY|O_APPEND file has no size in the images and may grow before the restore; the others have theirs', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'filesize-log');
  const target = await s.start('filesize');
  const images = s.mkdir();
  await s.dump(target, images);
  const sizes = recordedSizes(images);
  assert.equal(sizes.get('log'), undefined, `log (O_WRONLY|O_APPEND) has a size in files.img${s.report()}`);
  assert.equal(sizes.get('data'), 12, `data (O_RDWR|O_APPEND): size ${sizes.get('data')}, want 12${s.report()}`);
  assert.equal(sizes.get('plain'), 17, `plain: size ${sizes.get('plain')}, want 17${s.report()}`);
  assert.equal(sizes.get('mapped'), 7, `mapped: size ${sizes.get('mapped')}, want 7${s.report()}`);
  // The harness's output file is O_WRONLY|O_APPEND too: no size either.
  assert.equal(sizes.get('filesize.out'), undefined, `the output file has a size in files.img${s.report()}`);
  fs.appendFileSync(path.join(s.dir, 'log'), 'written while the task was away\n');
  fs.appendFileSync(path.join(s.dir, 'filesize.out'), 'written while the task was away\n');
  await s.expectPass(await s.restore(images, target));
});

for (const [name, grow] of [['data', 'an O_RDWR|O_APPEND file'], ['plain', 'an O_RDWR file'], ['mapped', 'a mapped file']] as const) {
  test(`${grow} whose size changed after the dump: the restore refuses it in one line naming it; restored once it is back`, { timeout: 30_000 }, async (t) => {
    const s = Session.for(t, `filesize-${name}`);
    const target = await s.start('filesize');
    const images = s.mkdir();
    await s.dump(target, images);
    const file = path.join(s.dir, name);
    const good = fs.readFileSync(file);
    fs.appendFileSync(file, 'grown\n');
    const sums = imageChecksums(images);
    const before = ourChildren();
    const pidfile = path.join(s.dir, 'bad.pid');
    const r = await s.cryo(['restore', '-D', images, '-d', '-o', 'restore.log', '--pidfile', pidfile]);
    if (r.code === 0) s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), target); // killed at the end
    assert.equal(r.code, 1, `want exit 1${s.report()}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
    assert.ok(lines[0]!.includes(`${file} has size ${good.length + 6}, not ${good.length}`), `the message does not name ${file} and its sizes${s.report()}`);
    assert.ok(!exists(target.pid), `pid ${target.pid} exists after the failed restore${s.report()}`);
    assert.deepEqual(ourChildren().filter((p) => !before.includes(p)), [], `the failed restore left processes${s.report()}`);
    assert.deepEqual(imageChecksums(images), sums, `the images changed${s.report()}`);
    fs.writeFileSync(file, good);
    await s.expectPass(await s.restore(images, target));
  });
}
