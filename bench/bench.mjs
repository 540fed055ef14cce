#!/usr/bin/env node
// npm run bench: dump and restore throughput of the BUILT cryo (bin/cryo).
//
// For targets with N MiB of dirty private anonymous memory (bench/target.c,
// compiled here with gcc), on tmpfs and on disk, it measures:
//   dump s, dump MB/s      image bytes / wall time of `cryo dump`
//   write MB/s, ratio      a plain sequential write of the same bytes into the same
//                          directory, from memory laid out as the target's (no
//                          fsync), and dump MB/s / that
//   restore s, MB/s        image bytes / wall time of `cryo restore -d`
//   freeze ms, frozen ms   stats-dump: freezing_time and frozen_time
//   cryo RSS MB            peak RSS of the cryo process (dump / restore)
//   in-cryo s              dump / restore time that cryo logs (no node start-up)
// and checks that the restored target is alive and that its memory is intact
// (SIGUSR1: the target checks its pattern and exits 0 or 1).
//
// Then two shapes, in the first file system of --fs (a second table):
//   tree      100 processes (bench/tree-target.c: a root, 9 children, 10
//             grandchildren each, every one with 64 KiB of dirty private memory,
//             waiting in sigsuspend)
//   threads   one process with 100 threads (bench/threads-target.c: 99 workers
//             in pthread_cond_wait, nanosleep loops, sigsuspend and sem_wait)
// with freeze ms, frozen ms, dump and restore wall and in-cryo times; after the
// restore it checks that the same 100 pids (ppid links in /proc/*/stat) or tids
// (/proc/PID/task) are back, then SIGUSR1: the tree root signals its children,
// they theirs, each checks its memory and parent and exits 0, each parent reaps
// its children; the threads target checks that the sleepers still count, wakes
// and joins every thread. Either exits 0 only if all were fine.
//
// And the connections case (bench/conns.mjs): a process with 1,000
// established TCP connections to the benchmark, dumped and restored with
// --tcp-established; how long its peer got no answer, and that every
// connection carries data again, none lost.
//
// And the container case (bench/runc.mjs): `runc checkpoint` and `runc restore -d`
// of a busybox container (its counter must go on), with cryo, and with --criu's
// binary, as runc's --criu; and the podman case (bench/podman.mjs): `podman
// container checkpoint` and `restore` of such a container, podman's runc
// finding cryo (or --criu's binary) as the `criu` first on PATH.
//
// Options: --only memory,tree,threads,conns,runc,podman (default: all six)
//          --sizes 64,512,2048 (MiB)  --quick (64 MiB only)  --fs shm,disk
//          --shm-dir DIR  --disk-dir DIR  --cold (drop the page cache before
//          each restore, so a disk restore reads the images from the disk)
//          --conns N (default 1000: the connections of the conns case)
//          --runs N (default 3: each figure is the median of N runs; the first
//          touch of fresh memory is slow on VMs, so single runs scatter)
//          --keep-failed (keep the images dir, with cryo's logs, of a failed run)
//          --criu BIN (also run every configuration with this CRIU binary, built
//          outside the repo, right after cryo's run on the same kind of target,
//          and print its times and the ratios cryo/CRIU: below 1, cryo is faster)
// MB = 10^6 bytes. Exits 1 if any run fails or a restored target's memory is bad.

import { spawn, spawnSync } from 'node:child_process';
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

const KINDS = ['memory', 'tree', 'threads', 'conns', 'runc', 'podman'];

function parseArgs(argv) {
  const o = { conns: 1000, sizes: [64, 512, 2048], fs: ['shm', 'disk'], shmDir: '/dev/shm', diskDir: undefined, cold: false, runs: 3, only: [...KINDS] };
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
    else if (a === '--keep-failed') o.keepFailed = true;
    else if (a.startsWith('--criu')) o.criu = path.resolve(val());
    else if (a.startsWith('--only')) {
      o.only = val().split(',').map((s) => s.trim()).filter(Boolean);
      if (o.only.length === 0 || o.only.some((k) => !KINDS.includes(k))) usage(`--only takes ${KINDS.join(', ')} (comma-separated)`);
    }
    else if (a.startsWith('--conns')) {
      o.conns = Number(val());
      if (!Number.isInteger(o.conns) || o.conns < 1) usage('--conns takes a count >= 1');
    }
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
  console.error('usage: node bench/bench.mjs [--only memory,tree,threads,conns,runc,podman] [--conns N] [--sizes 64,512,2048] [--quick] [--fs shm,disk] [--shm-dir DIR] [--disk-dir DIR] [--cold] [--runs N] [--keep-failed] [--criu BIN]');
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
  console.error('gcc not found: the benchmark compiles its targets (bench/*.c). Install gcc (apt-get install gcc).');
  process.exit(1);
}

