// npm run exchange -- --criu /path/to/criu: are cryo's images CRIU's, both ways?
//
// For every e2e program of test/programs (built here with gcc, as the tests
// build them), two runs:
//   cryo→CRIU   dumped by the BUILT cryo (bin/cryo), restored by CRIU
//   CRIU→cryo   dumped by CRIU, restored by cryo
// and, unless --no-baseline, CRIU→CRIU (CRIU alone, the same way), which tells
// whether a failure is CRIU's own limit rather than a fault of the exchange.
// each with `restore -d`, then SIGUSR1: the program checks its own state and
// must print PASS and exit 0. Prints a table: program, the two verdicts, and the
// reason of each one that is not PASS (the first error line of the tool that
// failed, or the program's FAIL line).
//
// A failure of CRIU's own that is no fault of cryo's images is told apart:
//   CRIU: no CAP_SYS_RESOURCE   the machine denies CRIU a capability it needs
//   CRIU: refuses (as cryo)     both tools refuse this state by design
// Never part of `npm test`: CI has no upstream CRIU. Build CRIU yourself,
// outside the repo. Options: --criu BIN (required), --only a,b,c,
// --no-baseline, --keep (keep every session dir), --keep-failed (keep those
// of failed runs). Exits 1 when an exchange run failed for a reason not told
// apart above and CRIU→CRIU passed (a state CRIU cannot carry itself is CRIU's).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { NR, O, TERMIOS_SIZE, TIOC, syscall } from '../src/sys/index.js';
import { Groups, HIERARCHIES, put, type Hier } from '../test/e2e/cgroup-groups.js';
import {
  PROGRAMS_DIR,
  ROOT,
  Session,
  compileProgram,
  ended,
  processTree,
  readOr,
  runningFree,
  waitFor,
  type CryoResult,
  type StartOptions,
  type Target,
} from '../test/e2e/harness.js';

// ---------------------------------------------------------------------------
// Options

interface Options {
  criu: string;
  only?: string[];
  keep: boolean;
  keepFailed: boolean;
  baseline: boolean;
}

function usage(err?: string): never {
  if (err) console.error(`exchange: ${err}`);
  console.error('usage: npm run exchange -- --criu BIN [--only PROG,PROG] [--no-baseline] [--keep] [--keep-failed]');
  process.exit(err ? 2 : 0);
}

function parseArgs(argv: string[]): Options {
  let criu: string | undefined;
  const o: Omit<Options, 'criu'> = { keep: false, keepFailed: false, baseline: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a.startsWith('--criu')) criu = path.resolve(val());
    else if (a.startsWith('--only')) o.only = val().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--keep') o.keep = true;
    else if (a === '--no-baseline') o.baseline = false;
    else if (a === '--keep-failed') o.keepFailed = true;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  if (!criu) usage('--criu BIN is required (an upstream CRIU binary, built outside the repo)');
  return { criu, ...o };
}

// ---------------------------------------------------------------------------
// The programs and how each is run

/** What a case hands to the dump and the restore, once the target runs. */
interface Prepared {
  target: Target;
  dumpArgs?: string[];
  restoreArgs?: string[];
  /** fds for the restoring tool (as its fds 3, 4, ...) */
  restoreFds?: () => number[];
  /** after the program passed: anything else to check (a message when wrong) */
  after?: () => string | undefined;
  /** closes (or removes) what the case made */
  close?: () => unknown;
}

interface Case {
  name: string;
  /** Both tools refuse to dump this state: the check is that each refuses and the task runs on. */
  refused?: boolean;
  start(s: Session): Promise<Prepared>;
}

const plain = (name: string, opts: StartOptions & { dump?: string[]; restore?: string[] } = {}): Case => ({
  name,
  async start(s) {
    return { target: await s.start(name, opts), dumpArgs: opts.dump, restoreArgs: opts.restore };
  },
});

function makePipe(): { r: number; w: number } {
  const fds = new Int32Array(2);
  syscall('pipe2', NR.pipe2, new Uint8Array(fds.buffer), O.CLOEXEC);
  return { r: fds[0]!, w: fds[1]! };
}

