// The cleanup stack: undos newest first on a failure, only the frees on success,
// and one undo that throws neither stops the others nor escapes.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cleanup } from '../../src/cleanup.js';
import { makeLogger } from '../../src/context.js';

test('a failure runs every undo, newest first, past one that throws', () => {
  const lines: string[] = [];
  const log = makeLogger(4, (l) => lines.push(l));
  const cl = new Cleanup();
  const ran: string[] = [];
  cl.always('fd', () => ran.push('fd'));
  cl.onFailure('link', () => {
    ran.push('link');
    throw new Error('EROFS');
  });
  cl.push('tree', { undo: () => ran.push('thaw'), done: () => ran.push('kill') });
  cl.unwind(log);
  assert.deepEqual(ran, ['thaw', 'link', 'fd']);
  assert.deepEqual(lines, ['Warn: cleanup: link: EROFS']);
  assert.equal(cl.size, 0);
  cl.unwind(log);
  assert.equal(ran.length, 3, 'a second unwind has nothing left to run');
});

test('success frees what is held either way and drops the undos', () => {
  const cl = new Cleanup();
  const ran: string[] = [];
  cl.always('fd', () => ran.push('fd'));
  cl.onFailure('link', () => ran.push('link'));
  cl.push('tree', { undo: () => ran.push('thaw'), done: () => ran.push('kill') });
  cl.release(makeLogger(0, () => {}));
  assert.deepEqual(ran, ['kill', 'fd']);
  assert.equal(cl.size, 0);
});
