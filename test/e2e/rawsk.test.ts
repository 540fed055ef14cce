// Raw inet sockets and ICMP ping sockets (rawsk.c, in a network namespace of
// its own): dumped as CRIU's InetSkEntry with IpOptsRawEntry (checked with
// upstream crit), restored with their filters, options, bindings, peers,
// echo identifiers and shutdowns (for writing too, which only a send shows); a reply left unread and an IPV6_CHECKSUM, which CRIU's
// images cannot carry, fail the dump in one line. `check --feature net_diag_raw`
// (CRIU's name) says yes where /proc/net/raw lists raw sockets, which this needs.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, runningFree, waitFor } from './harness.js';

type Isk = Record<string, unknown> & { ip_opts?: { raw?: Record<string, unknown> } };

/** The inet entries of files.img through CRIU's own pycriu. */
function upstreamIsk(dir: string): Isk[] {
  const py = "import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps([e['isk'] for e in images.load(open(sys.argv[1], 'rb'))['entries'] if 'isk' in e]))";
  const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(dir, 'files.img')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Isk[];
}

test('raw and ping sockets: ICMP/ICMPv6 filters, IP_HDRINCL, IP_NODEFRAG, a connected raw socket, ping identifiers, shutdowns for writing and reading come back and work', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rawsk');
  const target = await s.start('rawsk');
  const images = s.mkdir();
  await s.dump(target, images);
  // The namespace's `ip`/nft/iptables outputs are raw images, which crit does not decode for CRIU's either.
  const rawImg = /^crit decode (ifaddr|route6?|rule|ip6?tables|nftables|netns-ct|netns-exp)-\d+\.img:/;
  assert.deepEqual(critDecodeAll(images).filter((f) => !rawImg.test(f)), [], s.report());
  const isk = upstreamIsk(images);
  // pycriu gives numbers: SOCK_RAW 3, SOCK_DGRAM 2; IPPROTO_ICMP 1, UDP 17, ICMPV6 58; TCP_ESTABLISHED 1.
  const byKind = (type: number, proto: number) => isk.filter((e) => e['type'] === type && e['proto'] === proto);
  const [r4] = byKind(3, 1);
  assert.deepEqual(r4?.ip_opts?.raw?.['icmpv_filter'], [0xfffffffe], JSON.stringify(r4));
  assert.equal((byKind(3, 58)[0]?.ip_opts?.raw?.['icmpv_filter'] as unknown[] | undefined)?.length, 8, JSON.stringify(isk));
  const [rudp] = byKind(3, 17);
  assert.equal(rudp?.ip_opts?.raw?.['hdrincl'], true, JSON.stringify(rudp));
  assert.equal(rudp?.ip_opts?.raw?.['nodefrag'], true, JSON.stringify(rudp));
  assert.equal(rudp?.['state'], 1, JSON.stringify(rudp));
  assert.deepEqual(rudp?.['dst_addr'], [0x0300007f], JSON.stringify(rudp));
  // SkShutdown: READ 1, WRITE 2 (pycriu gives the enum's names).
  assert.deepEqual(isk.filter((e) => e['shutdown'] !== undefined).map((e) => [e['type'], e['proto'], e['shutdown']]).sort(),
    [[2, 1, 'WRITE'], [2, 1, 'WRITE'], [2, 58, 'READ'], [3, 1, 'WRITE']], JSON.stringify(isk.map((e) => e['shutdown'])));
  const ping = byKind(2, 1)[0];
  assert.equal(ping?.['src_port'], 4242, JSON.stringify(ping));
  await s.expectPass(await s.restore(images, target));
});

test('a ping socket with a reply unread and a raw socket with IPV6_CHECKSUM fail the dump in one line naming the task and fd; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rawsk-refused');
  const cases: Array<[string, RegExp]> = [
    ['queued', /^Error: task \d+ fd \d+ \(IPv6 ICMPv6 socket \d+\): replies wait to be read, which cryo cannot carry yet$/],
    ['checksum', /^Error: task \d+ fd \d+ \(IPv6 raw socket of protocol 17 \d+\): IPV6_CHECKSUM is set \(offset 6\), which CRIU's images cannot hold$/],
  ];
  for (const [mode, want] of cases) {
    // A label of its own: each target's READY goes to its own output file.
    const target = await s.startCommand(`rawsk-${mode}`, [compileProgram('rawsk'), s.dir, mode]);
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
    assert.equal(r.code, 1, `${mode}: want exit 1${s.report()}`);
    assert.match(r.stderr.trimEnd(), want, `${mode}${s.report()}`);
    await s.check(waitFor(`${mode}: the task to run free`, () => runningFree(target.pid), 5_000));
    await s.killTree(target);
  }
});
