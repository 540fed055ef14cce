// The network lock (--network-lock iptables|nftables|skip; by default nftables,
// which works here): TCP connections
// whose peer is outside the dumped tree are locked before they go into repair
// mode, stay locked while the tree is down, and the restore unlocks them once
// the tree is back; -R and a failed dump unlock them at once, a failed restore
// keeps them locked for the next one. No rule is left behind by any test.
// Also --tcp-close and --skip-in-flight, and check --feature network_lock_nftables.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, python3, reapUntilGone, runningFree, waitFor, ROOT, type Target, signalPid } from './harness.js';
import { dropLocks, inventory, iptRules, nftTables } from './netlock-rules.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A PATH of its own: what bin/cryo needs (node, readlink) and `tools`. */
function pathWith(dir: string, tools: string[]): string {
  for (const tool of ['readlink', ...tools]) {
    const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8', timeout: 30_000 }).stdout.trim();
    fs.symlinkSync(where, path.join(dir, tool));
  }
  fs.symlinkSync(process.execPath, path.join(dir, 'node'));
  return dir;
}

/** Starts tcpext; its peer (no task of the test's tree) is killed when the test ends, whatever happened. */
async function startTcpext(s: Session, t: { after(fn: () => void): void }): Promise<Target> {
  const target = await s.start('tcpext');
  const pid = Number(fs.readFileSync(path.join(s.dir, 'tcpext-peer.result.pid'), 'utf8'));
  t.after(() => {
    try {
      signalPid(pid, 'SIGKILL');
    } catch {
      /* it ended */
    }
  });
  return target;
}

/** A directory for images whose lock, should the test fail before it is restored, is taken out after it. */
function imagesDir(s: Session, t: { after(fn: () => void): void }): string {
  const d = s.mkdir();
  t.after(() => dropLocks(d));
  return d;
}

