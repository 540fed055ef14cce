// The RPC protocol with a real client: pycriu (Debian's criu package) drives
// `cryo swrk` as runc and podman drive criu, and talks to `cryo service`.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { client, final } from './pycriu.js';
import { PROGRAMS_DIR, ROOT, Session, compileProgram, imagePids, processTree, runningFree, waitFor, signalPid } from './harness.js';

const CRYO_BIN = path.join(ROOT, 'bin/cryo');

test('pycriu over cryo swrk: version; a dump with every notification acked; a restore with rst_sibling whose task is the client\'s child and passes its check', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-swrk');
  const v = client([`bin:${CRYO_BIN}`, 'version']);
  assert.deepEqual(v.lines[0], { success: true, major: 4, minor: 2, name: v.lines[0]?.['name'] }, v.text);
  assert.match(String(v.lines[0]?.['name']), /^cryo /, v.text);

  const target = await s.start('pipes');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const d = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), images, '--notify']);
  assert.equal(final(d.lines)['success'], true, d.text + s.report());
  assert.deepEqual(d.lines.filter((l) => l['notify']).map((l) => l['notify']), ['pre-dump', 'query-ext-files', 'post-dump'], d.text);
  await s.check(s.gone(target, tree, images));
  assert.ok(fs.existsSync(path.join(images, 'dump.log')), 'no dump.log in the images dir (log_file)');

  const r = client([`bin:${CRYO_BIN}`, 'restore', images, '--notify', '--sibling']);
  const notes = r.lines.filter((l) => l['notify']);
  assert.deepEqual(notes.map((l) => l['notify']), ['pre-restore', 'post-restore', 'pre-resume', 'post-resume'], r.text);
  const res = final(r.lines);
  assert.equal(res['success'], true, r.text + s.report());
  assert.equal(notes.find((l) => l['notify'] === 'post-restore')?.['pid'], res['pid'], `post-restore carries the root's pid\n${r.text}`);
  const parent = r.lines.find((l) => 'ppid' in l);
  assert.equal(parent?.['ppid'], parent?.['me'], `the restored task is not the client's child\n${r.text}`);
  assert.deepEqual(r.lines.find((l) => 'exited' in l), { exited: 0, signaled: null }, r.text + s.report());
  assert.match(target.output(), /^PASS$/m, s.report());
});

test('pycriu: a restore on a connection kept open (keep_open), then WAIT_PID for the restored task, a child of cryo', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-waitpid');
  const target = await s.start('pipes');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const d = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), images]);
  assert.equal(final(d.lines)['success'], true, d.text + s.report());
  await s.check(s.gone(target, tree, images));
  const r = client([`bin:${CRYO_BIN}`, 'restore', images, '--wait']);
  assert.equal(final(r.lines)['success'], true, r.text + s.report());
  assert.deepEqual(r.lines.find((l) => 'waited' in l), { waited: 0 }, r.text + s.report());
  assert.match(target.output(), /^PASS$/m, s.report());
});

test('orphan_pts_master: a job whose console came from outside gets a new pty of the same number as its controlling terminal; the master comes to the client with the notification', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-orphan-pts');
  const launcher = await s.startCommand('launcher', ['/usr/bin/python3', path.join(PROGRAMS_DIR, 'ptylaunch.py'), compileProgram('orphanpty')], { ready: /READY/ });
  const [, pid, pts] = /^CHILD (\d+) (\S+)$/m.exec(launcher.output())!;
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', pid!, '-D', images, '-j', '-v4', '-o', 'dump.log']));
  // The launcher closes the master once its child is gone: the pty's number is free again.
  await s.check(waitFor('the launcher to let the pty go', () => /^LAUNCHER DONE$/m.test(launcher.output()), 10_000));
  const r = client([`bin:${CRYO_BIN}`, 'restore', images, '--sibling', '--notify', '--shell-job', '--orphan-pts']);
  assert.equal(final(r.lines)['success'], true, r.text + s.report());
  assert.ok(r.lines.some((l) => l['notify'] === 'orphan-pts-master'), `no orphan-pts-master notification\n${r.text}`);
  assert.match(String(r.lines.find((l) => 'tty' in l)?.['tty']), /PASS/, `the job did not pass on ${pts}\n${r.text}`);
  assert.deepEqual(r.lines.find((l) => 'exited' in l), { exited: 0, signaled: null }, r.text);
});

