// Task states beyond running: zombies that died of signals, process groups
// whose leader is gone.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, procState, processTree } from './harness.js';

test('zombies killed by SIGKILL and SIGSEGV or exited, and a group whose leader is gone, come back as they were', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'zombies');
  await s.cycle('zombies', {
    beforeSignal: async (r) => {
      // Four zombies (Z1, Z2, Z3, MZ) and M, live: the helper that stood in for L is gone.
      const states = processTree(r.pid).slice(1).map((p) => procState(p));
      assert.deepEqual(states.filter((x) => x === 'Z').length, 4, `states ${states.join(' ')}${s.report()}`);
      assert.equal(states.length, 5, `the restored tree has ${states.length} children: ${states.join(' ')}${s.report()}`);
    },
  });
});

test('tasks stopped by SIGSTOP (with more SIGSTOPs pending), SIGTSTP and SIGTTIN stay stopped by that signal, and run after SIGCONT', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'jobstop').cycle('jobstop');
});

test('dump --leave-running leaves stopped tasks stopped, by the same signals', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'jobstop-r');
  const target = await s.start('jobstop');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.expectPass(target);
});
