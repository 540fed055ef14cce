// Links of a tree's network namespace beyond lo (veth.c): a veth pair joining
// it to the "host" (an outer namespace the test makes, where cryo runs: nothing
// touches the machine's own network), a pair with both ends inside, one of
// them a port of a bridge of the namespace, and a macvlan on a bridge of the
// host (--external macvlan[IFNAME]:HOSTIF). The
// dump writes them as CRIU does (netdev-N.img, checked with upstream crit);
// the restore makes each pair again with its indexes, MTU, MAC and flags, the
// outside end in cryo's namespace under the name --external veth[IFNAME]:HOSTIF
// (or --veth-pair IN=OUT) gives, then the addresses, routes and nft rules; a
// client in the outer namespace connected before the dump goes on
// (--tcp-established) and a new one is served (the dump takes the namespace's
// links down before its tasks go: a loaded machine otherwise lets the dying
// namespace reset the client, its lock gone first). Without the external name
// the restore is refused in one line before anything is made.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, Session, compileProgram, imagePids, processTree, python3, runningFree, waitFor, type Target } from './harness.js';
import { reapUntilGone } from './proc.js';

const CRYO = path.join(ROOT, 'bin/cryo');

function upstreamCrit(image: string): Array<Record<string, unknown>> {
  const py = `import sys, json; sys.path.insert(0, '/work/criu/lib'); from pycriu import images; print(json.dumps(images.load(open(sys.argv[1], 'rb'))))`;
  const crit = fs.existsSync('/work/criu/lib/pycriu') ? ['-c', py, image] : ['/usr/bin/crit', 'decode', '-i', image];
  const r = spawnSync('/usr/bin/python3', crit, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).entries;
}

/** An outer network namespace (held by a sleeping process) standing for the host. */
async function outerNs(s: Session, setup = 'true'): Promise<{ holder: Target; enter: string[]; run: (argv: string[]) => { status: number | null; stdout: string; stderr: string } }> {
  const holder = await s.startCommand('outer', ['unshare', '-n', '/bin/sh', '-c', `ip link set lo up && ${setup} && echo READY && exec sleep 1000000`]);
  const enter = ['nsenter', `--net=/proc/${holder.pid}/ns/net`];
  return { holder, enter, run: (argv) => spawnSync(enter[0]!, [...enter.slice(1), ...argv], { encoding: 'utf8', timeout: 10_000 }) };
}

// Connects to the server through the pair, then sends a numbered line every 0.2 s and prints each echo.
const CLIENT = 'import socket, time\nfor i in range(100):\n  try:\n    c = socket.create_connection(("10.77.0.2", 7080), 2); break\n  except OSError: time.sleep(0.1)\n'
  + 'c.settimeout(None)\nf = c.makefile("rb")\nprint("READY", flush=True)\nn = 0\nwhile True:\n  n += 1; c.sendall(b"ping %d\\n" % n); l = f.readline()\n'
  + '  if l != b"ping %d\\n" % n: print("BAD", l, flush=True); break\n  print("GOT", n, flush=True); time.sleep(0.2)\n';