function openPty(): { master: number; slave: number; name: string } {
  const master = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.CLOEXEC);
  const v = Buffer.alloc(4);
  syscall('ioctl(TIOCSPTLCK)', NR.ioctl, master, TIOC.SPTLCK, v);
  syscall('ioctl(TIOCGPTN)', NR.ioctl, master, TIOC.GPTN, v);
  const name = `/dev/pts/${v.readInt32LE(0)}`;
  return { master, slave: fs.openSync(name, O.RDWR | O.NOCTTY | O.CLOEXEC), name };
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed already
    }
  }
}

const NOBODY = 65534;

const SPECIAL: Case[] = [
  plain('sleeper', { ready: /^tick 3$/m }),
  plain('locks', { dump: ['--file-locks'], restore: ['--file-locks'] }),
  plain('leases', { dump: ['--file-locks'], restore: ['--file-locks'] }),
  plain('linkremap', { dump: ['--link-remap'] }),
  { name: 'uprobes', refused: true, start: async (s) => ({ target: await s.start('uprobes') }) },
  {
    // A pipe whose reader is outside the tree, and a log: new ones on restore (--inherit-fd).
    name: 'inheritfd',
    async start(s) {
      const a = makePipe();
      const b = makePipe();
      const newLog = path.join(s.dir, 'new.log');
      const logFd = fs.openSync(newLog, O.WRONLY | O.CREAT | O.APPEND | O.CLOEXEC, 0o644);
      let target: Target;
      try {
        target = await s.start('inheritfd', { fds: [a.w] });
      } finally {
        fs.closeSync(a.w);
      }
      const ino = fs.fstatSync(a.r).ino;
      const oldLog = path.join(s.dir, 'old.log');
      return {
        target,
        restoreArgs: ['--inherit-fd', `fd[3]:pipe:[${ino}]`, '--inherit-fd', `fd[4]:${oldLog.slice(1)}`],
        restoreFds: () => [b.w, logFd],
        after: () => {
          fs.closeSync(b.w);
          b.w = -1;
          const got = fs.readFileSync(newLog, 'utf8');
          return got === 'after\n' ? undefined : `new.log holds ${JSON.stringify(got)}, not "after"`;
        },
        close: () => closeAll([a.r, b.r, b.w, logFd].filter((fd) => fd >= 0)),
      };
    },
  },
  {
    // A terminal of the outside world: --external tty[RDEV:DEV], another one on restore.
    name: 'exttty',
    async start(s) {
      const a = openPty();
      const b = openPty();
      let target: Target;
      try {
        target = await s.start('exttty', { fds: [a.slave] });
      } finally {
        fs.closeSync(a.slave);
      }
      const st = fs.statSync(a.name);
      const key = `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
      return {
        target,
        dumpArgs: ['--external', key],
        restoreArgs: ['--inherit-fd', `fd[3]:${key}`],
        restoreFds: () => [b.slave],
        close: () => closeAll([a.master, b.master, b.slave]),
      };
    },
  },
  {
    // inotify watches of a file (through its other name) and of a directory.
    name: 'inotify',
    async start(s) {
      const h = path.join(s.dir, 'h');
      fs.mkdirSync(h);
      fs.writeFileSync(path.join(h, 'F'), 'data\n');
      fs.linkSync(path.join(h, 'F'), path.join(s.dir, 'F2'));
      return { target: await s.start('inotify', { args: [path.join(h, 'F'), path.join(s.dir, 'F2'), h] }) };
    },
  },
  {
    // A device node of the program's directory (1:3, as /dev/null).
    name: 'devnode',
    async start(s) {
      fs.mkdirSync(path.join(s.dir, 'dev'));
      const r = spawnSync('mknod', ['-m', '666', path.join(s.dir, 'dev/null'), 'c', '1', '3'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mknod: ${r.stderr.trim()}`);
      return { target: await s.start('devnode') };
    },
  },
  {
    // The console and a virtual terminal of this machine: a tool that restores
    // them wrong changes the machine's terminals, so their termios are put back.
    name: 'ttydev',
    async start(s) {
      // Reopened at the end: the exit of the session leader hangs up its terminal's fds.
      // (At the end: put back once the restored program checked them or is gone.)
      const termios = (p: string, t?: Buffer): Buffer => {
        const fd = fs.openSync(p, O.RDONLY | O.NOCTTY | O.CLOEXEC);
        try {
          const b = t ?? Buffer.alloc(TERMIOS_SIZE);
          syscall(t ? 'ioctl(TCSETS)' : 'ioctl(TCGETS)', NR.ioctl, fd, t ? TIOC.TCSETS : TIOC.TCGETS, b);
          return b;
        } finally {
          fs.closeSync(fd);
        }
      };
      const saved = ['/dev/console', '/dev/tty5'].flatMap((p) => {
        try {
          return [{ p, t: termios(p) }];
        } catch {
          return [];
        }
      });
      return {
        target: await s.start('ttydev'),
        close: () => {
          for (const { p, t } of saved) {
            try {
              termios(p, t);
            } catch (e) {
              console.error(`exchange: cannot put back the termios of ${p}: ${(e as Error).message}`);
            }
          }
        },
      };
    },
  },
  {
    // fanotify marks, also on a bind mount the program makes (undone at the end).
    name: 'fanotify',
    async start(s) {
      return { target: await s.start('fanotify'), close: () => void spawnSync('umount', ['-l', path.join(s.dir, 'mnt')]) };
    },
  },
  {
    // The process in groups of its own in every hierarchy, its child in nested
    // ones, its thread in a cpu group of its own (as cgroups.test.ts makes
    // them); --manage-cgroups both ways, the groups left in place for the restore.
    name: 'cgroups',
    async start(s) {
      const after: Array<() => unknown> = [];
      const g = new Groups({ after: (fn: () => unknown) => after.push(fn) } as unknown as TestContext);
      const name = `cryo-exchange-${process.pid}-${s.label}`;
      const base = (h: Hier) => Groups.base(h, name);
      for (const h of HIERARCHIES) g.mk(h, base(h));
      put('cpuset', base('cpuset'), 'cpuset.cpus', '0');
      for (const h of HIERARCHIES) g.mk(h, `${base(h)}/sub`);
      g.mk('cpu', `${base('cpu')}/thr`);
      const target = await s.start('cgroups');
      const out = target.output();
      const child = Number(/^child (\d+)$/m.exec(out)?.[1]);
      const thread = Number(/^thread (\d+)$/m.exec(out)?.[1]);
      for (const h of HIERARCHIES) {
        put(h, base(h), 'cgroup.procs', String(target.pid));
        put(h, `${base(h)}/sub`, 'cgroup.procs', String(child));
      }
      put('cpu', `${base('cpu')}/thr`, 'tasks', String(thread));
      const r = (f: string) => fs.readFileSync(f, 'utf8');
      fs.writeFileSync(path.join(s.dir, 'expect-self'), r(`/proc/${target.pid}/cgroup`));
      fs.writeFileSync(path.join(s.dir, 'expect-thread'), r(`/proc/${target.pid}/task/${thread}/cgroup`));
      fs.writeFileSync(path.join(s.dir, 'expect-child'), r(`/proc/${child}/cgroup`));
      fs.writeFileSync(path.join(s.dir, 'corrupt'), '/sys/fs/cgroup/pids/cgroup.procs');
      return {
        target,
        dumpArgs: ['--manage-cgroups'],
        restoreArgs: ['--manage-cgroups'],
        close: async () => {
          for (const fn of after) await fn();
        },
      };
    },
  },
  {
    // A task of an unprivileged user, in a directory of its own.
    name: 'unpriv',
    async start(s) {
      const home = path.join(s.dir, 'home');
      fs.mkdirSync(home);
      fs.chownSync(home, NOBODY, NOBODY);
      fs.chmodSync(s.dir, 0o755);
      return { target: await s.start('unpriv', { uid: NOBODY, cwd: home, args: [home] }) };
    },
  },
];

