// Network namespaces of the tree (netns.c, python3 http.server under
// `unshare -n`): the root's own namespace is dumped into CRIU's images
// (netdev-N, netns-N, ifaddr/route/route6/rule-N from `ip ... save`,
// nftables-N, iptables-N/ip6tables-N, netns-ct/exp-N) and made anew on
// restore, never cryo's own, with its sockets looked up (sock_diag) and made
// inside it. A link cryo does not carry (a vxlan) is refused in one line;
// --empty-ns net leaves the namespace to the setup-namespaces script; an
// external namespace (--external net[INO]:KEY) is joined on restore through
// --inherit-fd.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, childrenOf, critDecodeAll, imagePids, runningFree, waitFor } from './harness.js';
import { reapUntilGone } from './proc.js';

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

function upstreamCrit(image: string): { entries: Array<Record<string, unknown>> } {
  const py = `import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps(images.load(open(sys.argv[1], 'rb'))))`;
  const crit = fs.existsSync('/work/criu/lib/pycriu') ? ['-c', py, image] : ['/usr/bin/crit', 'decode', '-i', image];
  const r = spawnSync('/usr/bin/python3', crit, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** A command run in the network namespace of `pid`. */
function inNs(pid: number, argv: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('nsenter', ['-t', String(pid), '-n', ...argv], { encoding: 'utf8', timeout: 10_000 });
}

test('check --feature: sk_ns, external_net_ns, nftables and has_ipt_legacy are supported (the tests below use each)', () => {
  for (const f of ['sk_ns', 'external_net_ns', 'nftables', 'has_ipt_legacy']) {
    const r = spawnSync(new URL('../../bin/cryo', import.meta.url).pathname, ['check', '--no-default-config', '--feature', f], { encoding: 'utf8' });
    assert.deepEqual([r.status, r.stdout], [0, `${f} is supported\n`], r.stderr);
  }
});

test('a network namespace of its own: lo (up, MTU), addresses, routes, a rule, sysctls, nftables, a TCP pair, a listener, UDP over IPv6 and an abstract unix name come back in a new one', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netns');
  const target = await s.start('netns');
  assert.notEqual(nsLink(target.pid, 'net'), nsLink('self', 'net'));
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--tcp-established'] });
  const names = fs.readdirSync(images);
  for (const p of ['netdev', 'netns', 'ifaddr', 'route', 'route6', 'rule', 'iptables', 'ip6tables', 'nftables', 'netns-ct']) {
    assert.ok(names.some((n) => new RegExp(`^${p}-\\d+\\.img$`).test(n)), `no ${p}-N.img in ${names.join(' ')}${s.report()}`);
  }
  // The `ip`/nft/iptables outputs and conntrack dumps are raw images (no magic), which crit does not decode for CRIU's either.
  const raw = /^crit decode (ifaddr|route6?|rule|ip6?tables|nftables|netns-ct|netns-exp)-\d+\.img:/;
  assert.deepEqual(critDecodeAll(images).filter((f) => !raw.test(f)), [], s.report());
  const img = (prefix: string) => path.join(images, names.find((n) => n.startsWith(prefix))!);
  const links = upstreamCrit(img('netdev-')).entries as Array<{ type: string; name: string; mtu: number; flags: number; conf4: unknown[]; conf6: unknown[] }>;
  assert.deepEqual(links.map((l) => [l.type, l.name, l.mtu, (l.flags & 1) === 1]), [['LOOPBACK', 'lo', 9000, true]]);
  assert.equal(links[0]!.conf4.length, 30);
  assert.equal(links[0]!.conf6.length, 42);
  const netns = upstreamCrit(img('netns-')).entries[0] as { all_conf4: Array<{ iarg?: number }>; unix_conf: Array<{ iarg: number }>; ipv4_sysctl: Array<{ sarg?: string }> };
  assert.equal(netns.all_conf4[12]!.iarg, 1, 'net.ipv4.conf.all.forwarding');
  assert.deepEqual(netns.unix_conf.map((e) => e.iarg), [77]);
  assert.match(netns.ipv4_sysctl[0]!.sarg ?? '', /^0\s+0$/);
  assert.match(fs.readFileSync(img('nftables-'), 'utf8'), /table inet cryotest/);
  // The in-tree connection is tracked (the "ct state" rule): its conntrack entries as nfnetlink messages (IPCTNL_MSG_CT_NEW).
  const ct = fs.readFileSync(img('netns-ct-'));
  assert.ok(ct.length >= 16 && ct.readUInt16LE(4) === 0x100, `netns-ct holds no conntrack entry${s.report()}`);
  assert.match(fs.readFileSync(img('iptables-'), 'utf8'), /^-A INPUT -p tcp -m tcp --dport 10 -j DROP$/m);
  // `ip addr save` output: its magic, then the rtnetlink messages.
  assert.equal(fs.readFileSync(img('ifaddr-')).readUInt32LE(0), 0x47361222);

  const r = await s.restore(images, target, { extra: ['--tcp-established'] });
  const now = nsLink(r.pid, 'net');
  assert.notEqual(now, nsLink('self', 'net'), `the restored task is in cryo's network namespace${s.report()}`);
  // Nothing of it leaked into cryo's namespace.
  assert.doesNotMatch(spawnSync('ip', ['addr'], { encoding: 'utf8' }).stdout, /127\.5\.5\.5|fd00:c7e0::1/);
  assert.match(inNs(r.pid, ['ss', '-ltn']).stdout, /127\.5\.5\.5:7070/, s.report());
  await s.expectPass(r);
});

test('netns: the checks see a change after restore (SIGUSR2 sets lo\'s MTU back to 1500)', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netns-usr2');
  const target = await s.start('netns');
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--tcp-established'] });
  const r = await s.restore(images, target, { extra: ['--tcp-established'] });
  const { status, output } = await s.finish(r, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: lo's MTU is 1500, want 9000$/m, s.report());
});

test('netns made by `unshare -n`: python3 http.server with a keep-alive client of the same tree, both in the namespace; after restore the client goes on and a new client inside the new namespace is served', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'netns-http');
  fs.writeFileSync(path.join(s.dir, 'index.html'), 'cryo netns page\n');
  const server = 'import http.server as h, functools\nh.SimpleHTTPRequestHandler.protocol_version = "HTTP/1.1"\n'
    + `h.test(HandlerClass=functools.partial(h.SimpleHTTPRequestHandler, directory=${JSON.stringify(s.dir)}), port=8000, bind="127.0.0.1")`;
  const client = 'import http.client, time, sys\nfor i in range(100):\n  try:\n    c = http.client.HTTPConnection("127.0.0.1", 8000); c.connect(); break\n  except OSError: time.sleep(0.1)\n'
    + 'n = 0\nprint("READY", flush=True)\nwhile True:\n  c.request("GET", "/index.html"); body = c.getresponse().read()\n  n += 1; print("GOT", n, body.decode().strip(), flush=True); time.sleep(0.2)\n';
  const script = `ip link set lo up && /usr/bin/python3 -c '${server}' 2>/dev/null & exec /usr/bin/python3 -c '${client}'`;
  fs.writeFileSync(path.join(s.dir, 'run.sh'), script);
  const unshare = await s.startCommand('netns-http', ['unshare', '-n', '/bin/sh', '-c', `exec /bin/sh ${path.join(s.dir, 'run.sh')}`]);
  const sh = unshare.pid;
  await s.check(waitFor('two answers', () => /GOT 2 cryo netns page/.test(unshare.output()), 10_000));
  const got = () => Math.max(0, ...[...unshare.output().matchAll(/^GOT (\d+) cryo netns page$/gm)].map((m) => Number(m[1])));
  assert.notEqual(nsLink(sh, 'net'), nsLink('self', 'net'));
  const images = s.mkdir();
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['dump', '-t', String(sh), '-D', images, '-v4', '-o', 'dump.log', '--tcp-established']));
  for (const p of imagePids(images)) await s.check(reapUntilGone(p, 10_000));
  const atDump = got();
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--tcp-established', '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.equal(host, sh, s.report());
  assert.notEqual(nsLink(host, 'net'), nsLink('self', 'net'), s.report());
  for (const kid of childrenOf(host)) assert.equal(nsLink(kid, 'net'), nsLink(host, 'net'), `child ${kid} is not in the root's network namespace`);
  await s.check(waitFor(`the client to pass ${atDump + 3}`, () => got() >= atDump + 3, 10_000));
  const fresh = inNs(host, ['/usr/bin/python3', '-c', 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8000/index.html", timeout=5).read().decode())']);
  assert.equal(fresh.status, 0, fresh.stderr + s.report());
  assert.match(fresh.stdout, /cryo netns page/);
  // Not served in cryo's namespace.
  assert.notEqual(spawnSync('/usr/bin/python3', ['-c', 'import socket; socket.create_connection(("127.0.0.1", 8000), 1)']).status, 0, 'port 8000 answers in cryo\'s namespace');
  await s.killTree(restored);
});