function ports(t: Target): number[] {
  const m = /^PORTS (\d+) (\d+) (\d+)$/m.exec(t.output());
  assert.ok(m, t.output());
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The tcpext peer's process (outside the tree), by its result file's directory: it must still be alive. */
function peerAlive(s: Session): boolean {
  return !fs.existsSync(path.join(s.dir, 'tcpext-peer.result'));
}

test('tcpext: connections to a peer outside the tree (IPv4, IPv6, IPv4-mapped) locked with iptables across dump and restore, every byte both ways; a failed restore keeps the lock, the next one removes it', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-ipt');
  const target = await startTcpext(s, t);
  const p = ports(target);
  assert.deepEqual(iptRules(p), []);
  const images = imagesDir(s, t);
  await s.dump(target, images, { extra: ['--tcp-established', '--network-lock', 'iptables'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const inv = inventory(images);
  assert.equal(inv['network_lock_method'], 0, JSON.stringify(inv)); // CRIU's NETWORK_LOCK_IPTABLES
  assert.match(String(inv['dump_criu_run_id']), /^[0-9a-f-]{36}$/);
  // Each connection: a rule for each direction; the v4 and the mapped one in iptables, the v6 one in ip6tables.
  const locked = iptRules(p);
  assert.equal(locked.length, 6, locked.join('\n'));
  assert.equal(locked.filter((l) => l.startsWith('ip6tables')).length, 2, locked.join('\n'));
  // All three in one batch (a command per connection keeps a large tree frozen for seconds).
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), / locked 3 connection\(s\) in one batch \(iptables\)$/m, s.report());
  // The peer keeps sending while the tree is down: its packets are dropped, not reset.
  await sleep(1500);
  assert.ok(peerAlive(s), 'the peer gave up while the tree was down');

  // A restore that fails at post-restore: the tree is gone again, the lock stays.
  const script = path.join(s.dir, 'fail-post-restore.sh');
  fs.writeFileSync(script, '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] && exit 1\nexit 0\n', { mode: 0o755 });
  const failed = await s.cryo(['restore', '-D', images, '-d', '--tcp-established', '--action-script', script, '-o', 'restore-failed.log']);
  assert.equal(failed.code, 1, s.report());
  assert.match(fs.readFileSync(path.join(images, 'restore-failed.log'), 'utf8'), /^Warn: the 3 TCP connection\(s\) of the images stay locked \(iptables\) for another restore$/m, s.report());
  assert.deepEqual(iptRules(p), locked);
  await reapUntilGone(target.pid, 10_000);

  const restored = await s.restore(images, target, { extra: ['--tcp-established'] });
  assert.deepEqual(iptRules(p), [], 'rules left after the restore');
  const restoreLog = fs.readFileSync(path.join(images, 'restore.log'), 'utf8');
  assert.match(restoreLog, / unlocked 2 IPv4 connection\(s\) in one batch$/m, s.report());
  assert.match(restoreLog, / unlocked 1 IPv6 connection\(s\) in one batch$/m, s.report());
  await s.expectPass(restored);
  assert.match(restored.output(), /^bytes: (\d+\/\d+ ?){3}$/m);
});

test('tcpext with --network-lock nftables: one table of the dump\'s run id while down, gone after the restore; -R with iptables unlocks at once; the check fails where it must', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-nft');
  const check = spawnSync(path.join(ROOT, 'bin/cryo'), ['check', '--no-default-config', '--feature', 'network_lock_nftables'], { encoding: 'utf8', timeout: 30_000 });
  assert.deepEqual([check.status, check.stdout], [0, 'network_lock_nftables is supported\n'], check.stderr);
  const target = await startTcpext(s, t);
  const p = ports(target);
  const images = imagesDir(s, t);
  await s.dump(target, images, { extra: ['--tcp-established', '--network-lock', 'nftables'] });
  const inv = inventory(images);
  assert.equal(inv['network_lock_method'], 1, JSON.stringify(inv));
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), / locked 3 connection\(s\) in one batch \(nftables\)$/m);
  const runId = String(inv['dump_criu_run_id']);
  assert.equal(nftTables(runId).length, 1, 'no nftables table of the dump');
  const listed = spawnSync('nft', ['list', 'table', 'inet', `CRIU-${runId}`], { encoding: 'utf8', timeout: 30_000 }).stdout;
  for (const port of p) assert.match(listed, new RegExp(`\\. ${port} `), listed);
  assert.deepEqual(iptRules(p), [], 'nftables locking wrote iptables rules');
  await sleep(1500);
  assert.ok(peerAlive(s));
  const restored = await s.restore(images, target, { extra: ['--tcp-established'] });
  assert.deepEqual(nftTables(runId), [], 'the table is left after the restore');
  await s.expectPass(restored);

  // -R: the rules go with the dump, the connections go on.
  const again = await startTcpext(s, t);
  const p2 = ports(again);
  const rImages = imagesDir(s, t);
  await s.dump(again, rImages, { leaveRunning: true, extra: ['--tcp-established', '--network-lock', 'iptables'] });
  assert.match(fs.readFileSync(path.join(rImages, 'dump.log'), 'utf8'), / locked 3 connection\(s\) in one batch \(iptables\)$/m);
  assert.deepEqual(iptRules(p2), [], 'rules left after dump -R');
  // A check that can fail: a byte not read.
  const { status, output } = await s.finish(again, 'SIGUSR2');
  assert.equal(status?.exited, 1, output);
  assert.match(output, /^FAIL: connection 0: byte \d+ from the peer is wrong; connection 0: the peer sent \d+ bytes, \d+ came/m);

  // Without nft, the check says no.
  const bare = pathWith(s.mkdir('bare-path'), []);
  const noNft = spawnSync(path.join(ROOT, 'bin/cryo'), ['check', '--no-default-config', '--feature', 'network_lock_nftables'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: bare } });
  assert.equal(noNft.status, 1, noNft.stdout + noNft.stderr);
  assert.match(noNft.stderr, /network_lock_nftables/);
});

