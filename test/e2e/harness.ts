// End-to-end harness: compile a target, start it, dump it with cryo, restore
// it, signal it, reap it, and explain every failure with cryo's own logs.
//
// Set CRYO to run another command in place of `node bin/cryo` (for example
// CRYO=criu to hold the tests against CRIU itself), CRYO_E2E_KEEP=1 to keep
// the temp dirs of the tests.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import {
  __WALL,
  WNOHANG,
  decodeWaitStatus,
  describeStatus,
  ended,
  exeOf,
  exists,
  isErrno,
  parentPid,
  procState,
  processTree,
  reapUntilGone,
  readOr,
  signalPid,
  runningFree,
  tail,
  waitFor,
  waitpid,
  type ExitStatus,
} from './proc.js';

export * from './proc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PROGRAMS_DIR = path.join(ROOT, 'test/programs');
const BIN_DIR = path.join(PROGRAMS_DIR, 'bin');
const CFLAGS = ['-O1', '-g', '-Wall', '-pthread'];

/** How long a cryo invocation may take before it is killed. */
const CRYO_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------
// Programs

/** The file the kernel will show as /proc/PID/exe for a program started as cmd. */
function realExe(cmd: string): string {
  if (!cmd.includes('/')) {
    const r = spawnSync('sh', ['-c', 'command -v "$0"', cmd], { encoding: 'utf8' });
    if (r.status === 0) cmd = r.stdout.trim();
  }
  try {
    return fs.realpathSync(cmd);
  } catch {
    return cmd;
  }
}

