// Unix sockets bound to names whose file is gone: unlinked, with its directory
// removed, replaced by a FIFO or by another socket's file, an accepted
// connection of a closed and unlinked listener (zdtm sk-unix01,
// del_standalone_un, deleted_unix_sock, fifo_upon_unix_socket00/01).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Session, critDecodeAll } from './harness.js';

test('unix sockets whose names are gone: removed directories, a name bound again, a FIFO over a name, a file renamed over another, a closed listener\'s connection, a relative name', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unixghost');
  await s.cycle('unixghost', { afterDump: (images) => assert.deepEqual(critDecodeAll(images), [], s.report()) });
});
