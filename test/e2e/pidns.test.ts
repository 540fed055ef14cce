// A tree in a pid namespace of its own (`unshare --fork --pid`): dumped with the
// pids it has there (its root is pid 1), restored into a new pid namespace, where
// it has the same pids. The ids inside come from NSpid and friends in
// /proc/PID/status (check feature ns_pid). A tree in any other namespace of its
// own that cryo does not carry (time...; uts, ipc, net and mount are carried, see
// utsipc.test.ts, netns.test.ts and mntns.test.ts) is refused, at dump
// and at restore, and runs on untouched. Sessions that only helpers make
// again (sessions.c) come back whole.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, compileProgram, exists, runningFree, signalPid, waitFor } from './harness.js';

function nspid(pid: number): number[] {
  const m = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return (m?.[1] ?? '').trim().split(/\s+/).map(Number);
}

test('pid namespace: a bash loop as pid 1 of its namespace counts on after restore, still pid 1 there', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'pidns');
  // Each line: the count, bash's own pid ($$, 1 in its namespace), the pid a child sees.
  const script = 'i=0; while :; do i=$((i+1)); echo "$i $$ $(cut -d" " -f1 /proc/self/stat)"; sleep 0.1; done';
  const unshare = await s.startCommand('pidns', ['unshare', '--fork', '--pid', '/bin/bash', '-c', script], { ready: /^3 1 \d+$/m });
  const inner = childrenOf(unshare.pid)[0]!;
  assert.ok(inner, `unshare has no child${s.report()}`);
  assert.deepEqual(nspid(inner).slice(-1), [1], s.report());
  const lines = (out: string) => [...out.matchAll(/^(\d+) (\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(inner), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${inner} to go`, () => !exists(inner), 10_000));
  const atDump = Math.max(...lines(unshare.output()).map((l) => l[0]!));
  const pidfile = path.join(s.dir, 'restored.pid');
  // The action points of a restore into new namespaces, seen by a script.
  const actions = path.join(s.dir, 'actions.log');
  const actionScript = path.join(s.dir, 'script.sh');
  fs.writeFileSync(actionScript, `#!/bin/sh\necho "$CRTOOLS_SCRIPT_ACTION $CRTOOLS_INIT_PID" >> ${actions}\n`, { mode: 0o755 });
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--action-script', actionScript]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.deepEqual(fs.readFileSync(actions, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]),
    ['pre-restore', 'setup-namespaces', 'post-setup-namespaces', 'post-restore', 'pre-resume', 'post-resume'], s.report());
  assert.match(fs.readFileSync(actions, 'utf8'), new RegExp(`^setup-namespaces ${host}$`, 'm'), 'setup-namespaces without the root\'s pid');
  assert.deepEqual(nspid(host).slice(-1), [1], `the restored root is not pid 1 of its namespace${s.report()}`);
  assert.notEqual(fs.readlinkSync(`/proc/${host}/ns/pid`), fs.readlinkSync('/proc/self/ns/pid'), s.report());
  await s.check(waitFor(`the count to pass ${atDump + 3}`, () => Math.max(...lines(unshare.output()).map((l) => l[0]!)) >= atDump + 3, 10_000));
  const all = lines(unshare.output());
  assert.deepEqual(all.map((l) => l[0]), all.map((_, i) => i + 1), `the count has gaps${s.report()}`);
  for (const [n, self] of all) assert.equal(self, 1, `line ${n}: bash is pid ${self} in its namespace${s.report()}`);
  await s.killTree(restored);
});

test('a task that made a time namespace for its children (unshare without --fork) is refused: its children would be born into it', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ns-time-kids');
  // unshare(CLONE_NEWTIME) and no exec after it: only python's children would be in the new namespace.
  const py = 'import ctypes, time\nassert ctypes.CDLL(None, use_errno=True).unshare(0x80) == 0\nprint("READY", flush=True)\ntime.sleep(600)';
  const target = await s.startCommand('ns-time-kids', ['/usr/bin/python3', '-c', py]);
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /has made a time namespace for its children .* which cryo does not dump yet/, s.report());
  assert.ok(runningFree(target.pid), s.report());
});

/** sessions.c as pid 1 of a pid namespace of its own; its root task there, as cryo sees it. */
async function startSessions(s: Session, label: string): Promise<{ unshare: Awaited<ReturnType<Session['startCommand']>>; inner: number }> {
  const unshare = await s.startCommand(label, ['unshare', '--fork', '--pid', compileProgram('sessions')]);
  const inner = childrenOf(unshare.pid)[0]!;
  assert.ok(inner, `unshare has no child${s.report()}`);
  return { unshare, inner };
}

test('pid namespace: sessions only helpers make again (an orphan of a session leader reparented to pid 1 or to a subreaper; a task born in its grandparent\'s session before its parent and grandparent called setsid) come back with their sessions, groups and parents', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'sessions');
  const { unshare, inner } = await startSessions(s, 'sessions');
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(inner), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${inner} to go`, () => !exists(inner), 10_000));
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), /helper \d+ of session leader \d+ forks \d+, children of a reaper in its session/);
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), unshare);
  restored.signal('SIGUSR1');
  await s.check(waitFor('the verdict', () => /^(PASS|FAIL)/m.test(unshare.output()), 15_000));
  assert.match(unshare.output(), /^PASS$/m, s.report());
  await s.killTree(restored);

  // The check can fail: O leaves its session.
  const again = await startSessions(s, 'sessions-spoiled');
  // unshare passes no signal on: the program is its child.
  signalPid(again.inner, 'SIGUSR2');
  await s.check(waitFor('the verdict', () => /^(PASS|FAIL)/m.test(again.unshare.output()), 15_000));
  assert.match(again.unshare.output(), /^FAIL: O \(pid \d+\): in session \d+ and group \d+, not \d+ and \d+/m);
});
