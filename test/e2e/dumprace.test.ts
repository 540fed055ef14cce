// Dump races: tasks that come and go while the tree is being seized, zombies,
// two dumps of one tree at once. Every dump either succeeds with images that
// restore, or fails with one line and leaves the tree running untouched.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, procState, readOr, runningFree, waitFor } from './harness.js';

test('a tree that forks without pause: 25 dumps in a row all succeed, the last one restores and passes', { timeout: 240_000 }, async (t) => {
  const s = Session.for(t, 'forkstorm');
  const target = await s.start('forkstorm');
  let images = '';
  for (let i = 0; i < 25; i++) {
    images = s.mkdir();
    // The last one kills the tree (with every task frozen: none forks or exits meanwhile).
    await s.dump(target, images, { leaveRunning: i < 24 });
  }
  await s.expectPass(await s.restore(images, target));
});

test('dump of a zombie: refused with one line, exit 1, no image written, its parent untouched', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'zombie-root');
  // sh forks `true` and becomes sleep, which never reaps it: a zombie child.
  const parent = await s.startCommand('sh', ['/bin/sh', '-c', 'true & echo READY; exec sleep 1000']);
  let zombie = 0;
  await s.check(waitFor('the zombie child', () => {
    zombie = childrenOf(parent.pid).find((c) => procState(c) === 'Z') ?? 0;
    return zombie !== 0;
  }, 5_000));
  for (const extra of [[], ['-R']]) {
    const images = s.mkdir();
    const r = await s.cryo(['dump', '-t', String(zombie), '-D', images, '-o', 'dump.log', ...extra]);
    assert.equal(r.code, 1, `want exit 1${s.report()}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
    assert.match(lines[0]!, new RegExp(`task ${zombie} is a zombie`), s.report());
    assert.ok(readOr(path.join(images, 'dump.log'), '').includes(lines[0]!.replace(/^Error: /, '')), `the message is not in the log${s.report()}`);
    assert.deepEqual(fs.readdirSync(images).filter((n) => n.endsWith('.img')), [], `images were written${s.report()}`);
    assert.equal(procState(zombie), 'Z', `the zombie is gone${s.report()}`);
    assert.ok(runningFree(parent.pid), `its parent is not running free${s.report()}`);
  }
  await s.killTree(parent);
});
