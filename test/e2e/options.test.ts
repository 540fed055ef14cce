// Options that act on cryo itself rather than on the tree: --close, --display-stats,
// --status-fd, --log-pid; and the refusals over RPC (criu_opts fields and a
// config_file), before any task is touched.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cryo, CryoRpcError } from '../../src/index.js';
import { ROOT, Session, processTree, runningFree, waitFor, signalPid } from './harness.js';

/** A FIFO: our non-blocking read end, and a write end to hand to cryo. */
function fifo(dir: string, name: string): { r: number; w: number } {
  const p = path.join(dir, name);
  assert.equal(spawnSync('mkfifo', [p]).status, 0);
  const r = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const w = fs.openSync(p, fs.constants.O_WRONLY);
  return { r, w };
}

/** What a non-blocking read gives now: bytes, 'eof' (no writer left) or 'empty' (a writer holds it). */
function poll(fd: number): Buffer | 'eof' | 'empty' {
  const b = Buffer.alloc(16);
  try {
    const n = fs.readSync(fd, b, 0, b.length, null);
    return n === 0 ? 'eof' : b.subarray(0, n);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 'empty';
    throw e;
  }
}

test('--close 3: cryo lets go of the inherited fd 3 at once (its reader sees EOF while cryo waits for the restored task); without it cryo holds it', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'close');
  const target = await s.start('sleeper');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  await s.killTree(target);
  for (const close of [false, true]) {
    const { r, w } = fifo(s.dir, `fifo-${close}`);
    const pidfile = path.join(s.dir, `restore-${close}.pid`);
    const run = s.cryo(['restore', '-D', images, '-v4', '-o', `restore-${close}.log`, '--pidfile', pidfile, ...(close ? ['--close', '3'] : [])], { fds: [w] });
    fs.closeSync(w);
    await s.check(waitFor('the restored task to run', () => fs.existsSync(pidfile) && runningFree(target.pid), 20_000));
    const restored = s.adopt(target.pid, target);
    assert.equal(poll(r), close ? 'eof' : 'empty', `while cryo waits for the task, with${close ? '' : 'out'} --close 3${s.report()}`);
    // Its check wants 3 ticks in all: it was dumped after its first.
    const ticks = () => (target.output().match(/^tick /gm) ?? []).length;
    const before = ticks();
    if (close) await s.check(waitFor('two ticks after the restore', () => ticks() >= before + 2, 10_000));
    restored.signal(close ? 'SIGUSR1' : 'SIGKILL');
    const done = await run;
    assert.equal(done.code, close ? 0 : 137, s.report());
    fs.closeSync(r);
  }
  assert.match(target.output(), /^PASS$/m, s.report());
});

test('--display-stats: dump and restore print CRIU\'s statistics on stdout, from what they did; --log-pid warns that it does nothing', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'display-stats');
  const target = await s.start('memory');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const d = await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '--display-stats']);
  s.ok(d);
  await s.check(s.gone(target, tree, images));
  const lines = d.stdout.trimEnd().split('\n');
  assert.deepEqual(lines.map((l) => l.replace(/0x[0-9a-f]+/g, '0xN').replace(/\d+/g, 'N').replace('NxN', '0xN')), [
    'Displaying dump stats:', 'Freezing time: N us', 'Frozen time: N us', 'Memory dump time: N us', 'Memory write time: N us',
    'Memory pages scanned: N (0xN)', 'Memory pages skipped from parent: N (0xN)', 'Memory pages written: N (0xN)', 'Lazy memory pages: N (0xN)',
  ], d.stdout);
  const crit = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, 'stats-dump')], { encoding: 'utf8' });
  const stats = (JSON.parse(crit.stdout) as { entries: Array<{ dump: Record<string, number> }> }).entries[0]!.dump;
  const shown = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(d.stdout)![1]);
  assert.equal(shown('Memory pages written'), Number(stats['pages_written']));
  assert.equal(shown('Memory pages scanned'), Number(stats['pages_scanned']));
  assert.ok(shown('Memory pages written') > 100, d.stdout); // memory.c fills megabytes

  const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore.log', '--pidfile', path.join(s.dir, 'r.pid'), '--display-stats', '--log-pid']);
  s.ok(r);
  const restored = s.adopt(target.pid, target);
  const rl = r.stdout.trimEnd().split('\n');
  assert.deepEqual(rl.map((l) => l.replace(/0x[0-9a-f]+/g, '0xN').replace(/\d+/g, 'N').replace('NxN', '0xN')), [
    'Displaying restore stats:', 'Pages compared: N (0xN)', 'Pages skipped COW: N (0xN)', 'Pages restored: N (0xN)',
    'Restore time: N us', 'Forking time: N us',
  ], r.stdout);
  const pages = Number(/^Pages restored: (\d+)/m.exec(r.stdout)![1]);
  assert.ok(pages > 100 && pages <= shown('Memory pages written'), r.stdout);
  assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), /Warn: --log-pid has no effect: cryo restores every task from its one process/);
  await s.expectPass(restored);
});