/** Programs of test/programs that only make sense in a harness of their own. */
const SKIPPED: Record<string, string> = {
  orphanpty: 'RPC only (orphan_pts_master): not a command-line restore',
  tty: 'a shell job on a terminal of ptyrun.py (--shell-job), see shell-job.test.ts',
};

function allCases(): Case[] {
  const names = fs.readdirSync(PROGRAMS_DIR).filter((n) => n.endsWith('.c')).map((n) => n.slice(0, -2)).sort();
  const special = new Map(SPECIAL.map((c) => [c.name, c]));
  return names.map((n) => special.get(n) ?? plain(n));
}

// ---------------------------------------------------------------------------
// One run

type Verdict = 'PASS' | 'FAIL' | 'dump failed' | 'restore failed' | 'no CAP_SYS_RESOURCE' | 'refused (as expected)' | 'skipped' | 'error';

interface Outcome {
  verdict: Verdict;
  reason?: string;
}

/**
 * CRIU, run as root without CAP_SYS_RESOURCE, logs this at every start (it
 * cannot raise its own RLIMIT_NOFILE) and goes on: not the error of a run.
 */
const CRIU_NOISE = /rlimit: Can't setup RLIMIT_NOFILE for self/;

/** The first error line of a failed run: CRIU's log, or cryo's stderr. */
function errorLine(r: CryoResult): string {
  const log = r.logFile ? readOr(r.logFile, '') : '';
  const criuError = log.split('\n').find((l) => /Error \(/.test(l) && !CRIU_NOISE.test(l));
  if (criuError) return criuError.replace(/^\(\s*\d+\.\d+\)\s*(\d+:\s*)?/, '').trim();
  const line = r.stderr.split('\n').find((l) => l.trim()) ?? log.split('\n').filter((l) => l.trim()).at(-1);
  if (line) return line.trim();
  return r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
}

/**
 * Failures of CRIU's that come from this machine, not from either tool: CRIU
 * as root without CAP_SYS_RESOURCE. prlimit() of a task of another user
 * (cr-dump.c reads every rlimit so) and raising a hard limit need it.
 */
function capSysResource(line: string): boolean {
  return /Operation not permitted/.test(line) && /Can't (get|set) rlimit|setrlimit|prlimit/i.test(line);
}

async function runOneInner(c: Case, dumper: string[], restorer: string[], isCriu: (cmd: string[]) => boolean, o: Options, label: string): Promise<{ outcome: Outcome; dir: string }> {
  const s = new Session(`exch-${c.name}-${label}`);
  let prepared: Prepared | undefined;
  let failed = true;
  try {
    prepared = await c.start(s);
    const { target } = prepared;
    const images = s.mkdir();
    const tree = processTree(target.pid);
    const dump = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', ...(prepared.dumpArgs ?? [])], { command: dumper });
    if (c.refused) {
      if (dump.code === 0) return { outcome: { verdict: 'FAIL', reason: 'the dump did not refuse' }, dir: s.dir };
      await waitFor(`pid ${target.pid} to run on after the refused dump`, () => tree.every((p) => runningFree(p)), 5_000);
      await s.expectPass(target);
      failed = false;
      return { outcome: { verdict: 'refused (as expected)', reason: errorLine(dump) }, dir: s.dir };
    }
    if (dump.code !== 0) {
      const line = errorLine(dump);
      return { outcome: { verdict: isCriu(dumper) && capSysResource(line) ? 'no CAP_SYS_RESOURCE' : 'dump failed', reason: `dump: ${line}` }, dir: s.dir };
    }
    await s.gone(target, tree, images);
    const pidfile = path.join(s.dir, 'restore.pid');
    const rst = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile, ...(prepared.restoreArgs ?? [])], {
      command: restorer,
      fds: prepared.restoreFds?.() ?? [],
    });
    if (rst.code !== 0) {
      const line = errorLine(rst);
      return { outcome: { verdict: isCriu(restorer) && capSysResource(line) ? 'no CAP_SYS_RESOURCE' : 'restore failed', reason: `restore: ${line}` }, dir: s.dir };
    }
    const pid = Number(readOr(pidfile, '').trim());
    if (!Number.isInteger(pid) || pid <= 0) return { outcome: { verdict: 'restore failed', reason: 'restore: no pid in --pidfile' }, dir: s.dir };
    const restored = s.adopt(pid, target);
    if (pid !== target.pid) return { outcome: { verdict: 'FAIL', reason: `restored pid ${pid}, dumped ${target.pid}` }, dir: s.dir };
    await waitFor(`restored pid ${pid} to run`, () => runningFree(pid), 5_000, () => ended(pid));
    const { status, output } = await s.finish(restored);
    const failLine = /^FAIL: .*$/m.exec(output.slice(output.lastIndexOf('READY')))?.[0];
    if (status?.exited !== 0 || failLine) {
      const how = status?.exited !== undefined ? `exit ${status.exited}` : status?.signaled !== undefined ? `killed by signal ${status.signaled}` : 'still running';
      return { outcome: { verdict: 'FAIL', reason: failLine ?? how }, dir: s.dir };
    }
    const extra = prepared.after?.();
    if (extra) return { outcome: { verdict: 'FAIL', reason: extra }, dir: s.dir };
    failed = false;
    return { outcome: { verdict: 'PASS' }, dir: s.dir };
  } catch (e) {
    return { outcome: { verdict: 'error', reason: (e as Error).message.split('\n')[0] }, dir: s.dir };
  } finally {
    // What the case made (fds, mounts, groups: Groups kills what is still in them),
    // then the session (it kills what is left and removes its dir).
    try {
      await prepared?.close?.();
    } catch (e) {
      console.error(`exchange: ${c.name}: ${(e as Error).message.split('\n')[0]}`);
    }
    const saved = process.env.CRYO_E2E_KEEP;
    if (o.keep || (o.keepFailed && failed)) process.env.CRYO_E2E_KEEP = '1';
    try {
      await s.cleanup();
    } catch (e) {
      console.error(`exchange: ${c.name}: cleanup: ${(e as Error).message.split('\n')[0]}`);
    }
    if (saved === undefined) delete process.env.CRYO_E2E_KEEP;
    else process.env.CRYO_E2E_KEEP = saved;
  }
}

