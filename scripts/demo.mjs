#!/usr/bin/env node
// npm run demo: checkpoint a running counter with cryo, restore it, and show
// that it continues where it stopped (same pid, next number).
//
// Runs the BUILT cryo (bin/cryo -> dist/); `npm ci` builds it, else `npm run build`.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CRYO = path.join(ROOT, 'bin/cryo');

function fail(msg) {
  console.error(`\ndemo FAILED: ${msg}`);
  process.exitCode = 1;
  throw new DemoError(msg);
}
class DemoError extends Error {}

if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm ci does it).');
  process.exit(1);
}
if (process.geteuid?.() !== 0) {
  console.error('cryo needs root (ptrace, clone3 with set_tid): run the demo as root.');
  process.exit(1);
}

const sys = await import('../dist/sys/index.js');
const { setChildSubreaper, waitpid, WNOHANG, __WALL, decodeWaitStatus, closeOnExecInherited } = sys;

// Restored tasks are orphans once `cryo restore -d` exits: make them ours to reap.
setChildSubreaper();
// The target must start with stdio only: mark every fd we inherited close-on-exec.
closeOnExecInherited();

// ---------------------------------------------------------------------------
// The target: a counter that prints "N HH:MM:SS.mmm" every 0.2 s, no forks.

const PY = `
import time
i = 0
while True:
    i += 1
    t = time.time()
    print("%d %s.%03d" % (i, time.strftime("%H:%M:%S", time.localtime(t)), int(t * 1000) % 1000), flush=True)
    time.sleep(0.2)
`;
const PERL = `
$| = 1; my $i = 0;
while (1) { $i++; my @t = localtime; printf "%d %02d:%02d:%02d\\n", $i, $t[2], $t[1], $t[0]; select(undef, undef, undef, 0.2); }
`;

function findInterpreter() {
  // The real python3 (pyenv and the like put shell-script shims first in PATH).
  const r = process.env.CRYO_DEMO_COUNTER === 'perl' ? {} : spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return { name: 'python3', argv: [r.stdout.trim(), '-c', PY] };
  const p = spawnSync('sh', ['-c', 'command -v perl'], { encoding: 'utf8' });
  if (p.status === 0 && p.stdout.trim()) return { name: 'perl', argv: [p.stdout.trim(), '-e', PERL] };
  console.error('neither python3 nor perl found: the demo needs one of them for its counter.');
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Helpers

const exists = (pid) => fs.existsSync(`/proc/${pid}`);
const state = (pid) => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};
const lines = (file) => {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => /^\d+ /.test(l));
  } catch {
    return [];
  }
};
const kib = (n) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

async function waitFor(what, cond, ms) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Reaps pid (our child or an orphan reparented to us) until /proc/PID is gone. */
async function reap(pid, ms = 10_000) {
  const end = Date.now() + ms;
  while (exists(pid)) {
    try {
      const r = waitpid(pid, WNOHANG | __WALL);
      if (r.pid === pid) decodeWaitStatus(r.status);
    } catch (e) {
      if (e?.code !== 'ECHILD') throw e;
    }
    if (!exists(pid)) break;
    if (Date.now() > end) fail(`pid ${pid} is still there after ${ms} ms (state ${state(pid)})`);
    await sleep(10);
  }
}

/** Runs bin/cryo; stdout/stderr go to a regular file (never a pipe a restored task could keep). */
function cryo(args, outFile) {
  const fd = fs.openSync(outFile, 'w');
  const t0 = performance.now();
  let r;
  try {
    r = spawnSync(CRYO, args, { stdio: ['ignore', fd, fd], timeout: 60_000 });
  } finally {
    fs.closeSync(fd);
  }
  const ms = performance.now() - t0;
  if (r.status !== 0) {
    const out = fs.readFileSync(outFile, 'utf8').trim();
    const logArg = args[args.indexOf('-o') + 1];
    const log = args.includes('-o') ? path.join(args[args.indexOf('-D') + 1], logArg) : undefined;
    let msg = `cryo ${args.join(' ')} -> ${r.error?.message ?? (r.signal ? `signal ${r.signal}` : `exit ${r.status}`)}`;
    if (out) msg += `\n${out}`;
    if (log && fs.existsSync(log)) msg += `\n--- ${log} (last lines):\n${fs.readFileSync(log, 'utf8').trimEnd().split('\n').slice(-25).join('\n')}`;
    fail(msg);
  }
  return ms;
}