test('--status-fd: the service writes one zero byte once it listens, then closes the fd', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'status-fd');
  const { r, w } = fifo(s.dir, 'status');
  const sock = path.join(s.dir, 'svc.sock');
  const service = spawn(path.join(ROOT, 'bin/cryo'), ['service', '--address', sock, '--status-fd', '3'], { stdio: ['ignore', 'ignore', 'ignore', w] });
  t.after(() => service.kill('SIGKILL'));
  fs.closeSync(w);
  let got: Buffer | undefined;
  await s.check(waitFor('the status byte', () => {
    const x = poll(r);
    if (Buffer.isBuffer(x)) got = x;
    return got !== undefined;
  }, 10_000));
  assert.deepEqual([...got!], [0]);
  assert.ok(fs.existsSync(sock), 'status before the socket listens');
  await s.check(waitFor('EOF on the status fd while the service runs', () => poll(r) === 'eof', 5_000));
  assert.equal(service.exitCode, null, 'the service is gone');
  assert.equal((await new Cryo({ service: sock }).version()).major, 4);
  fs.closeSync(r);
});

test('--status-fd with --daemon: the daemon, not its parent, writes the byte once it listens', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'status-fd-daemon');
  const { r, w } = fifo(s.dir, 'status');
  const sock = path.join(s.dir, 'svc.sock');
  const pidfile = path.join(s.dir, 'svc.pid');
  // fd 5 in cryo; the daemon gets it under another number.
  const started = spawnSync(path.join(ROOT, 'bin/cryo'), ['service', '--address', sock, '-d', '--pidfile', pidfile, '--status-fd', '5'],
    { stdio: ['ignore', 'ignore', 'pipe', 'ignore', 'ignore', w], encoding: 'utf8' });
  fs.closeSync(w);
  assert.equal(started.status, 0, started.stderr);
  const daemon = Number(fs.readFileSync(pidfile, 'utf8'));
  t.after(() => signalPid(daemon, 'SIGKILL'));
  let got: Buffer | undefined;
  await s.check(waitFor('the status byte', () => {
    const x = poll(r);
    if (Buffer.isBuffer(x)) got = x;
    return got !== undefined;
  }, 10_000));
  assert.deepEqual([...got!], [0]);
  assert.ok(fs.existsSync(sock), 'status before the socket listens');
  assert.equal((await new Cryo({ service: sock }).version()).major, 4);
  fs.closeSync(r);
});

test('over RPC, what cryo does not do is refused before any task is touched: criu_opts fields, a config_file, a pid that is not > 0', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-refusals');
  const cryo = new Cryo();
  const target = await s.start('pipes');
  const conf = path.join(s.dir, 'refused.conf');
  fs.writeFileSync(conf, 'auto-dedup\n');
  const refused = async (why: RegExp, opts: Record<string, unknown>, op: 'dump' | 'restore' = 'dump') => {
    const images = s.mkdir();
    await assert.rejects(cryo[op]({ imagesDir: images, opts }), (e: unknown) => {
      assert.ok(e instanceof CryoRpcError, String(e));
      assert.match(e.message, why);
      return true;
    }, JSON.stringify(opts));
    assert.ok(runningFree(target.pid), `${JSON.stringify(opts)}${s.report()}`);
    assert.deepEqual(fs.readdirSync(images).filter((f) => f.endsWith('.img')), [], JSON.stringify(opts));
  };
  await refused(/^[A-Z]+ failed: RPC request: auto_dedup is not supported yet$/, { pid: target.pid, autoDedup: true });
  await refused(/^[A-Z]+ failed: RPC request: lazy_pages is not supported yet$/, { pid: target.pid, lazyPages: true });
  await refused(/^[A-Z]+ failed: RPC request: external dev\[sdb\]:v0 is not supported yet$/, { pid: target.pid, external: ['dev[sdb]:v0'] });
  await refused(/^[A-Z]+ failed: RPC request: auto_ext_mnt is not supported yet$/, { pid: target.pid, autoExtMnt: true });
  await refused(/^[A-Z]+ failed: RPC request: --auto-dedup is not supported yet$/, { pid: target.pid, configFile: conf });
  for (const pid of [0, -1]) await refused(new RegExp(`^DUMP failed: RPC request: invalid pid ${pid}$`), { pid });
  // Fields at their defaults ask for nothing: the dump goes on.
  await cryo.dump({ imagesDir: s.mkdir(), opts: { pid: target.pid, trackMem: false, lazyPages: false, root: '/', leaveRunning: true } });
  assert.ok(runningFree(target.pid), s.report());
  await s.expectPass(target);
});
