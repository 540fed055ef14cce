// Kernel facts: probed once, when first asked, and shared by check, dump and
// restore; and a kcmp that fails never makes one open file two.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { Kerndat } from '../../src/kerndat.js';
import { FileTable } from '../../src/objects/files/table.js';
import { CryoError } from '../../src/context.js';

test('kerndat: each fact is probed once and kept (the same answer object each time)', () => {
  const k = new Kerndat();
  const a = k.kcmpFile();
  assert.equal(a.ok, true, a.why);
  assert.equal(k.kcmpFile(), a);
  const u = k.uffdFeatures();
  assert.equal(k.uffdFeatures(), u);
  assert.equal(k.capEff(), k.capEff());
});

test('kcmp: fds of one open file are found as one; a comparison that fails is an error naming the task and fds, never two files', () => {
  const t = new FileTable();
  const fd = fs.openSync('/dev/null', 'r');
  const dup = fs.openSync(`/proc/self/fd/${fd}`, 'r'); // another open of the same file
  try {
    t.rememberDescription(process.pid, fd, 'k', 7);
    assert.equal(t.sharedWith(process.pid, fd, 'k'), 7);
    assert.equal(t.sharedWith(process.pid, dup, 'k'), undefined);
    // A task that is gone: kcmp fails (ESRCH).
    let gone = 4_000_000;
    while (fs.existsSync(`/proc/${gone}`)) gone++;
    assert.throws(() => t.sharedWith(gone, fd, 'k'), (e: unknown) => e instanceof CryoError && new RegExp(`^task ${gone}: fd ${fd} cannot be compared with fd ${fd} of task ${process.pid}: .*ESRCH`).test(e.message));
  } finally {
    fs.closeSync(fd);
    fs.closeSync(dup);
  }
});
