// `cryo service` as a root daemon, driven by an unprivileged client (uid 65534,
// pycriu under setpriv): the worker takes the client's credentials, so the
// client dumps and restores its own tasks, owns the images, and gets nothing a
// doctored image asks for beyond its own power.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { client, final } from './pycriu.js';
import { ROOT, Session, exists, processTree, readOr, runningFree, waitFor, type Target } from './harness.js';

const CRYO_BIN = path.join(ROOT, 'bin/cryo');
const NOBODY = 65534;

/** A service of root's at a socket anyone may use, and a directory of the client's. */
async function setup(t: TestContext, label: string): Promise<{ s: Session; sock: string; home: string }> {
  const s = Session.for(t, label);
  fs.chmodSync(s.dir, 0o711);
  const sock = path.join(s.dir, 'cryo.sock');
  const service = spawn(CRYO_BIN, ['service', '--address', sock, '-v4', '-o', path.join(s.dir, 'service.log')], { stdio: 'ignore' });
  t.after(() => service.kill('SIGKILL'));
  await s.check(waitFor('the service socket', () => fs.existsSync(sock), 10_000));
  fs.chmodSync(sock, 0o666);
  const home = path.join(s.dir, 'home');
  fs.mkdirSync(home);
  fs.chownSync(home, NOBODY, NOBODY);
  return { s, sock, home };
}

/** The client's own task and a dump of it, made by the client through the service. */
async function dumpOwn(s: Session, sock: string, home: string): Promise<{ target: Target; images: string }> {
  const target = await s.start('unpriv', { uid: NOBODY, cwd: home, args: [home] });
  const images = path.join(home, `img-${target.pid}`);
  fs.mkdirSync(images);
  fs.chownSync(images, NOBODY, NOBODY);
  const tree = processTree(target.pid);
  const d = client([`sk:${sock}`, 'dump', String(target.pid), images], { uid: NOBODY });
  assert.equal(final(d.lines)['success'], true, d.text + s.report());
  await s.check(s.gone(target, tree, images));
  return { target, images };
}

/** Hashes of every image (not the logs a restore writes beside them). */
function imageHashes(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of fs.readdirSync(dir).filter((f) => !f.endsWith('.log')).sort()) {
    m.set(n, createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'));
  }
  return m;
}

/**
 * Rewrite one image through cryo's crit, as JSON edited by a line of Python
 * (`img` is the decoded image; Python keeps 64-bit numbers whole), keeping it
 * the client's file.
 */
function editImage(file: string, edit: string): void {
  const dec = spawnSync(CRYO_BIN, ['crit', 'decode', '-i', file], { encoding: 'utf8' });
  assert.equal(dec.status, 0, dec.stderr);
  const py = spawnSync('/usr/bin/python3', ['-c', `import json, sys\nimg = json.load(sys.stdin)\n${edit}\njson.dump(img, sys.stdout)`], { input: dec.stdout, encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const enc = spawnSync(CRYO_BIN, ['crit', 'encode', '-o', file], { input: py.stdout, encoding: 'utf8' });
  assert.equal(enc.status, 0, enc.stderr);
  fs.chownSync(file, NOBODY, NOBODY);
}

/** A restore by the client that must be refused: one line naming `why`, nothing left, images unchanged. */
async function refused(s: Session, sock: string, images: string, pid: number, why: RegExp): Promise<void> {
  const before = imageHashes(images);
  const r = client([`sk:${sock}`, 'restore', images], { uid: NOBODY });
  const res = final(r.lines);
  assert.equal(res['success'], false, r.text + s.report());
  assert.match(String(res['errmsg']), why, r.text);
  assert.doesNotMatch(String(res['errmsg']), /\n|    at /, 'one line, no stack');
  assert.ok(!exists(pid), `pid ${pid} exists after a refused restore`);
  assert.deepEqual(imageHashes(images), before, 'the restore changed the images');
}

test('service, unprivileged client: it dumps and restores its own task; the images and logs are its own; the task comes back with its own ids and capabilities', { timeout: 90_000 }, async (t) => {
  const { s, sock, home } = await setup(t, 'svc-own');
  const { target, images } = await dumpOwn(s, sock, home);
  for (const n of fs.readdirSync(images)) {
    const st = fs.statSync(path.join(images, n));
    assert.deepEqual([st.uid, st.gid], [NOBODY, NOBODY], `${n} belongs to ${st.uid}:${st.gid}, not the client`);
  }
  const r = client([`sk:${sock}`, 'restore', images], { uid: NOBODY });
  const res = final(r.lines);
  assert.equal(res['success'], true, r.text + s.report());
  const log = fs.statSync(path.join(images, 'restore.log'));
  assert.deepEqual([log.uid, log.gid], [NOBODY, NOBODY], 'restore.log is not the client\'s');
  assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), /by userfaultfd/, 'the unprivileged restore does not say how its pages went in');
  const restored = s.adopt(Number(res['pid']), target);
  await s.check(waitFor('the restored task to run', () => runningFree(restored.pid), 5_000));
  const status = fs.readFileSync(`/proc/${restored.pid}/status`, 'utf8');
  assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(status, /^CapPrm:\s+0+$/m, 'the restored task kept a capability');
  assert.match(status, /^CapAmb:\s+0+$/m, 'the restored task kept an ambient capability');
  await s.expectPass(restored);
});

