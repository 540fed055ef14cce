// `cryo crit` on the images of real dumps (C programs with pipes, FIFOs, unix
// sockets with queued data, a deleted file, timers, signalfd/timerfd/pidfd; and
// python3 with five threads): image by image, decode prints what CRIU's own crit
// (Debian's) prints on every field that crit knows, text for text, plain and
// --pretty; encode of either JSON gives the image back byte for byte; -F picks
// nested fields; x agrees with crit's; damaged images fail in one line.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { DescMessage } from '@bufbuild/protobuf';
import { runCrit, type CritIO } from '../../src/crit/cli.js';
import { imageKind } from '../../src/crit/image.js';
import { dumps, parseJson, type JsonObject } from '../../src/crit/json.js';
import { KINDS, type PbKind } from '../../src/images/magic.js';
import { CRIT, critDecodeMany, debianView, PYTHON, pySchemas } from '../unit/crit-helpers.js';
import { PROGRAMS_DIR, ROOT, Session, python3, type Target } from './harness.js';

const CRYO = [process.execPath, path.join(ROOT, 'bin/cryo')];

function cryoCrit(args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(CRYO[0]!, [...CRYO.slice(1), 'crit', ...args], { input, maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** crit in this process (the same code as `cryo crit`, without a node start per call). */
function crit(argv: string[], stdin: Uint8Array = new Uint8Array(0)): { code: number; out: Buffer; err: string } {
  const out: Buffer[] = [];
  let err = '';
  const io: CritIO = {
    readFile: (p) => fs.readFileSync(p),
    readStdin: () => stdin,
    writeFile: (p, d) => fs.writeFileSync(p, d),
    stdout: (d) => out.push(Buffer.from(d)),
    stderr: (t) => (err += t),
  };
  const code = runCrit(argv, io);
  return { code, out: Buffer.concat(out), err };
}

/** Every image of a dump but the raw pages. */
function images(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => (n.endsWith('.img') || n.startsWith('stats-')) && !n.startsWith('pages-'))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Dumps (killing the trees: only the images matter here) five C programs and python3. */
async function dumpPrograms(s: Session): Promise<{ dirs: string[]; python: Target; pythonDir: string }> {
  const dirs: string[] = [];
  for (const name of ['pipes', 'fdkinds', 'unix', 'ghost', 'timers']) {
    const t = await s.start(name);
    const dir = s.mkdir(name);
    await s.dump(t, dir);
    dirs.push(dir);
  }
  const python = await s.startCommand('pythreads', [python3(), path.join(PROGRAMS_DIR, 'pythreads.py')], { ready: /^tick 2$/m, timeoutMs: 20_000 });
  const pythonDir = s.mkdir('python');
  await s.dump(python, pythonDir);
  dirs.push(pythonDir);
  return { dirs, python, pythonDir };
}

test('cryo crit on real dumps: CRIU\'s crit output on every field it knows, byte-identical round trips, -F, x, damaged images', { timeout: 240_000 }, async (t) => {
  const s = Session.for(t, 'crit');
  const { dirs, python, pythonDir } = await s.check(dumpPrograms(s));
  const files = dirs.flatMap(images);
  const kinds = new Set(files.map((f) => KINDS[imageKind(fs.readFileSync(f), f)].crit));
  for (const k of ['CORE', 'MM', 'PAGEMAP', 'PSTREE', 'FILES', 'FDINFO', 'PIPES_DATA', 'FIFO_DATA', 'SK_QUEUES', 'GHOST_FILE', 'REMAP_FPATH', 'INVENTORY', 'STATS']) {
    assert.ok(kinds.has(k), `no ${k} image in the dumps (${[...kinds].join(', ')})${s.report()}`);
  }

  // Decode, plain: `cryo crit decode` against `/usr/bin/crit decode`, image by
  // image; --pretty: crit in this process against pycriu's load (what crit's
  // decode runs) in one python, to keep the test short.
  const py = pySchemas();
  const batch = critDecodeMany(files);
  const notInDebian: string[] = [];
  for (const file of files) {
    const name = path.relative(s.dir, file);
    const bin = cryoCrit(['decode', '-i', file]);
    assert.equal(bin.status, 0, `cryo crit decode ${name}: ${bin.stderr}`);
    const plain = bin.stdout.toString('utf8');
    const pretty = crit(['decode', '--pretty', '-i', file]);
    assert.equal(pretty.code, 0, pretty.err);
    const bytes = fs.readFileSync(file);
    const kind = KINDS[imageKind(bytes, file)] as PbKind<DescMessage, DescMessage>;
    const b = batch.get(file)!;
    const cli = spawnSync(PYTHON, [CRIT, 'decode', '-i', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if ('error' in b || cli.status !== 0) {
      notInDebian.push(`${kind.crit} (${'error' in b ? b.error : cli.stderr})`);
    } else {
      const them = [cli.stdout.replace(/\n$/, ''), b[1]];
      (['plain', 'pretty'] as const).forEach((form, i) => {
        const text = (form === 'plain' ? plain : pretty.out.toString('utf8')).replace(/\n$/, '');
        const ours = parseJson(text, name).root as { magic: string; entries: JsonObject[] };
        const view = { magic: ours.magic, entries: ours.entries.map((e, n) => debianView(n === 0 && kind.head ? kind.head : kind.schema, e, py)) };
        // The same text (so also the same JSON, deep-equal).
        assert.equal(dumps(view, form === 'pretty' ? 4 : undefined), them[i], `${name} (${form}) differs from CRIU's crit`);
      });
    }
    // Encode: both JSON forms give the image back, byte for byte.
    for (const json of [Buffer.from(plain), pretty.out]) {
      const back = crit(['encode'], json);
      assert.equal(back.code, 0, `${name}: ${back.err}`);
      assert.ok(back.out.equals(bytes), `${name}: encode(decode(image)) differs from the image`);
    }
  }
  assert.deepEqual(notInDebian, [], 'CRIU\'s crit (3.17) reads every image cryo writes for these programs');

  // The binary: encode from stdin to stdout, and as `crit` (a symlink).
  const core = files.find((f) => /core-\d+\.img$/.test(f))!;
  const json = cryoCrit(['decode', '--pretty', '-i', core]);
  const enc = cryoCrit(['encode'], json.stdout);
  assert.equal(enc.status, 0, enc.stderr);
  assert.ok(enc.stdout.equals(fs.readFileSync(core)));
  const link = path.join(s.dir, 'crit');
  fs.symlinkSync(path.join(ROOT, 'bin/cryo'), link);
  const viaLink = spawnSync(link, ['show', core]);
  assert.equal(viaLink.status, 0, viaLink.stderr.toString());
  assert.ok(viaLink.stdout.equals(json.stdout), 'crit show = cryo crit decode --pretty');
  assert.equal(spawnSync(link, ['--version'], { encoding: 'utf8' }).stdout, '4.2\n');

  // -F on nested fields of python's images.
  const pids = fs.readdirSync(pythonDir).flatMap((n) => /^core-(\d+)\.img$/.exec(n)?.[1] ?? []).map(Number).sort((a, b) => a - b);
  assert.equal(pids.length, 5, 'python runs five threads');
  const leader = path.join(pythonDir, `core-${python.pid}.img`);
  const sel = cryoCrit(['decode', '-F', 'tc.comm,thread_info.gpregs.ip,thread_core.comm', '-i', leader]);
  assert.equal(sel.status, 0, sel.stderr);
  const picked = JSON.parse(sel.stdout.toString()) as { entries: Array<Record<string, Record<string, unknown>>> };
  const full = JSON.parse(execFileSync(PYTHON, [CRIT, 'decode', '-i', leader], { encoding: 'utf8' }).replace(/(\d{16,})/g, '"$1"'));
  const e = picked.entries[0]!;
  assert.deepEqual(Object.keys(e), ['thread_info', 'tc', 'thread_core']);
  assert.deepEqual(Object.keys(e['thread_info']!), ['gpregs']);
  assert.equal(String((e['thread_info']!['gpregs'] as Record<string, unknown>)['ip']), String(full.entries[0].thread_info.gpregs.ip));
  assert.deepEqual(e['tc'], { comm: full.entries[0].tc.comm });
  assert.match(full.entries[0].tc.comm, /^python/);
  const vmas = cryoCrit(['show', '-F', 'vmas.start,vmas.status', path.join(pythonDir, `mm-${python.pid}.img`)]);
  const mm = JSON.parse(vmas.stdout.toString()) as { entries: Array<{ vmas: Array<Record<string, string>> }> };
  assert.ok(mm.entries[0]!.vmas.length > 20);
  for (const v of mm.entries[0]!.vmas) {
    assert.deepEqual(Object.keys(v), ['start', 'status']);
    assert.match(v['start']!, /^0x[0-9a-f]+$/);
    assert.match(v['status']!, /VMA_AREA_REGULAR|VMA_AREA_VSYSCALL/);
  }
  const unknown = cryoCrit(['decode', '-F', 'thread_info.gpregs.rip', '-i', leader]);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /^crit: -F: no field "thread_info\.gpregs\.rip": the fields of thread_info\.gpregs are r15, r14, .* ip, /);

  // x: the process tree and the memory map as crit prints them.
  for (const dir of dirs) {
    for (const what of ['ps', 'mems']) {
      const r = cryoCrit(['x', dir, what]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.toString(), execFileSync(PYTHON, [CRIT, 'x', dir, what], { encoding: 'utf8' }), `x ${what} of ${dir}`);
    }
    for (const what of ['fds', 'rss']) assert.equal(crit(['x', dir, what]).code, 0, `x ${what} of ${dir}`);
  }
  const fdsOut = crit(['x', dirs[0]!, 'fds']).out.toString();
  assert.match(fdsOut, /^\t {6}3: pipe\[\d+\]$/m, fdsOut);

  // Damaged images: a truncated core, a corrupt length, a zeroed magic.
  const bytes = fs.readFileSync(leader);
  const bad = (name: string, data: Buffer, what: RegExp) => {
    const p = path.join(s.dir, name);
    fs.writeFileSync(p, data);
    const r = cryoCrit(['decode', '-i', p]);
    assert.equal(r.status, 1, `${name}: ${r.stderr}`);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^crit: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    assert.match(r.stderr, what);
  };
  bad('cut.img', bytes.subarray(0, bytes.length >> 1), /entry at offset 8: length \d+ but only \d+ bytes left/);
  const huge = Buffer.from(bytes);
  huge.writeUInt32LE(0xfffffff0, 8);
  bad('huge.img', huge, /entry at offset 8: length 4294967280 exceeds limit/);
  const magic = Buffer.from(bytes);
  magic.writeUInt32LE(0, 4);
  bad('magic.img', magic, /at offset 4: unknown magic 0x00000000/);
  bad('pages.img', fs.readFileSync(path.join(pythonDir, 'pages-1.img')), /at offset 0: unknown magic .* \(maybe raw data/);
});
