// Character devices safe to reopen by path (/dev/null, zero, full, random,
// urandom): dumped as regular-file entries, as CRIU does, and reopened with
// their flags. /dev/tty and pty pairs are in pty.test.ts.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll } from './harness.js';

test('/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom come back with their flags and behave as before', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'chardev');
  await s.cycle('chardev', {
    afterDump: (images) => {
      assert.deepEqual(critDecodeAll(images), [], s.report());
      const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, 'files.img')], { encoding: 'utf8' });
      const names = (JSON.parse(r.stdout) as { entries: Array<{ type: string; reg?: { name: string } }> }).entries
        .filter((e) => e.type === 'REG')
        .map((e) => e.reg!.name);
      for (const d of ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']) {
        assert.ok(names.includes(d), `no regular-file entry for ${d}: ${names.join(' ')}`);
      }
    },
  });
});

test('chardev without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2', { timeout: 30_000 }, async (t) => {
  for (const [sig, want, code] of [['SIGUSR1', /^PASS$/m, 0], ['SIGUSR2', /^FAIL: fd \d+ is not \/dev\/zero/m, 1]] as const) {
    const s = Session.for(t, `chardev-plain-${sig}`);
    const target = await s.start('chardev');
    const { status, output } = await s.finish(target, sig);
    assert.equal(status?.exited, code, s.report());
    assert.match(output, want, s.report());
  }
});
