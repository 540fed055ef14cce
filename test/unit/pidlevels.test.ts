// PidLevels (src/restore/pidns.ts): what a task of a nested pid namespace sees
// of its session and group, and the pids a helper standing in for a gone leader
// takes (cryo_ns_sids/pgids), or none where the leader was of a namespace above.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { create, CoreEntrySchema, PstreeEntrySchema, TaskKobjIdsEntrySchema } from '../../src/images/index.js';
import { PidLevels } from '../../src/restore/pidns.js';

type Ps = { pid: number; ppid: number; pgid: number; sid: number; ns: number; levels?: number[]; sids?: number[]; pgids?: number[] };

function levels(tasks: Ps[]): PidLevels {
  return new PidLevels(tasks.map((t) => ({
    pstree: create(PstreeEntrySchema, {
      pid: t.pid, ppid: t.ppid, pgid: t.pgid, sid: t.sid, threads: [t.pid],
      cryoNsPids: t.levels ?? [], cryoNsTids: t.levels ?? [], cryoNsSids: t.sids ?? [], cryoNsPgids: t.pgids ?? [],
    }),
    core: create(CoreEntrySchema, { ids: create(TaskKobjIdsEntrySchema, { pidNsId: t.ns }) }),
  })));
}

// The root (1) in namespace 10; its child 2 is pid 1 (init) of namespace 11, a session leader;
// 4 is a daemon there whose session and group leader (pid 3, "2" in 11) is gone;
// 5 is in 11 in the root's session and group (led from above: 0 there).
const tree: Ps[] = [
  { pid: 1, ppid: 0, pgid: 1, sid: 1, ns: 10 },
  { pid: 2, ppid: 1, pgid: 2, sid: 2, ns: 11, levels: [1], sids: [1], pgids: [1] },
  { pid: 4, ppid: 2, pgid: 3, sid: 3, ns: 11, levels: [3], sids: [2], pgids: [2] },
  { pid: 5, ppid: 2, pgid: 1, sid: 1, ns: 11, levels: [4], sids: [0], pgids: [0] },
];

test('seen: the session and group a nested task sees are the images\' numbers at its level, 0 for a leader above', () => {
  const p = levels(tree);
  assert.deepEqual([p.seen(4, 'sid'), p.seen(4, 'pgid')], [2, 2]);
  assert.deepEqual([p.seen(5, 'sid'), p.seen(5, 'pgid')], [0, 0]);
  assert.deepEqual([p.seen(2, 'sid'), p.seen(1, 'sid')], [1, 1]);
});

test('helperLevels: a gone leader of the task\'s own namespace gets its pid at every level; one above, none', () => {
  const p = levels(tree);
  assert.deepEqual(p.helperLevels(4, 'sid'), [3, 2]);
  assert.deepEqual(p.helperLevels(4, 'pgid'), [3, 2]);
  assert.equal(p.helperLevels(5, 'sid'), undefined);
  assert.deepEqual(p.helperLevels(1, 'sid'), [1]); // the root's namespace: its one pid
});

test('images without cryo_ns_sids (an older cryo): the leader seen through the tree, and no helper in a nested namespace', () => {
  const p = levels(tree.map(({ sids: _s, pgids: _g, ...t }) => t));
  assert.equal(p.seen(2, 'sid'), 1); // its own, the leader in the images
  assert.equal(p.seen(4, 'sid'), 0); // gone: not in the images
  assert.equal(p.helperLevels(4, 'sid'), undefined);
});