test('a network namespace with a vxlan link: the dump refuses it in one line naming the task, the namespace and the link; the tasks run on', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'netns-veth');
  const unshare = await s.startCommand('netns-veth', ['unshare', '-n', '/bin/sh', '-c', 'ip link add cryo-t0 type vxlan id 5 dstport 4789 && ip link set lo up && echo READY; while :; do sleep 0.1; done']);
  const images = s.mkdir();
  const r = await s.cryo(['dump', '-t', String(unshare.pid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.equal(r.stderr.trim().split('\n').length, 1, s.report());
  const ns = nsLink(unshare.pid, 'net').replace(/[[\]]/g, '\\$&');
  assert.match(r.stderr, new RegExp(`^Error: task ${unshare.pid} \\(\\w+\\): its network namespace ${ns} has link cryo-t0 \\(vxlan\\), which cryo does not dump yet \\(only the loopback, veth pairs, bridges, macvlans and persistent tun/tap devices are carried\\)$`, 'm'), s.report());
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /has link cryo-t0 \(vxlan\)/);
  assert.ok(!fs.existsSync(path.join(images, 'inventory.img')), 'a refused dump wrote an inventory');
  assert.ok(runningFree(unshare.pid), s.report());
  for (const kid of childrenOf(unshare.pid)) assert.ok(fs.existsSync(`/proc/${kid}`));
  await s.killTree(unshare);
});

