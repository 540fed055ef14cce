// `cryo check` as a user runs it: the built bin/cryo (run `npm run build` first).
import { before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/cryo');

function cryo(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const cwd = mkdtempSync(path.join(tmpdir(), 'cryo-check-'));
  try {
    const r = spawnSync(BIN, ['check', ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

describe('cryo check', () => {
  before(() => {
    assert.ok(existsSync(path.join(ROOT, 'dist/check.js')), 'dist is missing: run `npm run build` first');
  });

  it('prints "Looks good." and exits 0', () => {
    assert.deepEqual(cryo(), { code: 0, stdout: 'Looks good.\n', stderr: '' });
  });

  it('still says it at -v0 (a message, not a log line)', () => {
    assert.deepEqual(cryo('-v0'), { code: 0, stdout: 'Looks good.\n', stderr: '' });
  });

  it('--feature NAME prints "NAME is supported" for what this machine has', () => {
    for (const name of ['pidfd_store', 'clone3_set_tid', 'get_rseq_conf', 'pagemap_scan', 'timens', 'ns_pid', 'uffd', 'uffd-noncoop']) {
      assert.deepEqual(cryo('--feature', name), { code: 0, stdout: `${name} is supported\n`, stderr: '' }, name);
    }
  });

  it('--feature mem_dirty_track: not supported here (no soft-dirty), exit 1, one line', () => {
    const r = cryo('--feature', 'mem_dirty_track');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Error: mem_dirty_track is not supported: Dirty tracking is OFF\.[^\n]*\n$/);
  });

  it('an unknown feature: exit 1 with one error line', () => {
    const r = cryo('--feature', 'no_such_feature');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
    assert.match(r.stderr, /^Error: .*no_such_feature/i);
  });

  it('--all: warns about soft-dirty, says CRIU\'s "Looks good but ..." and exits 1', () => {
    const r = cryo('--all');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'Looks good but some kernel features are missing\n'
      + 'which, depending on your process tree, may cause\ndump or restore failure.\n');
    assert.match(r.stderr, /^Warn: Dirty tracking is OFF\./m);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  });
});
