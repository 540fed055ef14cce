#!/usr/bin/env node
// npm run bench: dump and restore throughput of the BUILT cryo (bin/cryo).
//
// For targets with N MiB of dirty private anonymous memory (bench/target.c,
// compiled here with gcc), on tmpfs and on disk, it measures:
//   dump s, dump MB/s      image bytes / wall time of `cryo dump`
//   write MB/s, ratio      a plain sequential write of as many bytes into the same
//                          directory from a buffer holding them (no fsync), and
//                          dump MB/s / that
//   restore s, MB/s        image bytes / wall time of `cryo restore -d`
//   freeze ms, frozen ms   stats-dump: freezing_time and frozen_time
//   cryo RSS MB            peak RSS of the cryo process (dump / restore)
//   in-cryo s              dump / restore time that cryo logs (no node start-up)
// and checks that the restored target is alive and that its memory is intact
// (SIGUSR1: the target checks its pattern and exits 0 or 1).
//
// Options: --sizes 64,512,2048 (MiB)  --quick (64 MiB only)  --fs shm,disk
//          --shm-dir DIR  --disk-dir DIR  --cold (drop the page cache before
//          each restore, so a disk restore reads the images from the disk)
//          --runs N (default 3: each figure is the median of N runs; the first
//          touch of fresh memory is slow on VMs, so single runs scatter)
// MB = 10^6 bytes. Exits 1 if any run fails or a restored target's memory is bad.

import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CRYO = path.join(ROOT, 'bin/cryo');
const MiB = 1 << 20;
const TMPFS_MAGIC = 0x01021994;
const CRYO_TIMEOUT_MS = 600_000;

// ---------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = { sizes: [64, 512, 2048], fs: ['shm', 'disk'], shmDir: '/dev/shm', diskDir: undefined, cold: false, runs: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.sizes = [64];
    else if (a.startsWith('--sizes')) {
      o.sizes = val().split(',').map((s) => Number(s.trim()));
      if (o.sizes.some((n) => !Number.isInteger(n) || n <= 0)) usage('--sizes takes MiB counts, e.g. 64,512');
    } else if (a.startsWith('--fs')) {
      o.fs = val().split(',').map((s) => s.trim());
      if (o.fs.some((f) => f !== 'shm' && f !== 'disk')) usage('--fs takes shm, disk or both');
    } else if (a.startsWith('--shm-dir')) o.shmDir = val();
    else if (a.startsWith('--disk-dir')) o.diskDir = val();
    else if (a === '--cold') o.cold = true;
    else if (a.startsWith('--runs')) {
      o.runs = Number(val());
      if (!Number.isInteger(o.runs) || o.runs < 1) usage('--runs takes a count >= 1');
    }
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  return o;
}

function usage(err) {
  if (err) console.error(`bench: ${err}`);
  console.error('usage: node bench/bench.mjs [--sizes 64,512,2048] [--quick] [--fs shm,disk] [--shm-dir DIR] [--disk-dir DIR] [--cold] [--runs N]');
  process.exit(err ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));

if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm ci does it).');
  process.exit(1);
}
if (process.geteuid?.() !== 0) {
  console.error('cryo needs root: run the benchmark as root.');
  process.exit(1);
}
if (spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.error('gcc not found: the benchmark compiles its target (bench/target.c). Install gcc (apt-get install gcc).');
  process.exit(1);
}

const { setChildSubreaper, waitpid, WNOHANG, __WALL, decodeWaitStatus, closeOnExecInherited } = await import('../dist/sys/index.js');
const { ImageDir } = await import('../dist/images/index.js');

// Restored targets are orphans once `cryo restore -d` exits: make them ours to reap.
setChildSubreaper();
// Targets must get stdio only: mark every fd we inherited close-on-exec.
closeOnExecInherited();

// ---------------------------------------------------------------------------
// Process helpers

/** pids we must not leave behind: pid -> the child_process handle or null (an orphan we reap). */
const live = new Map();

