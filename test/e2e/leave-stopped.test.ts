// --leave-stopped (-s), as CRIU: after a dump, or a restore, every task of the
// tree is left stopped (state T), traced by nobody; SIGCONT lets it run on.
// Over RPC the same is leave_stopped.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cryo } from '../../src/index.js';
import { Session, critDecodeAll, processTree, waitFor, type Target, signalPid } from './harness.js';

/** Every thread of every live task of the tree: [pid, tid]. */
function threadsOf(tree: number[]): Array<[number, number]> {
  return tree.flatMap((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/task`).map((t) => [pid, Number(t)] as [number, number]);
    } catch {
      return [];
    }
  });
}

function threadState(pid: number, tid: number): { state: string; tracer: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    return { state: stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), tracer: Number(/^TracerPid:\s*(\d+)/m.exec(status)![1]) };
  } catch {
    return undefined;
  }
}

/** Waits until every thread of the tree (zombies aside) is stopped, untraced; returns how many. */
async function allStopped(s: Session, tree: number[]): Promise<number> {
  const describe = () => threadsOf(tree).map(([p, t]) => `${p}/${t}: ${JSON.stringify(threadState(p, t))}`).join(', ');
  let n = 0;
  await s.check(waitFor('every task of the tree to be stopped, untraced', () => {
    const live = threadsOf(tree).map(([p, t]) => threadState(p, t)).filter((x) => x !== undefined && x.state !== 'Z');
    n = live.length;
    return n > 0 && live.every((x) => x!.state === 'T' && x!.tracer === 0);
  }, 5_000, describe));
  // And they stay so: nothing of cryo's lets them run a moment later.
  await new Promise((r) => setTimeout(r, 200));
  const later = threadsOf(tree).map(([p, t]) => threadState(p, t)).filter((x) => x !== undefined && x.state !== 'Z');
  assert.ok(later.every((x) => x!.state === 'T' && x!.tracer === 0), describe());
  return n;
}

function cont(tree: number[]): void {
  for (const p of tree) signalPid(p, 'SIGCONT');
}

async function stoppedThenPass(s: Session, t: Target, tree: number[], minThreads: number): Promise<void> {
  assert.ok(await allStopped(s, tree) >= minThreads, s.report());
  cont(tree);
  await s.expectPass(t);
}

for (const [name, minThreads] of [['tree', 5], ['threads', 4]] as const) {
  test(`dump -s of ${name}: every task stopped and untraced; SIGCONT and it passes; the images restore with --leave-stopped, stopped too, and pass`, { timeout: 60_000 }, async (t) => {
    const s = Session.for(t, `leave-stopped-${name}`);
    const target = await s.start(name);
    const tree = processTree(target.pid);
    const images = s.mkdir();
    s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '-s']));
    assert.deepEqual(critDecodeAll(images), [], s.report());
    assert.doesNotMatch(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /^Error/m);
    await stoppedThenPass(s, target, tree, minThreads);

    // The same images, restored stopped: the original is gone, its pids free again.
    const pidfile = path.join(s.dir, 'restored.pid');
    s.ok(await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--leave-stopped']));
    const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), target);
    assert.equal(restored.pid, target.pid);
    await stoppedThenPass(s, restored, processTree(restored.pid), minThreads);
  });
}

test('leave_stopped over RPC: the tree is left stopped and untraced, and runs on after SIGCONT', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'leave-stopped-rpc');
  const target = await s.start('tree');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  await new Cryo().dump({ imagesDir: images, opts: { pid: target.pid, leaveStopped: true, logLevel: 4, logFile: 'dump.log' } });
  await stoppedThenPass(s, target, tree, 5);
});
