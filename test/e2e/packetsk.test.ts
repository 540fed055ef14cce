// Packet sockets (packetsk.c, in a network namespace of its own): dumped as
// CRIU's PacketSockEntry (checked with upstream crit), restored with their
// bindings, TPACKET version, options, memberships, fanout group and rings,
// and receiving; a packet waiting and PACKET_QDISC_BYPASS, which CRIU's images
// cannot carry, fail the dump in one line, and so does a ring still mapped
// by a task that closed its socket. A mapped ring comes back mapped (CRIU's
// VMA_AREA_SOCKET), without its frames' contents, which are the socket's.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, runningFree, waitFor } from './harness.js';

/** The packet entries of files.img through CRIU's own pycriu. */
function upstreamPsk(dir: string): Array<Record<string, unknown>> {
  const py = "import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps([e['psk'] for e in images.load(open(sys.argv[1], 'rb'))['entries'] if 'psk' in e]))";
  const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(dir, 'files.img')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

test('packet sockets: raw ones in a fanout group with TPACKET_V2, aux data, a promiscuous membership and an rx ring, a datagram one with reserve, orig dev, a unicast membership and a tx ring, SOCK_PACKET ones come back and work', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'packetsk');
  const target = await s.start('packetsk');
  const images = s.mkdir();
  await s.dump(target, images);
  const rawImg = /^crit decode (ifaddr|route6?|rule|ip6?tables|nftables|netns-ct|netns-exp)-\d+\.img:/;
  assert.deepEqual(critDecodeAll(images).filter((f) => !rawImg.test(f)), [], s.report());
  const psk = upstreamPsk(images);
  assert.equal(psk.length, 6, JSON.stringify(psk));
  const mm = JSON.parse(spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, `mm-${target.pid}.img`)], { encoding: 'utf8' }).stdout) as { entries: Array<{ vmas: Array<Record<string, unknown>> }> };
  // VMA_AREA_REGULAR | VMA_AREA_SOCKET, no pages of its own.
  assert.equal(mm.entries[0]!.vmas.filter((v) => v['status'] === (1 | (1 << 11))).length, 1, JSON.stringify(mm.entries[0]!.vmas.map((v) => v['status'])));
  // protocol as socket() takes it: htons(ETH_P_ALL) is 0x0300; fanout 77 | (HASH | ROLLOVER) << 16.
  const raw = psk.filter((e) => e['type'] === 3 && e['protocol'] === 0x300);
  assert.deepEqual(raw.map((e) => [e['protocol'], e['ifindex'], e['fanout']]), [[0x300, 1, 77 | (0x1000 << 16)], [0x300, 1, 77 | (0x1000 << 16)]], JSON.stringify(raw));
  assert.equal(raw[0]?.['version'], 1, JSON.stringify(raw[0]));
  assert.deepEqual((raw[0]?.['rx_ring'] as Record<string, number> | undefined)?.['frame_nr'], 4, JSON.stringify(raw[0]));
  const dg = psk.find((e) => e['type'] === 2);
  assert.equal(dg?.['reserve'], 64, JSON.stringify(dg));
  assert.deepEqual((dg?.['mclist'] as Array<Record<string, unknown>> | undefined)?.map((m) => m['type']), [3], JSON.stringify(dg));
  await s.expectPass(await s.restore(images, target));
});

test('a packet socket with a packet waiting, one with PACKET_QDISC_BYPASS, a ring mapped without its socket, a tx frame queued and an rx frame held fail the dump in one line naming the task; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'packetsk-refused');
  const cases: Array<[string, RegExp]> = [
    ['queued', /^Error: task \d+ fd \d+ \(packet socket \d+\): packets wait to be read \(in its queue or its rx ring\), which cryo cannot carry$/],
    ['bypass', /^Error: task \d+ fd \d+ \(packet socket \d+\): PACKET_QDISC_BYPASS is set, which CRIU's images cannot hold$/],
    // CRIU refuses it too: the ring is mapped again from an fd of the socket.
    ['closed', /^Error: task \d+: the ring of socket:\[\d+\] is mapped at 0x[0-9a-f]+, but no fd of the tree holds the socket$/],
    // The rings come back empty: a frame waiting to be sent, or one the task still holds, would be lost.
    ['txpending', /^Error: task \d+ fd \d+ \(packet socket \d+\): 1 frame\(s\) of its tx ring are queued to be sent, being sent or rejected, which cryo cannot carry$/],
    ['rxheld', /^Error: task \d+ fd \d+ \(packet socket \d+\): frame 0 of its rx ring holds a packet not yet given back \(TP_STATUS_USER\), which cryo cannot carry$/],
  ];
  for (const [mode, want] of cases) {
    // A label of its own: each target's READY goes to its own output file.
    const target = await s.startCommand(`packetsk-${mode}`, [compileProgram('packetsk'), s.dir, mode]);
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
    assert.equal(r.code, 1, `${mode}: want exit 1${s.report()}`);
    assert.match(r.stderr.trimEnd(), want, `${mode}${s.report()}`);
    await s.check(waitFor(`${mode}: the task to run free`, () => runningFree(target.pid), 5_000));
    await s.killTree(target);
  }
});
