import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll } from './harness.js';

test('pipes (queued data, a pipe shared with a child), eventfd (counter, semaphore), epoll (targets and data)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'pipes');
  await s.cycle('pipes');
});

test('pipes, eventfd and epoll images decode with CRIU\'s crit, with the queued bytes and the epoll targets', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'pipes-crit');
  const target = await s.start('pipes');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const decode = (name: string) => {
    const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, name)], { encoding: 'utf8' });
    return JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> };
  };
  const data = decode('pipes-data.img').entries;
  assert.ok(data.some((e) => e['bytes'] === 5000), `no 5000-byte pipe in pipes-data.img: ${JSON.stringify(data).slice(0, 300)}`);
  const files = decode('files.img').entries;
  const ep = files.find((e) => e['type'] === 'EVENTPOLL') as { epfd?: { tfd?: unknown[] } } | undefined;
  assert.equal(ep?.epfd?.tfd?.length, 2, `epoll entry: ${JSON.stringify(ep)}`);
  assert.equal(files.filter((e) => e['type'] === 'EVENTFD').length, 2, s.report());
  await s.expectPass(target);
});

test('ends of a pipe reopened through /proc keep their own O_NONBLOCK; pipe sizes (F_SETPIPE_SZ) come back, also of an empty pipe', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'pipeflags');
  const target = await s.start('pipeflags');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});
