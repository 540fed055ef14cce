// The target programs themselves, with no checkpoint at all: each must PASS
// when simply signalled, and FAIL when asked to corrupt its own state first.
// If these fail, the e2e failures elsewhere say nothing about cryo.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, describeStatus } from './harness.js';

const PROGRAMS = ['memory', 'regs', 'files', 'misc', 'sleeper', 'threads', 'seccomp', 'seccompstrict', 'daemon', 'pipes', 'fdkinds', 'ghost', 'locks', 'sigchld', 'tree', 'timers', 'creds', 'sched', 'unix', 'unix2', 'memfd', 'mapdel', 'linkremap', 'shmem', 'sigstorm', 'uprobes', 'scm', 'epolldup', 'unixghost', 'cow', 'mapflags', 'hugetlb', 'aio',
  'sparseghost', 'deletedkinds', 'pipeflags', 'chroot', 'pidfddead', 'fdshare', 'leases', 'fown',
  'zombies', 'jobstop', 'sigtrap', 'loginuid', 'seccomptsync', 'nsrefuse', 'ttydev', 'ptyhung', 'ptydata', 'inet', 'memrand', 'sockfilter', 'rawsk', 'netlinksk', 'packetsk'];

for (const name of PROGRAMS) {
  // The sleeper checks that it ticked a few times.
  const startOptions = name === 'sleeper' ? { ready: /^tick 3$/m } : {};

  test(`${name} passes without a checkpoint`, { timeout: 20_000 }, async (t) => {
    const s = Session.for(t, `plain-${name}`);
    await s.expectPass(await s.start(name, startOptions));
  });

  test(`${name} fails when its state is corrupted (SIGUSR2)`, { timeout: 20_000 }, async (t) => {
    const s = Session.for(t, `corrupt-${name}`);
    const { status, output } = await s.finish(await s.start(name, startOptions), 'SIGUSR2');
    assert.equal(status?.exited, 1, `${describeStatus(status)}${s.report()}`);
    assert.match(output, /^FAIL: /m, s.report());
  });
}