test('a lock that cannot be made fails the dump in one line naming task and socket; what was locked is unlocked, the tree talks on', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-refused');
  const target = await startTcpext(s, t);
  const p = ports(target);
  // iptables here, ip6tables not: the IPv4 connection is locked, the IPv6 one cannot be.
  const bin = pathWith(s.mkdir('half-path'), ['iptables']);
  const failedImages = imagesDir(s, t);
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', failedImages, '--tcp-established', '-o', 'dump.log'], { env: { PATH: bin } });
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr.trimEnd(), new RegExp(`^Error: task ${target.pid} fd \\d+ \\(IPv6 TCP socket \\d+\\): cannot lock the connection \\(\\[::1\\]:${p[1]} -> \\[::1\\]:\\d+\\) with iptables: ip6tables not installed$`), s.report());
  assert.match(fs.readFileSync(path.join(failedImages, 'dump.log'), 'utf8'), /cannot lock the connection/);
  assert.deepEqual(iptRules(p), [], 'the IPv4 connection stays locked after the failed dump');
  await s.check(waitFor('the tree to run free', () => runningFree(target.pid), 5_000));
  await s.expectPass(target);
});

/**
 * The server dumped with --tcp-established (its client's connection locked by
 * the default lock, nftables here, or by iptables) and restored (unlocked); the
 * client, which prints "at N" as it goes, must get `more` replies past where it
 * was, then stops (the `stop` file) and ends with DONE; the server runs free.
 */
async function clientAcrossRestore(s: Session, t: { after(fn: () => void): void }, server: Target, client: Target, port: number, stop: string, more: number, lock: 'default' | 'iptables'): Promise<void> {
  const images = imagesDir(s, t);
  await s.dump(server, images, { extra: ['--tcp-established', ...(lock === 'iptables' ? ['--network-lock', 'iptables'] : [])] });
  const inv = inventory(images);
  const runId = String(inv['dump_criu_run_id']);
  if (lock === 'iptables') {
    assert.equal(iptRules([port]).length, 2, 'the connection is not locked');
  } else {
    // The default: nftables, which works here (check --feature network_lock_nftables).
    assert.equal(inv['network_lock_method'], 1, JSON.stringify(inv)); // CRIU's NETWORK_LOCK_NFTABLES
    assert.equal(nftTables(runId).length, 1, 'the connection is not locked in a table of the dump\'s');
    assert.deepEqual(iptRules([port]), [], 'the default lock wrote iptables rules');
  }
  await sleep(1000);
  assert.ok(client.status === undefined && !/Traceback/.test(client.output()), client.output());
  const restored = await s.restore(images, server, { extra: ['--tcp-established'] });
  assert.deepEqual(iptRules([port]), [], 'rules left after the restore');
  assert.deepEqual(nftTables(runId), [], 'the table is left after the restore');
  const at = () => Number(/at (\d+)\n(?![\s\S]*at \d+)/.exec(client.output())?.[1] ?? 0);
  const before = at();
  await s.check(waitFor('the client to go on after the restore', () => at() > before + more, 20_000));
  fs.writeFileSync(stop, '');
  const st = await s.check(client.wait(20_000));
  assert.equal(st?.exited, 0, client.output());
  assert.match(client.output(), /^DONE \d+$/m);
  assert.ok(runningFree(restored.pid));
  await s.killTree(restored);
}