test('--empty-ns net: the namespace is not dumped; the restore makes an empty one that the setup-namespaces script brings up, and needs the option again', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netns-empty');
  const py = 'import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8100)); s.listen()\nprint("READY", flush=True)\nwhile True:\n  c, _ = s.accept(); c.sendall(b"hi\\n"); c.close()\n';
  const unshare = await s.startCommand('netns-empty', ['unshare', '-n', '/bin/sh', '-c', `ip link set lo up && exec /usr/bin/python3 -c '${py}'`]);
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(unshare.pid), '-D', images, '-v4', '-o', 'dump.log', '--empty-ns', 'net']));
  await s.check(reapUntilGone(unshare.pid, 10_000));
  assert.deepEqual(fs.readdirSync(images).filter((n) => /^(netdev|ifaddr|route|rule|nftables)-/.test(n)), [], s.report());
  const bad = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log']);
  assert.equal(bad.code, 1, s.report());
  assert.match(bad.stderr, /netdev-\d+\.img is missing \(the tree's network namespace was dumped with --empty-ns net\? restore with it too\)/, s.report());
  assert.ok(!fs.existsSync(`/proc/${unshare.pid}`) || !runningFree(unshare.pid), 'the refused restore left the task');
  const script = path.join(s.dir, 'setup.sh');
  const seen = path.join(s.dir, 'seen');
  fs.writeFileSync(script, `#!/bin/sh\nif [ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ]; then\n  readlink /proc/$CRTOOLS_INIT_PID/ns/net > ${seen}\n  nsenter -t $CRTOOLS_INIT_PID -n ip link set lo up || exit 1\nfi\nexit 0\n`, { mode: 0o755 });
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--empty-ns', 'net', '--action-script', script, '--pidfile', pidfile]));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.equal(fs.readFileSync(seen, 'utf8').trim(), nsLink(host, 'net'), 'setup-namespaces did not see the root\'s new namespace');
  assert.notEqual(nsLink(host, 'net'), nsLink('self', 'net'), s.report());
  const got = inNs(host, ['/usr/bin/python3', '-c', 'import socket; print(socket.create_connection(("127.0.0.1", 8100), 5).recv(10).decode())']);
  assert.equal(got.status, 0, got.stderr + s.report());
  assert.equal(got.stdout.trim(), 'hi');
  await s.killTree(restored);
});

