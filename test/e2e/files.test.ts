import { test } from 'node:test';
import { Session } from './harness.js';

test('files: dump, restore -d: fd numbers, offsets, flags, FD_CLOEXEC, shared and separate descriptions', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'files').cycle('files');
});
