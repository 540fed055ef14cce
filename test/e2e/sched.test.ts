import { test } from 'node:test';
import { Session } from './harness.js';

test('sched: per-thread policy and nice; personality, oom_score_adj', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'sched').cycle('sched');
});

test('rseq: a thread stopped inside a critical section resumes at its abort handler', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'rseqcs').cycle('rseqcs');
});
