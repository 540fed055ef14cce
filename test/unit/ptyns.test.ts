// Terminal owners of a tree in its own user namespace (ptyns.ts): tty-info.img
// holds them as the tree sees them, as CRIU's userns_uid; a pty slave's owner,
// which the restore sets again, must be mapped; the others (a master, /dev/tty,
// the console) are written as the tree sees an unmapped owner, the overflow id.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, TtyInfoEntrySchema, TtyPtyEntrySchema, TtyType } from '../../src/images/index.js';
import { FileTable } from '../../src/objects/files/table.js';
import { ttyOwnersToNs } from '../../src/objects/files/ptyns.js';
import { IdView, parseIdMap } from '../../src/objects/userns.js';

const view = new IdView(parseIdMap('0 100000 65536\n'), parseIdMap('0 200000 65536\n'));

function info(id: number, type: TtyType, uid: number, gid: number) {
  return create(TtyInfoEntrySchema, {
    id, type, locked: false, exclusive: false, packetMode: false, sid: 0, pgrp: 0, rdev: 0, uid, gid,
    ...(type === TtyType.PTY ? { pty: create(TtyPtyEntrySchema, { index: id >> 1 }) } : {}),
  });
}

test('terminal owners: a pty slave\'s as the tree sees it; a master, /dev/tty and the console unmapped become the overflow id', () => {
  const f = new FileTable();
  f.ttyInfos.push(info(2, TtyType.PTY, 100005, 200005), info(3, TtyType.PTY, 0, 0), info(2012, TtyType.CTTY, 0, 5), info(2004, TtyType.CONSOLE, 100000, 0));
  ttyOwnersToNs(f, view, 'task 7 (x)');
  assert.deepEqual(f.ttyInfos.map((i) => [i.id, i.uid, i.gid]), [[2, 5, 5], [3, 65534, 65534], [2012, 65534, 65534], [2004, 0, 65534]]);
});

test('terminal owners: a pty slave owned by an id the tree\'s user namespace does not map is refused, naming the task and terminal', () => {
  const f = new FileTable();
  f.ttyInfos.push(info(4, TtyType.PTY, 0, 200000));
  assert.throws(() => ttyOwnersToNs(f, view, 'task 7 (x)'), /^CryoError: task 7 \(x\): terminal 4: uid 0 has no mapping in the tree's user namespace/);
});

test('terminal owners: without a user namespace of the tree\'s, nothing changes', () => {
  const f = new FileTable();
  f.ttyInfos.push(info(2, TtyType.PTY, 1000, 5));
  ttyOwnersToNs(f, IdView.SAME, 'task 7 (x)');
  assert.deepEqual([f.ttyInfos[0]!.uid, f.ttyInfos[0]!.gid], [1000, 5]);
});
