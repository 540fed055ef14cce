// Pseudo-terminal pairs the tree made itself (test/programs/ptypair.c): the
// master in one process, the slave the controlling terminal of a session in
// another, a foreground group, /dev/tty, a locked master without a slave.
// Restored with the same indices, parameters, locks, packet mode, exclusive
// flag, session and foreground group; data flows both ways after the restore.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NR, O, TIOC, syscall } from '../../src/sys/index.js';
import { Session, childrenOf, compileProgram, critDecodeAll, exists, reapUntilGone, waitFor, type Target } from './harness.js';

function crit(file: string): Array<Record<string, any>> {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`crit decode ${file}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { entries: Array<Record<string, any>> }).entries;
}

function statOf(pid: number): { pgid: number; sid: number; ttyNr: number; tpgid: number } {
  const t = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = t.slice(t.lastIndexOf(')') + 2).split(' ').map(Number);
  return { pgid: f[2]!, sid: f[3]!, ttyNr: f[4]!, tpgid: f[5]! };
}

interface Started {
  target: Target;
  c: number;
  g: number;
  a: number;
  b: number;
}

async function startPtypair(s: Session): Promise<Started> {
  const target = await s.start('ptypair');
  const out = target.output();
  const pids = /^pids (\d+) (\d+)$/m.exec(out);
  const ptys = /^ptys \/dev\/pts\/(\d+) \/dev\/pts\/(\d+)$/m.exec(out);
  assert.ok(pids && ptys, `ptypair did not say its pids and ptys${s.report()}`);
  return { target, c: Number(pids[1]), g: Number(pids[2]), a: Number(ptys[1]), b: Number(ptys[2]) };
}

/** The session, group and controlling terminal of C and G, as /proc shows them. */
function checkSession(p: Started, rdevA: number, s: Session): void {
  const c = statOf(p.c);
  const g = statOf(p.g);
  assert.deepEqual([c.sid, c.ttyNr, c.tpgid], [p.c, rdevA, p.g], `C: sid, tty_nr, tpgid${s.report()}`);
  assert.deepEqual([g.sid, g.pgid, g.ttyNr, g.tpgid], [p.c, p.g, rdevA, p.g], `G: sid, pgid, tty_nr, tpgid${s.report()}`);
}

test('pty pairs of the tree: indices, termios, locks, packet mode, exclusive, session and foreground group, /dev/tty; data both ways', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptypair');
  const p = await startPtypair(s);
  const rdevA = fs.statSync(`/dev/pts/${p.a}`).rdev;
  checkSession(p, rdevA, s);
  // Owner and mode of the slave's node, other than a fresh one's (root, the mount's mode=600).
  fs.chownSync(`/dev/pts/${p.a}`, 1234, 5);
  fs.chmodSync(`/dev/pts/${p.a}`, 0o640);
  const images = s.mkdir();
  await s.dump(p.target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());

  // The images as CRIU writes them: ids index << 1 | master, the state on the right side.
  const infos = crit(path.join(images, 'tty-info.img'));
  const byId = (id: number) => infos.find((i) => i['id'] === id);
  const masterA = byId((p.a << 1) | 1);
  const slaveA = byId(p.a << 1);
  const masterB = byId((p.b << 1) | 1);
  const ctty = infos.find((i) => i['type'] === 'CTTY');
  assert.ok(masterA && slaveA && masterB && ctty, `tty-info.img: ${JSON.stringify(infos)}`);
  assert.equal(masterA['type'], 'PTY');
  assert.equal(masterA['pty']?.index, p.a);
  assert.deepEqual([masterA['locked'], masterA['packet_mode'], masterA['sid'], masterA['pgrp']], [true, true, p.c, p.g], JSON.stringify(masterA));
  assert.deepEqual([masterA['winsize']?.ws_row, masterA['winsize']?.ws_col], [33, 77], JSON.stringify(masterA));
  assert.equal(slaveA['exclusive'], true, JSON.stringify(slaveA));
  assert.equal(slaveA['termios_locked']?.c_lflag, 0o10 /* ECHO */, JSON.stringify(slaveA));
  // c_cc's bytes packed into the words as CRIU's memcpy leaves them: VINTR ^G, VQUIT ^\\, VERASE DEL, VKILL ^U in the first.
  assert.equal(slaveA['termios']?.c_cc?.[0], (7 | (28 << 8) | (127 << 16) | (21 << 24)) >>> 0, `VINTR: ${JSON.stringify(slaveA)}`);
  assert.deepEqual([masterB['locked'], masterB['pty']?.index], [true, p.b], JSON.stringify(masterB));
  assert.equal(ctty['id'], 1006 << 1, JSON.stringify(ctty));
  const files = crit(path.join(images, 'files.img'));
  const names = files
    .filter((f) => f['type'] === 'TTY')
    .map((f) => files.find((r) => r['id'] === f['tty']?.regf_id)?.['reg']?.name as string)
    .sort();
  assert.deepEqual([...new Set(names)], ['/dev/ptmx', `/dev/pts/${p.a}`, '/dev/tty'], JSON.stringify(files));

  const r = await s.restore(images, p.target);
  checkSession(p, rdevA, s);
  const st = fs.statSync(`/dev/pts/${p.a}`);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1234, 5, 0o640], `owner and mode of /dev/pts/${p.a}${s.report()}`);
  await s.expectPass(r);
});

test('ptypair without checkpoint: PASS on SIGUSR1, FAIL on SIGUSR2 (window size changed)', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ptypair-plain');
  const p = await startPtypair(s);
  await s.expectPass(p.target);
  const s2 = Session.for(t, 'ptypair-plain-2');
  const q = await startPtypair(s2);
  const { status, output } = await s2.finish(q.target, 'SIGUSR2');
  assert.equal(status?.exited, 1, s2.report());
  assert.match(output, /^FAIL: window size 1x1/m, s2.report());
});

test('restore fails cleanly while the pty index is taken, and works once it is free', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptypair-busy');
  const p = await startPtypair(s);
  const images = s.mkdir();
  await s.dump(p.target, images);
  // Take /dev/pts/A: open ptmx until the kernel hands out that index.
  const held: number[] = [];
  const idx = Buffer.alloc(4);
  try {
    for (let i = 0; i < 64; i++) {
      const fd = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY);
      held.push(fd);
      syscall('ioctl(TIOCGPTN)', NR.ioctl, fd, TIOC.GPTN, idx);
      if (idx.readInt32LE(0) >= p.a) break;
    }
    assert.equal(idx.readInt32LE(0), p.a, 'the test could not take the index itself');
    const pidfile = path.join(s.dir, 'busy.pid');
    const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore-busy.log', '--pidfile', pidfile]);
    assert.equal(r.code, 1, s.report());
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr${s.report()}`);
    assert.match(r.stderr, new RegExp(`/dev/pts/${p.a} is in use`), s.report());
    // Killed by cryo; C and G come to the test process (the subreaper) to be reaped.
    for (const pid of [p.g, p.c, p.target.pid]) await s.check(reapUntilGone(pid, 5_000));
  } finally {
    for (const fd of held) fs.closeSync(fd);
  }
  const r = await s.restore(images, p.target);
  await s.expectPass(r);
});

