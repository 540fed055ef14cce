// Time namespaces (timens.c): a tree whose root is in a time namespace of its
// own is dumped with the values of its CLOCK_MONOTONIC and CLOCK_BOOTTIME
// (timens-N.img, as CRIU) and restored into a new time namespace whose offsets
// make both clocks go on from there: the time the tree was away does not count.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Session, childrenOf, critDecodeAll, imagePids, waitFor } from './harness.js';
import { reapUntilGone } from './proc.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
const DAY = 86400;

function crit(image: string): { entries: Array<Record<string, { tv_sec: number; tv_nsec: number }>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('time namespace of its own: the clocks come back in a new one, going on from their values at dump', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'timens');
  const target = await s.start('timens');
  const ns = nsLink(target.pid, 'time');
  assert.notEqual(ns, nsLink('self', 'time'));
  const images = s.mkdir();
  await s.dump(target, images);
  const name = fs.readdirSync(images).find((n) => /^timens-\d+\.img$/.test(n));
  assert.ok(name, `no timens image${s.report()}`);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const e = crit(path.join(images, name)).entries[0]!;
  // The clocks inside it: the host's plus the offsets the program set.
  const hostUp = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  assert.ok(e['monotonic']!.tv_sec >= 10000 * DAY && e['monotonic']!.tv_sec <= 10000 * DAY + hostUp + 5, JSON.stringify(e));
  assert.ok(e['boottime']!.tv_sec >= 20000 * DAY && e['boottime']!.tv_sec <= 20000 * DAY + hostUp + 5, JSON.stringify(e));
  // Away for 3 s: the restored clocks do not count them.
  await sleep(3000);
  const r = await s.restore(images, target);
  const now = nsLink(r.pid, 'time');
  assert.notEqual(now, nsLink('self', 'time'), `the restored tree is in cryo's time namespace${s.report()}`);
  assert.equal(nsLink(r.pid, 'time_for_children'), now);
  for (const kid of childrenOf(r.pid)) assert.equal(nsLink(kid, 'time'), now, `child ${kid} is not in the root's time namespace`);
  const { status, output } = await s.finish(r);
  assert.equal(status?.exited, 0, s.report());
  assert.match(output, /^PASS$/m, s.report());
  const m = /^elapsed monotonic (\d+) boottime (\d+) real (\d+)$/m.exec(output);
  assert.ok(m, output);
  const [mono, boot, real] = [Number(m[1]), Number(m[2]), Number(m[3])];
  assert.ok(real - mono >= 2.5e9 && real - boot >= 2.5e9, `the clocks counted the time away: ${m[0]}`);
});

test('time namespace: the check sees the root moved to a new one without offsets (SIGUSR2)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'timens-corrupt');
  const target = await s.start('timens');
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.restore(images, target);
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: CLOCK_MONOTONIC went from \d+ to \d+ ns while/m, s.report());
});

test('time namespace made by `unshare --time --fork --boottime`: sh reading /proc/uptime goes on from where it was', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'timens-unshare');
  const script = 'echo READY; while :; do echo "up $(cut -d" " -f1 /proc/uptime)"; sleep 0.2; done';
  const unshare = await s.startCommand('timens-unshare', ['unshare', '--time', '--fork', '--boottime', String(1000 * DAY), '/bin/sh', '-c', script]);
  const inner = childrenOf(unshare.pid)[0]!;
  assert.ok(inner, s.report());
  assert.notEqual(nsLink(inner, 'time'), nsLink('self', 'time'));
  const ups = () => [...unshare.output().matchAll(/^up (\d+\.\d+)$/gm)].map((m) => Number(m[1]));
  await s.check(waitFor('two uptimes', () => ups().length >= 2, 10_000));
  const images = s.mkdir();
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['dump', '-t', String(inner), '-D', images, '-v4', '-o', 'dump.log']));
  for (const p of imagePids(images)) await s.check(reapUntilGone(p, 10_000));
  const atDump = Math.max(...ups());
  await sleep(3000);
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.notEqual(nsLink(host, 'time'), nsLink('self', 'time'), s.report());
  const n = ups().length;
  await s.check(waitFor('uptimes after restore', () => ups().length >= n + 3, 10_000));
  const after = ups().slice(n);
  // Up 1000 days and some, going on from the dump's: not back, and not the 3 s it was away.
  assert.ok(after[0]! >= atDump && after[0]! < atDump + 2, `uptime ${after[0]} after restore, ${atDump} at dump${s.report()}`);
  assert.ok(after.every((u) => u >= 1000 * DAY), `${after}`);
  await s.killTree(restored);
});
