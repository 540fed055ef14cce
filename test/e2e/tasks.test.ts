// Task states beyond running: zombies that died of signals, process groups
// whose leader is gone.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, procState, processTree, runningFree, waitFor } from './harness.js';

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

test('SIGTRAP handlers (also with SIGTRAP blocked) and an ignored SIGTRAP survive dump and restore', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'sigtrap').cycle('sigtrap');
});

test('SIGTRAP dispositions are untouched in a tree dumped with --leave-running', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sigtrap-r');
  const target = await s.start('sigtrap');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.expectPass(target);
});

test('a pending SIGTRAP fails the dump in one line, and the task runs on with it still pending', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sigtrap-pending');
  const target = await s.start('sigtrap', { args: [s.dir, 'pending'] });
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${target.pid}: a SIGTRAP is pending in thread ${target.pid}; cryo cannot dump it`, 'm'), s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  await s.check(waitFor(`pid ${target.pid} to run on, untraced`, () => runningFree(target.pid), 5_000));
  await s.expectPass(target);
});

test('the audit loginuid of each task comes back (the root\'s, a child\'s inherited one, a child\'s own)', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'loginuid').cycle('loginuid');
});

test('threads that shared a seccomp filter share it again: a later SECCOMP_FILTER_FLAG_TSYNC works (and fails where a thread had its own)', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'seccomptsync').cycle('seccomptsync');
});

for (const [mode, want] of [
  ['timekids', /^Error: task (\d+) \(nsrefuse\) has made a time namespace for its children \(time:\[\d+\]\), which cryo does not dump yet$/m],
  ['uts', /^Error: task (\d+) \(nsrefuse\) is in a uts namespace \(uts:\[\d+\]\) other than the tree root's \(cryo's own\), which cryo cannot dump: as CRIU, every task must be in the root's$/m],
  ['net', /^Error: task (\d+) \(nsrefuse\) is in a net namespace \(net:\[\d+\]\) other than the tree root's \(cryo's own\), which cryo cannot dump \(nor can CRIU\) while the root is in cryo's: a tree of several network namespaces needs its root in one of its own$/m],
  ['pidkids', /^Error: task (\d+) \(nsrefuse\) has made a pid namespace for its children \(unshare\(CLONE_NEWPID\), no child in it yet\), which cryo does not dump yet$/m],
] as const) {
  test(`a namespace cryo cannot carry (${mode}) fails the dump in one line naming the task, which runs on untouched`, { timeout: 30_000 }, async (t) => {
    const s = Session.for(t, `ns-${mode}`);
    const target = await s.start('nsrefuse', { args: [s.dir, mode] });
    const tree = processTree(target.pid);
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
    assert.equal(r.code, 1, s.report());
    const m = want.exec(r.stderr);
    assert.ok(m, `stderr: ${r.stderr}${s.report()}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
    assert.ok(tree.includes(Number(m[1])), `the message names task ${m[1]}, not one of the tree ${tree.join(' ')}`);
    await s.check(waitFor(`pid ${target.pid} to run on, untraced`, () => tree.every((p) => runningFree(p)), 5_000));
    await s.expectPass(target);
  });
}

test('a tree in cryo\'s own namespaces is not refused', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'ns-none').cycle('nsrefuse');
});
