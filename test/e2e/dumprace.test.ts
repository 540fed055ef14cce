// Dump races: tasks that come and go while the tree is being seized, zombies,
// two dumps of one tree at once. Every dump either succeeds with images that
// restore, or fails with one line and leaves the tree running untouched.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, procState, processTree, readOr, runningFree, tracerPid, waitFor, type CryoResult } from './harness.js';

/** A live task runs free; the tree's zombie (tree.c has one) is untraced. */
function runningFreeOrZombie(pid: number): boolean {
  return runningFree(pid) || (procState(pid) === 'Z' && tracerPid(pid) === 0);
}

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
  // sh forks a child that exits a moment later, once sh has become sleep, which
  // never reaps it: a zombie child (sh itself may reap one that exits at once).
  const parent = await s.startCommand('sh', ['/bin/sh', '-c', 'sleep 0.3 & echo READY; exec sleep 1000']);
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

/** The loser of two dumps at once: exit 1, one line that says why, nothing in its dir that looks like a dump. */
function assertLoser(s: Session, r: CryoResult, pid: number, why: RegExp): void {
  assert.equal(r.code, 1, `want exit 1 from the losing dump${s.report()}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
  assert.match(lines[0]!, why, s.report());
  assert.ok(lines[0]!.includes(String(pid)), `the message does not name task ${pid}${s.report()}`);
  const imgs = fs.readdirSync(r.imagesDir!).filter((n) => /^(core-\d+|pstree|inventory)\.img$/.test(n));
  assert.deepEqual(imgs, [], `the losing dump wrote images${s.report()}`);
}

test('two dumps of one tree at once: exactly one succeeds, the other fails in one line, the images restore (10 rounds)', { timeout: 240_000 }, async (t) => {
  const s = Session.for(t, 'two-dumps');
  for (let round = 0; round < 10; round++) {
    const target = await s.start('tree');
    const tree = processTree(target.pid);
    const dirs = [s.mkdir(), s.mkdir()];
    const args = (d: string) => ['dump', '-t', String(target.pid), '-D', d, '-v4', '-o', 'dump.log'];
    const rs = await Promise.all(dirs.map((d) => s.cryo(args(d))));
    const won = rs.filter((r) => r.code === 0);
    assert.equal(won.length, 1, `round ${round}: ${won.length} dumps succeeded, want exactly one${s.report()}`);
    const winner = won[0]!;
    // The loser found the tree held by the winner, or already killed by it.
    assertLoser(s, rs.find((r) => r !== winner)!, target.pid, /already being traced|is a zombie|does not exist/);
    await s.check(s.gone(target, tree, winner.imagesDir));
    await s.expectPass(await s.restore(winner.imagesDir!, target));
  }
});

test('two dumps -R of one tree at once: each succeeds or fails saying the tree is traced; the tree runs on untouched (10 rounds)', { timeout: 240_000 }, async (t) => {
  const s = Session.for(t, 'two-dumps-R');
  const target = await s.start('tree');
  let images = '';
  let lost = 0;
  for (let round = 0; round < 10; round++) {
    const dirs = [s.mkdir(), s.mkdir()];
    const args = (d: string) => ['dump', '-t', String(target.pid), '-D', d, '-R', '-v4', '-o', 'dump.log'];
    const rs = await Promise.all(dirs.map((d) => s.cryo(args(d))));
    const won = rs.filter((r) => r.code === 0);
    // Two that did not overlap may both succeed; never may both fail.
    assert.ok(won.length >= 1, `round ${round}: both dumps failed${s.report()}`);
    for (const r of rs) if (r.code !== 0) assertLoser(s, r, target.pid, /already being traced by \d+ .*another dump\?/);
    lost += 2 - won.length;
    await s.check(waitFor(`the tree to run on after round ${round}`, () => processTree(target.pid).every(runningFreeOrZombie), 5_000));
    images = won[0]!.imagesDir!;
  }
  s.note(`${lost} of 10 rounds had a loser`);
  await s.killTree(target);
  await s.expectPass(await s.restore(images, target));
});

test('a full file system while writing pages: the message names the file, the errno and the sizes, also in the log; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'enospc');
  // A 1 MiB tmpfs of our own as the images dir (outside the session dir, unmounted at the end).
  const full = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-e2e-enospc-mnt-'));
  t.after(() => {
    spawnSync('umount', [full]);
    fs.rmdirSync(full);
  });
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full], { encoding: 'utf8' });
  assert.equal(m.status, 0, `mount tmpfs: ${m.stderr}`);
  const target = await s.start('memory');
  const log = path.join(s.dir, 'dump.log');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', full, '-v4', '-o', log]);
  assert.equal(r.code, 1, `want exit 1${s.report()}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
  const want = new RegExp(`pages-\\d+\\.img: No space left on device \\(ENOSPC\\) writing [\\d.]+ MiB of pages of task ${target.pid}; [\\d.]+ KiB written`);
  assert.match(lines[0]!, want, s.report());
  assert.ok(readOr(log, '').includes(lines[0]!.replace(/^Error: /, '')), `the message is not in the log${s.report()}`);
  assert.ok(runningFree(target.pid), `the task is not running free after the failed dump${s.report()}`);
  await s.expectPass(target);
});
