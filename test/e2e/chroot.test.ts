import { test } from 'node:test';
import { Session } from './harness.js';

test('chrooted tasks: the root comes back, paths resolve in it, a cwd outside the root stays outside', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'chroot').cycle('chroot');
});
