// --join-ns (joinns.c): the restored tree goes into network and uts namespaces
// that exist already (a holder process's, made by unshare), as CRIU's
// --join-ns KIND:PID and KIND:FILE, instead of ones of its own: its listening
// socket is made there, it sees that host name. Bad arguments are refused
// before anything is made.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, waitFor } from './harness.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

/** A holder of a network namespace (loopback up) and a uts namespace (host name cryo-joined); the session kills it. */
async function holder(s: Session): Promise<number> {
  const h = await s.startCommand('joinns-holder', ['unshare', '--net', '--uts', '--fork', '/bin/sh', '-c', 'ip link set lo up && hostname cryo-joined && echo READY && exec sleep 600']);
  let inner = 0;
  await s.check(waitFor('the holder inside unshare', () => (inner = childrenOf(h.pid)[0] ?? 0) > 0 && nsLink(inner, 'uts') !== nsLink('self', 'uts'), 10_000));
  return inner;
}

test('--join-ns net:FILE uts:PID: the tree is restored into the holder\'s namespaces, its listening socket there; the check sees a new uts namespace (SIGUSR2)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'joinns');
  const ns = await holder(s);
  const join = ['--join-ns', `net:/proc/${ns}/ns/net`, '--join-ns', `uts:${ns}`];
  fs.writeFileSync(path.join(s.dir, 'expect'), `${nsLink(ns, 'net')}\n${nsLink(ns, 'uts')}\ncryo-joined\n`);
  for (const [sig, lock] of [['SIGUSR1', 'iptables'], ['SIGUSR2', 'nftables']] as const) {
    const target = await s.start('joinns');
    const images = s.mkdir();
    // The tree was in cryo's network namespace: the lock is per connection, none here, nothing in the holder's.
    await s.dump(target, images, { extra: ['--network-lock', lock] });
    assert.equal(criuChain(ns), false, s.report());
    const r = await s.restore(images, target, { extra: join });
    assert.equal(nsLink(r.pid, 'net'), nsLink(ns, 'net'), s.report());
    assert.equal(nsLink(r.pid, 'uts'), nsLink(ns, 'uts'), s.report());
    const { status, output } = await s.finish(r, sig);
    if (sig === 'SIGUSR1') {
      assert.equal(status?.exited, 0, s.report());
      assert.match(output, /^PASS$/m, s.report());
    } else {
      assert.equal(status?.exited, 1, s.report());
      assert.match(output, /^FAIL: the root is in uts namespace uts:\[\d+\], want uts:\[\d+\]/m, s.report());
    }
  }
});

/** The holder's network namespace has CRIU's lock: the iptables chain CRIU, or an nftables table CRIU-*. */
function criuChain(pid: number): boolean {
  const ipt = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'iptables', '-w', '-S', 'CRIU'], { encoding: 'utf8' });
  const nft = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'nft', 'list', 'tables'], { encoding: 'utf8' });
  return ipt.status === 0 || /CRIU-/.test(nft.stdout);
}

for (const lock of ['iptables', 'nftables'] as const) {
  test(`a tree in a network namespace of its own (the holder's, joined at dump time), --network-lock ${lock}: the namespace is locked whole by the dump, unlocked by the restore that joins it again`, { timeout: 60_000 }, async (t) => {
    const s = Session.for(t, `joinns-lock-${lock}`);
    const ns = await holder(s);
    // python3 enters the holder's namespaces and listens there: a tree in a network namespace not cryo's.
    const py = `import ctypes, os, socket, time\nfor k, f in (('net', 0x40000000), ('uts', 0x4000000)):\n  assert ctypes.CDLL(None, use_errno=True).setns(os.open('/proc/${ns}/ns/' + k, os.O_RDONLY), f) == 0\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('port', s.getsockname()[1]); print('READY', flush=True)\nwhile True: time.sleep(0.1)`;
    const target = await s.startCommand('joinns-py', ['/usr/bin/python3', '-c', py]);
    const port = Number(/^port (\d+)$/m.exec(target.output())?.[1]);
    assert.equal(nsLink(target.pid, 'net'), nsLink(ns, 'net'));
    const images = s.mkdir();
    s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '--network-lock', lock]));
    assert.equal(criuChain(ns), true, `the holder's namespace is not locked after the dump${s.report()}`);
    const r = await s.restore(images, target, { extra: ['--join-ns', `net:${ns}`, '--join-ns', `uts:${ns}`] });
    assert.equal(nsLink(r.pid, 'net'), nsLink(ns, 'net'), s.report());
    assert.equal(criuChain(ns), false, `the holder's namespace is still locked after the restore${s.report()}`);
    // The listener is back, in the holder's namespace: a connection from there gets through.
    const c = spawnSync('nsenter', [`--net=/proc/${ns}/ns/net`, '/usr/bin/python3', '-c', `import socket; socket.create_connection(('127.0.0.1', ${port}), timeout=5)`], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr + s.report());
    await s.killTree(r);
  });
}

test('--join-ns refusals: a kind cryo does not join, a file that is no namespace, one of another kind, --empty-ns net with net; nothing is made', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'joinns-refused');
  const target = await s.start('joinns');
  const images = s.mkdir();
  await s.dump(target, images);
  for (const [args, re] of [
    [['--join-ns', `mnt:${process.pid}`], /^Error: --join-ns mnt:\d+: joining a mnt namespace is not supported yet$/m],
    [['--join-ns', 'net:/etc/hostname'], /^Error: --join-ns net:\/etc\/hostname: \/etc\/hostname is not a namespace file$/m],
    [['--join-ns', `net:/proc/${process.pid}/ns/uts`], /^Error: --join-ns net:\/proc\/\d+\/ns\/uts: \/proc\/\d+\/ns\/uts is not a net namespace$/m],
    [['--join-ns', 'net:/nonexistent'], /^Error: --join-ns net:\/nonexistent: cannot open \/nonexistent: ENOENT$/m],
    [['--join-ns', `net:${process.pid}`, '--empty-ns', 'net'], /^Error: --join-ns net:\d+: conflicts with --empty-ns net$/m],
  ] as const) {
    const r = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore-bad.log', ...args]);
    assert.equal(r.code, 1, s.report());
    assert.match(r.stderr, re, s.report());
    assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
    assert.ok(!fs.existsSync(`/proc/${target.pid}`), 'a refused restore left a task');
  }
});