/** runOneInner, and whether the session dir was kept. */
async function runOne(c: Case, dumper: string[], restorer: string[], isCriu: (cmd: string[]) => boolean, o: Options, label: string): Promise<{ outcome: Outcome; dir: string; kept: boolean }> {
  const r = await runOneInner(c, dumper, restorer, isCriu, o, label);
  return { ...r, kept: fs.existsSync(r.dir) };
}

// ---------------------------------------------------------------------------
// Main

const opts = parseArgs(process.argv.slice(2));
if (process.geteuid?.() !== 0) usage('run it as root (both tools need it)');
if (!fs.existsSync(path.join(ROOT, 'dist/cryo.mjs'))) usage('dist/ is missing: run `npm run build` first (npm ci does it)');
const version = spawnSync(opts.criu, ['--version'], { encoding: 'utf8' });
if (version.status !== 0) usage(`${opts.criu} --version failed: ${version.error?.message ?? version.stderr.trim()}`);
console.log(`CRIU: ${opts.criu} (${version.stdout.split('\n')[0]})`);

let cases = allCases();
if (opts.only) {
  const unknown = opts.only.filter((n) => !cases.some((c) => c.name === n));
  if (unknown.length) usage(`no program ${unknown.join(', ')} in test/programs`);
  cases = cases.filter((c) => opts.only!.includes(c.name));
}