/** Compiles test/programs/NAME.c into test/programs/bin/NAME unless up to date. */
export function compileProgram(name: string): string {
  const src = path.join(PROGRAMS_DIR, `${name}.c`);
  const out = path.join(BIN_DIR, name);
  // Built again when the program or any header of the folder is newer.
  const headers = fs.readdirSync(PROGRAMS_DIR).filter((f) => f.endsWith('.h')).map((f) => path.join(PROGRAMS_DIR, f));
  const newest = Math.max(...[src, ...headers].map((f) => fs.statSync(f).mtimeMs));
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest) return out;
  fs.mkdirSync(BIN_DIR, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const r = spawnSync('gcc', [...CFLAGS, '-o', tmp, src, '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`gcc ${name}.c failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}`);
  }
  fs.renameSync(tmp, out);
  return out;
}

/** The real python3 interpreter behind PATH's python3 (pyenv shims are scripts). */
export function python3(): string {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 not usable: ${r.error?.message ?? r.stderr}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------
// Targets

/**
 * A process under test. `child` is set while it is the process that
 * child_process started (node reaps it); a restored task is reaped with
 * waitpid() instead; an attached restore's task belongs to cryo.
 */
export class Target {
  /** Set when the process is known to have ended. */
  status: ExitStatus | undefined;
  private readonly exitedPromise: Promise<ExitStatus> | undefined;

  constructor(
    readonly pid: number,
    readonly label: string,
    readonly logPath: string,
    readonly exe: string,
    readonly kind: 'child' | 'orphan' | 'cryo-child',
    child?: ChildProcess,
  ) {
    if (child) {
      this.exitedPromise = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
          this.status = signal !== null ? { signaled: os.constants.signals[signal] } : { exited: code ?? -1 };
          resolve(this.status);
        });
      });
    }
  }

  /** What the target wrote to its stdout/stderr file so far. */
  output(): string {
    return readOr(this.logPath, '');
  }

  signal(sig: NodeJS.Signals): void {
    signalPid(this.pid, sig);
  }

  /** Waits for the process to end and returns how it ended (for cryo-child: once gone). */
  async wait(timeoutMs: number): Promise<ExitStatus | undefined> {
    if (this.status) return this.status;
    if (this.exitedPromise) {
      const abort = new AbortController();
      const timer = sleep(timeoutMs, undefined, { signal: abort.signal }).then(
        () => undefined,
        () => undefined,
      );
      const s = await Promise.race([this.exitedPromise, timer]);
      abort.abort();
      if (s === undefined) throw new Error(`${this.label} (pid ${this.pid}) did not exit within ${timeoutMs} ms`);
      await waitFor(`pid ${this.pid} to leave /proc`, () => !exists(this.pid), 5_000);
      return s;
    }
    if (this.kind === 'cryo-child') {
      await waitFor(`${this.label} (pid ${this.pid}) to exit`, () => !exists(this.pid), timeoutMs);
      return undefined;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = waitpid(this.pid, WNOHANG | __WALL);
        if (r.pid === this.pid) {
          const d = decodeWaitStatus(r.status);
          if (d.exited !== undefined || d.signaled !== undefined) {
            this.status = d.exited !== undefined ? { exited: d.exited } : { signaled: d.signaled! };
            return this.status;
          }
        }
      } catch (e) {
        if (!isErrno(e, 'ECHILD')) throw e;
        // The process that restored it (a service's worker) may not have exited
        // yet: the task comes to the test process, its subreaper, when it does.
        const parent = parentPid(this.pid);
        if (parent !== undefined && parent !== process.pid && exists(parent) && Date.now() < deadline) {
          await sleep(10);
          continue;
        }
        throw new Error(
          `restored ${this.label} (pid ${this.pid}) is not a child of the test process ` +
            `(state ${procState(this.pid) ?? 'gone'}, parent ${parentPid(this.pid)}, test pid ${process.pid})`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${this.label} (pid ${this.pid}) did not exit within ${timeoutMs} ms (state ${procState(this.pid)})`,
        );
      }
      await sleep(10);
    }
  }
}

// ---------------------------------------------------------------------------
// cryo

export interface CryoResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
  /** The images dir (-D) and log file (-o) as cryo should resolve them. */
  imagesDir: string | undefined;
  logFile: string | undefined;
}

function cryoCommand(): string[] {
  const custom = process.env.CRYO?.trim();
  if (custom) return custom.split(/\s+/);
  const main = path.join(ROOT, 'dist/cryo.mjs');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  // bin/cryo itself, as users run it (sh: the start-up snapshot when there is one).
  return [path.join(ROOT, 'bin/cryo')];
}

function optionValue(args: string[], short: string, long: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === short || a === long) return args[i + 1];
    if (a.startsWith(`${long}=`)) return a.slice(long.length + 1);
    if (a.startsWith(short) && a.length > 2 && short.length === 2) return a.slice(2);
  }
  return undefined;
}

function describeCryo(r: CryoResult): string {
  const how = r.timedOut ? `killed after ${CRYO_TIMEOUT_MS} ms` : r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
  let text = `--- cryo ${r.args.join(' ')} -> ${how} (${(r.ms / 1000).toFixed(1)} s)\n`;
  if (r.stdout.trim()) text += `stdout:\n${tail(r.stdout.trimEnd(), 40)}\n`;
  if (r.stderr.trim()) text += `stderr:\n${tail(r.stderr.trimEnd(), 60)}\n`;
  if (r.logFile) text += `log ${r.logFile}:\n${tail(readOr(r.logFile, '(missing)').trimEnd(), 80)}\n`;
  return text;
}

// ---------------------------------------------------------------------------
// A session: one test's temp dir, its targets, its cryo runs, its cleanup.

export interface StartOptions {
  /** Arguments after the program; default: the session dir. */
  args?: string[];
  /** The target is ready once its output matches; default /^READY$/m. */
  ready?: RegExp;
  timeoutMs?: number;
  /** More fds for the target, as its fds 3, 4, ... */
  fds?: number[];
  /** Run as this user (and group of the same number, no supplementary groups). */
  uid?: number;
  /** Working directory; default the session dir. */
  cwd?: string;
}

export interface CycleOptions {
  /** Runs after the dump, before the restore (the dumped task is gone). */
  afterDump?: (imagesDir: string, target: Target) => Promise<void> | void;
  /** Runs once the restored task runs, before it gets SIGUSR1. */
  beforeSignal?: (restored: Target, original: Target) => Promise<void> | void;
  startOptions?: StartOptions;
}

export class Session {
  readonly dir: string;
  private readonly targets: Target[] = [];
  private readonly runs: CryoResult[] = [];
  private readonly running = new Set<ChildProcess>();
  private readonly notes: string[] = [];
  private seq = 0;

  constructor(readonly label: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `cryo-e2e-${label}-`));
  }

  /** A session whose cleanup runs when the test ends. */
  static for(t: TestContext, label: string): Session {
    const s = new Session(label);
    t.after(() => s.cleanup());
    return s;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  /** Everything that explains a failure: target outputs, cryo runs with their logs. */
  report(): string {
    let text = `\n=== e2e session ${this.label} in ${this.dir}\n`;
    for (const n of this.notes) text += `note: ${n}\n`;
    for (const t of this.targets) text += `target ${t.label}: pid ${t.pid}, ${t.kind}, ${describeStatus(t.status)}\n`;
    for (const log of new Set(this.targets.map((t) => t.logPath))) {
      text += `--- output file ${path.basename(log)}:\n${tail(readOr(log, '(missing)').trimEnd(), 40)}\n`;
    }
    for (const r of this.runs) text += describeCryo(r);
    return text;
  }

  /** A fresh directory in the session dir (for images). */
  mkdir(name = `images-${++this.seq}`): string {
    const d = path.join(this.dir, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** Compiles and starts test/programs/NAME.c, waits for READY. */
  async start(name: string, opts: StartOptions = {}): Promise<Target> {
    const exe = compileProgram(name);
    return this.startCommand(name, [exe, ...(opts.args ?? [this.dir])], opts);
  }

  /**
   * Starts argv in its own session (setsid: sid and pgid inside the dumped
   * tree), stdin /dev/null, stdout and stderr one O_APPEND file, cwd the
   * session dir; waits until its output matches opts.ready.
   */
  async startCommand(label: string, argv: string[], opts: StartOptions = {}): Promise<Target> {
    // A second start of the same program gets its own file: the first one's READY must not count for it.
    let logPath = path.join(this.dir, `${label}.out`);
    for (let n = 2; fs.existsSync(logPath); n++) logPath = path.join(this.dir, `${label}-${n}.out`);
    const fd = fs.openSync(logPath, 'a');
    // A restore reopens it by path, with the rights of the target's owner.
    if (opts.uid !== undefined) fs.fchownSync(fd, opts.uid, opts.uid);
    let child: ChildProcess;
    try {
      const ids = opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid };
      child = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? this.dir, detached: true, stdio: ['ignore', fd, fd, ...(opts.fds ?? [])], ...ids });
    } finally {
      fs.closeSync(fd);
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    if (child.pid === undefined) throw await spawnError;
    const t = new Target(child.pid, label, logPath, realExe(argv[0]!), 'child', child);
    this.targets.push(t);
    const ready = opts.ready ?? /^READY$/m;
    await this.check(
      waitFor(`${label} to print ${ready}`, () => ready.test(t.output()), opts.timeoutMs ?? 10_000, () =>
        t.status ? `it ended: ${describeStatus(t.status)}` : undefined,
      ),
    );
    return t;
  }

  /** Runs cryo with args (opts.fds: more fds for cryo, as its fds 3, 4, ...; opts.command: another binary, e.g. CRIU's); never throws for a failed run (see ok()). */
  async cryo(args: string[], opts: { timeoutMs?: number; cwd?: string; env?: Record<string, string>; fds?: number[]; command?: string[] } = {}): Promise<CryoResult> {
    const [cmd, ...pre] = opts.command ?? cryoCommand();
    const cwd = opts.cwd ?? this.dir;
    const imagesDir = optionValue(args, '-D', '--images-dir');
    const log = optionValue(args, '-o', '--log-file');
    const absImages = imagesDir === undefined ? cwd : path.resolve(cwd, imagesDir);
    const result: CryoResult = {
      args,
      code: null,
      signal: null,
      stdout: '',
      stderr: '',
      timedOut: false,
      ms: 0,
      imagesDir: absImages,
      // CRIU semantics: a relative log file is relative to the work dir, which is the images dir.
      logFile: log === undefined ? undefined : path.resolve(absImages, log),
    };
    this.runs.push(result);
    const started = Date.now();
    const child = spawn(cmd!, [...pre, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])], env: { ...process.env, ...opts.env } });
    this.running.add(child);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (result.stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (result.stderr += s));
    const timer = setTimeout(() => {
      result.timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? CRYO_TIMEOUT_MS);
    await new Promise<void>((resolve) => {
      child.once('error', (e) => {
        result.stderr += `spawn failed: ${e.message}\n`;
        resolve();
      });
      child.once('exit', (code, signal) => {
        result.code = code;
        result.signal = signal;
        // Give the pipes a moment to drain; do not wait for their close: a
        // restored task that leaked cryo's pipes would hold them open.
        // (They often closed before the exit event: then there is nothing to wait for.)
        const closed = (st: NodeJS.ReadableStream & { closed?: boolean }) => (st.closed ? Promise.resolve() : new Promise((r) => st.once('close', r)));
        const drained = Promise.all([closed(child.stdout!), closed(child.stderr!)]);
        void Promise.race([drained, sleep(500, undefined, { ref: false })]).then(() => resolve());
      });
    });
    clearTimeout(timer);
    this.running.delete(child);
    result.ms = Date.now() - started;
    return result;
  }

  /** Asserts that a cryo run succeeded, with the whole report on failure. */
  ok(r: CryoResult): void {
    if (r.code !== 0) throw new Error(`cryo ${r.args[0]} failed${this.report()}`);
  }

  /** Runs a promise; on failure rethrows with the report attached. */
  async check<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (!err.message.includes('=== e2e session')) err.message += this.report();
      throw err;
    }
  }

  /**
   * Dumps target into dir (`dump -t PID -D DIR -v4 -o dump.log`, plus
   * --leave-running). Without it, waits until every task of the dumped tree
   * is gone (reaped by node, by us, or by its parent). With it, checks that
   * the target runs on, untraced.
   */
  async dump(target: Target, dir: string, opts: { leaveRunning?: boolean; extra?: string[] } = {}): Promise<CryoResult> {
    const tree = processTree(target.pid);
    const args = ['dump', '-t', String(target.pid), '-D', dir, '-v4', '-o', 'dump.log'];
    if (opts.leaveRunning) args.push('--leave-running');
    const r = await this.cryo([...args, ...(opts.extra ?? [])]);
    this.ok(r);
    if (opts.leaveRunning) {
      await this.check(
        waitFor(`pid ${target.pid} to run on after dump --leave-running`, () => runningFree(target.pid), 5_000),
      );
      return r;
    }
    await this.check(this.gone(target, tree, dir));
    return r;
  }

  /** Waits until the target and every task of its tree (and of the images in dir) is gone. */
  async gone(target: Target, tree: number[], dir?: string): Promise<void> {
    const pids = new Set(tree);
    if (dir) for (const p of imagePids(dir)) pids.add(p);
    pids.delete(target.pid);
    if (target.kind === 'child') target.status = await target.wait(10_000);
    else if (target.kind === 'orphan') target.status = await reapUntilGone(target.pid, 10_000);
    else await target.wait(10_000);
    for (const p of pids) await reapUntilGone(p, 10_000);
  }

  /**
   * `restore -D DIR -d -v4 -o restore.log --pidfile FILE`: asserts success,
   * reads the pid file and returns the restored task (reaped by us).
   */
  /** A restored task the test restored by hand: tracked and reaped like the others. */
  adopt(pid: number, original: Target): Target {
    const t = new Target(pid, `${original.label} (restored)`, original.logPath, original.exe, 'orphan');
    this.targets.push(t);
    return t;
  }

  async restore(dir: string, original: Target, opts: { extra?: string[]; fds?: number[] } = {}): Promise<Target> {
    const pidfile = path.join(this.dir, `restore-${++this.seq}.pid`);
    const r = await this.cryo(['restore', '-D', dir, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile, ...(opts.extra ?? [])], { fds: opts.fds ?? [] });
    this.ok(r);
    const text = readOr(pidfile, '');
    const pid = Number(text.trim());
    if (!text.trim() || !Number.isInteger(pid)) throw new Error(`pid file ${pidfile} holds "${text}"${this.report()}`);
    const t = this.adopt(pid, original);
    if (pid !== original.pid) throw new Error(`restored pid ${pid}, dumped pid ${original.pid}${this.report()}`);
    await this.check(waitFor(`restored pid ${pid} to run`, () => runningFree(pid), 5_000, () => ended(pid)));
    return t;
  }

  /**
   * `restore -D DIR -v4 -o restore.log --pidfile FILE` without -d, in the
   * background: cryo waits for the task and exits with its status. Resolves
   * once the task runs the dumped program, untraced; `done` is cryo's run.
   */
  async restoreAttached(dir: string, original: Target): Promise<{ target: Target; done: Promise<CryoResult> }> {
    const pidfile = path.join(this.dir, `restore-${++this.seq}.pid`);
    let finished: CryoResult | undefined;
    const done = this.cryo(['restore', '-D', dir, '-v4', '-o', 'restore.log', '--pidfile', pidfile]).then((r) => {
      finished = r;
      return r;
    });
    const t = new Target(original.pid, `${original.label} (restored, attached)`, original.logPath, original.exe, 'cryo-child');
    this.targets.push(t);
    await this.check(
      waitFor(
        `pid ${original.pid} to run ${original.exe} again, untraced`,
        () => exeOf(original.pid) === original.exe && runningFree(original.pid),
        20_000,
        () => (finished ? `cryo ended first: exit ${finished.code}` : undefined),
      ),
    );
    return { target: t, done };
  }

  /** Sends sig (default SIGUSR1), waits for the end, returns status and output. */
  async finish(t: Target, sig: NodeJS.Signals = 'SIGUSR1', timeoutMs = 10_000): Promise<{ status: ExitStatus | undefined; output: string }> {
    t.signal(sig);
    const status = await this.check(t.wait(timeoutMs));
    return { status, output: t.output() };
  }

  /** Signals SIGUSR1 and asserts PASS and exit 0. */
  async expectPass(t: Target): Promise<void> {
    const { status, output } = await this.finish(t);
    if (status?.exited !== 0 || !/^PASS$/m.test(output)) {
      throw new Error(`${t.label}: ${describeStatus(status)}, want PASS and exit 0${this.report()}`);
    }
  }

  /** start → dump → (tree gone) → restore -d → SIGUSR1 → PASS, exit 0. */
  async cycle(name: string, opts: CycleOptions = {}): Promise<void> {
    const t = await this.start(name, opts.startOptions);
    const images = this.mkdir();
    await this.dump(t, images);
    await opts.afterDump?.(images, t);
    const r = await this.restore(images, t);
    await opts.beforeSignal?.(r, t);
    await this.expectPass(r);
  }

  /** SIGKILLs the target's whole tree and reaps it (the target's status is then "killed by 9"). */
  async killTree(t: Target): Promise<void> {
    const tree = processTree(t.pid);
    for (const p of tree) {
      try {
        signalPid(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await this.check(this.gone(t, tree));
  }

  /** Kills whatever still runs (whole trees), reaps it, removes the temp dir. */
  async cleanup(): Promise<void> {
    for (const c of this.running) c.kill('SIGKILL');
    for (const t of this.targets) {
      if (t.status || !exists(t.pid)) continue;
      const tree = processTree(t.pid);
      for (const p of tree) {
        try {
          signalPid(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      try {
        if (t.kind === 'child') await t.wait(5_000);
        else await reapUntilGone(t.pid, 5_000);
        for (const p of tree.slice(1)) await reapUntilGone(p, 5_000);
      } catch (e) {
        console.error(`cleanup of ${t.label}: ${(e as Error).message}`);
      }
    }
    if (process.env.CRYO_E2E_KEEP) console.error(`kept ${this.dir}`);
    else {
      unmountUnder(this.dir);
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * Detaches every mount at or below dir, deepest first: what a client left
 * mounted there (podman's overlay driver binds its storage dir onto itself)
 * would make the removal fail with EBUSY.
 */
export function unmountUnder(dir: string): void {
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + '/')));
  for (const m of [...new Set(points)].sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
}

// ---------------------------------------------------------------------------
// Images

/** Task ids named by core-N.img files in an images dir. */
export function imagePids(dir: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const m = /^core-(\d+)\.img$/.exec(n);
    return m ? [Number(m[1])] : [];
  });
}

/** sha256 of every *.img in dir, by name. */
export function imageChecksums(dir: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const n of fs.readdirSync(dir).sort()) {
    if (!n.endsWith('.img')) continue;
    sums.set(n, createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'));
  }
  return sums;
}

/** Decodes every *.img but the raw ones (pages-*.img, tmpfs tarballs) with CRIU's crit; returns the failures. */
/** The entries of one image, as Debian's crit decodes it. */
export function critEntries(images: string, name: string): Array<Record<string, unknown>> {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, name)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`crit decode ${name}: ${r.error?.message ?? `exit ${r.status}`}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> }).entries;
}

