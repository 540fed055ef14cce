// A real multi-threaded program nobody wrote for us: CPython with four threads
// (time.sleep loop, threading.Event.wait, queue.Queue.get, a busy loop) and the
// main thread in signal.sigwait (test/programs/pythreads.py).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PROGRAMS_DIR, Session, python3, ticks, waitFor, type Target } from './harness.js';

const SCRIPT = path.join(PROGRAMS_DIR, 'pythreads.py');

/** Fails unless the target has exactly its stdio open and 5 threads (pipes or eventfds would need more than cryo does). */
function checkShape(s: Session, t: Target): void {
  const fds = fs.readdirSync(`/proc/${t.pid}/fd`).map(Number).sort((a, b) => a - b);
  const links = fds.map((fd) => `${fd} -> ${fs.readlinkSync(`/proc/${t.pid}/fd/${fd}`)}`);
  assert.deepEqual(fds, [0, 1, 2], `python has other fds than stdio: ${links.join(', ')}${s.report()}`);
  const threads = fs.readdirSync(`/proc/${t.pid}/task`).length;
  assert.equal(threads, 5, `python runs ${threads} threads, want 5${s.report()}`);
}

async function start(s: Session): Promise<Target> {
  const t = await s.startCommand('pythreads', [python3(), SCRIPT], { ready: /^tick 2$/m, timeoutMs: 20_000 });
  checkShape(s, t);
  return t;
}

/** Waits for 3 more ticks of the sleeper thread than there were at the dump. */
async function ticksOn(s: Session, restored: Target, atDump: number): Promise<void> {
  await s.check(
    waitFor(`3 more ticks after tick ${atDump}`, () => Math.max(0, ...ticks(restored.output())) >= atDump + 3, 5_000),
  );
}

function consecutive(s: Session, t: Target): void {
  const all = ticks(t.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `ticks are not consecutive from 1${s.report()}`);
}

test('python3 with 4 threads (sleep, Event.wait, Queue.get, busy) runs on after restore and joins them all', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'pythreads');
  const target = await start(s);
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = Math.max(...ticks(target.output()));
  const restored = await s.restore(images, target);
  checkShape(s, restored);
  await ticksOn(s, restored, atDump);
  await s.expectPass(restored);
  consecutive(s, target);
});

test('python3 with 4 threads: dump, restore, dump, restore', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'pythreads-twice');
  const target = await start(s);
  const a = s.mkdir();
  await s.dump(target, a);
  const once = await s.restore(a, target);
  await ticksOn(s, once, Math.max(...ticks(target.output())));
  const b = s.mkdir();
  await s.dump(once, b);
  const twice = await s.restore(b, target);
  checkShape(s, twice);
  await ticksOn(s, twice, Math.max(...ticks(target.output())));
  await s.expectPass(twice);
  consecutive(s, target);
});