test('--external net[INO]:KEY: only the key is dumped; the restore joins the namespace given with --inherit-fd fd[N]:KEY, its listener is there again', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netns-ext');
  const py = 'import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8200)); s.listen()\nprint("READY", flush=True)\nwhile True:\n  c, _ = s.accept(); c.sendall(b"ext\\n"); c.close()\n';
  const unshare = await s.startCommand('netns-ext', ['unshare', '-n', '/bin/sh', '-c', `ip link set lo up && ip addr add 127.9.9.9/32 dev lo && exec /usr/bin/python3 -c '${py}'`]);
  // The test holds the namespace, as runc does: it outlives the dumped tree.
  const held = fs.openSync(`/proc/${unshare.pid}/ns/net`, 'r');
  t.after(() => fs.closeSync(held));
  const link = nsLink(unshare.pid, 'net');
  const ino = /\[(\d+)\]/.exec(link)![1]!;
  const images = s.mkdir();
  s.ok(await s.cryo(['dump', '-t', String(unshare.pid), '-D', images, '-v4', '-o', 'dump.log', '--external', `net[${ino}]:extnet`]));
  await s.check(reapUntilGone(unshare.pid, 10_000));
  assert.deepEqual(fs.readdirSync(images).filter((n) => /^(netdev|ifaddr|route)-/.test(n)), [], s.report());
  const entry = upstreamCrit(path.join(images, fs.readdirSync(images).find((n) => n.startsWith('netns-'))!)).entries[0]!;
  assert.equal(entry['ext_key'], 'extnet');
  const missing = await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log']);
  assert.equal(missing.code, 1, s.report());
  assert.match(missing.stderr, /dumped as external \(extnet\): give it with --inherit-fd fd\[N\]:extnet/);
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--inherit-fd', 'fd[3]:extnet', '--pidfile', pidfile], { fds: [held] }));
  const host = Number(fs.readFileSync(pidfile, 'utf8'));
  const restored = s.adopt(host, unshare);
  assert.equal(nsLink(host, 'net'), link, s.report());
  const got = inNs(host, ['/usr/bin/python3', '-c', 'import socket; print(socket.create_connection(("127.0.0.1", 8200), 5).recv(10).decode())']);
  assert.equal(got.status, 0, got.stderr + s.report());
  assert.equal(got.stdout.trim(), 'ext');
  await s.killTree(restored);
});

