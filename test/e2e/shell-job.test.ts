// --shell-job (-j), end to end, the way CRIU means it: a job started from a
// shell on a terminal holds fds of that terminal (/dev/pts/N). `dump -j`
// records them; `restore -j`, run inside the same terminal session, connects
// them to the terminal cryo runs on, so the restored job goes on writing to
// (and reading from) the terminal of its shell. Without -j the dump refuses,
// naming the terminal, and the job runs on.
//
// The terminal is a pty made by test/programs/ptyrun.py: its child is a
// session leader (`/bin/sh SCRIPT`) whose controlling terminal is the pty
// slave; everything the terminal shows lands in the ptyrun target's output
// file (ptyrun's own stdout and stderr go to the same file). The job is
// test/programs/tty.c, started by the shell in the background; the shell
// itself later runs `cryo restore -j -d` on the terminal. The test process is a
// child subreaper, so the restored task is reparented to it when cryo exits
// and is reaped here.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  PROGRAMS_DIR,
  ROOT,
  Session,
  compileProgram,
  critDecodeAll,
  describeStatus,
  exeOf,
  exists,
  python3,
  readOr,
  reapUntilGone,
  runningFree,
  tail,
  waitFor,
  type Target, signalPid } from './harness.js';

/** The cryo command as the harness runs it (CRYO overrides), for the shell script. */
function cryoArgv(): string[] {
  const custom = process.env.CRYO?.trim();
  if (custom) return custom.split(/\s+/);
  return [path.join(ROOT, 'bin/cryo')];
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface JobOptions {
  /**
   * `set -m` in the shell: the job runs in its own process group, in the
   * background, as from an interactive shell. Without it the job stays in the
   * shell's group (the terminal's foreground group) and can read the terminal.
   */
  jobControl: boolean;
  /** tty.c reads a line ("ping") from the terminal after its checks. */
  read?: boolean;
  /** tty.c blocks in read() on the terminal right away (no signal wait). */
  blockRead?: boolean;
  /**
   * restore: once the file `go` appears, the shell runs `cryo restore -j -d`
   * on the terminal and prints "RESTORED <exit code>".
   * restore-attached: the same without -d: cryo stays in the foreground, the
   * restored job's parent, and exits with the job's exit code.
   * wait: the shell waits for the job and prints "EXIT <exit code>".
   */
  then: 'restore' | 'restore-attached' | 'wait';
  /** tty.c also holds /dev/tty (fd 5). */
  devTty?: boolean;
  /** tty.c runs in a mount namespace of its own (unshare --mount). */
  mntns?: boolean;
}

/** One shell on one pty, running tty.c as a job. */
class ShellJob {
  readonly pidFile: string;
  readonly restoredPidFile: string;
  readonly goFile: string;
  readonly inputFile: string;
  readonly images: string;
  ptyrun!: Target;
  /** tty.c's pid. */
  pid = 0;
  /** What tty.c saw at start. */
  tty = '';
  sid = 0;
  pgrp = 0;
  private restoredPid = 0;

  constructor(
    readonly s: Session,
    readonly t: TestContext,
    readonly opts: JobOptions,
  ) {
    this.pidFile = path.join(s.dir, 'tty.pid');
    this.restoredPidFile = path.join(s.dir, 'restored.pid');
    this.goFile = path.join(s.dir, 'go');
    this.inputFile = path.join(s.dir, 'keys');
    this.images = s.mkdir('images');
    // The restored task is our orphan, not in ptyrun's tree: the session's
    // cleanup does not know it.
    t.after(async () => {
      const pid = this.restoredPid;
      if (!pid || !exists(pid)) return;
      try {
        signalPid(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await reapUntilGone(pid, 5_000).catch((e: Error) => console.error(`cleanup of restored pid ${pid}: ${e.message}`));
    });
  }

  /** Everything that explains a failure: the session's report and restore.log. */
  report(): string {
    const log = path.join(this.images, 'restore.log');
    let text = this.s.report();
    if (fs.existsSync(log)) text += `--- ${log} (cryo restore run by the shell):\n${tail(readOr(log, '').trimEnd(), 80)}\n`;
    return text;
  }

  output(): string {
    return this.ptyrun.output();
  }

  async start(): Promise<void> {
    const { jobControl, read, blockRead, then } = this.opts;
    const exe = compileProgram('tty');
    const job = [...(this.opts.mntns ? ['unshare', '--mount', '--propagation', 'private'] : []), q(exe), q(this.s.dir), ...(read ? ['read'] : blockRead ? ['blockread'] : []), ...(this.opts.devTty ? ['devtty'] : [])].join(' ');
    const lines = [
      // Without job control, sh gives background jobs /dev/null as stdin: hand
      // the terminal over explicitly (the same open file description).
      jobControl ? 'set -m' : 'exec 3<&0',
      jobControl ? `${job} &` : `${job} 0<&3 3<&- &`,
      `echo $! > ${q(this.pidFile)}`,
    ];
    if (then !== 'wait') {
      const cryo = cryoArgv().map(q).join(' ');
      lines.push(
        `while [ ! -e ${q(this.goFile)} ]; do sleep 0.05; done`,
        `${cryo} restore -j${then === 'restore' ? ' -d' : ''} -D ${q(this.images)} -v4 -o restore.log --pidfile ${q(this.restoredPidFile)}`,
        'echo "RESTORED $?"',
      );
    } else {
      lines.push('wait $!', 'echo "EXIT $?"');
    }
    // Keeps the terminal's session open; long enough for any test, short if the test process is lost.
    lines.push('exec sleep 120');
    const script = path.join(this.s.dir, 'job.sh');
    fs.writeFileSync(script, lines.join('\n') + '\n');
    // ptyrun's stdout/stderr file is the one it copies the terminal to.
    const out = path.join(this.s.dir, 'ptyrun.out');
    this.ptyrun = await this.s.startCommand(
      'ptyrun',
      [python3(), path.join(PROGRAMS_DIR, 'ptyrun.py'), out, '--input', this.inputFile, '--', '/bin/sh', script],
      { ready: /^READY\r?$/m },
    );
    const m = /^tty (\/dev\/pts\/\d+) sid (\d+) pgrp (\d+)\r?$/m.exec(this.output());
    assert.ok(m, `tty.c did not say what terminal it has${this.report()}`);
    [this.tty, this.sid, this.pgrp] = [m[1]!, Number(m[2]), Number(m[3])];
    // The shell writes $! right after the fork; READY may come first.
    await this.s.check(waitFor(`the shell to write ${this.pidFile}`, () => /^\d+\n/.test(readOr(this.pidFile, '')), 5_000));
    this.pid = Number(readOr(this.pidFile, '').trim());
    assert.ok(exists(this.pid), `tty.c pid ${this.pid} is not there${this.report()}`);
    // The setup is what it should be: a job of the shell's session (not its
    // leader), in its own group with job control, in the shell's without.
    assert.notEqual(this.sid, this.pid, this.report());
    assert.equal(this.pgrp, this.opts.jobControl ? this.pid : this.sid, `tty.c's process group${this.report()}`);
  }

  /** Waits until the terminal showed re (ptyrun and the shell must live on). */
  async waitOutput(what: string, re: RegExp, timeoutMs = 10_000, cond?: () => boolean): Promise<void> {
    try {
      await waitFor(what, () => re.test(this.output()) || cond?.() === true, timeoutMs, () => {
        if (this.ptyrun.status) return `ptyrun ended: ${describeStatus(this.ptyrun.status)}`;
        if (/^(RESTORED [1-9]|setup failed)/m.test(this.output())) return 'the terminal shows a failure';
        return undefined;
      });
    } catch (e) {
      (e as Error).message += this.report();
      throw e;
    }
  }

  /** Waits until tty.c's pid is gone (cryo killed it, the shell reaped it). */
  async waitGone(): Promise<void> {
    await this.s.check(waitFor(`dumped pid ${this.pid} to leave /proc`, () => !exists(this.pid), 10_000));
  }

  /**
   * Lets the shell run `cryo restore -j [-d]`; returns the restored pid once
   * it runs tty.c again, untraced (with -d: once cryo has exited 0).
   */
  async restore(): Promise<number> {
    fs.writeFileSync(this.goFile, '');
    if (this.opts.then === 'restore') {
      await this.waitOutput('the shell to print RESTORED 0', /^RESTORED 0\r?$/m, 20_000);
    } else {
      const exe = compileProgram('tty');
      await this.waitOutput(`pid ${this.pid} to run ${exe} again (cryo attached)`, /(?!)/, 20_000, () =>
        Number(readOr(this.restoredPidFile, '').trim()) === this.pid && exeOf(this.pid) === exe && runningFree(this.pid),
      );
    }
    const pid = Number(readOr(this.restoredPidFile, '').trim());
    this.restoredPid = pid;
    assert.equal(pid, this.pid, `restored pid (pid file ${this.restoredPidFile})${this.report()}`);
    await this.s.check(waitFor(`restored pid ${pid} to run, untraced`, () => runningFree(pid), 5_000));
    return pid;
  }

  /**
   * Waits for the restored task's end: with -d it is our orphan and we reap
   * it; attached, cryo reaps it and the shell prints cryo's exit code.
   */
  async reapRestored(): Promise<string> {
    if (this.opts.then === 'restore') return describeStatus(await this.s.check(reapUntilGone(this.restoredPid, 10_000)));
    await this.waitOutput('cryo restore (attached) to exit', /^RESTORED \d+\r?$/m);
    const code = Number(/^RESTORED (\d+)\r?$/m.exec(this.output())![1]);
    await this.s.check(waitFor(`pid ${this.restoredPid} to leave /proc`, () => !exists(this.restoredPid), 5_000));
    return describeStatus({ exited: code });
  }

  /** Kills ptyrun, the shell and whatever else runs on the terminal. */
  async end(): Promise<void> {
    await this.s.killTree(this.ptyrun);
  }
}

/** `crit decode -i FILE` as JSON. */
function crit(file: string): { entries: Array<Record<string, unknown>> } {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`crit decode ${file}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { entries: Array<Record<string, unknown>> };
}

/** The terminal and its fds, as CRIU's own decoder reads the images. */
function checkImages(job: ShellJob): void {
  const dir = job.images;
  const failures = critDecodeAll(dir);
  assert.deepEqual(failures, [], `crit cannot decode every image${job.report()}`);
  for (const n of ['tty-info.img', 'files.img']) assert.ok(fs.existsSync(path.join(dir, n)), `${n} is missing${job.report()}`);

  const rdev = fs.statSync(job.tty).rdev;
  const all = crit(path.join(dir, 'tty-info.img')).entries;
  // With /dev/tty: a CTTY entry too (CRIU's id: index 1006 << 1), of the same session.
  const ctty = all.filter((i) => i['type'] === 'CTTY');
  assert.deepEqual(ctty.map((i) => [i['id'], i['sid']]), job.opts.devTty ? [[2012, job.sid]] : [], `tty-info.img: ${JSON.stringify(all)}`);
  const infos = all.filter((i) => i['type'] !== 'CTTY');
  assert.equal(infos.length, 1, `tty-info.img: want one terminal: ${JSON.stringify(infos)}`);
  const info = infos[0] as {
    id: number; type: string; rdev: number; sid: number; pgrp: number;
    winsize?: { ws_row: number; ws_col: number }; pty?: { index: number }; termios?: { c_lflag: number };
  };
  assert.equal(info.type, 'PTY', JSON.stringify(info));
  assert.equal(info.rdev, rdev, `tty-info rdev is not ${job.tty}'s: ${JSON.stringify(info)}`);
  assert.equal(info.pty?.index, Number(/\d+$/.exec(job.tty)![0]), JSON.stringify(info));
  assert.deepEqual([info.winsize?.ws_row, info.winsize?.ws_col], [40, 132], `ptyrun's window size: ${JSON.stringify(info)}`);
  assert.ok(info.termios && info.termios.c_lflag !== 0, `termios: ${JSON.stringify(info)}`);
  // The terminal is tty.c's controlling terminal: its session and foreground group.
  assert.equal(info.sid, job.sid, `tty-info sid: ${JSON.stringify(info)}`);
  assert.ok(info.pgrp > 0, `tty-info pgrp: ${JSON.stringify(info)}`);

  const files = crit(path.join(dir, 'files.img')).entries as Array<{
    type: string; id: number; tty?: { tty_info_id: number; regf_id?: number; flags: string }; reg?: { name: string };
  }>;
  const ttys = files.filter((f) => f.type === 'TTY' && f.tty?.tty_info_id !== 2012);
  // fds 0, 1 and 2 are one open file description: one entry.
  assert.equal(ttys.length, 1, `files.img: want one TTY entry: ${JSON.stringify(files)}`);
  const tf = ttys[0]!;
  assert.equal(tf.tty?.tty_info_id, info.id, JSON.stringify(tf));
  const regf = files.find((f) => f.id === tf.tty?.regf_id);
  assert.equal(regf?.reg?.name, job.tty, `the TTY entry's regf_id names the terminal: ${JSON.stringify(files)}`);

  const pid = job.pid;
  const fdinfo = fs.readdirSync(dir).filter((n) => /^fdinfo-\d+\.img$/.test(n));
  assert.equal(fdinfo.length, 1, `one fdinfo image for pid ${pid}: ${fdinfo.join(' ')}`);
  const fds = crit(path.join(dir, fdinfo[0]!)).entries as Array<{ fd: number; type: string; id: number }>;
  if (job.opts.devTty) {
    const e = fds.find((f) => f.fd === 5);
    const tf5 = files.find((f) => f.id === e?.id);
    assert.equal(tf5?.tty?.tty_info_id, 2012, `fd 5 is /dev/tty: ${JSON.stringify(fds)}`);
    assert.equal(files.find((f) => f.id === tf5?.tty?.regf_id)?.reg?.name, '/dev/tty', JSON.stringify(files));
  }
  for (const fd of [0, 1, 2]) {
    const e = fds.find((f) => f.fd === fd);
    assert.equal(e?.type, 'TTY', `fd ${fd}: ${JSON.stringify(fds)}`);
    assert.equal(e?.id, tf.id, `fd ${fd}: ${JSON.stringify(fds)}`);
  }
}

async function dumpRestoreCheck(t: TestContext, label: string, opts: { jobControl: boolean; read: boolean; detach: boolean; blockRead?: boolean; devTty?: boolean }) {
  const s = Session.for(t, label);
  const job = new ShellJob(s, t, {
    jobControl: opts.jobControl, read: opts.read, blockRead: opts.blockRead ?? false, then: opts.detach ? 'restore' : 'restore-attached',
    devTty: opts.devTty ?? false,
  });
  await job.start();
  if (opts.blockRead) {
    await job.waitOutput('tty.c to block reading its terminal', /^READING\r?$/m);
    // Until its wait channel shows it asleep in the tty read.
    await s.check(waitFor(`pid ${job.pid} to sleep in read`, () => /^S$/m.test(fs.readFileSync(`/proc/${job.pid}/stat`, 'utf8').split(') ')[1]!.slice(0, 1)), 5_000));
  }

  const r = await s.cryo(['dump', '-j', '-t', String(job.pid), '-D', job.images, '-v4', '-o', 'dump.log']);
  s.ok(r);
  await job.waitGone();
  checkImages(job);

  const pid = await job.restore();
  // Restored in the shell's session (cryo's), in its old process group.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  assert.deepEqual([Number(f[3]), Number(f[2])], [job.sid, job.pgrp], `restored sid and pgrp (stat: ${stat})${job.report()}`);
  // Its fds are the terminal again, in the task itself.
  for (const fd of [0, 1, 2]) assert.equal(fs.readlinkSync(`/proc/${pid}/fd/${fd}`), job.tty, job.report());

  const mark = job.output().length;
  if (opts.blockRead) fs.appendFileSync(job.inputFile, 'ping\n');
  else signalPid(pid, 'SIGUSR1');
  if (opts.read) {
    await job.waitOutput('the restored job to read the terminal', /^READING\r?$/m);
    fs.appendFileSync(job.inputFile, 'ping\n');
  }
  // PASS comes through the terminal, after RESTORED: it is the restored job's.
  await job.waitOutput('the restored job to print PASS or FAIL on the terminal', /^(PASS|FAIL.*)\r?$/m);
  const status = await job.reapRestored();
  const after = job.output().slice(mark);
  assert.match(after, /^PASS\r?$/m, `the restored job did not PASS on its terminal${job.report()}`);
  assert.equal(status, 'exit 0', job.report());
  await job.end();
}

test('dump -j / restore -j in the same terminal: a background job of a job-control shell', { timeout: 30_000 }, async (t) => {
  await dumpRestoreCheck(t, 'shell-job', { jobControl: true, read: false, detach: true });
});

test('dump -j / restore -j of a job that holds /dev/tty: the task reopens it, the terminal of its session', { timeout: 30_000 }, async (t) => {
  await dumpRestoreCheck(t, 'shell-job-devtty', { jobControl: true, read: false, detach: true, devTty: true });
});

test('dump -j / restore -j in the same terminal: the job reads a line from its terminal', { timeout: 30_000 }, async (t) => {
  await dumpRestoreCheck(t, 'shell-job-read', { jobControl: false, read: true, detach: true });
});

test('dump -j / restore -j of a job blocked in read() on its terminal: the read resumes and gets the line typed after restore', { timeout: 30_000 }, async (t) => {
  await dumpRestoreCheck(t, 'shell-job-blockread', { jobControl: false, read: false, detach: true, blockRead: true });
});

test('dump -j / restore -j without -d: cryo in the foreground, the job reads its terminal, exit code through cryo', { timeout: 30_000 }, async (t) => {
  await dumpRestoreCheck(t, 'shell-job-attached', { jobControl: false, read: true, detach: false });
});

test('dump without -j fails, naming the terminal; the job runs on and PASSes', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'shell-job-refused');
  const job = new ShellJob(s, t, { jobControl: true, then: 'wait' });
  await job.start();
  const r = await s.cryo(['dump', '-t', String(job.pid), '-D', job.images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, `dump without -j of a shell job${s.report()}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
  assert.ok(lines[0]!.includes(job.tty), `the error does not name ${job.tty}: ${lines[0]}`);
  assert.match(lines[0]!, /--shell-job|-j\b/, `the error does not point to -j: ${lines[0]}`);
  assert.equal(r.stdout, '', s.report());
  await s.check(waitFor(`pid ${job.pid} to run on, untraced`, () => runningFree(job.pid), 5_000));
  signalPid(job.pid, 'SIGUSR1');
  await job.waitOutput('the job to end', /^EXIT \d+\r?$/m);
  assert.match(job.output(), /^PASS\r?$/m, s.report());
  assert.match(job.output(), /^EXIT 0\r?$/m, s.report());
  await job.end();
});

test('dump -j of a job in a mount namespace of its own is refused in one line naming the task and fd (its terminal would be cryo\'s, not of its namespace); the job runs on and PASSes', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'shell-job-mntns');
  const job = new ShellJob(s, t, { jobControl: true, then: 'wait', mntns: true });
  await job.start();
  assert.notEqual(fs.readlinkSync(`/proc/${job.pid}/ns/mnt`), fs.readlinkSync('/proc/self/ns/mnt'));
  const r = await s.cryo(['dump', '-j', '-t', String(job.pid), '-D', job.images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `want one line on stderr${s.report()}`);
  assert.match(lines[0]!, new RegExp(`task ${job.pid}: fd \\d+ is the terminal ${job.tty}, which cryo cannot restore in the tree's own mount namespace: it is a terminal of the shell \\(--shell-job\\)`), s.report());
  assert.ok(!fs.existsSync(path.join(job.images, 'inventory.img')));
  await s.check(waitFor(`pid ${job.pid} to run on, untraced`, () => runningFree(job.pid), 5_000));
  signalPid(job.pid, 'SIGUSR1');
  await job.waitOutput('the job to end', /^EXIT \d+\r?$/m);
  assert.match(job.output(), /^PASS\r?$/m, s.report());
  assert.match(job.output(), /^EXIT 0\r?$/m, s.report());
  await job.end();
});

test('restore of a shell job without -j, or with -j but no terminal, fails cleanly', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'shell-job-restore-errors');
  const job = new ShellJob(s, t, { jobControl: true, then: 'restore' });
  await job.start();
  s.ok(await s.cryo(['dump', '-j', '-t', String(job.pid), '-D', job.images, '-v4', '-o', 'dump.log']));
  await job.waitGone();
  // The test process has no terminal on stdin, stdout or stderr (s.cryo: ignore, pipes).
  for (const [args, want] of [
    [[], /--shell-job|-j\b/],
    [['-j'], /terminal/],
  ] as const) {
    const pidfile = path.join(s.dir, 'err.pid');
    const r = await s.cryo(['restore', ...args, '-d', '-D', job.images, '-v4', '-o', 'restore-err.log', '--pidfile', pidfile]);
    assert.equal(r.code, 1, `restore ${args.join(' ')} without a terminal${s.report()}`);
    assert.match(r.stderr, want, s.report());
    assert.equal(r.stderr.trim().split('\n').length, 1, `want one line on stderr${s.report()}`);
    await s.check(waitFor(`pid ${job.pid} to stay free after the failed restore`, () => !exists(job.pid), 5_000));
  }
  // And the images are still good: the real restore on the terminal works.
  const pid = await job.restore();
  signalPid(pid, 'SIGUSR1');
  await job.waitOutput('PASS', /^PASS\r?$/m);
  assert.equal(await job.reapRestored(), 'exit 0', job.report());
  await job.end();
});

test('tty.c without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2', { timeout: 30_000 }, async (t) => {
  for (const [sig, verdict, code] of [
    ['SIGUSR1', /^PASS\r?$/m, 0],
    ['SIGUSR2', /^FAIL: fd 0 is no terminal any more/m, 1],
  ] as const) {
    const s = Session.for(t, `shell-job-plain-${sig}`);
    const job = new ShellJob(s, t, { jobControl: true, then: 'wait' });
    await job.start();
    signalPid(job.pid, sig);
    await job.waitOutput('the job to end', /^EXIT \d+\r?$/m);
    assert.match(job.output(), verdict, s.report());
    assert.match(job.output(), new RegExp(`^EXIT ${code}\\r?$`, 'm'), s.report());
    await job.end();
  }
});