test('python3: a TCP echo server in the tree, its client outside it keeps its connection across dump and restore (the default lock, nftables), every reply right; new clients connect after restore', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-python');
  const server = await s.startCommand('echo-server', [python3(), '-u', '-c', [
    'import socketserver',
    'class H(socketserver.StreamRequestHandler):',
    '    def handle(self):',
    '        for line in self.rfile:',
    '            self.wfile.write(b"echo " + line)',
    'class S(socketserver.ThreadingTCPServer):',
    '    allow_reuse_address = True',
    '    daemon_threads = True',
    's = S(("127.0.0.1", 0), H)',
    'print("PORT", s.server_address[1], flush=True)',
    'print("READY", flush=True)',
    's.serve_forever()',
  ].join('\n')]);
  const port = Number(/^PORT (\d+)$/m.exec(server.output())![1]);
  const stop = path.join(s.dir, 'stop');
  const client = await s.startCommand('client', [python3(), '-u', '-c', [
    'import socket, os, time',
    `c = socket.create_connection(("127.0.0.1", ${port}))`,
    'f = c.makefile("rb")',
    'n = 0',
    'def one():',
    '    global n',
    '    n += 1',
    '    c.sendall(b"%d %s\\n" % (n, b"x" * (n % 3000)))',
    '    got = f.readline()',
    '    want = b"echo %d %s\\n" % (n, b"x" * (n % 3000))',
    '    assert got == want, (n, got[:40])',
    'for _ in range(50): one()',
    'print("READY", flush=True)',
    `while not os.path.exists(${JSON.stringify(stop)}):`,
    '    one()',
    '    if n % 100 == 0: print("at", n, flush=True)',
    '    time.sleep(0.01)',
    'for _ in range(50): one()',
    `d = socket.create_connection(("127.0.0.1", ${port}))`,
    'd.sendall(b"new\\n")',
    'assert d.makefile("rb").readline() == b"echo new\\n"',
    'print("DONE", n, flush=True)',
  ].join('\n')]);
  await clientAcrossRestore(s, t, server, client, port, stop, 100, 'default');
});

test('redis-server (Debian\'s): a client outside the tree keeps its connection across dump and restore with --tcp-established, every INCR reply in sequence; the data set before the dump is there; new clients connect after restore', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-redis');
  const port = 16000 + (process.pid % 4000);
  const server = await s.startCommand('redis', ['/usr/bin/redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', s.dir, '--protected-mode', 'no', '--loglevel', 'notice'], { ready: /Ready to accept connections/ });
  const stop = path.join(s.dir, 'stop');
  // RESP by hand: one connection, INCR after INCR, each reply the next number.
  const client = await s.startCommand('client', [python3(), '-u', '-c', [
    'import socket, os, time',
    `c = socket.create_connection(("127.0.0.1", ${port}))`,
    'f = c.makefile("rb")',
    'def cmd(*a):',
    '    c.sendall(b"*%d\\r\\n" % len(a) + b"".join(b"$%d\\r\\n%s\\r\\n" % (len(x), x) for x in a))',
    '    line = f.readline()',
    '    if line.startswith(b"$"):',
    '        n = int(line[1:])',
    '        return f.read(n + 2)[:-2]',
    '    return line.strip()',
    'big = os.urandom(200000).hex().encode()',
    'assert cmd(b"SET", b"big", big) == b"+OK"',
    'n = 0',
    'def one():',
    '    global n',
    '    n += 1',
    '    got = cmd(b"INCR", b"counter")',
    '    assert got == b":%d" % n, (n, got)',
    'for _ in range(50): one()',
    'print("READY", flush=True)',
    `while not os.path.exists(${JSON.stringify(stop)}):`,
    '    one()',
    '    if n % 100 == 0: print("at", n, flush=True)',
    '    time.sleep(0.005)',
    'assert cmd(b"GET", b"big") == big, "the value set before the dump changed"',
    `d = socket.create_connection(("127.0.0.1", ${port}))`,
    'd.sendall(b"*2\\r\\n$3\\r\\nGET\\r\\n$7\\r\\ncounter\\r\\n")',
    'g = d.makefile("rb")',
    'assert g.readline() == b"$%d\\r\\n" % len(str(n)) and g.readline() == b"%d\\r\\n" % n',
    'print("DONE", n, flush=True)',
  ].join('\n')]);
  await clientAcrossRestore(s, t, server, client, port, stop, 200, 'iptables');
});