test('config_file overrides the request (as runc.conf does): leave-running from the file keeps the task alive', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'rpc-config');
  const target = await s.start('pipes');
  const conf = path.join(s.dir, 'runc.conf');
  fs.writeFileSync(conf, '# as /etc/criu/runc.conf\nleave-running\n');
  const d = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), s.mkdir(), '--config', conf]);
  assert.equal(final(d.lines)['success'], true, d.text + s.report());
  assert.ok(runningFree(target.pid), `the task did not run on: the config file was not applied${s.report()}`);
  const bad = path.join(s.dir, 'bad.conf');
  fs.writeFileSync(bad, 'no-such-option\n');
  const r = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), s.mkdir(), '--config', bad]);
  assert.equal(final(r.lines)['success'], false, r.text);
  // Refused without repeating the file's text (the client may not be allowed to read it).
  assert.match(String(final(r.lines)['errmsg']), /config_file .*bad\.conf is not a configuration file cryo can apply/, r.text);
  assert.doesNotMatch(String(final(r.lines)['errmsg']), /no-such-option/, r.text);
  await s.expectPass(target);
});

test('exec_cmd over RPC: after answering, cryo swrk becomes the command, the parent of the restored task; its output goes to the log', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-exec');
  const target = await s.start('pipes');
  const tree = processTree(target.pid);
  const images = s.mkdir();
  const d = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), images]);
  assert.equal(final(d.lines)['success'], true, d.text + s.report());
  await s.check(s.gone(target, tree, images));
  const r = client([`bin:${CRYO_BIN}`, 'restore', images, '--notify', '--exec']);
  const res = final(r.lines);
  assert.equal(res['success'], true, r.text + s.report());
  const who = r.lines.find((l) => 'swrk' in l)!;
  assert.equal(who['ppid'], who['swrk'], `the restored task's parent is not the exec'd command\n${r.text}`);
  assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), new RegExp(`^exec as ${String(who['swrk'])}$`, 'm'), 'the command\'s output is not in the log');
  await s.check(waitFor('PASS', () => /^PASS$/m.test(target.output()), 10_000));
  s.adopt(Number(res['pid']), target);
});

test('a client that says no at post-dump calls the dump off: the task runs on untouched; cr_errno is 0 there, ESRCH for no such pid, EBADRQC for bad options', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'rpc-nack');
  const target = await s.start('pipes');
  const d = client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), s.mkdir(), '--notify', '--nack', 'post-dump']);
  const res = final(d.lines);
  assert.equal(res['success'], false, d.text);
  assert.match(String(res['errmsg']), /refused post-dump/, d.text);
  // As CRIU: cr_errno only where it tells something (pycriu reads 56 as "Bad options").
  assert.equal(res['errno'], 0, d.text);
  assert.ok(runningFree(target.pid), d.text + s.report());
  const gone = final(client([`bin:${CRYO_BIN}`, 'dump', '4194303', s.mkdir()]).lines);
  assert.deepEqual([gone['success'], gone['errno']], [false, 3], 'a pid that does not exist is ESRCH');
  const conf = path.join(s.dir, 'bad.conf');
  fs.writeFileSync(conf, 'no-such-option\n');
  const bad = final(client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), s.mkdir(), '--config', conf]).lines);
  assert.deepEqual([bad['success'], bad['errno']], [false, 56], `bad options are EBADRQC: ${String(bad['errmsg'])}`);
  await s.expectPass(target);
});