test('pty pair in a pid namespace: session and foreground group saved and set with the namespace\'s pids', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptypair-pidns');
  const exe = compileProgram('ptypair');
  const unshare = await s.startCommand('ptypair', ['unshare', '--fork', '--pid', exe, s.dir]);
  const root = childrenOf(unshare.pid)[0]!;
  assert.ok(root, `unshare has no child${s.report()}`);
  const m = /^pids (\d+) (\d+)$/m.exec(unshare.output());
  assert.ok(m, s.report());
  const [c, g] = [Number(m[1]), Number(m[2])];
  assert.ok(c < 10 && g < 10, `pids ${c} ${g} are not the namespace's own${s.report()}`);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(root), '-D', images, '-v4', '-o', 'dump.log']));
  await s.check(waitFor(`pid ${root} to go`, () => !exists(root), 10_000));
  const masterA = crit(path.join(images, 'tty-info.img')).find((i) => i['type'] === 'PTY' && i['locked'] && i['packet_mode']);
  assert.deepEqual([masterA?.['sid'], masterA?.['pgrp']], [c, g], `tty-info.img holds the namespace's pids: ${JSON.stringify(masterA)}`);
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile]));
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), unshare);
  await s.expectPass(restored);
});

test('dump of a task whose pty is the controlling terminal of a session outside the tree fails, the tree runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'ptypair-foreign-session');
  const p = await startPtypair(s);
  // G alone: it holds the master and the slave (inherited), but its session's leader is C.
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(p.g), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  assert.match(r.stderr, new RegExp(`/dev/pts/${p.a} is the controlling terminal of session ${p.c}, whose leader is not in the dumped tree`), s.report());
  await s.expectPass(p.target);
});

test('data queued in pseudo-terminals comes back: canonical lines (also one ended by ^D), a line being typed, echoes and output, raw bytes of every value', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ptydata');
  const target = await s.start('ptydata');
  const images = s.mkdir();
  await s.dump(target, images);
  assert.ok(fs.existsSync(path.join(images, 'tty-data.img')), s.report());
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(await s.restore(images, target));
});

test('data queued in pseudo-terminals stays queued after dump --leave-running', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ptydata-r');
  const target = await s.start('ptydata');
  await s.dump(target, s.mkdir(), { leaveRunning: true });
  await s.expectPass(target);
});
