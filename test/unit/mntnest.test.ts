// Several mount namespaces of one tree, on captured mountinfo and made-up
// images: how their mounts are classified across them at dump, which tasks'
// namespaces the restore takes, and where a link between two mounts of one
// file system is made.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseMountinfo } from '../../src/proc/mountinfo.js';
import { classify } from '../../src/objects/mntns/dump.js';
import { commonMount, type MntNsImages } from '../../src/objects/mntns/restore.js';
import { restoreNamespaces } from '../../src/objects/namespaces.js';
import { create, MntEntrySchema, TaskKobjIdsEntrySchema, type TaskKobjIdsEntry } from '../../src/images/index.js';
import { CLONE } from '../../src/sys/index.js';

// The root's namespace (a tmpfs at /t) and a child's unshared from it: copies of both, a tmpfs of its own.
const ROOT_NS = parseMountinfo(`100 90 254:0 / / rw,relatime - ext4 /dev/vda rw
101 100 0:40 / /t rw,relatime shared:5 - tmpfs a rw
`);
const CHILD_NS = parseMountinfo(`200 190 254:0 / / rw,relatime - ext4 /dev/vda rw
201 200 0:40 / /t rw,relatime shared:5 - tmpfs a rw
202 200 0:41 / /u rw,relatime - tmpfs b rw
203 200 0:41 /sub /v rw,relatime - tmpfs b rw
`);
const nsOf = new Map([...ROOT_NS.map((m) => [m.mntId, 0] as const), ...CHILD_NS.map((m) => [m.mntId, 1] as const)]);

describe('several mount namespaces at dump', () => {
  it('the other namespace\'s root and its copy of a tmpfs are bound from the root\'s; its own tmpfs is made anew, its bind of it bound', () => {
    const roles = classify([...ROOT_NS, ...CHILD_NS], new Map(), (m) => `task ${nsOf.get(m.mntId)}`, undefined, [], nsOf);
    assert.deepEqual(roles.get(100), { role: 'root' });
    assert.deepEqual(roles.get(200), { role: 'bind', from: 100 });
    assert.deepEqual(roles.get(101), { role: 'new' });
    assert.deepEqual(roles.get(201), { role: 'bind', from: 101 });
    assert.deepEqual(roles.get(202), { role: 'new' });
    assert.deepEqual(roles.get(203), { role: 'bind', from: 202 });
  });
  it('each namespace must have one root mount, named in the refusal', () => {
    const two = parseMountinfo('300 290 254:0 / / rw - ext4 /dev/vda rw\n301 291 0:41 / /w rw - tmpfs b rw\n');
    const n = new Map([...nsOf, [300, 2], [301, 2]]);
    assert.throws(() => classify([...ROOT_NS, ...CHILD_NS, ...two], new Map(), (m) => `task of ns ${n.get(m.mntId)}`, undefined, [], n),
      /task of ns 2: its mount namespace has 2 root mounts/);
  });
  it('one namespace alone classifies as before (no nsOf)', () => {
    const roles = classify(ROOT_NS, new Map(), 'task 1');
    assert.deepEqual([...roles.values()], [{ role: 'root' }, { role: 'new' }]);
  });
});

const base = { vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 10, netNsId: 11, ipcNsId: 12, utsNsId: 13, mntNsId: 14, userNsId: 15, cgroupNsId: 16, timeNsId: 17 };
const ids = (over: Partial<typeof base> = {}): TaskKobjIdsEntry => create(TaskKobjIdsEntrySchema, { ...base, ...over });

describe('several mount namespaces at restore', () => {
  it('a task below a root with its own mount namespace may be in another one of the tree\'s', () => {
    assert.equal(restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids({ mntNsId: 90 }) }, { pid: 2, ppid: 1, ids: ids({ mntNsId: 91 }) }, { pid: 3, ppid: 2, ids: ids({ mntNsId: 90 }) }]), CLONE.NEWNS);
  });
  it('but never in the dumper\'s, nor below a root in the dumper\'s', () => {
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids({ mntNsId: 90 }) }, { pid: 2, ppid: 1, ids: ids() }]), /task 2 of the images is in the dumper's mount namespace while the tree's root has one of its own/);
    assert.throws(() => restoreNamespaces(ids(), [{ pid: 1, ppid: 0, ids: ids() }, { pid: 2, ppid: 1, ids: ids({ mntNsId: 91 }) }]), /task 2 of the images is in a mnt namespace nested in its parent's/);
  });
});

const entry = (mntId: number, parentMntId: number, root: string, mountpoint: string, rootDev = 40) => create(MntEntrySchema, { mntId, parentMntId, root, mountpoint, rootDev, fstype: 5 });

describe('links between two mounts of one file system', () => {
  // The tmpfs at /t (made anew), a bind of its /1 at /x in the root's namespace, a bind of its /2 at /y in another.
  const t = entry(101, 100, '/', '/t');
  const x = entry(102, 100, '/1', '/x');
  const y = entry(201, 200, '/2', '/y');
  const nsOf2 = new Map([[101, 7], [102, 7], [201, 8]]);
  const imgs: MntNsImages[] = [
    { nsId: 7, order: [t, x], roles: new Map([[101, { role: 'new' }], [102, { role: 'bind', from: 101 }]]), tmpfs: new Map(), nsOf: nsOf2 },
    { nsId: 8, order: [y], roles: new Map([[201, { role: 'bind', from: 101 }]]), tmpfs: new Map(), nsOf: nsOf2 },
  ];
  it('is made on the mount both were bound from, in its namespace, both paths converted to it', () => {
    assert.deepEqual(commonMount(imgs, 102, '/x/F.ghost', 201, '/y/F'), { nsId: 7, a: '/t/1/F.ghost', b: '/t/2/F' });
  });
  it('is not made across file systems', () => {
    assert.equal(commonMount(imgs, 102, '/x/F', 999, '/z/F'), undefined);
  });
});
