// Unix sockets: a bound one's file through SIOCUNIXFILE (check feature sk_unix_file), and
// their options, SO_BUF_LOCK among them (sockopt_buf_lock).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { PROGRAMS_DIR, Session, critDecodeAll, processTree, python3, runningFree, waitFor } from './harness.js';

test('unix sockets: pairs of every type with queued data, a listener with accepted and pending connections, an abstract datagram server, an fd in flight, a closed peer, options, a child on the other end', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unix');
  await s.cycle('unix');
});

test('unix sockets: named datagram sockets connected to each other, a relative name, an unlinked listener, both ends of a connection named, a seqpacket listener with a waiting connection, a socket in flight', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unix2');
  await s.cycle('unix2');
});

test('unix socket images decode with CRIU\'s crit', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unix-crit');
  const target = await s.start('unix');
  const images = s.mkdir();
  await s.dump(target, images, { leaveRunning: true });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  await s.expectPass(target);
});

test('python3 asyncio: a unix-socket server and client keep exchanging messages after restore', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'asyncunix');
  const rounds = (out: string) => [...out.matchAll(/^round (\d+)$/gm)].map((m) => Number(m[1]));
  const last = (out: string) => Math.max(0, ...rounds(out));
  const target = await s.startCommand('asyncunix', [python3(), path.join(PROGRAMS_DIR, 'asyncunix.py'), s.dir]);
  const images = s.mkdir();
  await s.dump(target, images);
  const atDump = last(target.output());
  const restored = await s.restore(images, target);
  await s.check(waitFor(`round ${atDump + 5}`, () => last(restored.output()) >= atDump + 5, 10_000));
  await s.expectPass(restored);
  const all = rounds(target.output());
  assert.deepEqual(all, all.map((_, i) => i + 1), `rounds are not 1, 2, 3, ... without gaps${s.report()}`);
});

// An outside datagram server (a process of its own) that prints what it gets.
const SERVER = `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("READY", flush=True)
while True:
    print("got " + s.recv(100).decode(), flush=True)
`;
// A client in the tree: a datagram socket connected to the server, sending on SIGUSR1.
const CLIENT = `import socket, sys, signal, time
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
c.connect(sys.argv[1])
c.send(b"before")
signal.signal(signal.SIGUSR1, lambda *a: (c.send(b"after"), print("PASS", flush=True), sys.exit(0)))
print("READY", flush=True)
while True:
    time.sleep(1)
`;

test('a datagram socket connected outside the tree: refused without --ext-unix-sk, reconnected by name with it', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'ext-unix');
  const sockPath = path.join(s.dir, 'log.sock');
  const server = await s.startCommand('server', [python3(), '-c', SERVER, sockPath]);
  const client = await s.startCommand('client', [python3(), '-c', CLIENT, sockPath]);
  await s.check(waitFor('the server to get "before"', () => /^got before$/m.test(server.output()), 5_000));
  const refused = await s.cryo(['dump', '-t', String(client.pid), '-D', s.mkdir()]);
  assert.notEqual(refused.code, 0, s.report());
  assert.match(refused.stderr, /outside the dumped tree; dump with --ext-unix-sk/, s.report());
  assert.equal(refused.stderr.trim().split('\n').length, 1, `not a one-line error${s.report()}`);
  assert.ok(runningFree(client.pid), s.report());
  const images = s.mkdir();
  await s.dump(client, images, { extra: ['--ext-unix-sk'] });
  assert.deepEqual(critDecodeAll(images), [], s.report());
  const restored = await s.restore(images, client, { extra: ['--ext-unix-sk'] });
  await s.expectPass(restored);
  await s.check(waitFor('the server to get "after" from the restored client', () => /^got after$/m.test(server.output()), 5_000));
  await s.killTree(server);
});

test('a stream connection to a process outside the tree is refused even with --ext-unix-sk', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'ext-unix-stream');
  const script = 'import socket, time\na, b = socket.socketpair()\nprint("READY", flush=True)\ntime.sleep(1000)\n';
  // The pair is split between the python process and a child it forks.
  const fork = script.replace('print(', 'import os\nif os.fork() == 0:\n    a.close(); time.sleep(1000)\nb.close()\nprint(');
  const target = await s.startCommand('pair', [python3(), '-c', fork]);
  const child = processTree(target.pid).find((p) => p !== target.pid)!;
  const r = await s.cryo(['dump', '-t', String(child), '-D', s.mkdir(), '--ext-unix-sk']);
  assert.notEqual(r.code, 0, s.report());
  assert.match(r.stderr, /half of a stream connection outside the tree/, s.report());
  assert.ok(runningFree(child), s.report());
  await s.killTree(target);
});

// An outside stream server that prints each line it gets, from any connection.
const STREAM_SERVER = `import socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen()
print("READY", flush=True)
def serve(c):
    for line in c.makefile():
        print("got " + line.strip(), flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
`;
// A client in the tree whose stream connection goes outside; it writes a line on SIGUSR1.
const STREAM_CLIENT = `import socket, sys, signal, time, os
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
c.sendall(b"before\\n")
print("INO " + os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
signal.signal(signal.SIGUSR1, lambda *a: (c.sendall(b"after\\n"), print("PASS", flush=True), sys.exit(0)))
print("READY", flush=True)
while True:
    time.sleep(1)
`;

test('--external unix[INO] dumps half of a stream connection; restore takes the socket from --inherit-fd fd[N]:socket:[INO]', { timeout: 40_000 }, async (t) => {
  const s = Session.for(t, 'ext-unix-inherit');
  const sockPath = path.join(s.dir, 'stream.sock');
  const server = await s.startCommand('server', [python3(), '-c', STREAM_SERVER, sockPath]);
  const client = await s.startCommand('client', [python3(), '-c', STREAM_CLIENT, sockPath]);
  const ino = /INO socket:\[(\d+)\]/.exec(client.output())![1];
  const images = s.mkdir();
  await s.dump(client, images, { extra: [`--external`, `unix[${ino}]`] });
  const refused = await s.cryo(['restore', '-D', images, '-d']);
  assert.notEqual(refused.code, 0, s.report());
  assert.match(refused.stderr, new RegExp(`--inherit-fd fd\\[N\\]:socket:\\[${ino}\\]`), s.report());
  // A new connection to the same server, made here, stands for the old one.
  const conn = net.createConnection(sockPath);
  await new Promise((r) => conn.once('connect', r));
  const fd = (conn as unknown as { _handle: { fd: number } })._handle.fd;
  const restored = await s.restore(images, client, { extra: ['--inherit-fd', `fd[3]:socket:[${ino}]`], fds: [fd] });
  await s.expectPass(restored);
  await s.check(waitFor('the server to get "after" on the inherited connection', () => /^got after$/m.test(server.output()), 5_000));
  conn.destroy();
  await s.killTree(server);
});

test('messages queued on a socket with SO_PASSCRED carry the sender\'s credentials: the dump fails in one line (as CRIU\'s), the task runs on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'unix-passcred');
  const script = 'import socket, time\na, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\nb.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)\na.send(b"x")\nprint("READY", flush=True)\ntime.sleep(1000)\n';
  const target = await s.startCommand('passcred', [python3(), '-c', script]);
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir()]);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${target.pid} fd \\d+ \\(unix socket \\d+\\): its queued messages carry the sender's credentials \\(the socket has SO_PASSCRED\\), which cannot be put back\\n$`), s.report());
  assert.ok(runningFree(target.pid), s.report());
  await s.killTree(target);
});
