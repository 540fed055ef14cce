import { test } from 'node:test';
import { Session } from './harness.js';

test('pipes (queued data, a pipe shared with a child), eventfd (counter, semaphore), epoll (targets and data)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'pipes');
  await s.cycle('pipes');
});