test('a veth pair to the host, one inside, a bridge and a macvlan: dumped as CRIU does, refused on restore without --external veth[eth0]:HOST, made again with it; a client outside goes on through the pair (--tcp-established) and a new one is served', { timeout: 120_000 }, async (t) => {
  const s = Session.for(t, 'netdev-veth');
  const outer = await outerNs(s);
  const target = await s.startCommand('veth', [...outer.enter, compileProgram('veth'), s.dir]);
  const client = await s.startCommand('client', [...outer.enter, python3(), '-c', CLIENT]);
  const got = () => Math.max(0, ...[...client.output().matchAll(/^GOT (\d+)$/gm)].map((m) => Number(m[1])));
  await s.check(waitFor('the client to be answered', () => got() >= 3, 10_000));
  const images = s.mkdir();
  const tree = processTree(target.pid);
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log', '--tcp-established'], { command: [...outer.enter, CRYO] }));
  await s.gone(target, tree, images);
  const atDump = got();
  // The host's end goes with the namespace (the kernel takes it down a moment later).
  await s.check(waitFor('cryo-h0 to go with the dumped namespace', () => !/cryo-h0/.test(outer.run(['ip', 'link']).stdout), 10_000));
  assert.match(fs.readFileSync(path.join(images, 'dump.log'), 'utf8'), /veth eth0 of network namespace net:\[\d+\] has its peer outside the tree: the restore needs --external veth\[eth0\]:HOSTIF/);

  const netdev = fs.readdirSync(images).find((n) => /^netdev-\d+\.img$/.test(n))!;
  const nsId = Number(/\d+/.exec(netdev)![0]);
  const links = upstreamCrit(path.join(images, netdev)) as Array<{ type: string; ifindex: number; name: string; mtu: number; flags: number; address?: string; peer_ifindex?: number; peer_nsid?: number }>;
  const by = (n: string) => links.find((l) => l.name === n)!;
  const mac = (l: { address?: string }) => [...Buffer.from(l.address ?? '', 'base64')].map((b) => b.toString(16).padStart(2, '0')).join(':');
  assert.deepEqual(links.map((l) => [l.type, l.name]).sort(), [['BRIDGE', 'cryo-br'], ['LOOPBACK', 'lo'], ['MACVLAN', 'cryo-mv0'], ['VETH', 'cryo-a'], ['VETH', 'cryo-b'], ['VETH', 'eth0']]);
  // MACVLAN_MODE_BRIDGE; its lower link is outside: no peer_nsid.
  const mv = by('cryo-mv0') as { macvlan?: { mode: number }; peer_nsid?: number; mtu: number };
  assert.deepEqual([mv.macvlan?.mode, mv.mtu, mac(mv), 'peer_nsid' in mv], [4, 1400, '02:c7:00:00:00:4d', false]);
  assert.deepEqual([by('eth0').mtu, mac(by('eth0')), by('eth0').flags & 1, 'peer_nsid' in by('eth0')], [1400, '02:c7:00:00:00:02', 1, false]);
  assert.deepEqual([by('cryo-b').mtu, mac(by('cryo-b')), by('cryo-b').flags & 1], [1300, '02:c7:00:00:00:0b', 0]);
  assert.deepEqual([by('cryo-br').flags & 1, mac(by('cryo-br')), (by('cryo-b') as { master?: number }).master], [1, '02:c7:00:00:00:99', by('cryo-br').ifindex]);
  assert.deepEqual([by('cryo-a').peer_ifindex, by('cryo-a').peer_nsid, by('cryo-b').peer_ifindex, by('cryo-b').peer_nsid], [by('cryo-b').ifindex, nsId, by('cryo-a').ifindex, nsId]);
  // `ip addr save` holds eth0's address (its raw rtnetlink messages).
  assert.ok(fs.readFileSync(path.join(images, `ifaddr-${nsId}.img`)).includes(Buffer.from([10, 77, 0, 2])), 'no 10.77.0.2 in ifaddr');

  const pidfile = path.join(s.dir, 'restored.pid');
  const restore = (extra: string[]) => s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--tcp-established', '--pidfile', pidfile, ...extra], { command: [...outer.enter, CRYO] });
  const bad = await restore([]);
  assert.equal(bad.code, 1, s.report());
  assert.equal(bad.stderr.trim().split('\n').length, 1, s.report());
  assert.equal(bad.stderr.trim(), `Error: restore failed: task ${target.pid}: veth eth0 of its network namespace (netdev-${nsId}.img) has its peer outside the tree, and no --external veth[eth0]:HOSTIF names it`);
  assert.ok(!fs.existsSync(`/proc/${target.pid}`), 'a refused restore left a task');
  assert.doesNotMatch(outer.run(['ip', 'link']).stdout, /cryo-h0/);

  const bad2 = await restore(['--external', 'veth[eth0]:cryo-h0']);
  assert.equal(bad2.stderr.trim(), `Error: restore failed: task ${target.pid}: macvlan cryo-mv0 of its network namespace (netdev-${nsId}.img) needs its lower link named: --external macvlan[cryo-mv0]:HOSTIF`, s.report());
  assert.doesNotMatch(outer.run(['ip', 'link']).stdout, /cryo-h0/);
  s.ok(await restore(['--external', 'veth[eth0]:cryo-h0', '--external', 'macvlan[cryo-mv0]:cryo-hbr']));
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), target);
  assert.equal(restored.pid, target.pid);
  // As CRIU: the host's end is made down, without addresses; the host sets it up again (as LXC or CNI would).
  const h0 = outer.run(['ip', '-d', 'link', 'show', 'cryo-h0']);
  assert.equal(h0.status, 0, h0.stderr + s.report());
  assert.match(h0.stdout, /cryo-h0@if\d+: <BROADCAST,MULTICAST>.* state DOWN/);
  assert.match(h0.stdout, /\bveth\b/);
  assert.equal(outer.run(['sh', '-c', 'ip addr add 10.77.0.1/24 dev cryo-h0 && ip link set cryo-h0 up']).status, 0);
  await s.check(waitFor(`the client to pass ${atDump + 3}`, () => got() >= atDump + 3, 60_000));
  assert.doesNotMatch(client.output(), /BAD/);
  const fresh = outer.run([python3(), '-c', 'import socket; c = socket.create_connection(("10.77.0.2", 7080), 5); c.sendall(b"again\\n"); print(c.recv(100).decode(), end="")']);
  assert.deepEqual([fresh.status, fresh.stdout], [0, 'again\n'], fresh.stderr + s.report());
  await s.expectPass(restored);
  await s.killTree(client);
  await s.killTree(outer.holder);
});

