// The TypeScript client (import { Cryo } from 'cryo') against cryo swrk and cryo service.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cryo, CryoRpcError } from '../../src/index.js';
import { ROOT, Session, parentPid, processTree, runningFree, waitFor } from './harness.js';

test('the client: version, feature check, a dump and a restore as this process\'s child, with notifications', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'client');
  const cryo = new Cryo();
  const v = await cryo.version();
  assert.equal(`${v.major}.${v.minor}`, '4.2');
  const f = await cryo.featureCheck({ memTrack: false, lazyPages: false, pidfdStore: false });
  // cryo tracks memory (async userfaultfd write-protect), but neither restores
  // lazily nor keeps pidfds in a pidfd_store_sk.
  assert.deepEqual({ memTrack: f.memTrack, lazyPages: f.lazyPages, pidfdStore: f.pidfdStore }, { memTrack: true, lazyPages: false, pidfdStore: false });
  assert.equal(await cryo.check(), true);

  const target = await s.start('pipes');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const seen: string[] = [];
  await cryo.dump({ imagesDir: images, opts: { pid: target.pid, logLevel: 4, logFile: 'dump.log' }, notify: (a) => (seen.push(a), true) });
  assert.deepEqual(seen, ['pre-dump', 'query-ext-files', 'post-dump']);
  await s.check(s.gone(target, tree, images));

  const rseen: Array<[string, number | undefined]> = [];
  const { pid } = await cryo.restore({ imagesDir: images, opts: { rstSibling: true, logLevel: 4, logFile: 'restore.log' }, notify: (a, p) => (rseen.push([a, p]), true) });
  assert.deepEqual(rseen.map(([a]) => a), ['pre-restore', 'post-restore', 'pre-resume', 'post-resume']);
  assert.equal(rseen[1]![1], pid, 'post-restore carries the pid');
  assert.equal(parentPid(pid), process.pid, 'the restored task is not this process\'s child');
  const restored = s.adopt(pid, target);
  await s.expectPass(restored);
});

test('the client: a refused action and a failing request raise CryoRpcError; the service answers too', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'client-errors');
  const cryo = new Cryo();
  const target = await s.start('pipes');
  await assert.rejects(
    cryo.dump({ imagesDir: s.mkdir(), opts: { pid: target.pid }, notify: (a) => a !== 'pre-dump' }),
    (e: unknown) => e instanceof CryoRpcError && /refused pre-dump/.test(e.message),
  );
  assert.ok(runningFree(target.pid));
  await assert.rejects(cryo.dump({ imagesDir: s.mkdir(), opts: { pid: 999999 } }), CryoRpcError);
  const sockPath = path.join(s.dir, 'svc.sock');
  const service = spawn(path.join(ROOT, 'bin/cryo'), ['service', '--address', sockPath], { stdio: 'ignore' });
  t.after(() => service.kill('SIGKILL'));
  await s.check(waitFor('the service socket', () => fs.existsSync(sockPath), 10_000));
  const viaService = new Cryo({ service: sockPath });
  assert.equal((await viaService.version()).major, 4);
  await s.expectPass(target);
});