test('a tree in cryo\'s network namespace holding a socket of another one is refused: it would come back in the wrong namespace', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'netns-stranger');
  // setns into a namespace made by `unshare -n` (held by a sleeper), make a socket there, go back.
  const holder = await s.startCommand('netns-holder', ['unshare', '-n', '/bin/sh', '-c', 'echo READY; while :; do sleep 0.1; done']);
  const py = `import ctypes, os, socket, time\nlibc = ctypes.CDLL(None, use_errno=True)\nmine = os.open("/proc/self/ns/net", os.O_RDONLY)\nother = os.open("/proc/${holder.pid}/ns/net", os.O_RDONLY)\nassert libc.setns(other, 0x40000000) == 0\nsk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nassert libc.setns(mine, 0x40000000) == 0\nos.close(mine); os.close(other)\nprint("READY", flush=True)\ntime.sleep(600)\n`;
  const target = await s.startCommand('netns-stranger', ['/usr/bin/python3', '-c', py]);
  const r = await s.cryo(['dump', '-t', String(target.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: task ${target.pid}: fd \\d+ \\(socket:\\[\\d+\\]\\) is a socket of network namespace ${nsLink(holder.pid, 'net').replace(/[[\]]/g, '\\$&')}, not one of the tree's \\(${nsLink('self', 'net').replace(/[[\]]/g, '\\$&')}\\), which cryo cannot restore$`, 'm'), s.report());
  assert.ok(runningFree(target.pid), s.report());
  await s.killTree(target);
  await s.killTree(holder);
});


test('several network namespaces in one tree (netnsub.c): the root\'s and two its children made, each dumped (netns-N, netdev-N...) and made again, every task in its own, a socket of one held by a task in another, abstract names and a listener each in theirs, a veth between two of them', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netnsub');
  const target = await s.start('netnsub');
  const [a, c] = childrenOf(target.pid);
  assert.ok(a && c, s.report());
  const b = childrenOf(a)[0]!;
  const nets = (ps: number[]) => ps.map((p) => nsLink(p, 'net'));
  const before = nets([target.pid, a, b, c]);
  assert.equal(new Set(before).size, 3, `R, A, B and C in ${before.join(' ')}${s.report()}`);
  const images = s.mkdir();
  await s.dump(target, images);
  const names = fs.readdirSync(images);
  assert.equal(names.filter((n) => /^netns-\d+\.img$/.test(n)).length, 3, names.join(' '));
  assert.equal(names.filter((n) => /^netdev-\d+\.img$/.test(n)).length, 3, names.join(' '));
  // Each socket of A's or C's namespace names it (CRIU's ns_id), as CRIU's crit reads it.
  const files = upstreamCrit(path.join(images, 'files.img')).entries as Array<{ usk?: { name?: string; ns_id?: number } }>;
  const nsIdOf = (n: number) => files.find((f) => f.usk?.name?.endsWith(`cryo-netnsub-${n}`))?.usk?.ns_id;
  assert.equal(nsIdOf(0), undefined, 'a socket of the root\'s namespace names one');
  assert.ok(nsIdOf(1) !== undefined && nsIdOf(2) !== undefined && nsIdOf(1) !== nsIdOf(2), `ns_ids ${nsIdOf(1)} ${nsIdOf(2)}${s.report()}`);
  const r = await s.restore(images, target);
  const after = nets([r.pid, a, b, c]);
  assert.equal(new Set(after).size, 3, `R, A, B and C in ${after.join(' ')} after restore${s.report()}`);
  assert.deepEqual(after.map((l) => after.indexOf(l)), before.map((l) => before.indexOf(l)), `not the same namespaces shared${s.report()}`);
  assert.ok(!after.includes(nsLink('self', 'net')), `a restored task is in cryo's network namespace${s.report()}`);
  assert.match(inNs(a, ['ss', '-ltn']).stdout, /0\.0\.0\.0:7001/, s.report());
  // The veth between R's namespace and A's: each end in its own again, with its address (link_nsid).
  assert.match(inNs(r.pid, ['ip', '-o', 'addr', 'show', 'dev', 'cryvR']).stdout, /inet 10\.77\.0\.1\/24/, s.report());
  assert.match(inNs(a, ['ip', '-o', 'addr', 'show', 'dev', 'cryvA']).stdout, /inet 10\.77\.0\.2\/24/, s.report());
  assert.doesNotMatch(spawnSync('ip', ['link'], { encoding: 'utf8' }).stdout, /cryv[RA]/, 'a veth end leaked into cryo\'s namespace');
  await s.expectPass(r);
});