test('--veth-pair eth0=cryo-h0@cryo-br0 (the old form, with a bridge): the host end is made in the bridge; SIGUSR2 proves the checks', { timeout: 90_000 }, async (t) => {
  const s = Session.for(t, 'netdev-veth-pair');
  const outer = await outerNs(s, 'ip link add cryo-br0 type bridge');
  const target = await s.startCommand('veth', [...outer.enter, compileProgram('veth'), s.dir]);
  const images = s.mkdir();
  const tree = processTree(target.pid);
  s.ok(await s.cryo(['dump', '-t', String(target.pid), '-D', images, '-v4', '-o', 'dump.log'], { command: [...outer.enter, CRYO] }));
  await s.gone(target, tree, images);
  for (const p of imagePids(images)) await s.check(reapUntilGone(p, 10_000));
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--veth-pair', 'eth0=cryo-h0@cryo-br0', '--external', 'macvlan[cryo-mv0]:cryo-hbr'], { command: [...outer.enter, CRYO] }));
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), target);
  assert.match(outer.run(['ip', 'link', 'show', 'cryo-h0']).stdout, /cryo-h0@if\d+: .* master cryo-br0 /, s.report());
  const { status, output } = await s.finish(restored, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: eth0's MTU is 1500, want 1400$/m, s.report());
  await s.killTree(outer.holder);
});

test('persistent tun/tap devices (tundev.c): flags, owner, group and vnet header size as CRIU\'s tun_link_entry, made again with their indexes, MTU, MAC and addresses; SIGUSR2 proves the checks', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netdev-tun');
  const target = await s.start('tundev');
  const images = s.mkdir();
  await s.dump(target, images);
  const netdev = fs.readdirSync(images).find((n) => /^netdev-\d+\.img$/.test(n))!;
  const links = upstreamCrit(path.join(images, netdev)) as Array<{ type: string; name: string; tun?: { flags: number; owner: number; group: number; vnethdr: number; sndbuf: number } }>;
  const tap = links.find((l) => l.name === 'cryo-tap0')!;
  const tun = links.find((l) => l.name === 'cryo-tun0')!;
  // IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_PERSIST; IFF_TUN|IFF_MULTI_QUEUE|IFF_PERSIST.
  assert.deepEqual([tap.type, tap.tun], ['TUN', { flags: 0x5802, owner: 1000, group: 1001, vnethdr: 12, sndbuf: 2147483647 }]);
  assert.deepEqual([tun.type, tun.tun?.flags, tun.tun?.owner, tun.tun?.group], ['TUN', 0x0901, -1, -1]);
  const r = await s.restore(images, target);
  await s.expectPass(r);
  const again = await s.start('tundev');
  const images2 = s.mkdir();
  await s.dump(again, images2);
  const r2 = await s.restore(images2, again);
  const { status, output } = await s.finish(r2, 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: cryo-tap0's vnet header size is 10, want 12$/m, s.report());
});

