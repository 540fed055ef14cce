// Pid namespaces nested below the tree's (pidnest.c: the root is pid 1 of its
// namespace, a child unshares CLONE_NEWPID so its child is pid 1 of a second,
// and one below it makes a third). cryo does not carry them yet, as CRIU
// ("Can't dump nested pid namespace"): the dump fails in one line naming the
// task and the namespace it made, writes no pstree, and every task runs on
// with the same pids, parents, sessions and groups at every level.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, compileProgram, runningFree, waitFor } from './harness.js';

function nspid(pid: number): number[] {
  const m = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return (m?.[1] ?? '').trim().split(/\s+/).map(Number);
}

function descendants(pid: number): number[] {
  const kids = childrenOf(pid);
  return [...kids, ...kids.flatMap(descendants)];
}

test('nested pid namespaces (two levels below the tree\'s) are refused at dump in one line, and the tree runs on untouched', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'pidnest');
  const unshare = await s.startCommand('pidnest', ['unshare', '--fork', '--pid', compileProgram('pidnest'), s.dir]);
  const root = childrenOf(unshare.pid)[0]!;
  assert.ok(root, `unshare has no child${s.report()}`);
  const tasks = [root, ...descendants(root)];
  assert.equal(tasks.length, 6, `pidnest has ${tasks.length} tasks${s.report()}`);
  // Levels below the tree's: the deepest task sees itself two namespaces deeper than the root.
  const depth = Math.max(...tasks.map((p) => nspid(p).length)) - nspid(root).length;
  assert.equal(depth, 2, s.report());
  const before = new Map(tasks.map((p) => [p, nspid(p).join(' ')]));
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, `not one line: ${r.stderr}`);
  assert.match(r.stderr, /^Error: task \d+ \(pidnest\) has made a pid namespace for its children \(pid:\[\d+\]\), a pid namespace nested in the tree's \(nor does CRIU dump one\), which cryo does not dump yet$/m, s.report());
  assert.ok(!fs.existsSync(path.join(images, 'pstree.img')), 'a refused dump wrote pstree.img');
  for (const p of tasks) {
    assert.ok(runningFree(p), `task ${p} is not running free after the refused dump${s.report()}`);
    assert.equal(nspid(p).join(' '), before.get(p), s.report());
  }
  process.kill(root, 'SIGUSR1');
  await s.check(waitFor('pidnest to print PASS or FAIL', () => /^(PASS|FAIL)/m.test(unshare.output()), 10_000));
  assert.match(unshare.output(), /^PASS$/m, s.report());
});
