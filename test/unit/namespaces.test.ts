// Namespaces at restore (CRIU's root_ns_mask): the root's ids against the
// dumper's, each task's against its parent's; only a pid namespace whose init
// is the root is carried, anything else is refused before a task is made.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { TaskKobjIdsEntrySchema, type TaskKobjIdsEntry } from '../../src/images/index.js';
import { NS_KINDS, restoreNamespaces } from '../../src/objects/namespaces.js';
import { CLONE } from '../../src/sys/index.js';

const base = { vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 10, netNsId: 11, ipcNsId: 12, utsNsId: 13, mntNsId: 14, userNsId: 15, cgroupNsId: 16, timeNsId: 17 };
const ids = (over: Partial<typeof base> = {}): TaskKobjIdsEntry => create(TaskKobjIdsEntrySchema, { ...base, ...over });

test('restore: a tree in the dumper\'s namespaces needs none; a root that is the init of its own pid namespace gets a new one', () => {
  assert.equal(restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids() }, { pid: 43, ppid: 42, ids: ids() }]), 0);
  assert.equal(restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids({ pidNsId: 99 }) }, { pid: 2, ppid: 1, ids: ids({ pidNsId: 99 }) }]), CLONE.NEWPID);
  // A zombie has no ids.
  assert.equal(restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids() }, { pid: 43, ppid: 42 }]), 0);
});

test('restore: every namespace kind cryo does not carry is refused, for the root and below it; a nested pid namespace too', () => {
  for (const k of NS_KINDS.filter((x) => !x.carried)) {
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids({ [k.idField]: 99 }) }]),
      new RegExp(`task 42 of the images is in a ${k.name} namespace of its own, which cryo does not restore yet`));
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids() }, { pid: 43, ppid: 42, ids: ids({ [k.idField]: 99 }) }]),
      new RegExp(`task 43 of the images is in a ${k.name} namespace nested in its parent's`));
  }
  assert.throws(() => restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids({ pidNsId: 99 }) }, { pid: 5, ppid: 1, ids: ids({ pidNsId: 98 }) }]), /task 5 .* pid namespace nested/);
  assert.throws(() => restoreNamespaces(ids(), [{ pid: 7, ppid: 0, ids: ids({ pidNsId: 99 }) }]), /task 7 .* not its init/);
});

test('restore: a root in uts and ipc namespaces of its own gets new ones; a task below it in another one is refused (as CRIU)', () => {
  const own = { utsNsId: 90, ipcNsId: 91 };
  assert.equal(restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids(own) }, { pid: 43, ppid: 42, ids: ids(own) }]), CLONE.NEWUTS | CLONE.NEWIPC);
  assert.equal(restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids({ ...own, pidNsId: 99 }) }]), CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWPID);
  for (const k of ['uts', 'ipc'] as const) {
    const field = k === 'uts' ? 'utsNsId' : 'ipcNsId';
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids(own) }, { pid: 43, ppid: 42, ids: ids({ ...own, [field]: 5 }) }]),
      new RegExp(`task 43 of the images is in a ${k} namespace nested in its parent's`));
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 42, ppid: 0, ids: ids() }, { pid: 43, ppid: 42, ids: ids({ [field]: 5 }) }]),
      new RegExp(`task 43 of the images is in a ${k} namespace nested in its parent's`));
  }
});