test('service, unprivileged client: images doctored to name a root-only file (read, append) or directory (cwd) restore nothing', { timeout: 90_000 }, async (t) => {
  const { s, sock, home } = await setup(t, 'svc-file');
  const secret = path.join(s.dir, 'secret');
  fs.writeFileSync(secret, 'root only\n', { mode: 0o600 });
  const { target, images } = await dumpOwn(s, sock, home);
  const st = fs.statSync(secret);
  const filesImg = path.join(images, 'files.img');
  const pristine = fs.readFileSync(filesImg);
  for (const flags of [0o100000 /* O_RDONLY|O_LARGEFILE */, 0o102001 /* O_WRONLY|O_APPEND */]) {
    editImage(path.join(images, 'files.img'), [
      `e = [f for f in img['entries'] if f.get('reg', {}).get('name', '').endswith(('/mine', '/secret'))]`,
      `assert e, 'no files.img entry for the file of fd 3'`,
      `for f in e: f['reg'].update(name=${JSON.stringify(secret)}, flags=${flags}, size=${st.size}, mode=${st.mode})`,
    ].join('\n'));
    await refused(s, sock, images, target.pid, new RegExp(`${secret}.*EACCES|EACCES.*${secret}`));
    assert.equal(fs.readFileSync(secret, 'utf8'), 'root only\n', 'the root-only file was written');
  }
  // The cwd (a directory entry of files.img) moved into a directory only root may enter.
  const vault = path.join(s.dir, 'vault');
  fs.mkdirSync(path.join(vault, 'inner'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(filesImg, pristine);
  editImage(path.join(images, 'files.img'), [
    `e = [f for f in img['entries'] if f.get('reg', {}).get('name') == ${JSON.stringify(home)}]`,
    `assert e, 'no files.img entry for the cwd'`,
    `for f in e: f['reg']['name'] = ${JSON.stringify(path.join(vault, 'inner'))}`,
  ].join('\n'));
  await refused(s, sock, images, target.pid, /vault.*EACCES|EACCES.*vault/);
});

test('service, unprivileged client: images doctored to claim root, capabilities or higher limits are refused before anything is made', { timeout: 90_000 }, async (t) => {
  const { s, sock, home } = await setup(t, 'svc-creds');
  const { target, images } = await dumpOwn(s, sock, home);
  const core = path.join(images, `core-${target.pid}.img`);
  const pristine = fs.readFileSync(core);
  const creds = "img['entries'][0]['thread_core']['creds']";
  const cases: Array<{ why: RegExp; edit: string }> = [
    { why: /permission denied: task \d+ of the images: uids 0\//, edit: `${creds}['uid'] = 0` },
    { why: /permission denied: task \d+ .*gids/, edit: `${creds}['egid'] = 0` },
    { why: /permission denied: task \d+ .*groups \[0\]/, edit: `${creds}['groups'] = [0]` },
    { why: /permitted capabilities 0,1,2/, edit: `${creds}['cap_prm'] = [0xffffffff, 0x1ff]` },
    { why: /ambient capabilities 21/, edit: `${creds}['cap_amb'] = [1 << 21, 0]` },
    { why: /rlimit 7 hard limit/, edit: "img['entries'][0]['tc']['rlimits']['rlimits'][7]['max'] = 1 << 40" },
  ];
  for (const c of cases) {
    fs.writeFileSync(core, pristine);
    editImage(core, c.edit);
    await refused(s, sock, images, target.pid, c.why);
  }
});

test('service, unprivileged client: config_file is read as the client and never echoed; a missing one is ignored', { timeout: 90_000 }, async (t) => {
  const { s, sock, home } = await setup(t, 'svc-conf');
  const target = await s.start('unpriv', { uid: NOBODY, cwd: home, args: [home] });
  const images = path.join(home, 'img');
  fs.mkdirSync(images);
  fs.chownSync(images, NOBODY, NOBODY);
  const rootOnly = path.join(s.dir, 'root.conf');
  fs.writeFileSync(rootOnly, 'hunter2-root\n', { mode: 0o600 });
  const readable = path.join(home, 'mine.conf');
  fs.writeFileSync(readable, 'hunter2-mine\n');
  const dump = (conf: string) => client([`sk:${sock}`, 'dump', String(target.pid), images, '--leave-running', '--config', conf], { uid: NOBODY });
  const denied = final(dump(rootOnly).lines);
  assert.equal(denied['success'], false);
  assert.match(String(denied['errmsg']), /cannot read config_file .*EACCES/);
  const garbage = final(dump(readable).lines);
  assert.equal(garbage['success'], false);
  assert.match(String(garbage['errmsg']), /config_file .*mine\.conf.* is not a configuration file/);
  for (const m of [denied, garbage]) assert.doesNotMatch(String(m['errmsg']), /hunter2/, 'the answer repeats the file');
  assert.doesNotMatch(readOr(path.join(images, 'dump.log'), ''), /hunter2/, 'the client\'s log repeats the file');
  const missing = dump(path.join(home, 'no-such.conf'));
  assert.equal(final(missing.lines)['success'], true, missing.text + s.report());
  await s.expectPass(target);
});

test('service, unprivileged client: a task under seccomp is refused (reading filters needs CAP_SYS_ADMIN) and runs on untouched', { timeout: 60_000 }, async (t) => {
  const { s, sock, home } = await setup(t, 'svc-seccomp');
  const target = await s.start('seccomp', { uid: NOBODY, cwd: home, args: [home] });
  const images = path.join(home, 'img');
  fs.mkdirSync(images);
  fs.chownSync(images, NOBODY, NOBODY);
  const d = client([`sk:${sock}`, 'dump', String(target.pid), images], { uid: NOBODY });
  const res = final(d.lines);
  assert.equal(res['success'], false, d.text);
  assert.match(String(res['errmsg']), /task \d+ runs under seccomp: dumping it needs CAP_SYS_ADMIN/, d.text);
  assert.ok(runningFree(target.pid), s.report());
  await s.expectPass(target);
});

test('service: a client that is root only in a user namespace of its own has no capability here: it cannot dump a task of root\'s', { timeout: 60_000 }, async (t) => {
  const { s, sock } = await setup(t, 'svc-userns');
  const target = await s.start('pipes');
  const images = s.mkdir();
  const r = spawnSync('unshare', ['--user', '--map-root-user', '/usr/bin/python3', path.join(ROOT, 'test/programs/rpcclient.py'),
    `sk:${sock}`, 'dump', String(target.pid), images, '--leave-running'], { encoding: 'utf8', timeout: 60_000 });
  const res = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"success"')) ?? '{}') as Record<string, unknown>;
  assert.equal(res['success'], false, `${r.stdout}\n${r.stderr}`);
  assert.match(String(res['errmsg']), /EPERM|permission denied/i, r.stdout);
  assert.ok(runningFree(target.pid), s.report());
  await s.expectPass(target);
});
