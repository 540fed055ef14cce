// --inherit-fd fd[N]:RESOURCE on restore: cryo's own fd N takes the place of
// the object the images name (CRIU's keys: "pipe:[INODE]", a path without its
// leading slash, "tty[RDEV:DEV]"). test/programs/inheritfd.c writes into a pipe
// whose reader is the test, and into old.log; the restore hands it a new pipe
// and new.log instead.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NR, O, TIOC, syscall } from '../../src/sys/index.js';
import { Session, critDecodeAll, reapUntilGone } from './harness.js';

function makePipe(): { r: number; w: number } {
  const fds = new Int32Array(2);
  syscall('pipe2', NR.pipe2, new Uint8Array(fds.buffer), O.CLOEXEC);
  return { r: fds[0]!, w: fds[1]! };
}

/** Everything left in a pipe whose writers are all gone. */
function drain(fd: number): string {
  const buf = Buffer.alloc(4096);
  let out = '';
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n <= 0) return out;
    out += buf.subarray(0, n).toString();
  }
}

function crit(file: string): Array<Record<string, any>> {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`crit decode ${file}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { entries: Array<Record<string, any>> }).entries;
}

test('--inherit-fd: a new pipe for a pipe whose reader was outside the tree, new.log for old.log', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'inherit-fd');
  const a = makePipe();
  const b = makePipe();
  const newLog = path.join(s.dir, 'new.log');
  const logFd = fs.openSync(newLog, O.WRONLY | O.CREAT | O.APPEND | O.CLOEXEC, 0o644);
  t.after(() => [a.r, b.r, b.w, logFd].filter((fd) => fd >= 0).forEach((fd) => fs.closeSync(fd)));
  let target;
  try {
    target = await s.start('inheritfd', { fds: [a.w] });
  } finally {
    fs.closeSync(a.w);
  }
  const pipeIno = fs.fstatSync(a.r).ino;
  const images = s.mkdir();
  await s.dump(target, images);
  assert.equal(drain(a.r), 'before\n', 'the old pipe got "before" and nothing else');
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const files = crit(path.join(images, 'files.img'));
  assert.ok(files.some((f) => f['type'] === 'PIPE' && f['pipe']?.pipe_id === pipeIno), `no pipe ${pipeIno} in files.img: ${JSON.stringify(files)}`);
  const oldLog = path.join(s.dir, 'old.log');

  // CRIU's spelling of a file key has no leading slash.
  const r = await s.restore(images, target, {
    extra: ['--inherit-fd', `fd[3]:pipe:[${pipeIno}]`, '--inherit-fd', `fd[4]:${oldLog.slice(1)}`],
    fds: [b.w, logFd],
  });
  fs.closeSync(b.w);
  b.w = -1;
  await s.expectPass(r);
  assert.equal(drain(b.r), 'after\n', `the new pipe did not get "after"${s.report()}`);
  assert.equal(fs.readFileSync(newLog, 'utf8'), 'after\n', s.report());
  assert.equal(fs.readFileSync(oldLog, 'utf8'), 'before\n', s.report());
});

test('--inherit-fd with an fd cryo does not have: one clear line, exit 1', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'inherit-fd-bad');
  const a = makePipe();
  t.after(() => fs.closeSync(a.r));
  let target;
  try {
    target = await s.start('inheritfd', { fds: [a.w] });
  } finally {
    fs.closeSync(a.w);
  }
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.cryo(['restore', '-D', images, '-d', '--inherit-fd', 'fd[77]:pipe:[1]']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /^Error: --inherit-fd fd\[77\]:pipe:\[1\]: fd 77 is not open in cryo\n$/, s.report());
});

test('inheritfd without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2', { timeout: 30_000 }, async (t) => {
  for (const [sig, want, code] of [['SIGUSR1', /^PASS$/m, 0], ['SIGUSR2', /^FAIL: fd 3 is not a pipe/m, 1]] as const) {
    const s = Session.for(t, `inherit-fd-plain-${sig}`);
    const a = makePipe();
    let target;
    try {
      target = await s.start('inheritfd', { fds: [a.w] });
    } finally {
      fs.closeSync(a.w);
    }
    const { status, output } = await s.finish(target, sig);
    fs.closeSync(a.r);
    assert.equal(status?.exited, code, s.report());
    assert.match(output, want, s.report());
  }
});

/** A pty of the test's own: master (unlocked) and an open slave. */
function openPty(): { master: number; slave: number; name: string } {
  const master = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.CLOEXEC);
  const v = Buffer.alloc(4);
  syscall('ioctl(TIOCSPTLCK)', NR.ioctl, master, TIOC.SPTLCK, v);
  syscall('ioctl(TIOCGPTN)', NR.ioctl, master, TIOC.GPTN, v);
  const name = `/dev/pts/${v.readInt32LE(0)}`;
  return { master, slave: fs.openSync(name, O.RDWR | O.NOCTTY | O.CLOEXEC), name };
}

test('--external tty[RDEV:DEV] on dump, --inherit-fd fd[N]:tty[RDEV:DEV] on restore: another terminal, with the dumped settings', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'inherit-fd-tty');
  const a = openPty();
  const b = openPty();
  t.after(() => [a.master, b.master, b.slave].filter((fd) => fd >= 0).forEach((fd) => fs.closeSync(fd)));
  let target;
  try {
    target = await s.start('exttty', { fds: [a.slave] });
  } finally {
    fs.closeSync(a.slave);
  }
  const st = fs.statSync(a.name);
  const key = `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
  const images = s.mkdir();
  // Without --external it is a terminal of nobody in the tree: refused, the task runs on.
  const refused = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump-refused.log']);
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr, new RegExp(`fd 3 is the terminal ${a.name};`), s.report());
  await s.dump(target, images, { extra: ['--external', key] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const info = crit(path.join(images, 'tty-info.img'));
  assert.deepEqual(info.map((i) => [i['type'], i['rdev'], i['dev']]), [['EXT_TTY', st.rdev, st.dev]], JSON.stringify(info));
  const tf = crit(path.join(images, 'files.img')).find((f) => f['type'] === 'TTY');
  assert.ok(tf && tf['tty']?.regf_id === undefined, `an external terminal has no path: ${JSON.stringify(tf)}`);

  const missing = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore-missing.log']);
  assert.equal(missing.code, 1, s.report());
  assert.ok(missing.stderr.includes(`--inherit-fd fd[N]:${key}`), s.report());
  await s.check(reapUntilGone(target.pid, 5_000));

  const r = await s.restore(images, target, { extra: ['--inherit-fd', `fd[3]:${key}`], fds: [b.slave] });
  fs.closeSync(b.slave);
  b.slave = -1;
  await s.expectPass(r);
  const buf = Buffer.alloc(256);
  const n = fs.readSync(b.master, buf, 0, buf.length, null);
  assert.match(buf.subarray(0, n).toString(), /^after\r?\n$/, 'the new terminal got "after"');
});

test('exttty without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2', { timeout: 30_000 }, async (t) => {
  for (const [sig, want, code] of [['SIGUSR1', /^PASS$/m, 0], ['SIGUSR2', /^FAIL: window size 1x1/m, 1]] as const) {
    const s = Session.for(t, `exttty-plain-${sig}`);
    const a = openPty();
    let target;
    try {
      target = await s.start('exttty', { fds: [a.slave] });
    } finally {
      fs.closeSync(a.slave);
    }
    const { status, output } = await s.finish(target, sig);
    fs.closeSync(a.master);
    assert.equal(status?.exited, code, s.report());
    assert.match(output, want, s.report());
  }
});