const CRYO = [path.join(ROOT, 'bin/cryo')];
const CRIU = [opts.criu];
const isCriu = (cmd: string[]): boolean => cmd === CRIU;

interface Row {
  name: string;
  toCriu: Outcome;
  toCryo: Outcome;
  baseline?: Outcome;
}
const rows: Row[] = [];
for (const c of cases) {
  const skipped = SKIPPED[c.name];
  if (skipped) {
    rows.push({ name: c.name, toCriu: { verdict: 'skipped', reason: skipped }, toCryo: { verdict: 'skipped' }, baseline: opts.baseline ? { verdict: 'skipped' } : undefined });
    continue;
  }
  try {
    compileProgram(c.name);
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0];
    rows.push({ name: c.name, toCriu: { verdict: 'error', reason }, toCryo: { verdict: 'error' } });
    continue;
  }
  process.stdout.write(`${c.name}:`);
  const row: Row = { name: c.name, toCriu: { verdict: 'error' }, toCryo: { verdict: 'error' } };
  const runs: Array<[keyof Row & ('toCriu' | 'toCryo' | 'baseline'), string[], string[], string, string]> = [
    ['toCriu', CRYO, CRIU, 'to-criu', 'cryo→CRIU'],
    ['toCryo', CRIU, CRYO, 'to-cryo', 'CRIU→cryo'],
  ];
  if (opts.baseline) runs.push(['baseline', CRIU, CRIU, 'criu-only', 'CRIU→CRIU']);
  for (const [key, dumper, restorer, label, title] of runs) {
    const { outcome, dir, kept } = await runOne(c, dumper, restorer, isCriu, opts, label);
    if (kept && outcome.verdict !== 'PASS') outcome.reason = `${outcome.reason ?? ''} [kept ${dir}]`;
    row[key] = outcome;
    process.stdout.write(` ${title} ${outcome.verdict};`);
  }
  process.stdout.write('\n');
  rows.push(row);
}