const exists = (pid) => fs.existsSync(`/proc/${pid}`);
function procState(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}
const readOr = (f, d = '') => {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return d;
  }
};
const tailOf = (text, n) => text.trimEnd().split('\n').slice(-n).join('\n');

async function waitFor(what, cond, ms, stop) {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return;
    const why = stop?.();
    if (why) throw new Error(`gave up waiting for ${what}: ${why}`);
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits for an orphan (reparented to us) to end; returns its decoded status, or undefined on timeout. */
async function reapOrphan(pid, ms) {
  const end = Date.now() + ms;
  let status;
  while (exists(pid)) {
    try {
      const r = waitpid(pid, WNOHANG | __WALL);
      if (r.pid === pid) {
        const d = decodeWaitStatus(r.status);
        if (d.exited !== undefined || d.signaled !== undefined) status = d;
      }
    } catch (e) {
      if (e?.code !== 'ECHILD') throw e;
    }
    if (!exists(pid)) break;
    if (Date.now() > end) return status;
    await sleep(10);
  }
  live.delete(pid);
  return status;
}

async function killAndReap(pid) {
  const child = live.get(pid);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  if (child) {
    if (child.exitCode === null && child.signalCode === null) {
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000, undefined, { ref: false })]);
    }
    await waitFor(`pid ${pid} to leave /proc`, () => !exists(pid), 10_000).catch(() => {});
    live.delete(pid);
  } else {
    await reapOrphan(pid, 10_000);
  }
}

/** The cryo run in progress (its own process group), killed first on an interrupt. */
let currentCryo;

