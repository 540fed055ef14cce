// Half-closed TCP connections (tcphalf.c: FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT,
// LAST_ACK, CLOSING, and CLOSE after both FINs, over IPv4 and IPv6 loopback,
// with data in flight) dumped
// with --tcp-established and restored through repair mode with their FINs, as
// CRIU's tcp_half_closed; `check --feature tcp_half_closed` says yes. Without
// --tcp-established the dump fails in one line naming the state. Connections
// being made (tcpsyn.c: SYN_SENT) come back connecting, as CRIU's.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, runningFree, signalPid, waitFor } from './harness.js';
import { dropLocks } from './netlock-rules.js';

/** The states of the connections' ends in files.img, through CRIU's own pycriu. */
function states(dir: string): number[] {
  const py = "import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps([e['isk']['state'] for e in images.load(open(sys.argv[1], 'rb'))['entries'] if 'isk' in e]))";
  const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(dir, 'files.img')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as number[]).sort((a, b) => a - b);
}

test('half-closed TCP connections (FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING) and ended ones (CLOSE) with data in flight come back in their states, every byte then the end', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'tcphalf');
  const check = await s.cryo(['check', '--feature', 'tcp_half_closed']);
  assert.equal(check.code, 0, check.stderr);
  const target = await s.start('tcphalf');
  const images = s.mkdir();
  t.after(() => dropLocks(images));
  await s.dump(target, images, { extra: ['--tcp-established'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // Per family: ESTABLISHED 1, FIN_WAIT1 4, FIN_WAIT2 5 (three), CLOSE 7 (two), CLOSE_WAIT 8, LAST_ACK 9, CLOSING 11.
  assert.deepEqual(states(images), [1, 1, 4, 4, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 8, 8, 9, 9, 11, 11]);
  await s.expectPass(await s.restore(images, target, { extra: ['--tcp-established'] }));

  // The check can fail: a byte read early is missed.
  const spoiled = await s.startCommand('spoiled', [compileProgram('tcphalf')]);
  const { status, output } = await s.finish(spoiled, 'SIGUSR2');
  assert.equal(status?.exited, 1, output);
  assert.match(output, /^FAIL: IPv4 fin2: the server did not get the client's message/m);
});

test('a half-closed TCP connection without --tcp-established fails the dump in one line naming the task, the fd and the state; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'tcphalf-refused');
  const target = await s.start('tcphalf');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr.trimEnd(), /^Error: task \d+ fd \d+ \(IPv4 TCP socket \d+\): a half-closed TCP connection \(FIN_WAIT2\) \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\); dump with --tcp-established$/);
  await s.check(waitFor('the task to run free', () => runningFree(target.pid), 5_000));
  await s.killTree(target);
});

test('TCP connections being made (SYN_SENT, IPv4 and IPv6) to a peer whose backlog is full come back connecting from the same ports, and connect once the peer accepts; without --tcp-established the dump is refused in one line', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'tcpsyn');
  const start = async () => {
    const target = await s.start('tcpsyn');
    const peer = Number(fs.readFileSync(path.join(s.dir, 'tcpsyn-peer.pid'), 'utf8'));
    t.after(() => {
      try {
        signalPid(peer, 'SIGKILL');
      } catch {
        /* it ended */
      }
    });
    return target;
  };
  const target = await start();
  const refused = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr.trimEnd(), /^Error: task \d+ fd \d+ \(IPv4 TCP socket \d+\): a TCP connection being made \(SYN_SENT\) \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\); dump with --tcp-established$/);
  await s.check(waitFor('the task to run free', () => runningFree(target.pid), 5_000));

  const images = s.mkdir();
  t.after(() => dropLocks(images));
  await s.dump(target, images, { extra: ['--tcp-established'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  assert.deepEqual(states(images), [2, 2]);
  await s.expectPass(await s.restore(images, target, { extra: ['--tcp-established'] }));

  // The check can fail: a socket that is not connecting.
  const spoiled = await start();
  const { status, output } = await s.finish(spoiled, 'SIGUSR2');
  assert.equal(status?.exited, 1, output);
  assert.match(output, /^FAIL: IPv4: the connection is in state 7 after the restore, not SYN_SENT/m);
});

/** The lock's rules left in the network namespace of `pid`: nftables tables CRIU-*, the iptables chain CRIU. */
function lockLeft(pid: number): string[] {
  const nft = spawnSync('nsenter', ['-t', String(pid), '-n', 'nft', 'list', 'tables'], { encoding: 'utf8' });
  const ipt = spawnSync('nsenter', ['-t', String(pid), '-n', 'iptables', '-w', '-S'], { encoding: 'utf8' });
  assert.equal(nft.status, 0, nft.stderr);
  assert.equal(ipt.status, 0, ipt.stderr);
  return [...nft.stdout.split('\n').filter((l) => /CRIU-/.test(l)), ...ipt.stdout.split('\n').filter((l) => /\bCRIU\b/.test(l))];
}

for (const lock of ['nftables', 'iptables'] as const) {
  test(`LAST_ACK connections behind the tree's own DROP rules (iptables and nft), in its own network namespace, come back with --network-lock ${lock}: the peer's FIN passes the lock before the rules are back; then the rules, and no lock`, { timeout: 120_000 }, async (t) => {
    const s = Session.for(t, `tcpfw-${lock}`);
    const target = await s.start('tcpfw');
    const images = s.mkdir();
    await s.dump(target, images, { extra: ['--tcp-established', '--network-lock', lock] });
    assert.deepEqual(states(images), [7, 7, 9, 9]);
    const r = await s.restore(images, target, { extra: ['--tcp-established'] });
    assert.deepEqual(lockLeft(r.pid), [], s.report());
    await s.expectPass(r);

    // The check can fail: with the rules in, the server's FIN never goes through.
    const spoiled = await s.startCommand('spoiled', [compileProgram('tcpfw')]);
    const { status, output } = await s.finish(spoiled, 'SIGUSR2');
    assert.equal(status?.exited, 1, output);
    assert.match(output, /^FAIL: IPv4: the server is still in state 9, not CLOSE, with its rule in/m);
  });
}