export function critDecodeAll(dir: string): string[] {
  const failures: string[] = [];
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.img') && !n.startsWith('pages-') && !n.startsWith('tmpfs-'));
  if (names.length === 0) failures.push(`no images in ${dir}`);
  for (const n of names.sort()) {
    const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(dir, n)], {
      encoding: 'utf8',
      maxBuffer: 256 << 20,
    });
    if (r.status !== 0) {
      failures.push(`crit decode ${n}: ${r.error?.message ?? `exit ${r.status}`}: ${tail(r.stderr.trim(), 8)}`);
    }
  }
  return failures;
}

/** The numbers of the "tick N" lines of an output, in order. */
export function ticks(output: string): number[] {
  return [...output.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
}

/**
 * zdtm's check of stats-dump: the pages it says were written (private and
 * shared) are exactly the pages in the pages-*.img files. Throws if not.
 */
export function checkPageCounts(dir: string): void {
  const r = spawnSync(path.join(ROOT, 'bin/cryo'), ['crit', 'decode', '-i', path.join(dir, 'stats-dump')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`crit decode stats-dump: ${r.stderr}`);
  const d = (JSON.parse(r.stdout) as { entries: Array<{ dump: Record<string, number> }> }).entries[0]!.dump;
  for (const k of ['pages_written', 'shpages_written', 'shpages_scanned']) {
    if (!(k in d)) throw new Error(`stats-dump has no ${k}`);
  }
  const bytes = fs.readdirSync(dir).filter((n) => n.startsWith('pages-')).reduce((s, n) => s + fs.statSync(path.join(dir, n)).size, 0);
  const stated = Number(d['pages_written']) + Number(d['shpages_written']);
  if (bytes % 4096 !== 0 || stated !== bytes / 4096) throw new Error(`stats-dump says ${stated} pages written, pages-*.img hold ${bytes / 4096}`);
}
