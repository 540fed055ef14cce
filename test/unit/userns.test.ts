// The id maps of a user namespace: parsing /proc/PID/uid_map as cryo reads it,
// the text written back, and the translation between cryo's view and the
// tree's (CRIU's userns_uid and host_uid), which refuses unmapped ids.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdView, idMapText, parseIdMap, refuseTranslatedOwners } from '../../src/objects/userns.js';

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

test('owners of files cryo makes are refused only where the views differ', () => {
  const identity = new IdView(parseIdMap('0 0 1\n'), parseIdMap('0 0 1\n'));
  refuseTranslatedOwners(identity, [{ what: 'memfd m', uid: 0, gid: 0 }], 'task 1');
  const shifted = new IdView(parseIdMap('0 100000 65536\n'), parseIdMap('0 100000 65536\n'));
  assert.throws(() => refuseTranslatedOwners(shifted, [{ what: 'memfd m', uid: 100000, gid: 100000 }], 'task 1'),
    /^CryoError: task 1: memfd m is owned by 100000:100000, which the tree's user namespace sees as another id/);
  refuseTranslatedOwners(IdView.SAME, [{ what: 'memfd m', uid: 100000, gid: 100000 }], 'task 1');
});
