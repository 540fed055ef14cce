// Netlink sockets (netlinksk.c, in a network namespace of its own): dumped
// as CRIU's NetlinkSkEntry (checked with upstream crit), restored with their
// port ids, groups (also past 32), peers, flags and types (SOCK_DGRAM in a
// field of cryo's own), and working; messages left unread and NETLINK_EXT_ACK,
// which CRIU's images cannot hold, fail the dump in one line.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, runningFree, waitFor } from './harness.js';

/** The netlink entries of files.img through CRIU's own pycriu. */
function upstreamNlsk(dir: string): Array<Record<string, unknown>> {
  const py = "import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps([e['nlsk'] for e in images.load(open(sys.argv[1], 'rb'))['entries'] if 'nlsk' in e]))";
  const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(dir, 'files.img')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

test('netlink sockets: route socket bound with groups 1 and 33, a usersock pair bound and connected, unbound generic sockets (SOCK_RAW and SOCK_DGRAM) come back and work', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netlinksk');
  const target = await s.start('netlinksk');
  const images = s.mkdir();
  await s.dump(target, images);
  const rawImg = /^crit decode (ifaddr|route6?|rule|ip6?tables|nftables|netns-ct|netns-exp)-\d+\.img:/;
  assert.deepEqual(critDecodeAll(images).filter((f) => !rawImg.test(f)), [], s.report());
  const nl = upstreamNlsk(images);
  assert.equal(nl.length, 5, JSON.stringify(nl));
  const route = nl.find((e) => e['protocol'] === 0);
  assert.equal(route?.['portid'], target.pid + 100000, JSON.stringify(route));
  assert.deepEqual(route?.['groups'], [1, 1], JSON.stringify(route));
  const client = nl.find((e) => e['protocol'] === 2 && e['state'] === 1);
  assert.equal(client?.['dst_portid'], target.pid + 200000, JSON.stringify(nl));
  await s.expectPass(await s.restore(images, target));
});

test('a netlink socket with messages unread and one with NETLINK_EXT_ACK fail the dump in one line naming the task and fd; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netlinksk-refused');
  const cases: Array<[string, RegExp]> = [
    ['queued', /^Error: task \d+ fd \d+ \(netlink socket of protocol 2 \d+\): messages wait to be read, which cryo cannot carry$/],
    ['extack', /^Error: task \d+ fd \d+ \(netlink socket of protocol 0 \d+\): NETLINK_EXT_ACK is set, which CRIU's images cannot hold$/],
  ];
  for (const [mode, want] of cases) {
    // A label of its own: each target's READY goes to its own output file.
    const target = await s.startCommand(`netlinksk-${mode}`, [compileProgram('netlinksk'), s.dir, mode]);
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
    assert.equal(r.code, 1, `${mode}: want exit 1${s.report()}`);
    assert.match(r.stderr.trimEnd(), want, `${mode}${s.report()}`);
    await s.check(waitFor(`${mode}: the task to run free`, () => runningFree(target.pid), 5_000));
    await s.killTree(target);
  }
});
