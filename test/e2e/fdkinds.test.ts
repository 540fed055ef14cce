import { test } from 'node:test';
import { Session } from './harness.js';

test('signalfd (mask, pending signal) and timerfd (periodic, unread expirations)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fdkinds');
  await s.cycle('fdkinds');
});
