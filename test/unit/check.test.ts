// `cryo check`: the feature table probed for real on this machine, and runCheck's output.
import { Cleanup } from '../../src/cleanup.js';
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { FEATURES, Kerndat, featureNames, probeFeatures, runCheck } from '../../src/check.js';
import { makeLogger, LOG_WARN, type Logger } from '../../src/context.js';
import { defaultOptions, type Options } from '../../src/options/index.js';
import { CHECK_FEATURES } from '../../src/options/table.js';


function openFds(): string[] {
  return readdirSync('/proc/self/fd').sort();
}

/** pids of our children, from every thread's children list. */
function children(): string[] {
  const out: string[] = [];
  for (const t of readdirSync('/proc/self/task')) {
    const c = readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim();
    if (c) out.push(...c.split(/\s+/));
  }
  return out;
}

async function check(set: Partial<Options>, level = LOG_WARN) {
  const lines: string[] = [];
  const log: Logger = { ...makeLogger(level, (t) => lines.push(t)), msg: (t: string) => lines.push(`MSG ${t}`) };
  const code = await runCheck({ opts: { ...defaultOptions(), ...set }, log, kdat: new Kerndat(), cleanup: new Cleanup() });
  return { code, lines };
}

describe('the feature table', () => {
  it('has unique names and knows every name of CRIU\'s --feature', () => {
    const names = featureNames();
    assert.equal(new Set(names).size, names.length);
    for (const n of CHECK_FEATURES) assert.ok(names.includes(n), `${n} missing from the table`);
    for (const f of FEATURES) {
      assert.ok(f.description.length > 0 && f.missing.length > 0, f.name);
      assert.ok(['required', 'extra', 'experimental'].includes(f.kind), f.name);
    }
  });

  it('every probe returns a boolean, throws nothing and leaves no fd or child behind', () => {
    const fdsBefore = openFds();
    const childrenBefore = children();
    const k = new Kerndat();
    for (const f of FEATURES) {
      let r: unknown;
      assert.doesNotThrow(() => {
        r = f.probe(k);
      }, f.name);
      assert.equal(typeof r, 'boolean', f.name);
    }
    assert.deepEqual(openFds(), fdsBefore);
    assert.deepEqual(children(), childrenBefore);
  });

  it('every required feature is there on this machine', () => {
    const results = probeFeatures();
    assert.equal(results.length, FEATURES.length);
    const missing = results.filter((r) => r.kind === 'required' && !r.ok);
    assert.deepEqual(missing.map((r) => `${r.name}: ${r.detail}`), []);
  });

  it('reports what this machine has and cryo does; no for what cryo does not do, whatever the kernel has', () => {
    const byName = new Map(probeFeatures().map((r) => [r.name, r]));
    for (const n of ['pagemap_scan', 'pidfd_getfd', 'clone3_set_tid', 'get_rseq_conf', 'ns_pid', 'userfaultfd', 'sk_unix_file', 'sockopt_buf_lock', 'timens', 'cgroupns', 'mem_dirty_track']) {
      assert.equal(byName.get(n)?.ok, true, n);
    }
    // The kernel has pidfds and userfaultfd, but cryo has no pidfd_store_sk and no lazy restore.
    for (const n of ['pidfd_store', 'uffd', 'uffd-noncoop', 'lazy_pages']) {
      assert.deepEqual([byName.get(n)?.ok, byName.get(n)?.implemented], [false, false], n);
      assert.match(byName.get(n)?.detail ?? '', /^cryo /, n);
    }
  });

  it('probes only what it is asked, and marks what cryo does not implement', () => {
    const r = probeFeatures(['pidfd_getfd', 'autofs', 'no-such-thing']);
    assert.deepEqual(r.map((x) => x.name), ['pidfd_getfd', 'autofs']);
    assert.equal(r[0]!.ok, true);
    assert.equal(r[0]!.implemented, true);
    assert.equal(r[1]!.ok, false);
    assert.equal(r[1]!.implemented, false);
    assert.match(r[1]!.detail ?? '', /cryo does not/);
  });

  it('shares one seed child among the ptrace probes', () => {
    const k = new Kerndat();
    const a = k.seed();
    assert.equal(k.seed(), a);
    for (const [step, s] of Object.entries(a)) assert.equal(s.ok, true, `${step}: ${s.why}`);
  });
});

describe('runCheck', () => {
  it('prints only "Looks good." when the required features are there', async () => {
    const r = await check({});
    assert.deepEqual(r.lines, ['MSG Looks good.']);
    assert.equal(r.code, 0);
  });

  it('--all: every feature cryo uses is on this machine; those it does not implement are not warned about', async () => {
    const r = await check({ extra: true, experimental: true });
    assert.deepEqual(r, { code: 0, lines: ['MSG Looks good.'] });
  });

  it('-v3 lists every feature probed', async () => {
    const r = await check({}, 3);
    for (const f of FEATURES.filter((x) => x.kind === 'required')) {
      assert.ok(r.lines.some((l) => l.startsWith(`${f.name}: yes`)), f.name);
    }
  });

  it('--feature NAME: "NAME is supported" or an error, exit 0/1', async () => {
    assert.deepEqual(await check({ feature: 'clone3_set_tid' }), { code: 0, lines: ['MSG clone3_set_tid is supported'] });
    assert.deepEqual(await check({ feature: 'pidfd_store' }), {
      code: 1, lines: ['Error: pidfd_store is not supported: cryo does not keep pidfds in a pidfd_store_sk yet'],
    });
    assert.deepEqual(await check({ feature: 'uffd-noncoop' }), {
      code: 1, lines: ['Error: uffd-noncoop is not supported: cryo does not restore memory lazily yet'],
    });
    assert.deepEqual(await check({ feature: 'nsid' }), { code: 0, lines: ['MSG nsid is supported'] });
  });

  it('an unknown feature: one error line naming the known ones, exit 1', async () => {
    const r = await check({ feature: 'bogus' });
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 1);
    assert.match(r.lines[0]!, /^Error: Unknown feature bogus; known features: capabilities, .*pidfd_store/);
  });
});