test('cryo service: two clients in a row get their own results; no script a client names is run; a client may not dump another user\'s process', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'rpc-service');
  const sockPath = path.join(s.dir, 'cryo.sock');
  const service = spawn(CRYO_BIN, ['service', '--address', sockPath, '-v4', '-o', path.join(s.dir, 'service.log')], { stdio: 'ignore' });
  t.after(() => service.kill('SIGKILL'));
  await s.check(waitFor('the service socket', () => fs.existsSync(sockPath), 10_000));
  // --daemon: the command returns once the service runs on in a process of its own.
  const daemonSock = path.join(s.dir, 'daemon.sock');
  const pidfile = path.join(s.dir, 'service.pid');
  const started = await s.cryo(['service', '--address', daemonSock, '-d', '--pidfile', pidfile]);
  assert.equal(started.code, 0, s.report());
  const daemonPid = Number(fs.readFileSync(pidfile, 'utf8'));
  t.after(() => signalPid(daemonPid, 'SIGKILL'));
  const dv = client([`sk:${daemonSock}`, 'version']);
  assert.equal(dv.lines[0]?.['success'], true, dv.text);
  const a = await s.start('pipes');
  const b = await s.start('files');
  const treeA = processTree(a.pid);
  const treeB = processTree(b.pid);
  const sorted = (l: number[]) => [...l].sort((x, y) => x - y);
  const imgA = s.mkdir();
  const imgB = s.mkdir();
  const first = client([`sk:${sockPath}`, 'dump', String(a.pid), imgA, '--leave-running']);
  assert.equal(final(first.lines)['success'], true, first.text + s.report());
  const second = client([`sk:${sockPath}`, 'dump', String(b.pid), imgB]);
  assert.equal(final(second.lines)['success'], true, second.text + s.report());
  assert.deepEqual(sorted(imagePids(imgA)), sorted(treeA), 'the first dump holds the first tree only');
  assert.deepEqual(sorted(imagePids(imgB)), sorted(treeB), 'the second dump holds the second tree only');
  assert.ok(runningFree(a.pid), 'the first (--leave-running) target does not run on');
  await s.check(s.gone(b, treeB, imgB));

  // A configuration file named by the client could carry --action-script: refused, nothing run.
  const marker = path.join(s.dir, 'script-ran');
  const script = path.join(s.dir, 'script.sh');
  fs.writeFileSync(script, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
  const conf = path.join(s.dir, 'client.conf');
  fs.writeFileSync(conf, `action-script ${script}\n`);
  const named = client([`sk:${sockPath}`, 'dump', String(a.pid), s.mkdir(), '--leave-running', '--config', conf]);
  assert.equal(final(named.lines)['success'], false, named.text);
  assert.match(String(final(named.lines)['errmsg']), /names an action script/, named.text);
  assert.ok(!fs.existsSync(marker), 'a script named by the client ran');

  // An unprivileged client: may connect, may not dump root's process.
  fs.chmodSync(s.dir, 0o711);
  fs.chmodSync(sockPath, 0o666);
  const mine = s.mkdir();
  fs.chmodSync(mine, 0o777);
  const nobody = client([`sk:${sockPath}`, 'dump', String(a.pid), mine, '--leave-running'], { uid: 65534 });
  const res = final(nobody.lines);
  assert.equal(res['success'], false, nobody.text);
  assert.match(String(res['errmsg']), /permission denied/, nobody.text);
  assert.ok(runningFree(a.pid), s.report());
  await s.expectPass(a);
});

