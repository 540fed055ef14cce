import { test } from 'node:test';
import { Session } from './harness.js';

test('timers: ITIMER_REAL, POSIX timers (signal with value, thread-directed, SIGEV_NONE, disarmed) keep their ids and tick on', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'timers').cycle('timers');
});
