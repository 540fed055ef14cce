// A restored task is an ordinary task: dump and restore it once more.
import { test } from 'node:test';
import { Session } from './harness.js';

for (const name of ['memory', 'misc']) {
  test(`${name}: dump, restore, dump, restore: PASS`, { timeout: 60_000 }, async (t) => {
    const s = Session.for(t, `twice-${name}`);
    const target = await s.start(name);
    const first = s.mkdir();
    await s.dump(target, first);
    const restored = await s.restore(first, target);
    const second = s.mkdir();
    await s.dump(restored, second);
    await s.expectPass(await s.restore(second, restored));
  });
}