test('restore --exec-cmd: the command cryo becomes is the parent of the restored tree', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'exec-cmd');
  const target = await s.start('pipes');
  const images = s.mkdir();
  await s.dump(target, images);
  const shPid = path.join(s.dir, 'sh.pid');
  const done = path.join(s.dir, 'done');
  const pidfile = path.join(s.dir, 'restored.pid');
  const run = s.cryo(['restore', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--exec-cmd', '--',
    '/bin/sh', '-c', `echo $$ > ${shPid}; while [ ! -e ${done} ]; do sleep 0.05; done`]);
  // The shell's `>` makes sh.pid before echo fills it: wait for its pid, not for the file.
  await s.check(waitFor('the command to start', () => fs.existsSync(shPid) && /\d/.test(fs.readFileSync(shPid, 'utf8')) && fs.existsSync(pidfile), 20_000));
  const restoredPid = Number(fs.readFileSync(pidfile, 'utf8'));
  const sh = Number(fs.readFileSync(shPid, 'utf8'));
  const ppid = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${restoredPid}/status`, 'utf8'))![1]);
  assert.equal(ppid, sh, `the restored task's parent is ${ppid}, not the exec'd shell ${sh}${s.report()}`);
  signalPid(restoredPid, 'SIGUSR1');
  await s.check(waitFor('PASS', () => /^PASS$/m.test(target.output()), 10_000));
  fs.writeFileSync(done, '');
  const r = await run;
  assert.equal(r.code, 0, s.report());
  s.adopt(restoredPid, target);
});

test('--action-script on cryo\'s own command line runs at each action point, with CRTOOLS_SCRIPT_ACTION and CRTOOLS_INIT_PID', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'action-script');
  const log = path.join(s.dir, 'actions.log');
  const script = path.join(s.dir, 'script.sh');
  fs.writeFileSync(script, `#!/bin/sh\necho "$CRTOOLS_SCRIPT_ACTION \${CRTOOLS_INIT_PID:-none} $CRTOOLS_IMAGE_DIR" >> ${log}\n`, { mode: 0o755 });
  const target = await s.start('pipes');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--action-script', script] });
  const restored = await s.restore(images, target, { extra: ['--action-script', script] });
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
  assert.deepEqual(lines.map((l) => l[0]), ['pre-dump', 'post-dump', 'pre-restore', 'post-restore', 'pre-resume', 'post-resume']);
  assert.ok(lines.every((l) => l[2] === images), `CRTOOLS_IMAGE_DIR is not the images dir: ${JSON.stringify(lines)}`);
  assert.equal(lines[3]![1], String(restored.pid), 'post-restore has no CRTOOLS_INIT_PID');
  await s.expectPass(restored);
});

test('a failing pre-dump script stops the dump before anything is touched', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'action-script-fail');
  const script = path.join(s.dir, 'no.sh');
  fs.writeFileSync(script, '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" != pre-dump ]\n', { mode: 0o755 });
  const target = await s.start('pipes');
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--action-script', script]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, /action script .* failed at pre-dump/, s.report());
  assert.ok(runningFree(target.pid), s.report());
  await s.expectPass(target);
});

// A stream server outside the tree, and a client in it whose connection goes there.
const EXT_SERVER = `import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen()
print("READY", flush=True)
held = []
while True:
    held.append(s.accept()[0])
`;
const EXT_CLIENT = `import socket, sys, signal, time, os
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
print("INO " + os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
signal.signal(signal.SIGUSR1, lambda *a: (print("PASS", flush=True), sys.exit(0)))
print("READY", flush=True)
while True:
    time.sleep(1)
`;

test('query-ext-files: the answer goes through --external as the request does: unix[INO] is carried out, file[..] fails the dump in one line and the task runs on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'rpc-ext-files');
  const sockPath = path.join(s.dir, 'ext.sock');
  const server = await s.startCommand('server', ['/usr/bin/python3', '-c', EXT_SERVER, sockPath]);
  const target = await s.startCommand('client', ['/usr/bin/python3', '-c', EXT_CLIENT, sockPath]);
  const ino = /INO socket:\[(\d+)\]/.exec(target.output())![1];
  const dump = (...extra: string[]) => client([`bin:${CRYO_BIN}`, 'dump', String(target.pid), s.mkdir(), '--leave-running', '--notify', ...extra]);
  // No answer: the connection outside the tree fails the dump.
  const plain = dump();
  assert.equal(final(plain.lines)['success'], false, plain.text);
  assert.match(String(final(plain.lines)['errmsg']), /outside the dumped tree/, plain.text);
  // A kind cryo does not carry out is refused, not ignored.
  const refused = dump('--ext-files', `unix[${ino}],file[7:1234]`);
  assert.equal(final(refused.lines)['success'], false, refused.text);
  assert.equal(final(refused.lines)['errmsg'], 'RPC query-ext-files answer: external file[7:1234] is not supported yet', refused.text);
  assert.ok(runningFree(target.pid), refused.text + s.report());
  // unix[INO] in the answer stands for the connection, as --external unix[INO].
  const ok = dump('--ext-files', `unix[${ino}]`);
  assert.equal(final(ok.lines)['success'], true, ok.text + s.report());
  assert.ok(runningFree(target.pid), ok.text + s.report());
  await s.expectPass(target);
  await s.killTree(server);
});
