// `cryo restore` without -d: cryo stays the restored task's parent, waits for
// it, and exits with the task's exit code.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { Session } from './harness.js';

async function attachedRun(label: string, t: Parameters<typeof Session.for>[0], sig: NodeJS.Signals) {
  const s = Session.for(t, label);
  const target = await s.start('files');
  const images = s.mkdir();
  await s.dump(target, images);
  const { target: restored, done } = await s.restoreAttached(images, target);
  restored.signal(sig);
  const r = await done;
  await s.check(restored.wait(5_000));
  return { s, r, output: restored.output() };
}

test('restore without -d: cryo waits and exits 0 when the task PASSes', { timeout: 30_000 }, async (t) => {
  const { s, r, output } = await attachedRun('attached-pass', t, 'SIGUSR1');
  assert.match(output, /^PASS$/m, s.report());
  assert.equal(r.code, 0, `cryo's exit code is not the task's${s.report()}`);
});

test("restore without -d: cryo exits with the task's exit code 1", { timeout: 30_000 }, async (t) => {
  // SIGUSR2 makes the program corrupt its own state: it prints FAIL and exits 1.
  const { s, r, output } = await attachedRun('attached-fail', t, 'SIGUSR2');
  assert.match(output, /^FAIL: /m, s.report());
  assert.equal(r.code, 1, `cryo's exit code is not the task's${s.report()}`);
});

test('restore -d -S (--restore-sibling): the root becomes a child of cryo\'s parent', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sibling');
  const target = await s.start('misc');
  const images = s.mkdir();
  await s.dump(target, images);
  const restored = await s.restore(images, target, { extra: ['-S'] });
  const ppid = Number(fs.readFileSync(`/proc/${restored.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
  assert.equal(ppid, process.pid, `the restored root's parent is ${ppid}, not the test process ${process.pid}${s.report()}`);
  await s.expectPass(restored);
});

test('restore -S without -d is refused as CRIU refuses it', { timeout: 20_000 }, async (t) => {
  const s = Session.for(t, 'sibling-nod');
  const r = await s.cryo(['restore', '-S', '-D', s.mkdir()]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /restore-sibling/, s.report());
});
