// Timers; POSIX timers get their ids back by PR_TIMER_CREATE_RESTORE_IDS (check feature timer_cr_ids).
import { test } from 'node:test';
import { Session } from './harness.js';

test('timers: ITIMER_REAL, POSIX timers (signal with value, thread-directed, SIGEV_NONE, disarmed) keep their ids and tick on', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'timers').cycle('timers');
});

test('a timer firing every 100 us: signals caught by ptrace while cryo works keep their siginfo (three dumps with -R, then a restore)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'sigstorm');
  const target = await s.start('sigstorm');
  for (let i = 0; i < 3; i++) await s.dump(target, s.mkdir(), { leaveRunning: true });
  const images = s.mkdir();
  await s.dump(target, images);
  const restored = await s.restore(images, target);
  await s.expectPass(restored);
});
