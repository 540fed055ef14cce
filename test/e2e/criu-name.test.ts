// bin/cryo behaves the same when it is invoked under the name `criu`.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, Session } from './harness.js';

test('invoked as `criu` (a symlink), bin/cryo dumps and restores the same way', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'criu-name');
  const criu = path.join(s.dir, 'criu');
  fs.symlinkSync(path.join(ROOT, 'bin/cryo'), criu);
  const v = spawnSync(criu, ['--version'], { encoding: 'utf8' });
  assert.equal(v.status, 0);
  assert.equal(v.stdout.split('\n')[0], 'Version: 4.2');
  const bad = spawnSync(criu, ['bogus'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /criu --help/, 'usage hints name the program as invoked');
  const before = process.env.CRYO;
  process.env.CRYO = criu;
  try {
    await s.cycle('misc');
  } finally {
    if (before === undefined) delete process.env.CRYO;
    else process.env.CRYO = before;
  }
});
