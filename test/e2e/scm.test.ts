// Files in flight (SCM_RIGHTS) that only a socket queue holds: both ends of a
// pipe, a closed sender's queue, an epoll, a socket with a queue of its own,
// a socket in its own queue (zdtm scm02, scm05, scm09, socket_close_data).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Session, critDecodeAll } from './harness.js';

test('fds in flight: both pipe ends, a pipe end in a closed sender\'s queue, an epoll watching our socket, a socket in flight with its own queue and fd, a socket in its own queue', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'scm');
  await s.cycle('scm', { afterDump: (images) => assert.deepEqual(critDecodeAll(images), [], s.report()) });
});