/** Our children right now: what node started and orphans reparented to us. */
function ourChildren() {
  const out = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const text = readOr(`/proc/self/task/${tid}/children`).trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

async function cleanupAll() {
  if (currentCryo) {
    try {
      process.kill(-currentCryo.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([new Promise((r) => currentCryo.once('exit', r)), sleep(5000, undefined, { ref: false })]);
  }
  for (const pid of [...live.keys()]) await killAndReap(pid);
  // A restore cut short leaves half-built tasks, reparented to us.
  for (const pid of ourChildren()) {
    if (pid === currentCryo?.pid) continue;
    await killAndReap(pid);
  }
}

/**
 * Runs bin/cryo (under /usr/bin/time -f %M when there is one) in its own process
 * group, output into a regular file. Returns wall ms, exit code, peak RSS in KiB.
 */
const TIME_BIN = fs.existsSync('/usr/bin/time') && spawnSync('/usr/bin/time', ['-f', '%M', '-o', '/dev/null', 'true']).status === 0
  ? '/usr/bin/time' : undefined;

async function runCryo(args, workDir, tag) {
  const outFile = path.join(workDir, `${tag}.out`);
  const rssFile = path.join(workDir, `${tag}.rss`);
  fs.rmSync(rssFile, { force: true });
  const argv = TIME_BIN ? [TIME_BIN, '-f', '%M', '-o', rssFile, process.execPath, CRYO, ...args] : [process.execPath, CRYO, ...args];
  const fd = fs.openSync(outFile, 'w');
  let child;
  const t0 = performance.now();
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], detached: true });
  } finally {
    fs.closeSync(fd);
  }
  currentCryo = child;
  let hwm = 0; // fallback without /usr/bin/time: poll VmHWM of cryo (node) itself
  const poll = TIME_BIN ? undefined : setInterval(() => {
    const m = /^VmHWM:\s+(\d+)/m.exec(readOr(`/proc/${child.pid}/status`));
    if (m) hwm = Math.max(hwm, Number(m[1]));
  }, 20);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, CRYO_TIMEOUT_MS);
  const { code, signal } = await new Promise((resolve) => {
    child.once('error', (e) => resolve({ code: -1, signal: e.message }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const ms = performance.now() - t0;
  currentCryo = undefined;
  clearTimeout(timer);
  if (poll) clearInterval(poll);
  const rssKiB = TIME_BIN ? Number(readOr(rssFile).trim().split('\n').pop()) || undefined : hwm || undefined;
  return { ms, code, signal, timedOut, rssKiB, output: readOr(outFile) };
}

function cryoFailure(what, r, logFile) {
  let msg = `cryo ${what} failed: ${r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.code}`}`;
  const out = r.output.replace(/^Command exited with non-zero status \d+\n?/m, '').trim();
  if (out) msg += `\n${tailOf(out, 8)}`;
  const log = readOr(logFile);
  if (log) msg += `\n--- ${path.basename(logFile)}:\n${tailOf(log, 15)}`;
  return new Error(msg);
}

/** The "... in N ms" of cryo's summary line in its log. */
function loggedMs(logFile, prefix) {
  const line = readOr(logFile).split('\n').findLast((l) => l.includes(prefix));
  const m = line && / in ([\d.]+) ms/.exec(line);
  return m ? Number(m[1]) : undefined;
}

// ---------------------------------------------------------------------------
// File systems, space, memory

function fsInfo(dir) {
  const st = fs.statfsSync(dir);
  return { tmpfs: st.type === TMPFS_MAGIC, free: st.bavail * st.bsize };
}

function memAvailable() {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readOr('/proc/meminfo'));
  return m ? Number(m[1]) * 1024 : Infinity;
}

function pickDiskDir() {
  if (opts.diskDir) return opts.diskDir;
  for (const d of ['/var/tmp', path.dirname(ROOT), os.tmpdir()]) {
    try {
      fs.accessSync(d, fs.constants.W_OK);
      if (!fsInfo(d).tmpfs) return d;
    } catch {
      /* not there */
    }
  }
  return undefined;
}

function mountOf(dir) {
  const r = spawnSync('df', ['--output=source,fstype,target', dir], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop().trim().split(/\s+/).join(' ') : '';
}

const sync = () => spawnSync('sync', { stdio: 'ignore' });

// ---------------------------------------------------------------------------
// One run

/**
 * The baseline: a plain sequential write of the same bytes into dir, no fsync.
 * The bytes come from a buffer as large as the image, filled beforehand, as the
 * dumped memory is: writing one small buffer over and over would copy from the CPU
 * cache, which no checkpoint of distinct memory can. Large writes (1 GiB at most).
 */
function plainWrite(dir, bytes) {
  const file = path.join(dir, 'plain-write.bin');
  const src = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < bytes; off += 8 * MiB) randomFillSync(src, off, Math.min(8 * MiB, bytes - off));
  sync();
  const t0 = performance.now();
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; ) done += fs.writeSync(fd, src, done, Math.min(1024 * MiB, bytes - done));
  } finally {
    fs.closeSync(fd);
  }
  const ms = performance.now() - t0;
  fs.rmSync(file);
  return ms;
}

async function startTarget(exe, bytes, workDir, tag) {
  // A fresh file per run: READY from an earlier run must not count.
  const outFile = path.join(workDir, `${tag}.target.out`);
  fs.rmSync(outFile, { force: true });
  const fd = fs.openSync(outFile, 'a');
  let child;
  try {
    child = spawn(exe, [String(bytes)], { cwd: workDir, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${exe}`);
  live.set(child.pid, child);
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `exit ${code}`)));
  let how;
  void exited.then((h) => (how = h));
  await waitFor(`the ${bytes / MiB} MiB target to print READY`, () => /^READY/m.test(readOr(outFile)), 120_000, () =>
    how ? `it ended (${how}): ${readOr(outFile).trim()}` : undefined,
  );
  return { pid: child.pid, child, exited, outFile };
}