test('tun files (tunfile.c): a tun and a multi-queue tap that only the tree\'s files hold, a detached queue and a file attached to none; the devices come back not persistent, the files attached as they were, packets flow; SIGUSR2 proves the checks', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netdev-tunfile');
  // What zdtm's tun tests ask first: devices made with their index, files that tell their namespace.
  for (const feature of ['tun', 'tun_ns']) {
    const c = spawnSync(CRYO, ['check', '--no-default-config', '--feature', feature], { encoding: 'utf8', timeout: 30_000 });
    assert.deepEqual([c.status, c.stdout], [0, `${feature} is supported\n`], c.stderr);
  }
  const target = await s.start('tunfile');
  const images = s.mkdir();
  await s.dump(target, images);
  // As CRIU writes them: a REG entry of /dev/net/tun and a TUNF entry of the same id for each file.
  const files = (upstreamCrit(path.join(images, 'files.img')) as Array<{ id: number; type: string; reg?: { name: string }; tunf?: { netdev?: string; detached?: boolean } }>);
  const tunf = files.filter((f) => f.type === 'TUNF');
  assert.deepEqual(tunf.map((f) => [f.tunf?.netdev ?? '', f.tunf?.detached ?? false]).sort(), [['', false], ['cryo-mq0', false], ['cryo-mq0', true], ['cryo-tun1', false]], JSON.stringify(tunf));
  for (const f of tunf) assert.equal(files.find((r) => r.type === 'REG' && r.id === f.id)?.reg?.name, '/dev/net/tun', JSON.stringify(files));
  const netdev = fs.readdirSync(images).find((n) => /^netdev-\d+\.img$/.test(n))!;
  const links = upstreamCrit(path.join(images, netdev)) as Array<{ name: string; tun?: { flags: number } }>;
  // IFF_TUN|IFF_NO_PI; IFF_TAP|IFF_NO_PI|IFF_MULTI_QUEUE: neither IFF_PERSIST.
  assert.deepEqual(links.filter((l) => l.tun).map((l) => [l.name, l.tun!.flags]).sort(), [['cryo-mq0', 0x1102], ['cryo-tun1', 0x1001]]);
  await s.expectPass(await s.restore(images, target));

  const again = await s.start('tunfile');
  const images2 = s.mkdir();
  await s.dump(again, images2);
  const { status, output } = await s.finish(await s.restore(images2, again), 'SIGUSR2');
  assert.equal(status?.exited, 1, s.report());
  assert.match(output, /^FAIL: ip -d link show cryo-tun1: no "persist off"/m, s.report());
});