// ---------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-demo-'));
const images = path.join(tmp, 'images');
const logFile = path.join(tmp, 'counter.log');
fs.mkdirSync(images);
let targetPid; // whichever process holds the counter's pid now
let child;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (targetPid !== undefined) {
      try {
        process.kill(targetPid, 'SIGKILL');
      } catch {
        /* gone */
      }
      try {
        waitpid(targetPid, __WALL); // an orphan of ours (restored); node reaps its own child
      } catch {
        /* not ours to reap */
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    console.error(`\n${sig}: stopped, cleaned up`);
    process.exit(130);
  });
}

try {
  const interp = findInterpreter();
  console.log(`== 1. start a counter (${interp.name}) that prints a number every 0.2 s to ${logFile}`);
  const out = fs.openSync(logFile, 'a');
  try {
    child = spawn(interp.argv[0], interp.argv.slice(1), { cwd: tmp, detached: true, stdio: ['ignore', out, out] });
  } finally {
    fs.closeSync(out);
  }
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `exit ${code}`)));
  child.once('error', (e) => console.error(`spawn: ${e.message}`));
  targetPid = child.pid;
  if (targetPid === undefined) fail(`could not start ${interp.argv[0]}`);
  await waitFor('5 lines of output', () => lines(logFile).length >= 5, 10_000);
  console.log(`   pid ${targetPid} is running; its output so far:`);
  for (const l of lines(logFile).slice(-3)) console.log(`     ${l}`);

  console.log(`\n== 2. cryo dump -t ${targetPid} -D ${images}`);
  const dumpMs = cryo(['dump', '-t', String(targetPid), '-D', images, '-v4', '-o', 'dump.log'], path.join(tmp, 'dump.out'));
  const how = await Promise.race([exited, sleep(10_000, undefined, { ref: false }).then(() => undefined)]);
  if (how === undefined) fail(`pid ${targetPid} still runs 10 s after the dump`);
  child = undefined;
  await waitFor(`pid ${targetPid} to leave /proc`, () => !exists(targetPid), 10_000);
  const dumpedPid = targetPid;
  targetPid = undefined; // nothing of ours runs until the restore
  const before = lines(logFile);
  const last = before.at(-1);
  console.log(`   done in ${dumpMs.toFixed(0)} ms (wall, including node start-up); the images:`);
  let total = 0;
  for (const f of fs.readdirSync(images).sort()) {
    if (f.endsWith('.log')) continue;
    const size = fs.statSync(path.join(images, f)).size;
    total += size;
    console.log(`     ${f.padEnd(22)} ${kib(size).padStart(10)}`);
  }
  console.log(`     ${'total'.padEnd(22)} ${kib(total).padStart(10)}`);
  let stats;
  try {
    const { ImageDir } = await import('../dist/images/index.js');
    const dir = ImageDir.open(images, { write: false });
    try {
      stats = dir.readOne('stats', 'dump').dump;
    } finally {
      dir.close();
    }
  } catch (e) {
    console.log(`   (could not read stats-dump: ${e.message})`);
  }
  console.log(`   pid ${dumpedPid} is gone (${how}); last line it printed: "${last}"`);

  await sleep(1000); // show that time passes while it is frozen
  console.log(`\n== 3. cryo restore -D ${images} -d   (1 s later)`);
  const pidfile = path.join(tmp, 'restored.pid');
  const restoreMs = cryo(['restore', '-D', images, '-d', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], path.join(tmp, 'restore.out'));
  const rpid = Number(fs.readFileSync(pidfile, 'utf8').trim());
  if (rpid > 0 && exists(rpid)) targetPid = rpid; // ours to kill and reap from now on
  if (rpid !== dumpedPid) fail(`restored pid is ${rpid || '(none in the pid file)'}, the dumped one was ${dumpedPid}`);
  if (!exists(rpid) || state(rpid) === 'Z') fail(`restored pid ${rpid} is not running (state ${state(rpid) ?? 'gone'})`);
  const cmd = fs.readFileSync(`/proc/${rpid}/cmdline`, 'utf8').split('\0')[0];
  console.log(`   done in ${restoreMs.toFixed(0)} ms (wall); pid ${rpid} runs again (${cmd}, state ${state(rpid)})`);

  await waitFor('3 new lines after the restore', () => lines(logFile).length >= before.length + 3, 10_000);
  const after = lines(logFile).slice(before.length, before.length + 3);
  console.log(`\n== 4. its output around the checkpoint`);
  console.log(`     ${last}     <- last line before the dump`);
  console.log(`     -------- checkpoint / restore --------`);
  for (const l of after) console.log(`     ${l}`);
  const nums = [last, ...after].map((l) => Number(l.split(' ')[0]));
  for (let i = 1; i < nums.length; i++) {
    if (nums[i] !== nums[i - 1] + 1) fail(`the counter did not continue: ${nums[i - 1]} was followed by ${nums[i]}`);
  }
  console.log(`   the counter continued: ${nums[0]} -> ${nums.slice(1).join(', ')}`);

  console.log(`\n== 5. timings`);
  const dumpIn = innerMs(path.join(images, 'dump.log'), 'dumped tree');
  const restoreIn = innerMs(path.join(images, 'restore.log'), 'restored tree');
  const inner = (v) => (v === undefined ? '' : `, ${v.toFixed(0)} ms inside cryo (its log)`);
  console.log(`   cryo dump     ${dumpMs.toFixed(0).padStart(6)} ms wall${inner(dumpIn)}`);
  if (stats) {
    const ms = (us) => (us / 1000).toFixed(1);
    console.log(`     freezing ${ms(stats.freezingTime)} ms, frozen ${ms(stats.frozenTime)} ms (memory dump ${ms(stats.memdumpTime)} ms, write ${ms(stats.memwriteTime)} ms), ${stats.pagesWritten} pages written`);
  }
  console.log(`   cryo restore  ${restoreMs.toFixed(0).padStart(6)} ms wall${inner(restoreIn)}`);
  console.log(`   (the rest of the wall time is node start-up and module loading; \`node -e 0\` alone takes ${nodeStartMs().toFixed(0)} ms)`);

  process.kill(rpid, 'SIGKILL');
  await reap(rpid);
  targetPid = undefined;
  console.log(`\nOK: pid ${rpid} was checkpointed, restored and continued counting; killed and cleaned up.`);
} catch (e) {
  if (!(e instanceof DemoError)) {
    console.error(`\ndemo FAILED: ${e?.stack ?? e}`);
    process.exitCode = 1;
  }
  console.error(`(kept ${tmp} for inspection: counter.log, images/dump.log, images/restore.log)`);
} finally {
  if (targetPid !== undefined && exists(targetPid)) {
    try {
      process.kill(targetPid, 'SIGKILL');
    } catch {
      /* gone */
    }
    if (child) await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000, undefined, { ref: false })]);
    else await reap(targetPid).catch(() => {});
  }
  if (process.exitCode !== 1) fs.rmSync(tmp, { recursive: true, force: true });
}

/** The "... in N ms" of cryo's summary line in its log, if any. */
function innerMs(log, prefix) {
  try {
    const line = fs.readFileSync(log, 'utf8').split('\n').findLast((l) => l.includes(prefix));
    const m = line && / in ([\d.]+) ms/.exec(line);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function nodeStartMs() {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  return performance.now() - t0;
}
