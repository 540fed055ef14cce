// pre-dump and incremental dumps (--prev-images-dir, --track-mem) without
// soft-dirty: memory tracked by async userfaultfd write-protection. The program
// changes, maps, unmaps, moves and forks between the dumps; every page must come
// back as it was last, and the images must show pages kept in the parent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Session, waitFor, checkPageCounts, type Target } from './harness.js';

/** Upstream crit's decoder (the built CRIU tree's pycriu, else Debian's). */
function pycriuEntries(file: string): Array<Record<string, unknown>> {
  const lib = fs.existsSync('/work/criu/lib/pycriu') ? '/work/criu/lib' : '/usr/lib/python3/dist-packages';
  const py = `import sys, json; sys.path.insert(0, ${JSON.stringify(lib)}); from pycriu import images\nprint(json.dumps(images.load(open(sys.argv[1], 'rb'))['entries']))`;
  const r = spawnSync('/usr/bin/python3', ['-c', py, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`pycriu ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

function parentPages(dir: string, pid: number): number {
  return pycriuEntries(path.join(dir, `pagemap-${pid}.img`)).slice(1)
    .filter((e) => (Number(e['flags'] ?? 0) & 1) !== 0) // PE_PARENT
    .reduce((s, e) => s + Number(e['nr_pages']), 0);
}

async function step(s: Session, t: Target, k: number): Promise<void> {
  t.signal('SIGWINCH');
  await s.check(waitFor(`STEP ${k}`, () => new RegExp(`^STEP ${k}$`, 'm').test(t.output()), 5_000));
}

/** pre-dump, step, pre-dump, step, step, dump: returns the dirs. */
async function chain(s: Session, t: Target, extraDump: string[] = []): Promise<string[]> {
  const d1 = s.mkdir('1');
  const d2 = s.mkdir('2');
  const d3 = s.mkdir('3');
  s.ok(await s.cryo(['pre-dump', '-t', String(t.pid), '-D', d1, '-v4', '-o', 'dump.log']));
  await step(s, t, 1);
  s.ok(await s.cryo(['pre-dump', '-t', String(t.pid), '-D', d2, '-v4', '-o', 'dump.log', '--prev-images-dir', '../1', '--track-mem']));
  await step(s, t, 2);
  await step(s, t, 3);
  await s.dump(t, d3, { extra: ['--prev-images-dir', '../2', '--track-mem', ...extraDump] });
  return [d1, d2, d3];
}

test('pre-dump twice, then dump: changed, remapped, moved and forked memory comes back as last written', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'predump');
  const target = await s.start('predump');
  const [d1, d2, d3] = await chain(s, target);
  assert.equal(fs.readlinkSync(path.join(d2, 'parent')), '../1');
  assert.equal(fs.readlinkSync(path.join(d3, 'parent')), '../2');
  for (const d of [d1, d2, d3]) checkPageCounts(d);
  // Pages unchanged since the last pre-dump are only named in the dump (CRIU's crit reads them so).
  const kept = parentPages(d3, target.pid);
  assert.ok(kept >= 100, `the dump keeps ${kept} pages in its parent, want most of region A`);
  assert.ok(parentPages(d2, target.pid) >= 100);
  // The holder of the tracked memory is gone once the last dump took it.
  assert.ok(!fs.existsSync(path.join(d2, 'cryo-track.json')));
  await s.expectPass(await s.restore(d3, target));
});

test('an incremental dump that wrongly keeps changed pages in the parent is caught by the checks', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'predump-trust-all');
  const target = await s.start('predump');
  const d1 = s.mkdir('1');
  const d2 = s.mkdir('2');
  s.ok(await s.cryo(['pre-dump', '-t', String(target.pid), '-D', d1, '-v4', '-o', 'dump.log']));
  await step(s, target, 1);
  // CRIU_FAULT=4001: every page the parent has is taken as unchanged.
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', d2, '-v4', '-o', 'dump.log', '--prev-images-dir', '../1', '--track-mem'], { env: { CRIU_FAULT: '4001' } });
  s.ok(r);
  await s.check(s.gone(target, [target.pid], d2));
  const restored = await s.restore(d2, target);
  const { status, output } = await s.finish(restored);
  assert.notEqual(status?.exited, 0, output);
  assert.match(output, /^FAIL: .*A\[1\] page 0/m);
});

test('check --feature mem_dirty_track says yes: async userfaultfd write-protect works here', { timeout: 20_000 }, async (t) => {
  const s = Session.for(t, 'predump-check');
  const r = await s.cryo(['check', '--feature', 'mem_dirty_track']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /mem_dirty_track is supported/);
});
