// `cryo restore` without -d: cryo stays the restored task's parent, waits for
// it, and exits with the task's exit code.
import * as assert from 'node:assert/strict';
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
