// Remote.batch (src/tracer/remote.ts): many system calls in a task with one
// ptrace stop, by the loop of the stub page; in order, each result returned,
// and none run after one that fails, which is named in the error.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { withHelper } from '../../src/tracer/seed.js';
import { RemoteError } from '../../src/tracer/remote.js';
import { NR } from '../../src/sys/index.js';

const PR_SET_NAME = 15;
const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

test('batch: every call runs in order in the task, with its result; more than one batch holds', () => {
  withHelper((rem) => {
    rem.scratch(4096);
    const name = rem.put(Buffer.from('batched\0'));
    const pid = Number(rem.call('getpid', NR.getpid));
    const calls = [
      ...Array.from({ length: 70 }, () => ({ name: 'getpid', nr: NR.getpid, args: [] })),
      { name: 'prctl(PR_SET_NAME)', nr: NR.prctl, args: [PR_SET_NAME, name] },
      { name: 'getppid', nr: NR.getppid, args: [] },
    ];
    const got = rem.batch(calls);
    assert.equal(got.length, 72);
    assert.deepEqual(got.slice(0, 70), Array(70).fill(BigInt(pid)));
    assert.equal(got[70], 0n);
    assert.equal(got[71], BigInt(process.pid));
    assert.equal(comm(rem.pid), 'batched');
  });
});

test('batch: a call that fails throws RemoteError naming it, and the calls after it do not run', () => {
  withHelper((rem) => {
    rem.scratch(4096);
    const name = rem.put(Buffer.from('afterfail\0'));
    const before = comm(rem.pid);
    assert.throws(() => rem.batch([
      { name: 'getpid', nr: NR.getpid, args: [] },
      { name: 'close(-1)', nr: NR.close, args: [-1] },
      { name: 'prctl(PR_SET_NAME)', nr: NR.prctl, args: [PR_SET_NAME, name] },
    ]), (e: unknown) => e instanceof RemoteError && /close\(-1\)/.test(e.message) && /EBADF/.test(e.message));
    assert.equal(comm(rem.pid), before, 'a call after the failed one ran');
    // The task goes on taking calls.
    assert.ok(rem.call('getpid', NR.getpid) > 0n);
  });
});