async function benchOne(exe, sizeMiB, fsName, baseDir, workDir) {
  const bytes = sizeMiB * MiB;
  const tag = `${sizeMiB}M-${fsName}`;
  const row = { sizeMiB, fs: fsName, dir: baseDir };

  row.writeMs = plainWrite(baseDir, bytes);

  const t = await startTarget(exe, bytes, workDir, tag);
  const images = path.join(baseDir, `images-${tag}`);
  fs.mkdirSync(images);
  try {
    // -- dump
    sync();
    const d = await runCryo(['dump', '-t', String(t.pid), '-D', images, '-v4', '-o', 'dump.log'], workDir, `${tag}.dump`);
    if (d.code !== 0) throw cryoFailure('dump', d, path.join(images, 'dump.log'));
    row.dumpMs = d.ms;
    row.dumpRssKiB = d.rssKiB;
    row.dumpLoggedMs = loggedMs(path.join(images, 'dump.log'), 'dumped tree');
    const how = await Promise.race([t.exited, sleep(10_000, undefined, { ref: false }).then(() => undefined)]);
    if (how === undefined) throw new Error(`pid ${t.pid} still runs 10 s after the dump (state ${procState(t.pid)})`);
    await waitFor(`pid ${t.pid} to leave /proc`, () => !exists(t.pid), 10_000);
    live.delete(t.pid);

    row.imageBytes = 0;
    for (const f of fs.readdirSync(images)) if (!f.endsWith('.log')) row.imageBytes += fs.statSync(path.join(images, f)).size;
    const dir = ImageDir.open(images, { write: false });
    try {
      const s = dir.readOne('stats', 'dump').dump;
      row.freezingUs = s.freezingTime;
      row.frozenUs = s.frozenTime;
      row.memdumpUs = s.memdumpTime;
      row.memwriteUs = s.memwriteTime;
      row.pagesWritten = Number(s.pagesWritten);
    } finally {
      dir.close();
    }

    // -- restore
    sync();
    if (opts.cold) fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    const pidfile = path.join(workDir, `${tag}.pid`);
    fs.rmSync(pidfile, { force: true });
    const r = await runCryo(['restore', '-D', images, '-d', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], workDir, `${tag}.restore`);
    const rpid = Number(readOr(pidfile).trim());
    if (rpid > 0 && exists(rpid)) live.set(rpid, null);
    if (r.code !== 0) throw cryoFailure('restore', r, path.join(images, 'restore.log'));
    row.restoreMs = r.ms;
    row.restoreRssKiB = r.rssKiB;
    row.restoreLoggedMs = loggedMs(path.join(images, 'restore.log'), 'restored tree');
    if (rpid !== t.pid) throw new Error(`restored pid is ${rpid || '(none in the pid file)'}, the dumped one was ${t.pid}`);
    const st = procState(rpid);
    if (st === undefined || st === 'Z') throw new Error(`restored pid ${rpid} is not alive (state ${st ?? 'gone'})`);
    row.alive = true;

    // -- memory check in the target
    const before = readOr(t.outFile);
    process.kill(rpid, 'SIGUSR1');
    const status = await reapOrphan(rpid, 120_000);
    const said = readOr(t.outFile).slice(before.length).trim();
    if (status === undefined) throw new Error(`restored pid ${rpid} did not finish its memory check within 120 s`);
    row.memoryOk = status.exited === 0;
    row.check = said || JSON.stringify(status);
    if (!row.memoryOk) {
      row.error = `memory check failed: ${status.exited !== undefined ? `exit ${status.exited}` : `signal ${status.signaled}`}: ${said}`;
    }
  } finally {
    if (live.has(t.pid)) await killAndReap(t.pid);
    fs.rmSync(images, { recursive: true, force: true });
  }
  return row;
}

