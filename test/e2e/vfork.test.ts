// --timeout bounds the seize, as CRIU's alarm: a parent held in vfork() never
// reaches a ptrace stop, so its dump fails in one line once the time is up
// (instead of waiting for ever), and the tree runs on.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, waitFor, signalPid } from './harness.js';

test('a parent held in vfork(): dump --timeout 1 gives up in one line, naming it; both run on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'vfork');
  const target = await s.start('vforkwait', { args: [] });
  const child = Number(/^child (\d+)$/m.exec(target.output())![1]);
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--timeout', '1']);
  assert.equal(r.code, 1, `want exit 1${s.report()}`);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms${s.report()}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `want one line${s.report()}`);
  assert.match(r.stderr, new RegExp(`task ${target.pid} did not stop for the seize in time \\(--timeout\\): it waits in vfork\\(\\)`), s.report());
  // cryo is gone: the child ends, the parent leaves its vfork() wait and checks.
  signalPid(child, 'SIGUSR1');
  await s.check(waitFor('the parent to print PASS', () => /^PASS$/m.test(target.output()), 5_000));
  assert.deepEqual(await target.wait(5_000), { exited: 0 }, s.report());
});