// The table: the reasons of each direction, marked with it.
const head = ['program', 'cryo→CRIU', 'CRIU→cryo', ...(opts.baseline ? ['CRIU→CRIU'] : []), 'reason'];
const n = head.length - 1;
const lines = rows.map((r) => {
  const reasons: string[] = [];
  if (r.toCriu.verdict === 'skipped') reasons.push(r.toCriu.reason ?? '');
  else {
    if (r.toCriu.reason) reasons.push(`cryo→CRIU: ${r.toCriu.reason}`);
    if (r.toCryo.reason) reasons.push(`CRIU→cryo: ${r.toCryo.reason}`);
    if (r.baseline?.reason) reasons.push(`CRIU→CRIU: ${r.baseline.reason}`);
  }
  return [r.name, r.toCriu.verdict, r.toCryo.verdict, ...(opts.baseline ? [r.baseline?.verdict ?? ''] : []), reasons.join(' | ')];
});
const widths = head.slice(0, n).map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const fmt = (l: string[]): string => [...l.slice(0, n).map((x, i) => x.padEnd(widths[i]!)), l[n]].join('  ').trimEnd();
console.log(`\n${fmt(head)}`);
console.log(fmt(head.map((h, i) => '-'.repeat(i < n ? widths[i]! : h.length))));
for (const l of lines) console.log(fmt(l));

// An exchange failure counts unless CRIU fails the same state on its own too.
const ok = new Set<Verdict>(['PASS', 'no CAP_SYS_RESOURCE', 'refused (as expected)', 'skipped']);
const exchange = rows.flatMap((r) => [r.toCriu, r.toCryo].map((x) => ({ x, criuAlone: r.baseline?.verdict })));
const count = (v: Verdict): number => exchange.filter(({ x }) => x.verdict === v).length;
const bad = exchange.filter(({ x }) => !ok.has(x.verdict));
const criusOwn = bad.filter(({ criuAlone }) => criuAlone !== undefined && !ok.has(criuAlone)).length;
console.log(`\n${count('PASS')} PASS, ${count('no CAP_SYS_RESOURCE')} no CAP_SYS_RESOURCE (CRIU), ${count('refused (as expected)')} refused by both, ` +
  `${bad.length} other failures (${criusOwn} of them where CRIU→CRIU fails as well), ${rows.filter((r) => r.toCriu.verdict === 'skipped').length} programs skipped`);
process.exitCode = bad.length > criusOwn ? 1 : 0;