test('tun files cryo cannot carry fail the dump in one line, the task running on: a packet the device sent not read yet; a tun file of the host\'s network namespace', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netdev-tunfile-refused');
  const queued = await s.start('tunfile', { args: [s.dir, 'queued'] });
  const r = await s.cryo(['dump', '-t', String(queued.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr.trimEnd(), new RegExp(`^Error: task ${queued.pid}: fd \\d+ \\(a tun file\\): packets of cryo-tun1 wait to be read, which cryo cannot carry$`), s.report());
  await s.check(waitFor('the task to run free', () => runningFree(queued.pid), 5_000));
  await s.killTree(queued);

  const py = 'import fcntl, struct, os, time\nfd = os.open("/dev/net/tun", os.O_RDWR)\nprint("READY", flush=True)\nwhile True: time.sleep(1)\n';
  const host = await s.startCommand('netdev-tunfile-host', [python3(), '-c', py]);
  const h = await s.cryo(['dump', '-t', String(host.pid), '-D', s.mkdir(), '-v4', '-o', 'dump.log']);
  assert.equal(h.code, 1, s.report());
  assert.match(h.stderr.trimEnd(), new RegExp(`^Error: task ${host.pid}: fd \\d+ \\(a tun file\\) is of cryo's own network namespace: tun files are dumped only in a tree's own network namespace \\(as CRIU\\)$`), s.report());
  await s.check(waitFor('the task to run free', () => runningFree(host.pid), 5_000));
  await s.killTree(host);
});

test('--external netdev[cryo-c0]:cryo-c1 (check --feature newifindex): a veth made beforehand on the host is moved in with the name, index, MTU, MAC and addresses the dumped one had', { timeout: 60_000 }, async (t) => {
  const s = Session.for(t, 'netdev-move');
  const feature = spawnSync(CRYO, ['check', '--no-default-config', '--feature', 'newifindex'], { encoding: 'utf8' });
  assert.deepEqual([feature.status, feature.stdout], [0, 'newifindex is supported\n'], feature.stderr);
  const outer = await outerNs(s);
  const tree = await s.startCommand('netdev-move', [...outer.enter, 'unshare', '-n', '/bin/sh', '-c', 'ip link set lo up && echo READY; while :; do sleep 0.1; done']);
  const inside = (argv: string[]) => spawnSync('nsenter', ['-t', String(tree.pid), '-n', ...argv], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(outer.run(['sh', '-c', `ip link add cryo-c0 type veth peer name cryo-p0 && ip link set cryo-c0 netns ${tree.pid}`]).status, 0);
  assert.equal(inside(['sh', '-c', 'ip link set cryo-c0 mtu 1300 address 02:c7:00:00:00:c0 up && ip addr add 10.33.0.2/24 dev cryo-c0']).status, 0);
  const before = inside(['ip', '-o', 'link', 'show', 'cryo-c0']).stdout.replace(/state \S+|<[^>]*>/g, '');
  const images = s.mkdir();
  const pids = processTree(tree.pid);
  s.ok(await s.cryo(['dump', '-t', String(tree.pid), '-D', images, '-v4', '-o', 'dump.log'], { command: [...outer.enter, CRYO] }));
  await s.gone(tree, pids, images);
  await s.check(waitFor('cryo-p0 to go with the dumped namespace', () => !/cryo-p0/.test(outer.run(['ip', 'link']).stdout), 10_000));
  assert.equal(outer.run(['ip', 'link', 'add', 'cryo-c1', 'type', 'veth', 'peer', 'name', 'cryo-p1']).status, 0);
  const pidfile = path.join(s.dir, 'restored.pid');
  s.ok(await s.cryo(['restore', '-d', '-D', images, '-v4', '-o', 'restore.log', '--pidfile', pidfile, '--external', 'netdev[cryo-c0]:cryo-c1'], { command: [...outer.enter, CRYO] }));
  const restored = s.adopt(Number(fs.readFileSync(pidfile, 'utf8')), tree);
  // Its index, name, MTU and MAC as they were (the peer's index and the link state aside).
  assert.equal(inside(['ip', '-o', 'link', 'show', 'cryo-c0']).stdout.replace(/state \S+|<[^>]*>|@if\d+/g, ''), before.replace(/@if\d+/g, ''), s.report());
  assert.match(inside(['ip', 'addr', 'show', 'cryo-c0']).stdout, /inet 10\.33\.0\.2\/24/, s.report());
  const host = outer.run(['ip', 'link']).stdout;
  assert.doesNotMatch(host, /cryo-c1/);
  assert.match(host, /cryo-p1@if\d+:.*\n.*link-netnsid/);
  await s.killTree(restored);
  await s.killTree(outer.holder);
});
