// Real programs nobody wrote for us: a Python interpreter with a large heap
// and a bash loop (a process tree: bash and its `sleep` children).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PROGRAMS_DIR, Session, python3, ticks, waitFor } from './harness.js';

test('python3 with a 200 MB heap ticks on and finds its heap intact', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'python');
  const target = await s.startCommand('python', [python3(), path.join(PROGRAMS_DIR, 'bigheap.py'), '200'], {
    ready: /^tick 2$/m,
    timeoutMs: 20_000,
  });
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = Math.max(...ticks(target.output()));
  const restored = await s.restore(images, target);
  await s.check(
    waitFor(`3 more ticks after tick ${atDump}`, () => Math.max(...ticks(restored.output())) >= atDump + 3, 5_000),
  );
  await s.expectPass(restored);
  const all = ticks(target.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `ticks are not consecutive from 1${s.report()}`);
});

test('a bash loop with sleep children counts on after restore', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'bash');
  const script = 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done';
  const numbers = (out: string) => [...out.matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));
  const last = (out: string) => Math.max(0, ...numbers(out));
  const target = await s.startCommand('bash', ['/bin/bash', '-c', script], { ready: /^3$/m });
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = last(target.output());
  const restored = await s.restore(images, target);
  await s.check(waitFor(`bash to count past ${atDump + 3}`, () => last(restored.output()) >= atDump + 3, 5_000));
  await s.killTree(restored);
  const all = numbers(target.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `the count is not 1, 2, 3, ... without gaps${s.report()}`);
});

test('a bash pipeline of several processes (producer | cat | grep) keeps flowing after restore', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'pipeline');
  const script = 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done | cat | grep --line-buffered .';
  const numbers = (out: string) => [...out.matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));
  const last = (out: string) => Math.max(0, ...numbers(out));
  const target = await s.startCommand('pipeline', ['/bin/bash', '-c', script], { ready: /^3$/m });
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = last(target.output());
  const restored = await s.restore(images, target);
  await s.check(waitFor(`the pipeline to pass ${atDump + 3}`, () => last(restored.output()) >= atDump + 3, 10_000));
  await s.killTree(restored);
  const all = numbers(target.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `the count is not 1, 2, 3, ... without gaps${s.report()}`);
});

test('tail -f on a growing file (inotify) shows the lines appended after restore', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'tail');
  const data = path.join(s.dir, 'growing.txt');
  fs.writeFileSync(data, 'line 1\nline 2\nline 3\n');
  const target = await s.startCommand('tail', ['tail', '-f', data], { ready: /^line 3$/m });
  assert.match(fs.readdirSync(`/proc/${target.pid}/fd`).map((f) => fs.readlinkSync(`/proc/${target.pid}/fd/${f}`)).join(' '), /inotify/, `tail does not use inotify here${s.report()}`);
  fs.appendFileSync(data, 'line 4\n');
  await s.check(waitFor('tail to show line 4', () => /^line 4$/m.test(target.output()), 5_000));
  const images = s.mkdir();
  await s.dump(target, images);
  const restored = await s.restore(images, target);
  fs.appendFileSync(data, 'line 5\nline 6\n');
  await s.check(waitFor('the restored tail to show lines 5 and 6', () => /^line 6$/m.test(restored.output()), 5_000));
  await s.killTree(restored);
  assert.deepEqual(restored.output().trim().split('\n'), ['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6'], s.report());
});