const { setChildSubreaper, waitpid, WNOHANG, __WALL, decodeWaitStatus, closeOnExecInherited } = await import('../dist/sys/index.js');
const { ImageDir } = await import('../dist/images/index.js');
const { benchConns } = await import('./conns.mjs');
const { benchRunc } = await import('./runc.mjs');
const { benchPodman, podmanSetup } = await import('./podman.mjs');

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

async function runCryo(args, workDir, tag, bin = CRYO) {
  const outFile = path.join(workDir, `${tag}.out`);
  const rssFile = path.join(workDir, `${tag}.rss`);
  fs.rmSync(rssFile, { force: true });
  const argv = TIME_BIN ? [TIME_BIN, '-f', '%M', '-o', rssFile, bin, ...args] : [bin, ...args];
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

/** The N of cryo's "<prefix> of N task(s)" summary line in its log. */
function loggedTasks(logFile, prefix) {
  const line = readOr(logFile).split('\n').findLast((l) => l.includes(prefix));
  const m = line && / of (\d+) task/.exec(line);
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
 * The baseline: a plain sequential write of the same bytes into dir, no fsync,
 * by the target program itself (`target --write FILE BYTES`): from memory filled
 * and laid out as the dumped memory is (4 KiB pages), in 1 GiB writes. A Node
 * Buffer would not do: large ones get transparent huge pages here, and copying
 * from those runs 2-4x faster on this VM than from the 4 KiB pages of the target
 * (and of most processes), so the ratio would compare different memory.
 */
function plainWrite(exe, dir, bytes) {
  const file = path.join(dir, 'plain-write.bin');
  sync();
  const r = spawnSync(exe, ['--write', file, String(bytes)], { encoding: 'utf8' });
  fs.rmSync(file, { force: true });
  if (r.status !== 0) throw new Error(`plain write baseline failed: ${r.stderr || r.error?.message}`);
  return Number(r.stdout.trim()) * 1000;
}

/** Images dirs of failed runs kept for --keep-failed (with dump.log and restore.log). */
const kept = [];

/** Removes a run's images dir, or keeps it (renamed, unique) when the run failed and --keep-failed is on. */
function dropImages(images, ok) {
  if (ok || !opts.keepFailed || !fs.existsSync(images)) {
    fs.rmSync(images, { recursive: true, force: true });
    return;
  }
  const to = `${images}-failed-${kept.length + 1}`;
  fs.renameSync(images, to);
  kept.push(to);
}

async function startTarget(exe, args, workDir, tag, what) {
  // A fresh file per run: READY from an earlier run must not count.
  const outFile = path.join(workDir, `${tag}.target.out`);
  fs.rmSync(outFile, { force: true });
  const fd = fs.openSync(outFile, 'a');
  let child;
  try {
    child = spawn(exe, args, { cwd: workDir, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${exe}`);
  live.set(child.pid, child);
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `exit ${code}`)));
  let how;
  void exited.then((h) => (how = h));
  await waitFor(`the ${what} target to print READY`, () => /^READY/m.test(readOr(outFile)), 120_000, () =>
    how ? `it ended (${how}): ${readOr(outFile).trim()}` : undefined,
  );
  return { pid: child.pid, child, exited, outFile };
}

async function benchOne(exe, sizeMiB, fsName, baseDir, workDir, bin = CRYO) {
  const bytes = sizeMiB * MiB;
  const tag = `${sizeMiB}M-${fsName}`;
  const row = { sizeMiB, fs: fsName, dir: baseDir };

  row.writeMs = plainWrite(exe, baseDir, bytes);

  const t = await startTarget(exe, [String(bytes)], workDir, tag, `${sizeMiB} MiB`);
  const images = path.join(baseDir, `images-${tag}`);
  fs.mkdirSync(images);
  let done = false;
  try {
    // -- dump
    sync();
    const d = await runCryo(['dump', '-t', String(t.pid), '-D', images, '-v4', '-o', 'dump.log'], workDir, `${tag}.dump`, bin);
    if (d.code !== 0) throw cryoFailure('dump', d, path.join(images, 'dump.log'));
    row.dumpMs = d.ms;
    row.dumpRssKiB = d.rssKiB;
    row.dumpLoggedMs = loggedMs(path.join(images, 'dump.log'), 'dumped tree');
    const how = await Promise.race([t.exited, sleep(10_000, undefined, { ref: false }).then(() => undefined)]);
    if (how === undefined) throw new Error(`pid ${t.pid} still runs 10 s after the dump (state ${procState(t.pid)})`);
    await waitFor(`pid ${t.pid} to leave /proc`, () => !exists(t.pid), 10_000);
    live.delete(t.pid);

    readDumpStats(images, row);

    // -- restore
    sync();
    if (opts.cold) fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    const pidfile = path.join(workDir, `${tag}.pid`);
    fs.rmSync(pidfile, { force: true });
    const r = await runCryo(['restore', '-D', images, '-d', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], workDir, `${tag}.restore`, bin);
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
    done = true;
  } finally {
    if (live.has(t.pid)) await killAndReap(t.pid);
    dropImages(images, done && !row.error);
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
// Shapes: a tree of 100 processes, a process of 100 threads

/** pid -> ppid of every process in /proc (from /proc/PID/stat). */
function ppidTable() {
  const out = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readOr(`/proc/${name}/stat`);
    if (!s) continue;
    out.set(Number(name), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
  }
  return out;
}

/** root and every descendant of it, by the ppid links of /proc/STAR/stat. */
function treeOf(root) {
  const table = ppidTable();
  if (!table.has(root)) return [];
  const kids = new Map();
  for (const [pid, ppid] of table) {
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(pid);
  }
  const out = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift();
    out.push(p);
    queue.push(...(kids.get(p) ?? []));
  }
  return out;
}

/** The thread ids of pid. */
function tidsOf(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

const sameSet = (a, b) => a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);

/** SIGKILLs every pid still there (root first) and reaps what is reparented to us. */
async function killPids(pids) {
  for (const p of pids) {
    if (!exists(p)) continue;
    if (!live.has(p)) live.set(p, null);
    await killAndReap(p);
  }
}

const SHAPES = {
  tree: { what: '100-process tree', args: ['9', '10', String(64 * 1024)], count: 100, unit: 'processes' },
  threads: { what: '100-thread', args: ['99'], count: 100, unit: 'threads' },
};

/** One dump + restore + check of the tree or threads target. */
async function benchShape(kind, exe, fsName, baseDir, workDir, bin = CRYO) {
  const shape = SHAPES[kind];
  const tag = `${kind}-${fsName}`;
  const row = { kind, fs: fsName, dir: baseDir, want: shape.count };
  const members = (pid) => (kind === 'tree' ? treeOf(pid) : tidsOf(pid));

  const t = await startTarget(exe, shape.args, workDir, tag, shape.what);
  const images = path.join(baseDir, `images-${tag}`);
  fs.mkdirSync(images);
  let done = false;
  let before = members(t.pid);
  try {
    row.before = before.length;
    if (before.length !== shape.count) throw new Error(`the target has ${before.length} ${shape.unit} before the dump, want ${shape.count}`);
    // Tree members other than the root: killed and reaped with the root on failure.
    for (const p of before) if (p !== t.pid && kind === 'tree') live.set(p, null);

    // -- dump
    const d = await runCryo(['dump', '-t', String(t.pid), '-D', images, '-v4', '-o', 'dump.log'], workDir, `${tag}.dump`, bin);
    if (d.code !== 0) throw cryoFailure('dump', d, path.join(images, 'dump.log'));
    row.dumpMs = d.ms;
    row.dumpRssKiB = d.rssKiB;
    row.dumpLoggedMs = loggedMs(path.join(images, 'dump.log'), 'dumped tree');
    row.dumpTasks = loggedTasks(path.join(images, 'dump.log'), 'dumped tree');
    const how = await Promise.race([t.exited, sleep(10_000, undefined, { ref: false }).then(() => undefined)]);
    if (how === undefined) throw new Error(`pid ${t.pid} still runs 10 s after the dump (state ${procState(t.pid)})`);
    // Every pid/tid must be gone (reaped: the children come to us) before the restore takes them again.
    await waitFor(`pid ${t.pid} to leave /proc`, () => !exists(t.pid), 10_000);
    live.delete(t.pid);
    for (const p of before) {
      if (p === t.pid) continue;
      if (kind === 'tree') await reapOrphan(p, 10_000);
      if (exists(p)) throw new Error(`${kind === 'tree' ? 'pid' : 'tid'} ${p} is still there 10 s after the dump (state ${procState(p)})`);
    }

    readDumpStats(images, row);

    // -- restore
    const pidfile = path.join(workDir, `${tag}.pid`);
    fs.rmSync(pidfile, { force: true });
    const r = await runCryo(['restore', '-D', images, '-d', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], workDir, `${tag}.restore`, bin);
    const rpid = Number(readOr(pidfile).trim());
    if (rpid > 0 && exists(rpid)) live.set(rpid, null);
    for (const p of before) if (p !== rpid && kind === 'tree' && exists(p)) live.set(p, null);
    if (r.code !== 0) throw cryoFailure('restore', r, path.join(images, 'restore.log'));
    row.restoreMs = r.ms;
    row.restoreRssKiB = r.rssKiB;
    row.restoreLoggedMs = loggedMs(path.join(images, 'restore.log'), 'restored tree');
    row.restoreTasks = loggedTasks(path.join(images, 'restore.log'), 'restored tree');
    if (rpid !== t.pid) throw new Error(`restored pid is ${rpid || '(none in the pid file)'}, the dumped one was ${t.pid}`);

    // -- all back, with the same ids, none stopped or dead
    let after = [];
    await waitFor(`the ${shape.count} ${shape.unit} to be back`, () => (after = members(rpid)).length >= shape.count, 5_000).catch(() => {});
    row.after = after.length;
    if (!sameSet(after, before)) {
      const lost = before.filter((p) => !after.includes(p));
      const extra = after.filter((p) => !before.includes(p));
      throw new Error(`after the restore ${after.length} ${shape.unit}, want the ${before.length} dumped; missing ${lost.slice(0, 10).join(' ') || '-'}, new ${extra.slice(0, 10).join(' ') || '-'}`);
    }
    const states = after.map((p) => (kind === 'tree' ? procState(p) : readOr(`/proc/${rpid}/task/${p}/stat`).split(') ')[1]?.[0]));
    const badState = after.filter((_, i) => !states[i] || 'ZXTt'.includes(states[i]));
    if (badState.length > 0) throw new Error(`restored ${shape.unit} not running: ${badState.slice(0, 10).map((p) => `${p} (${states[after.indexOf(p)] ?? 'gone'})`).join(', ')}`);
    row.alive = true;

    // -- the target's own check
    const said0 = readOr(t.outFile);
    process.kill(rpid, 'SIGUSR1');
    const status = await reapOrphan(rpid, 60_000);
    const said = readOr(t.outFile).slice(said0.length).trim();
    if (status === undefined) throw new Error(`restored pid ${rpid} did not finish its check within 60 s: ${said}`);
    row.checkOk = status.exited === 0;
    row.check = said || JSON.stringify(status);
    if (!row.checkOk) row.error = `check failed: ${status.exited !== undefined ? `exit ${status.exited}` : `signal ${status.signaled}`}: ${tailOf(said, 5)}`;
    // Its children were reaped by their parents: none may be left.
    await waitFor(`the restored ${shape.unit} to be gone`, () => before.every((p) => !exists(p)), 10_000).catch(() => {});
    const left = before.filter((p) => exists(p));
    if (left.length > 0 && !row.error) row.error = `${left.length} ${shape.unit} still there after the root exited: ${left.slice(0, 10).join(' ')}`;
    done = true;
  } finally {
    if (kind === 'tree') before = [...new Set([...before, ...treeOf(t.pid)])];
    await killPids(kind === 'tree' ? before : [t.pid]);
    for (const p of before) live.delete(p);
    dropImages(images, done && !row.error);
  }
  return row;
}

/** The median of every numeric figure of the runs of one shape. */
/**
 * `once(bin)` opts.runs times with cryo and, with --criu, right after each with
 * CRIU, whose `keys` go into cryo's row as criuKey; a run that failed is printed.
 * The median row (its `intact` only if every run's was), or undefined if none ran.
 */
async function sideBySide(once, keys, okNote) {
  const runs = [];
  for (let i = 0; i < opts.runs && !interrupted; i++) {
    const row = await once(CRYO);
    if (opts.criu) {
      const c = await once(opts.criu);
      for (const k of keys) row[`criu${k[0].toUpperCase()}${k.slice(1)}`] = c[k];
      if (c.error) process.stdout.write(` (CRIU failed: ${(row.criuError = c.error.split('\n')[0])})`);
    }
    runs.push(row);
    process.stdout.write(row.error ? ` FAILED:\n${row.error.replace(/^/gm, '    ')}\n` : ' ok');
  }
  if (runs.length === 0) return undefined;
  const row = medianShape(runs);
  row.intact = runs.every((r) => r.intact === true);
  if (row.error) failed = true;
  else console.log(` (${okNote})`);
  return row;
}

function medianShape(runs) {
  const ok = runs.filter((r) => r.dumpMs !== undefined && r.restoreMs !== undefined);
  const err = runs.find((r) => r.error);
  const out = { kind: runs[0].kind, fs: runs[0].fs, dir: runs[0].dir, want: runs[0].want, runs: runs.length };
  if (err) out.error = err.error;
  if (ok.length === 0) return { ...out, runsDetail: runs };
  for (const k of Object.keys(ok[0])) {
    const vals = ok.map((r) => r[k]).filter((v) => typeof v === 'number').sort((a, b) => a - b);
    if (vals.length > 0 && out[k] === undefined) out[k] = vals.length % 2 ? vals[vals.length >> 1] : (vals[vals.length / 2 - 1] + vals[vals.length / 2]) / 2;
  }
  out.after = Math.min(...ok.map((r) => r.after ?? 0));
  out.checkOk = runs.every((r) => r.checkOk === true);
  out.check = ok[0].check;
  out.runsDetail = runs;
  return out;
}

/**
 * The same run with CRIU, into cryo's row: its wall times and stats-dump
 * figures as criu*; a CRIU failure is noted, and is not cryo's.
 */
async function besideCriu(row, run) {
  try {
    const c = await run();
    Object.assign(row, { criuDumpMs: c.dumpMs, criuRestoreMs: c.restoreMs, criuFrozenUs: c.frozenUs, criuFreezingUs: c.freezingUs });
    if (c.error) row.criuError = c.error;
  } catch (e) {
    row.criuError = e.message.split('\n')[0];
  }
  if (row.criuError) process.stdout.write(` (CRIU failed: ${row.criuError})`);
}

// ---------------------------------------------------------------------------
// Main

const helpers = { runCryo, startTarget, waitFor, reapOrphan, killAndReap, live, cryoFailure, loggedMs, readDumpStats, dropImages, exists };

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
const shapeRows = [];
const connRows = [];
const runcRows = [];
const notes = [];
let failed = false;
try {
  const compile = (src, extra = []) => {
    const exe = path.join(work, path.basename(src, '.c'));
    const cc = spawnSync('gcc', ['-O2', '-Wall', ...extra, '-o', exe, path.join(ROOT, src)], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc ${src} failed:\n${cc.stderr}`);
    return exe;
  };
  const exe = opts.only.includes('memory') ? compile('bench/target.c') : undefined;
  const shapeExe = {};
  if (opts.only.includes('tree')) shapeExe.tree = compile('bench/tree-target.c');
  if (opts.only.includes('threads')) shapeExe.threads = compile('bench/threads-target.c', ['-pthread']);
  const connsExe = opts.only.includes('conns') ? compile('bench/conns-target.c') : undefined;

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

  for (const sizeMiB of exe ? opts.sizes : []) {
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
          if (opts.criu) await besideCriu(row, () => benchOne(exe, sizeMiB, f.name, f.base, work, opts.criu));
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

  // The tree and threads targets: small images, on the first file system only.
  const f0 = fsDirs[0];
  for (const kind of Object.keys(shapeExe)) {
    if (interrupted || !f0) break;
    process.stdout.write(`${kind.padStart(9)} on ${f0.name.padEnd(4)} ...`);
    const runs = [];
    let atLineStart = false;
    for (let i = 0; i < opts.runs && !interrupted; i++) {
      try {
        const row = await benchShape(kind, shapeExe[kind], f0.name, f0.base, work);
        if (opts.criu) await besideCriu(row, () => benchShape(kind, shapeExe[kind], f0.name, f0.base, work, opts.criu));
        runs.push(row);
        process.stdout.write(row.error ? ` FAILED: ${row.error}` : ` ok`);
        atLineStart = false;
      } catch (e) {
        if (interrupted) break;
        runs.push({ kind, fs: f0.name, dir: f0.base, want: SHAPES[kind].count, error: e.message });
        process.stdout.write(` FAILED:\n${e.message.replace(/^/gm, '    ')}\n`);
        atLineStart = true;
      }
    }
    if (runs.length === 0) break;
    const row = medianShape(runs);
    if (row.error) failed = true;
    if (!row.error) console.log(` (${row.check})`);
    else if (!atLineStart) console.log('');
    shapeRows.push(row);
  }

  // The connections case, also on the first file system only.
  if (connsExe && f0 && !interrupted) {
    process.stdout.write(`${String(opts.conns).padStart(5)} connections on ${f0.name.padEnd(4)} ...`);
    const row = await sideBySide((bin) => benchConns(connsExe, opts.conns, f0.base, work, bin, helpers), ['dumpMs', 'restoreMs', 'frozenUs', 'outageMs'], 'every connection echoed again, nothing lost');
    if (row) connRows.push({ ...row, want: opts.conns });
  }

  // The container case, on the first file system too.
  if (opts.only.includes('runc') && f0 && !interrupted) {
    process.stdout.write(' runc container on ' + f0.name.padEnd(4) + ' ...');
    let n = 0;
    const row = await sideBySide((bin) => benchRunc(f0.base, bin, `${bin === CRYO ? 'cryo' : 'criu'}${n++}`), ['dumpMs', 'restoreMs'], 'the counter went on each time');
    if (row) runcRows.push(row);
  }
  if (opts.only.includes('podman') && f0 && !interrupted) {
    process.stdout.write(' podman container on ' + f0.name.padEnd(4) + ' ...');
    const pm = await podmanSetup(f0.base);
    try {
      let n = 0;
      const row = await sideBySide((bin) => benchPodman(pm, bin, `${bin === CRYO ? 'cryo' : 'criu'}${n++}`), ['dumpMs', 'restoreMs'], 'the counter went on each time');
      if (row) runcRows.push(row);
    } finally {
      await pm.close();
    }
  }
} catch (e) {
  failed = true;
  console.error(`bench: ${e.stack ?? e}`);
} finally {
  await cleanupAll();
  for (const b of bases) if (!kept.some((k) => k.startsWith(`${b}/`))) fs.rmSync(b, { recursive: true, force: true });
  // Kept images name the targets compiled into work: keep them too, to restore by hand.
  if (kept.length === 0) fs.rmSync(work, { recursive: true, force: true });
  else notes.push(`kept ${work} (the compiled targets and their output) for the kept images`);
}

// ---------------------------------------------------------------------------
// Report

const MB = 1e6;
for (const r of rows.flatMap((r) => [r, ...(r.runsDetail ?? [])])) {
  if (r.dumpMs === undefined) continue;
  r.dumpMBs = r.imageBytes / MB / (r.dumpMs / 1000);
  r.writeMBs = (r.sizeMiB * MiB) / MB / (r.writeMs / 1000);
  r.ratio = r.dumpMBs / r.writeMBs;
  // The same ratio without node's start-up: what cryo's own work achieves.
  if (r.dumpLoggedMs) r.cryoRatio = r.imageBytes / MB / (r.dumpLoggedMs / 1000) / r.writeMBs;
  if (r.restoreMs !== undefined) r.restoreMBs = r.imageBytes / MB / (r.restoreMs / 1000);
}

// With --criu: CRIU's wall times and cryo's over CRIU's (below 1: cryo is faster).
const criuCols = opts.criu ? [
  ['CRIU dump s', (r) => fix(r.criuDumpMs, 1000, 2)],
  ['CRIU restore s', (r) => fix(r.criuRestoreMs, 1000, 2)],
  ['CRIU frozen ms', (r) => fix(r.criuFrozenUs, 1000, 0)],
  ['dump cryo/CRIU', (r) => fix(r.dumpMs / r.criuDumpMs, 1, 2)],
  ['restore cryo/CRIU', (r) => fix(r.restoreMs / r.criuRestoreMs, 1, 2)],
] : [];
const cols = [
  ['size', (r) => `${r.sizeMiB} MiB`],
  ['fs', (r) => r.fs],
  ['dump s', (r) => fix(r.dumpMs, 1000, 2)],
  ['dump MB/s', (r) => fix(r.dumpMBs, 1, 0)],
  ['write MB/s', (r) => fix(r.writeMBs, 1, 0)],
  ['ratio', (r) => fix(r.ratio, 1, 2)],
  ['in-cryo ratio', (r) => fix(r.cryoRatio, 1, 2)],
  ['restore s', (r) => fix(r.restoreMs, 1000, 2)],
  ['restore MB/s', (r) => fix(r.restoreMBs, 1, 0)],
  ['freeze ms', (r) => fix(r.freezingUs, 1000, 1)],
  ['frozen ms', (r) => fix(r.frozenUs, 1000, 0)],
  ['cryo RSS MB d/r', (r) => (r.dumpRssKiB ? `${fix(r.dumpRssKiB, 1024, 0)}/${fix(r.restoreRssKiB, 1024, 0)}` : '-')],
  ['in-cryo s d/r', (r) => (r.dumpLoggedMs !== undefined ? `${fix(r.dumpLoggedMs, 1000, 2)}/${fix(r.restoreLoggedMs, 1000, 2)}` : '-')],
  ['memory', (r) => (r.error ? 'FAIL' : r.memoryOk ? 'ok' : '-')],
  ...criuCols,
];
function fix(v, div, digits) {
  return v === undefined || Number.isNaN(v) ? '-' : (v / div).toFixed(digits);
}
function printTable(cols, rows) {
  const cells = rows.map((r) => cols.map(([, f]) => f(r)));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  console.log(cols.map(([h], i) => h.padStart(widths[i])).join('  '));
  for (const c of cells) console.log(c.map((v, i) => v.padStart(widths[i])).join('  '));
}
if (rows.length > 0) {
  console.log('');
  printTable(cols, rows);
  console.log('');
  console.log('dump/restore s: wall time of `cryo dump` / `cryo restore -d`, node start-up included; in-cryo s: what cryo logs.');
  console.log('MB/s: image bytes / wall s (MB = 10^6 B); write: the same bytes written sequentially (no fsync) from memory laid out as the target\'s; ratio = dump MB/s / write MB/s; in-cryo ratio: the same with the time cryo logs for the dump (no node start-up).');
}

const shapeCols = [
  ['target', (r) => `${r.want} ${SHAPES[r.kind].unit}`],
  ['fs', (r) => r.fs],
  ['freeze ms', (r) => fix(r.freezingUs, 1000, 1)],
  ['frozen ms', (r) => fix(r.frozenUs, 1000, 0)],
  ['dump ms', (r) => fix(r.dumpMs, 1, 0)],
  ['in-cryo dump ms', (r) => fix(r.dumpLoggedMs, 1, 0)],
  ['restore ms', (r) => fix(r.restoreMs, 1, 0)],
  ['in-cryo restore ms', (r) => fix(r.restoreLoggedMs, 1, 0)],
  ['images MB', (r) => fix(r.imageBytes, MB, 1)],
  ['cryo RSS MB d/r', (r) => (r.dumpRssKiB ? `${fix(r.dumpRssKiB, 1024, 0)}/${fix(r.restoreRssKiB, 1024, 0)}` : '-')],
  ['back', (r) => (r.after !== undefined ? `${r.after}/${r.want}` : '-')],
  ['check', (r) => (r.error ? 'FAIL' : r.checkOk ? 'ok' : '-')],
  ...criuCols,
];
if (shapeRows.length > 0) {
  console.log('');
  printTable(shapeCols, shapeRows);
  console.log('');
  console.log('dump/restore ms: wall time of `cryo dump` / `cryo restore -d`, node start-up included; in-cryo: what cryo logs ("dumped/restored tree ... in X ms").');
  console.log('back: processes (ppid links in /proc/*/stat) or threads (/proc/PID/task) running after the restore, with the dumped ids; check: the target\'s own check on SIGUSR1 (memory, parents, sleepers, joins), exit 0.');
}
const connCols = [
  ['connections', (r) => String(r.want)],
  ['frozen ms', (r) => fix(r.frozenUs, 1000, 0)],
  ['dump ms', (r) => fix(r.dumpMs, 1, 0)],
  ['in-cryo dump ms', (r) => fix(r.dumpLoggedMs, 1, 0)],
  ['restore ms', (r) => fix(r.restoreMs, 1, 0)],
  ['in-cryo restore ms', (r) => fix(r.restoreLoggedMs, 1, 0)],
  ['outage ms', (r) => fix(r.outageMs, 1, 0)],
  ['check', (r) => (r.error ? 'FAIL' : r.intact ? 'ok' : '-')],
  ...(opts.criu ? [
    ['CRIU dump ms', (r) => fix(r.criuDumpMs, 1, 0)],
    ['CRIU restore ms', (r) => fix(r.criuRestoreMs, 1, 0)],
    ['CRIU outage ms', (r) => fix(r.criuOutageMs, 1, 0)],
    ['dump cryo/CRIU', (r) => fix(r.dumpMs / r.criuDumpMs, 1, 2)],
    ['restore cryo/CRIU', (r) => fix(r.restoreMs / r.criuRestoreMs, 1, 2)],
    ['outage cryo/CRIU', (r) => fix(r.outageMs / r.criuOutageMs, 1, 2)],
  ] : []),
];
if (connRows.length > 0) {
  console.log('');
  printTable(connCols, connRows);
  console.log('');
  console.log('a process with that many established TCP connections to the benchmark, dumped and restored with --tcp-established (each with its default network lock);');
  console.log('outage ms: the longest time the peer got no echo on a connection it probed every 2 ms (freeze, lock, restore, TCP\'s retransmission backoff); check: every probe byte came back and every connection echoed a message of its own.');
}
const runcCols = [
  ['engine', (r) => r.kind],
  ['checkpoint ms', (r) => fix(r.dumpMs, 1, 0)],
  ['restore ms', (r) => fix(r.restoreMs, 1, 0)],
  ['check', (r) => (r.error ? 'FAIL' : r.intact ? 'ok' : '-')],
  ...(opts.criu ? [
    ['CRIU checkpoint ms', (r) => fix(r.criuDumpMs, 1, 0)],
    ['CRIU restore ms', (r) => fix(r.criuRestoreMs, 1, 0)],
    ['checkpoint cryo/CRIU', (r) => fix(r.dumpMs / r.criuDumpMs, 1, 2)],
    ['restore cryo/CRIU', (r) => fix(r.restoreMs / r.criuRestoreMs, 1, 2)],
  ] : []),
];
if (runcRows.length > 0) {
  console.log('');
  printTable(runcCols, runcRows);
  console.log('');
  console.log('runc checkpoint / runc restore -d of a busybox container (runc spec, a shell counting into its /tmp), wall time of each runc command with cryo (or CRIU) as its --criu;');
  console.log('podman container checkpoint / restore (in place) of such a container from an imported image, runc finding cryo (or CRIU) as criu on PATH; check: the restored counter went on.');
}
if (rows.length + shapeRows.length + connRows.length + runcRows.length > 0) {
  console.log(`each figure: the median of ${opts.runs} run(s)${rows.length > 0 ? '; MB/s from the median times' : ''}.`);
  console.log('freeze ms: stats-dump freezing_time; frozen ms: frozen_time (the target was stopped this long).');
}
for (const n of notes) console.log(`note: ${n}`);
for (const k of kept) console.log(`kept the images and logs of a failed run: ${k}`);

const jsonPath = path.join(os.tmpdir(), `cryo-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(
  jsonPath,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memBytes: os.totalmem(), kernel: os.release(), node: process.version },
      options: opts,
      rows,
      shapes: shapeRows,
      conns: connRows,
      runc: runcRows,
      notes,
    },
    null,
    2,
  ) + '\n',
);
console.log(`results: ${jsonPath}`);
if (interrupted) console.log('interrupted: the table is partial');
process.exitCode = interrupted ? 130 : failed ? 1 : 0;

/** Image size and the dump's own figures (stats-dump) into a result row. */
function readDumpStats(images, row) {
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
}
