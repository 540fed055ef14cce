import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Session, ticks, waitFor } from './harness.js';

test('sleeper: checkpointed in nanosleep, ticks on after restore', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sleeper');
  let atDump = 0;
  let target: { output(): string } | undefined;
  await s.cycle('sleeper', {
    startOptions: { ready: /^tick 3$/m },
    afterDump: (_images, original) => {
      target = original;
      atDump = Math.max(...ticks(original.output()));
    },
    beforeSignal: async (restored) => {
      await s.check(
        waitFor(`3 more ticks after tick ${atDump}`, () => Math.max(...ticks(restored.output())) >= atDump + 3, 5_000),
      );
    },
  });
  const all = ticks(target!.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `ticks are not consecutive from 1${s.report()}`);
});
