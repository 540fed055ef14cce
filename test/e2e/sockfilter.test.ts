// Socket filters (SO_ATTACH_FILTER): a UDP socket's and a unix datagram
// socket's classic BPF programs come back and filter as before, in CRIU's
// SkOptsEntry.so_filter (checked with upstream crit); a locked filter and an
// eBPF one, which CRIU's images cannot hold, fail the dump in one line.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, compileProgram, critDecodeAll, runningFree, waitFor } from './harness.js';

/** files.img through CRIU's own pycriu (the reference for the layout). */
function upstreamFiles(dir: string): Array<Record<string, Record<string, unknown>>> {
  const py = "import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps(images.load(open(sys.argv[1], 'rb'))['entries']))";
  const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(dir, 'files.img')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Array<Record<string, Record<string, unknown>>>;
}

test('socket filters: UDP and unix datagram filters come back and filter as before; a datagram queued before the filter is still there', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'sockfilter');
  const target = await s.start('sockfilter');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const entries = upstreamFiles(images);
  const udp = entries.find((e) => e['isk'])?.['isk'];
  const filter = (udp?.['opts'] as Record<string, unknown> | undefined)?.['so_filter'] as Array<number | string> | undefined;
  assert.equal(filter?.length, 7, JSON.stringify(udp));
  // ld [8] as CRIU encodes it: code 0x30 << 48 | jt << 40 | jf << 32 | k.
  assert.equal(BigInt(filter![0]!), (0x30n << 48n) | 8n, JSON.stringify(filter));
  const unixFilters = entries.filter((e) => e['usk']).map((e) => ((e['usk']!['opts'] as Record<string, unknown>)['so_filter'] as unknown[] | undefined)?.length ?? 0);
  assert.deepEqual(unixFilters.sort(), [0, 4], JSON.stringify(unixFilters));
  await s.expectPass(await s.restore(images, target));
});

test('a locked socket filter and an eBPF one fail the dump in one line naming the task and fd; the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'sockfilter-refused');
  const cases: Array<[string, RegExp]> = [
    ['lock', /^Error: task \d+ fd 3 \(IPv4 UDP socket \d+\): its socket filter is locked \(SO_LOCK_FILTER\), which CRIU's images cannot hold$/],
    ['ebpf', /^Error: task \d+ fd 3 \(IPv4 UDP socket \d+\): an eBPF socket filter \(SO_ATTACH_BPF\) is attached, which cryo cannot dump \(CRIU's images hold only classic BPF\)$/],
  ];
  for (const [mode, want] of cases) {
    // A label of its own: each target's READY goes to its own output file.
    const target = await s.startCommand(`sockfilter-${mode}`, [compileProgram('sockfilter'), s.dir, mode]);
    const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
    assert.equal(r.code, 1, `${mode}: want exit 1${s.report()}`);
    assert.match(r.stderr.trimEnd(), want, `${mode}${s.report()}`);
    await s.check(waitFor(`${mode}: the task to run free`, () => runningFree(target.pid), 5_000));
    await s.killTree(target);
  }
});
