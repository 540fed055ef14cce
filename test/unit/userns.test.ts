// The id maps of a user namespace: parsing /proc/PID/uid_map as cryo reads it,
// the text written back, and the translation between cryo's view and the
// tree's (CRIU's userns_uid and host_uid), which refuses unmapped ids.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdView, idMapText, ownersToHost, ownersToNs, parseIdMap } from '../../src/objects/userns.js';

const text = '         0     100000      65536\n     65536      1000          1\n';

test('uid_map text parses into extents and is written back', () => {
  const m = parseIdMap(text);
  assert.deepEqual(m, [{ first: 0, lowerFirst: 100000, count: 65536 }, { first: 65536, lowerFirst: 1000, count: 1 }]);
  assert.equal(idMapText(m), '0 100000 65536\n65536 1000 1\n');
  assert.deepEqual(parseIdMap(''), []);
});

test('ids translate both ways; an unmapped one is refused naming the object', () => {
  const v = new IdView(parseIdMap(text), parseIdMap('0 200000 10\n'));
  assert.equal(v.nsUid(100000, 'x'), 0);
  assert.equal(v.nsUid(165535, 'x'), 65535);
  assert.equal(v.nsUid(1000, 'x'), 65536);
  assert.equal(v.hostUid(65536, 'x'), 1000);
  assert.equal(v.hostGid(9, 'x'), 200009);
  assert.equal(v.nsUid(0xffffffff, 'x'), 0xffffffff, '(uid_t)-1 stays');
  assert.throws(() => v.nsUid(0, 'task 5: its credentials'), /^CryoError: task 5: its credentials: uid 0 has no mapping in the tree's user namespace/);
  assert.throws(() => v.hostGid(10, 'q'), /q: gid 10 of the images has no mapping/);
  assert.equal(IdView.SAME.nsUid(12345, 'x'), 12345);
});

test('owners of files cryo makes go into the images as the tree sees them, and back', () => {
  const shifted = new IdView(parseIdMap('0 100000 65536\n'), parseIdMap('0 200000 65536\n'));
  const ghost = { uid: 100007, gid: 200008 };
  ownersToNs(shifted, [{ what: 'a deleted file', ids: ghost }], 'task 1');
  assert.deepEqual(ghost, { uid: 7, gid: 8 });
  ownersToHost(shifted, [{ what: 'ghost file 3', ids: ghost }], 'the images');
  assert.deepEqual(ghost, { uid: 100007, gid: 200008 });
  // One the namespace does not map could not be made again: refused, naming it.
  assert.throws(() => ownersToNs(shifted, [{ what: 'memfd m', ids: { uid: 0, gid: 200000 } }], 'task 1'),
    /^CryoError: task 1: memfd m: uid 0 has no mapping in the tree's user namespace/);
  const same = { uid: 100000, gid: 100000 };
  ownersToNs(IdView.SAME, [{ what: 'memfd m', ids: same }], 'task 1');
  assert.deepEqual(same, { uid: 100000, gid: 100000 });
});
