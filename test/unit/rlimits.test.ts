// Resource limits read from /proc/PID/limits, as prlimit(1) (prlimit64) reads them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseLimits, RLIM_NLIMITS } from '../../src/objects/rlimits.js';

/** prlimit's names, by RLIMIT_* index. */
const NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'];
const INF = 0xffffffffffffffffn;

test('the limits of a live process, read from /proc, are those prlimit64 gives, soft and hard, unlimited as RLIM_INFINITY', async (t) => {
  // Distinct values: open files 777 (soft and hard), address space soft 123456 KiB, core soft 0.
  const child = spawn('/bin/sh', ['-c', 'ulimit -n 777 && ulimit -Sv 123456 && ulimit -Sc 0 && echo ready && exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  const got = parseLimits(readFileSync(`/proc/${child.pid}/limits`, 'utf8'), `task ${child.pid}`);
  assert.equal(got.length, RLIM_NLIMITS);
  const r = spawnSync('prlimit', ['--pid', String(child.pid), '--raw', '--noheadings', '--output', 'RESOURCE,SOFT,HARD'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  const want = new Map(r.stdout.trim().split('\n').map((l) => {
    const [name, soft, hard] = l.trim().split(/\s+/);
    const v = (x: string) => (x === 'unlimited' ? INF : BigInt(x));
    return [name!, [v(soft!), v(hard!)]] as const;
  }));
  NAMES.forEach((n, i) => assert.deepEqual([got[i]!.cur, got[i]!.max], want.get(n), n));
  assert.deepEqual([got[7]!.cur, got[7]!.max], [777n, 777n]);
  assert.equal(got[9]!.cur, 123456n * 1024n);
  assert.equal(got[4]!.cur, 0n);
});

test('a limits text that is cut short or unreadable is refused in one line naming the task', () => {
  assert.throws(() => parseLimits('Limit  Soft Limit  Hard Limit  Units\n', 'task 7'), /^CryoError: task 7: \/proc limits has 0 limits, not 16$/);
  const bad = `Limit\n${'Max cpu time              lots                 unlimited            seconds\n'.repeat(16)}`;
  assert.throws(() => parseLimits(bad, 'task 7'), /task 7: cannot read the limit line "Max cpu time/);
});
