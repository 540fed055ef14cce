// CRIU_FAULT=N (zdtm --fault N): the failures CRIU injects at named points,
// and what must follow each: a dump that fails (or whose dumper is killed)
// leaves the tree running untouched, so that a second dump works; a restore
// that fails leaves no task behind and the images unchanged, so that a second
// restore works. memrand's child shares its memory copy-on-write, so the
// second cycle checks that nothing of it was lost.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, exists, imageChecksums, imagePids, runningFree, waitFor } from './harness.js';

const SEED = ['3'];

for (const fault of ['1', '3']) {
  test(`CRIU_FAULT=${fault}: the dump fails, the tree runs on untraced; dumped again, it restores whole`, { timeout: 60_000 }, async (t) => {
    const s = Session.for(t, `fault-dump-${fault}`);
    const target = await s.start('memrand', { args: [s.dir, ...SEED] });
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log'], { env: { CRIU_FAULT: fault } });
    if (fault === '1') assert.equal(r.signal, 'SIGKILL', `want the dumper killed${s.report()}`);
    else {
      assert.equal(r.code, 1, `want exit 1${s.report()}`);
      assert.match(r.stderr, /fault injected \(CRIU_FAULT=3\): pages of task \d+/, s.report());
    }
    await s.check(waitFor(`pid ${target.pid} to run free`, () => runningFree(target.pid), 5_000));
    const images = s.mkdir();
    await s.dump(target, images);
    await s.expectPass(await s.restore(images, target));
  });
}

for (const fault of ['2', '5']) {
  test(`CRIU_FAULT=${fault}: the restore fails, nothing is left, the images are unchanged; restored again, it is whole`, { timeout: 60_000 }, async (t) => {
    const s = Session.for(t, `fault-restore-${fault}`);
    const target = await s.start('memrand', { args: [s.dir, ...SEED] });
    const images = s.mkdir();
    await s.dump(target, images);
    const sums = imageChecksums(images);
    const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore-fault.log'], { env: { CRIU_FAULT: fault } });
    assert.equal(r.code, 1, `want exit 1${s.report()}`);
    assert.ok(!r.stderr.includes('    at '), `stack trace on stderr${s.report()}`);
    if (fault === '5') assert.match(r.stderr, /fault injected \(CRIU_FAULT=5\)/, s.report());
    for (const pid of imagePids(images)) assert.ok(!exists(pid), `pid ${pid} exists after the failed restore${s.report()}`);
    assert.deepEqual(imageChecksums(images), sums, `the images changed${s.report()}`);
    await s.expectPass(await s.restore(images, target));
  });
}