test('--tcp-close: connections dumped as they are and restored closed; the images need it on restore; --skip-in-flight drops connections not yet accepted', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netlock-close');
  const go = path.join(s.dir, 'go');
  const prog = [
    'import socket, os, time, errno',
    'l = socket.create_server(("127.0.0.1", 0))',
    'c = socket.create_connection(l.getsockname())',
    'a, _ = l.accept()',
    'c.shutdown(socket.SHUT_WR)  # a half-closed pair: FIN_WAIT2 and CLOSE_WAIT',
    'time.sleep(0.2)',
    'p = socket.create_connection(l.getsockname())  # waits to be accepted',
    'print("READY", flush=True)',
    `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.05)`,
    'for s in (a, c):',
    '    st = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]',
    '    assert st == 7, ("state", st)  # TCP_CLOSE',
    '    assert s.recv(10) == b""',
    '    try:',
    '        s.send(b"x"); raise SystemExit("sent on a closed socket")',
    '    except BrokenPipeError: pass',
    'n = socket.create_connection(l.getsockname())',
    'b, _ = l.accept()',
    'n.sendall(b"hi"); assert b.recv(2) == b"hi"',
    'print("PASS", flush=True)',
  ].join('\n');
  const target = await s.startCommand('close', [python3(), '-u', '-c', prog]);
  // Without --skip-in-flight the waiting connection is refused, naming it.
  const refused = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '--tcp-close', '-o', 'dump.log']);
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr, /connection\(s\) waiting to be accepted, which cryo cannot carry; --skip-in-flight drops them$/m);
  await s.check(waitFor('the refused tree to run free', () => runningFree(target.pid), 5_000));
  const images = imagesDir(s, t);
  await s.dump(target, images, { extra: ['--tcp-close', '--skip-in-flight'] });
  assert.equal(inventory(images)['tcp_close'], true);
  assert.deepEqual(fs.readdirSync(images).filter((n) => n.startsWith('tcp-stream')), []);
  const plain = await s.cryo(['restore', '-D', images, '-d', '--tcp-established', '-o', 'restore-plain.log']);
  assert.equal(plain.code, 1, s.report());
  assert.match(plain.stderr.trimEnd(), /^Error: the images were dumped with --tcp-close: restore with it too$/);
  const restored = await s.restore(images, target, { extra: ['--tcp-close'] });
  fs.writeFileSync(go, '');
  await s.check(waitFor('the restored program to check', () => /^PASS$/m.test(restored.output()) || restored.status !== undefined || !runningFree(restored.pid), 10_000));
  assert.match(restored.output(), /^PASS$/m, restored.output());
});

test('a tree in its own network namespace (unshare -n), python3 holding both ends of a connection: dump -R locks the namespace whole (no rule of its own per connection) and takes the lock out there, and the two talk on', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netlock-netns');
  // Every 0.1 s one end sends a counter, the other echoes it back.
  const py = [
    'import socket, time',
    'l = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(l.getsockname()); a, _ = l.accept()',
    'c.settimeout(5); a.settimeout(5); n = 0',
    'print("READY", flush=True)',
    'while True:',
    '    n += 1; c.sendall(b"%08d" % n); got = a.recv(8); a.sendall(got); back = c.recv(8)',
    '    print("ECHO", int(back), flush=True); time.sleep(0.1)',
  ].join('\n');
  const target = await s.startCommand('netlock-netns', ['unshare', '-n', '/bin/sh', '-c', `ip link set lo up && exec /usr/bin/python3 -u -c '${py}'`]);
  const echoes = () => [...target.output().matchAll(/^ECHO (\d+)$/gm)].length;
  await s.check(waitFor('echoes', () => echoes() >= 2, 10_000));
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true, extra: ['--tcp-established'] });
  // As CRIU: the namespace is locked whole, no connection by itself.
  const log = fs.readFileSync(path.join(images, 'dump.log'), 'utf8');
  // By the default lock, nftables here.
  assert.match(log, /locked the tree's network namespace \(nftables\)/, s.report());
  assert.doesNotMatch(log, /locked the connection/, s.report());
  for (const argv of [['iptables', '-w', '-S'], ['nft', 'list', 'ruleset']]) {
    const rules = spawnSync('nsenter', ['-t', String(target.pid), '-n', ...argv], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(rules.status, 0, rules.stderr);
    assert.doesNotMatch(rules.stdout, /0xc114|CRIU/i, `lock rules left in the tree's namespace (${argv[0]})`);
  }
  const before = echoes();
  await s.check(waitFor('echoes after the dump', () => echoes() >= before + 5, 10_000));
  assert.ok(runningFree(target.pid), s.report());
  await s.killTree(target);
});