/** One row from several runs of a configuration: the median of every figure. */
function median(runs) {
  const ok = runs.filter((r) => r.dumpMs !== undefined && r.restoreMs !== undefined);
  const err = runs.find((r) => r.error);
  const out = { sizeMiB: runs[0].sizeMiB, fs: runs[0].fs, dir: runs[0].dir, runs: runs.length };
  if (err) out.error = err.error;
  if (ok.length === 0) return { ...out, runsDetail: runs };
  for (const k of Object.keys(ok[0])) {
    const vals = ok.map((r) => r[k]).filter((v) => typeof v === 'number').sort((a, b) => a - b);
    if (vals.length > 0) out[k] = vals.length % 2 ? vals[vals.length >> 1] : (vals[vals.length / 2 - 1] + vals[vals.length / 2]) / 2;
  }
  out.memoryOk = runs.every((r) => r.memoryOk === true);
  out.check = ok[0].check;
  out.runsDetail = runs;
  return out;
}

// ---------------------------------------------------------------------------
// Main

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-bench-'));
const bases = [];
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) process.exit(130); // a second one: leave now
    interrupted = true;
    console.error(`\n${sig}: stopping, cleaning up`);
    void cleanupAll();
  });
}

const rows = [];
const notes = [];
let failed = false;
try {
  const exe = path.join(work, 'target');
  const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', exe, path.join(ROOT, 'bench/target.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc bench/target.c failed:\n${cc.stderr}`);

  const fsDirs = [];
  for (const name of opts.fs) {
    const parent = name === 'shm' ? opts.shmDir : pickDiskDir();
    if (!parent || !fs.existsSync(parent)) {
      notes.push(`${name}: no usable directory${parent ? ` (${parent} is missing)` : ''}, skipped`);
      continue;
    }
    const info = fsInfo(parent);
    if (name === 'shm' && !info.tmpfs) notes.push(`shm: ${parent} is not a tmpfs`);
    if (name === 'disk' && info.tmpfs) notes.push(`disk: ${parent} is a tmpfs, not a disk`);
    const base = fs.mkdtempSync(path.join(parent, 'cryo-bench-'));
    bases.push(base);
    fsDirs.push({ name, base, mount: mountOf(parent) });
  }

  console.log(`cryo bench: ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, kernel ${os.release()}, node ${process.version}`);
  for (const f of fsDirs) console.log(`  ${f.name.padEnd(4)} ${f.base}  [${f.mount}]`);
  console.log(`  THP: ${readOr('/sys/kernel/mm/transparent_hugepage/enabled').trim()}; restore ${opts.cold ? 'cold (page cache dropped)' : 'warm (images in the page cache)'}; peak RSS via ${TIME_BIN ? '/usr/bin/time' : 'VmHWM polling'}`);
  console.log('');

  for (const sizeMiB of opts.sizes) {
    for (const f of fsDirs) {
      if (interrupted) break;
      const bytes = sizeMiB * MiB;
      const needDisk = bytes * 1.05 + 64 * MiB;
      const needMem = bytes * (f.name === 'shm' || fsInfo(f.base).tmpfs ? 2 : 1) + 512 * MiB;
      const free = fsInfo(f.base).free;
      if (free < needDisk) {
        notes.push(`${sizeMiB} MiB on ${f.name}: skipped, ${(free / MiB).toFixed(0)} MiB free in ${f.base}, needs ${(needDisk / MiB).toFixed(0)}`);
        continue;
      }
      if (memAvailable() < needMem) {
        notes.push(`${sizeMiB} MiB on ${f.name}: skipped, ${(memAvailable() / MiB).toFixed(0)} MiB of memory available, needs ${(needMem / MiB).toFixed(0)}`);
        continue;
      }
      process.stdout.write(`${String(sizeMiB).padStart(5)} MiB on ${f.name.padEnd(4)} ...`);
      const runs = [];
      let atLineStart = false;
      for (let i = 0; i < opts.runs && !interrupted; i++) {
        try {
          const row = await benchOne(exe, sizeMiB, f.name, f.base, work);
          runs.push(row);
          process.stdout.write(row.error ? ` FAILED: ${row.error}` : ` ok`);
          atLineStart = false;
        } catch (e) {
          if (interrupted) break;
          runs.push({ sizeMiB, fs: f.name, dir: f.base, error: e.message });
          process.stdout.write(` FAILED:\n${e.message.replace(/^/gm, '    ')}\n`);
          atLineStart = true;
        }
      }
      if (runs.length === 0) break;
      const row = median(runs);
      if (row.error) failed = true;
      if (!row.error) console.log(` (${row.check})`);
      else if (!atLineStart) console.log('');
      rows.push(row);
    }
  }
} catch (e) {
  failed = true;
  console.error(`bench: ${e.stack ?? e}`);
} finally {
  await cleanupAll();
  for (const b of bases) fs.rmSync(b, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------
// Report

const MB = 1e6;
for (const r of rows.flatMap((r) => [r, ...(r.runsDetail ?? [])])) {
  if (r.dumpMs === undefined) continue;
  r.dumpMBs = r.imageBytes / MB / (r.dumpMs / 1000);
  r.writeMBs = (r.sizeMiB * MiB) / MB / (r.writeMs / 1000);
  r.ratio = r.dumpMBs / r.writeMBs;
  if (r.restoreMs !== undefined) r.restoreMBs = r.imageBytes / MB / (r.restoreMs / 1000);
}

const cols = [
  ['size', (r) => `${r.sizeMiB} MiB`],
  ['fs', (r) => r.fs],
  ['dump s', (r) => fix(r.dumpMs, 1000, 2)],
  ['dump MB/s', (r) => fix(r.dumpMBs, 1, 0)],
  ['write MB/s', (r) => fix(r.writeMBs, 1, 0)],
  ['ratio', (r) => fix(r.ratio, 1, 2)],
  ['restore s', (r) => fix(r.restoreMs, 1000, 2)],
  ['restore MB/s', (r) => fix(r.restoreMBs, 1, 0)],
  ['freeze ms', (r) => fix(r.freezingUs, 1000, 1)],
  ['frozen ms', (r) => fix(r.frozenUs, 1000, 0)],
  ['cryo RSS MB d/r', (r) => (r.dumpRssKiB ? `${fix(r.dumpRssKiB, 1024, 0)}/${fix(r.restoreRssKiB, 1024, 0)}` : '-')],
  ['in-cryo s d/r', (r) => (r.dumpLoggedMs !== undefined ? `${fix(r.dumpLoggedMs, 1000, 2)}/${fix(r.restoreLoggedMs, 1000, 2)}` : '-')],
  ['memory', (r) => (r.error ? 'FAIL' : r.memoryOk ? 'ok' : '-')],
];
function fix(v, div, digits) {
  return v === undefined || Number.isNaN(v) ? '-' : (v / div).toFixed(digits);
}
const cells = rows.map((r) => cols.map(([, f]) => f(r)));
const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
console.log('');
console.log(cols.map(([h], i) => h.padStart(widths[i])).join('  '));
for (const c of cells) console.log(c.map((v, i) => v.padStart(widths[i])).join('  '));
console.log('');
console.log('dump/restore s: wall time of `cryo dump` / `cryo restore -d`, node start-up included; in-cryo s: what cryo logs.');
console.log('MB/s: image bytes / wall s (MB = 10^6 B); write: plain sequential write of the same number of bytes from a buffer that holds them, no fsync; ratio = dump MB/s / write MB/s.');
console.log(`each figure: the median of ${opts.runs} run(s); MB/s from the median times.`);
console.log('freeze ms: stats-dump freezing_time; frozen ms: frozen_time (the target was stopped this long).');
for (const n of notes) console.log(`note: ${n}`);

const jsonPath = path.join(os.tmpdir(), `cryo-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(
  jsonPath,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memBytes: os.totalmem(), kernel: os.release(), node: process.version },
      options: opts,
      rows,
      notes,
    },
    null,
    2,
  ) + '\n',
);
console.log(`results: ${jsonPath}`);
if (interrupted) console.log('interrupted: the table is partial');
process.exitCode = interrupted ? 130 : failed ? 1 : 0;
