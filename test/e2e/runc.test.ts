// runc (Debian's, which runs `criu swrk` and speaks RPC) with cryo as its
// criu: a busybox container (`runc spec`, its own pid, mount, net, ipc and uts
// namespaces, proc, sysfs, a tmpfs /dev with device nodes, the masked and
// read-only paths, the cgroup v1 hierarchies as external binds) is
// checkpointed and restored, in place and under a new id, and its counter
// goes on in its rootfs; refusals leave the container as it was, with their
// reason in the log runc names. CRYO=PATH runs the same against another criu (the
// first two pass with CRIU; the refusals check cryo's own messages).
import { test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session, critEntries, reapUntilGone, exists, python3, ROOT } from './harness.js';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CRYO_BIN, busyboxRootfs, checkContained, counterAbove, counterScript, counterStill, readCounter, run } from './containers.js';

/** The parts of runc's config.json the tests change. */
interface Spec {
  process: { terminal: boolean; args: string[] };
  root: { readonly: boolean };
  hostname: string;
  linux: { namespaces: Array<{ type: string }> };
}

const CRIU = process.env['CRYO'] ?? CRYO_BIN;
const HOSTNAME = 'cryo-runc-box';
const nsOf = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

class Runc {
  readonly state: string;
  readonly bundle: string;
  readonly rootfs: string;
  private readonly ids = new Set<string>();
  private readonly pids = new Set<number>();
  private seq = 0;

  constructor(readonly s: Session, readonly counter: string, extra?: (spec: Spec) => void) {
    this.state = s.mkdir('runc-state');
    this.bundle = s.mkdir('bundle');
    this.rootfs = path.join(this.bundle, 'rootfs');
    busyboxRootfs(this.rootfs);
    const r = spawnSpec(this.bundle);
    if (r) throw new Error(`runc spec: ${r}`);
    const file = path.join(this.bundle, 'config.json');
    const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as Spec;
    spec.process.terminal = false;
    spec.process.args = ['sh', '-c', counterScript(counter)];
    spec.root.readonly = false;
    spec.hostname = HOSTNAME;
    extra?.(spec);
    fs.writeFileSync(file, JSON.stringify(spec, null, 1));
  }

  /** The counter file, from the host. */
  get counterFile(): string {
    return path.join(this.rootfs, 'tmp', this.counter);
  }

  async runc(args: string[], quiet = false): Promise<{ code: number | null; out: string }> {
    const r = await run('runc', ['--root', this.state, ...args], quiet);
    const out = `$ runc ${args.join(' ')}\n${r.stdout}${r.stderr}`;
    this.s.note(out.trimEnd());
    return { code: r.code, out };
  }

  async start(id: string, more: string[] = []): Promise<number> {
    this.ids.add(id);
    // The container keeps runc's stdio: /dev/null, so that nothing here waits for its end.
    const r = await this.runc(['run', '-d', '--bundle', this.bundle, ...more, id], true);
    assert.equal(r.code, 0, r.out + this.s.report());
    return this.pidOf(id);
  }

  async pidOf(id: string): Promise<number> {
    const r = await run('runc', ['--root', this.state, 'state', id]);
    assert.equal(r.code, 0, `runc state ${id}: ${r.stderr}`);
    const st = JSON.parse(r.stdout) as { pid: number; status: string };
    assert.equal(st.status, 'running', `container ${id} is ${st.status}`);
    this.pids.add(st.pid);
    return st.pid;
  }

  dirs(): { images: string; work: string } {
    const n = ++this.seq;
    return { images: path.join(this.s.dir, `images-${n}`), work: path.join(this.s.dir, `work-${n}`) };
  }

  async checkpoint(id: string, d: { images: string; work: string }, more: string[] = []) {
    return this.runc(['--criu', CRIU, 'checkpoint', '--image-path', d.images, '--work-path', d.work, ...more, id]);
  }

  async restore(id: string, d: { images: string; work: string }, more: string[] = []) {
    this.ids.add(id);
    return this.runc(['--criu', CRIU, 'restore', '-d', '--bundle', this.bundle, '--image-path', d.images, '--work-path', d.work, ...more, id]);
  }

  /** The log cryo wrote into runc's work dir. */
  log(d: { work: string }, name: string): string {
    const f = path.join(d.work, name);
    assert.ok(fs.existsSync(f), `runc's work dir has no ${name}`);
    return fs.readFileSync(f, 'utf8');
  }

  /**
   * Checkpoint container `id` (running as `pid`) into `d`, run `between` on the
   * images, restore it: both succeed, the container's counter stood still while
   * it was down and goes on after. Returns the restored container's pid.
   */
  async cycle(id: string, pid: number, d: { images: string; work: string }, between?: () => void): Promise<number> {
    const cp = await this.checkpoint(id, d);
    assert.equal(cp.code, 0, cp.out + this.log(d, 'dump.log') + this.s.report());
    between?.();
    await this.gone(pid);
    const stopped = await counterStill(this.counterFile, 'after the checkpoint');
    const rs = await this.restore(id, d);
    assert.equal(rs.code, 0, rs.out + this.log(d, 'restore.log') + this.s.report());
    const rpid = await this.pidOf(id);
    await counterAbove(this.counterFile, stopped + 2, 'the restored container');
    return rpid;
  }

  async gone(pid: number): Promise<void> {
    await reapUntilGone(pid, 10_000);
    this.pids.delete(pid);
  }

  async cleanup(): Promise<void> {
    for (const id of this.ids) await run('runc', ['--root', this.state, 'delete', '-f', id]);
    for (const pid of this.pids) if (exists(pid)) await reapUntilGone(pid, 10_000).catch(() => undefined);
  }
}

/** The restored container is in the cgroups runc made for container `id` (every hierarchy). */
function checkCgroups(pid: number, id: string): void {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  for (const ctrl of ['memory', 'pids', 'freezer', '']) {
    const l = lines.find((x) => x.split(':')[1] === ctrl);
    assert.ok(l?.endsWith(`/${id}`), `the restored container is not in container ${id}'s ${ctrl || 'v2'} cgroup: ${l}`);
  }
}

function spawnSpec(bundle: string): string | undefined {
  const r = spawnSync('runc', ['spec', '--bundle', bundle], { encoding: 'utf8' });
  return r.status === 0 ? undefined : r.stderr;
}

function setup(t: TestContext, label: string, extra?: (spec: Spec) => void): Runc {
  const s = new Session(label);
  const r = new Runc(s, `cryo-${label}-count-${process.pid}`, extra);
  // The containers go before their bundle does.
  t.after(async () => {
    await r.cleanup();
    await s.cleanup();
  });
  return r;
}

test('runc: checkpoint and restore of a busybox container; it comes back in its own namespaces and rootfs, and counts on', { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc');
  const pid = await r.start(`cryo-c1-${process.pid}`);
  await counterAbove(r.counterFile, 3, 'the started container');

  const d = r.dirs();
  const cp = await r.checkpoint(`cryo-c1-${process.pid}`, d);
  assert.equal(cp.code, 0, cp.out + r.log(d, 'dump.log') + r.s.report());
  await r.gone(pid);
  const stopped = await counterStill(r.counterFile, 'after the checkpoint');
  // runc names /etc/criu/runc.conf as config_file, missing here: ignored, as CRIU does.
  assert.ok(r.log(d, 'dump.log').length > 0);

  const rs = await r.restore(`cryo-c1-${process.pid}`, d);
  assert.equal(rs.code, 0, rs.out + r.log(d, 'restore.log') + r.s.report());
  const rpid = await r.pidOf(`cryo-c1-${process.pid}`);
  // It goes on from where it was, not from the start.
  const first = readCounter(r.counterFile);
  assert.ok(first >= stopped, `the restored counter reads ${first}, below ${stopped} where it stopped`);
  await counterAbove(r.counterFile, stopped + 2, 'the restored container');
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
  checkCgroups(rpid, `cryo-c1-${process.pid}`);
  // Its mounts: the masked and read-only paths and the external binds are back.
  const mounts = fs.readFileSync(`/proc/${rpid}/mountinfo`, 'utf8');
  for (const m of [' /proc/sys ro,', ' /proc/keys ', ' /sys ro,', ' /dev/pts ', ' /sys/fs/cgroup/memory ro,']) {
    assert.ok(mounts.includes(m), `the restored container has no mount "${m.trim()}":\n${mounts}`);
  }
  assert.ok(fs.statSync(`/proc/${rpid}/root/dev/null`).isCharacterDevice(), "the container's /dev/null is not a device node");
});

test('runc: a container in a user namespace of its own (uidMappings/gidMappings: its root is host uid 100000) comes back in a new one with the same maps, as runc\'s sibling (rst_sibling), and counts on', { timeout: 120_000 }, async (t) => {
  const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
  const r = setup(t, 'runc-userns', (spec) => {
    spec.linux.namespaces.push({ type: 'user' });
    Object.assign(spec.linux, { uidMappings: map, gidMappings: map });
  });
  // The container's root (host uid 100000) owns its rootfs and walks to it.
  assert.equal(spawnSync('chown', ['-R', '100000:100000', r.rootfs]).status, 0);
  fs.chmodSync(r.s.dir, 0o711);
  const id = `cryo-cu-${process.pid}`;
  const pid = await r.start(id);
  await counterAbove(r.counterFile, 3, 'the started container');
  const maps = (p: number) => ['uid_map', 'gid_map'].map((f) => fs.readFileSync(`/proc/${p}/${f}`, 'utf8').trim().split(/\s+/).join(' '));
  assert.deepEqual(maps(pid), ['0 100000 65536', '0 100000 65536']);
  const rpid = await r.cycle(id, pid, r.dirs());
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
  assert.notEqual(nsOf(rpid, 'user'), nsOf('self', 'user'), 'the restored container is in the host\'s user namespace');
  assert.deepEqual(maps(rpid), ['0 100000 65536', '0 100000 65536'], 'the restored container has other maps');
  assert.equal(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${rpid}/status`, 'utf8'))?.[1], '100000');
  assert.equal(fs.statSync(r.counterFile).uid, 100000, 'the counter is not written as the container\'s root');
});

test('runc: a container joined to an external network namespace (a path in its spec, as CNI does): runc names it External net[INO] at checkpoint and hands it back with inherit_fd; the restored container is in that very namespace, its listener answering there', { timeout: 120_000 }, async (t) => {
  const netns = `cryo-runc-${process.pid}`;
  assert.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0);
  t.after(() => spawnSync('ip', ['netns', 'del', netns]));
  assert.equal(spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']).status, 0);
  const r = setup(t, 'runc-extnet', (spec) => {
    const net = spec.linux.namespaces.find((n) => n.type === 'network');
    assert.ok(net, 'runc spec has no network namespace');
    Object.assign(net, { path: `/run/netns/${netns}` });
    // The counter, and busybox's httpd answering on the namespace's loopback.
    spec.process.args = ['sh', '-c', `httpd -p 127.0.0.1:8088 -h /tmp; ${counterScript(`cryo-runc-extnet-count-${process.pid}`)}`];
  });
  const id = `cryo-cn-${process.pid}`;
  const pid = await r.start(id);
  await counterAbove(r.counterFile, 3, 'the started container');
  const ext = fs.statSync(`/run/netns/${netns}`).ino;
  assert.equal(fs.statSync(`/proc/${pid}/ns/net`).ino, ext);
  const d = r.dirs();
  const rpid = await r.cycle(id, pid, d, () => {
    // Only the key runc gave is dumped (CRIU's NetnsEntry ext_key), as Debian's crit reads it.
    const netnsImg = fs.readdirSync(d.images).find((n) => /^netns-\d+\.img$/.test(n));
    assert.ok(netnsImg, fs.readdirSync(d.images).join(' '));
    assert.deepEqual(critEntries(d.images, netnsImg).map((e) => e['ext_key']), ['extRootNetNS']);
  });
  assert.equal(fs.statSync(`/proc/${rpid}/ns/net`).ino, ext, 'the restored container is not in the external network namespace');
  const get = spawnSync('ip', ['netns', 'exec', netns, '/bin/busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:8088/${r.counter}`], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(get.status, 0, `the restored httpd does not answer in the namespace: ${get.stderr}`);
  assert.match(get.stdout, /^\d+\s*$/);
  // The lock the dump put into the namespace went with the restore.
  for (const argv of [['iptables-legacy-save'], ['nft', 'list', 'ruleset']]) {
    const rules = spawnSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8', timeout: 10_000 });
    assert.doesNotMatch(rules.stdout, /CRIU/, `${argv[0]} in the namespace after the restore:\n${rules.stdout}`);
  }
});

test('runc: a container with a cgroup namespace of its own comes back in a new one, rooted at its cgroups, and counts on', { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc-cgns', (spec) => spec.linux.namespaces.push({ type: 'cgroup' }));
  const id = `cryo-g1-${process.pid}`;
  const pid = await r.start(id);
  assert.notEqual(nsOf(pid, 'cgroup'), nsOf('self', 'cgroup'));
  await counterAbove(r.counterFile, 3, 'the started container');
  // Seen from its own cgroup namespace, the container's cgroups are the root.
  const inside = (p: number) => {
    const r = spawnSync('nsenter', ['-t', String(p), '-C', 'cat', `/proc/${p}/cgroup`], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n').filter((l) => !l.includes(':name=')).map((l) => l.split(':').slice(2).join(':'));
  };
  assert.deepEqual([...new Set(inside(pid))], ['/']);
  // Its cgroup file systems, mounted in that namespace: their roots, seen from here, are the container's groups.
  const cgroupMounts = (p: number) => fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8').split('\n')
    .map((l) => l.split(' ')).filter((f) => f[f.indexOf('-') + 1]?.startsWith('cgroup')).map((f) => `${f[4]} ${f[3]}`).sort();
  const before = cgroupMounts(pid);
  assert.ok(before.length > 0 && before.every((m) => m.endsWith(`/${id}`)), before.join('\n'));
  const rpid = await r.cycle(id, pid, r.dirs());
  assert.notEqual(nsOf(rpid, 'cgroup'), nsOf('self', 'cgroup'), "the restored container is in the host's cgroup namespace");
  assert.deepEqual([...new Set(inside(rpid))], ['/'], "the restored container's cgroups, as it sees them");
  assert.deepEqual(cgroupMounts(rpid), before, "the restored container's cgroup mounts");
  checkCgroups(rpid, id);
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
});

test('runc: checkpoint --leave-running, then restore under a new container id with --manage-cgroups-mode full', { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc-lr');
  const pid = await r.start(`cryo-a1-${process.pid}`);
  await counterAbove(r.counterFile, 3, 'the started container');
  const d = r.dirs();
  const cp = await r.checkpoint(`cryo-a1-${process.pid}`, d, ['--leave-running']);
  assert.equal(cp.code, 0, cp.out + r.log(d, 'dump.log') + r.s.report());
  const atDump = readCounter(r.counterFile);
  // Still running, as the same process.
  assert.equal(await r.pidOf(`cryo-a1-${process.pid}`), pid);
  await counterAbove(r.counterFile, atDump + 6, 'the container left running');

  const del = await r.runc(['delete', '-f', `cryo-a1-${process.pid}`]);
  assert.equal(del.code, 0, del.out);
  await r.gone(pid);
  // The file stays (the shell may have had it open at the dump): the restored one counts from below where this one got.
  // Had it the file open, the restore wants the size it had then (as CRIU): put back as a real migration's file system would be.
  const files = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(d.images, 'files.img')], { encoding: 'utf8' });
  assert.equal(files.status, 0, files.stderr);
  const held = (JSON.parse(files.stdout) as { entries: Array<{ reg?: { name: string; size?: number } }> }).entries
    .find((e) => e.reg?.name.endsWith(`/tmp/${r.counter}`) && e.reg.size !== undefined);
  if (held) fs.truncateSync(r.counterFile, held.reg!.size!);
  const final = held ? Infinity : readCounter(r.counterFile);

  const rs = await r.restore(`cryo-a2-${process.pid}`, d, ['--manage-cgroups-mode', 'full']);
  assert.equal(rs.code, 0, rs.out + r.log(d, 'restore.log') + r.s.report());
  const rpid = await r.pidOf(`cryo-a2-${process.pid}`);
  // The images' count, not the one the running container reached after the dump.
  const back = await until('the restored counter', () => {
    const v = readCounter(r.counterFile);
    return v < final ? v : undefined;
  });
  assert.ok(back <= atDump + 3, `the restored counter starts at ${back}, not near ${atDump} where it was dumped`);
  await counterAbove(r.counterFile, back + 2, 'the container restored as a2');
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
  checkCgroups(rpid, `cryo-a2-${process.pid}`);
  const st = await run('runc', ['--root', r.state, 'state', `cryo-a1-${process.pid}`]);
  assert.notEqual(st.code, 0, 'the old container a1 is back too');
});

test('runc: checkpoint --pre-dump, then checkpoint --parent-path: the dump keeps pages in the pre-dump, the restore reads them there', { timeout: 120_000 }, async (t) => {
  // A big shell variable: heap pages the loop never writes again, kept in the parent images.
  const r = setup(t, 'runc-pre', (spec) => {
    spec.process.args = ['sh', '-c', `X=$(seq 1 30000); ${spec.process.args[2]}`];
  });
  const id = `cryo-pd-${process.pid}`;
  const pid = await r.start(id);
  await counterAbove(r.counterFile, 3, 'the started container');
  const pre = r.dirs();
  const cp1 = await r.checkpoint(id, pre, ['--pre-dump']);
  assert.equal(cp1.code, 0, cp1.out + r.log(pre, 'dump.log') + r.s.report());
  // A pre-dump leaves it running, as the same process.
  assert.equal(await r.pidOf(id), pid);
  await counterAbove(r.counterFile, readCounter(r.counterFile) + 2, 'the container after the pre-dump');
  assert.ok(fs.readdirSync(pre.images).some((n) => /^pagemap-\d+\.img$/.test(n)), 'the pre-dump wrote no pagemap');
  const d = r.dirs();
  const cp = await r.checkpoint(id, d, ['--parent-path', path.relative(d.images, pre.images)]);
  assert.equal(cp.code, 0, cp.out + r.log(d, 'dump.log') + r.s.report());
  await r.gone(pid);
  assert.equal(fs.readlinkSync(path.join(d.images, 'parent')), path.relative(d.images, pre.images));
  // Some pages did not change since the pre-dump: only named in the dump (CRIU's crit reads PE_PARENT entries).
  let kept = 0;
  const lib = fs.existsSync('/work/criu/lib/pycriu') ? '/work/criu/lib' : '/usr/lib/python3/dist-packages';
  for (const n of fs.readdirSync(d.images).filter((x) => /^pagemap-\d+\.img$/.test(x))) {
    const py = `import sys, json; sys.path.insert(0, ${JSON.stringify(lib)}); from pycriu import images\nprint(json.dumps(images.load(open(sys.argv[1], 'rb'))['entries']))`;
    const c = spawnSync('/usr/bin/python3', ['-c', py, path.join(d.images, n)], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    const es = (JSON.parse(c.stdout) as Array<{ flags?: number; nr_pages?: number }>).slice(1);
    kept += es.filter((e) => ((e.flags ?? 0) & 1) !== 0 /* PE_PARENT */).reduce((x, e) => x + (e.nr_pages ?? 0), 0);
  }
  assert.ok(kept > 0, `the dump keeps no page in its parent:\n${r.log(d, 'dump.log').split('\n').filter((l) => /track|holder|parent|pages/.test(l)).join('\n')}\n${r.log(pre, 'dump.log')}`);
  const stopped = await counterStill(r.counterFile, 'after the checkpoint');
  const rs = await r.restore(id, d);
  assert.equal(rs.code, 0, rs.out + r.log(d, 'restore.log') + r.s.report());
  const rpid = await r.pidOf(id);
  await counterAbove(r.counterFile, stopped + 2, 'the container restored through its parent images');
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
});

test('runc: a checkpoint cryo refuses leaves the container running, with the reason in the dump.log runc names', { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc-refused');
  const pid = await r.start(`cryo-p1-${process.pid}`);
  await counterAbove(r.counterFile, 2, 'the started container');
  const d = r.dirs();
  const cp = await r.checkpoint(`cryo-p1-${process.pid}`, d, ['--page-server', '127.0.0.1:9']);
  assert.notEqual(cp.code, 0, cp.out);
  assert.match(cp.out, /dump\.log/, 'runc does not point at the log');
  assert.match(r.log(d, 'dump.log'), /^\(\d+\.\d+\) Error: RPC request: page server options are not supported yet$/m);
  assert.equal(await r.pidOf(`cryo-p1-${process.pid}`), pid);
  await counterAbove(r.counterFile, readCounter(r.counterFile), 'the container after the refused checkpoint');
});

test("runc: images that lack the container's uts namespace are refused at restore, which makes nothing (never the host's namespace), with the reason in restore.log", { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc-badimg');
  const id = `cryo-u1-${process.pid}`;
  const pid = await r.start(id);
  await counterAbove(r.counterFile, 2, 'the started container');
  const d = r.dirs();
  const cp = await r.checkpoint(id, d);
  assert.equal(cp.code, 0, cp.out + r.log(d, 'dump.log') + r.s.report());
  await r.gone(pid);
  const uts = fs.readdirSync(d.images).filter((n) => /^utsns-\d+\.img$/.test(n));
  assert.equal(uts.length, 1, `the checkpoint has no uts namespace image: ${fs.readdirSync(d.images).join(' ')}`);
  fs.rmSync(path.join(d.images, uts[0]!));
  // As counterStill reads it (-1: frozen between the shell's truncate and its write).
  const stopped = await counterStill(r.counterFile, 'after the checkpoint');
  const rs = await r.restore(id, d);
  assert.notEqual(rs.code, 0, rs.out);
  assert.match(r.log(d, 'restore.log'), new RegExp(`^\\(\\d+\\.\\d+\\) Error: bad image: ${uts[0]!.replace('.', '\\.')}: `, 'm'));
  const st = await run('runc', ['--root', r.state, 'state', id]);
  assert.notEqual(st.code, 0, `runc has a container ${id} after the refused restore`);
  assert.equal(await counterStill(r.counterFile, 'after the refused restore'), stopped);
});

/** What the console socket wrote: the masters that came, and the ticks after the last one. */
function consoleAfterLastMaster(out: string): { masters: number; ticks: number[] } {
  const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
  const at = text.lastIndexOf('MASTER ');
  const masters = (text.match(/^MASTER \d+$/gm) ?? []).length;
  const ticks = [...text.slice(at < 0 ? 0 : at).matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
  return { masters, ticks };
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test("runc: a container with a terminal (--console-socket): its console comes back as a new pty of the container's devpts, whose master runc hands to the console socket", { timeout: 120_000 }, async (t) => {
  const r = setup(t, 'runc-tty', (spec) => {
    spec.process.terminal = true;
    spec.process.args = ['sh', '-c', `${counterScript(`cryo-runc-tty-count-${process.pid}`).replace('sleep 0.2', 'echo tick $i; sleep 0.2')}`];
  });
  const sock = path.join(r.s.dir, 'console.sock');
  const out = path.join(r.s.dir, 'console.out');
  const recv = spawn(python3(), [path.join(ROOT, 'test/e2e/console-socket.py'), sock, out], { stdio: 'ignore' });
  t.after(() => { recv.kill('SIGKILL'); });
  await until('the console socket', () => (fs.existsSync(sock) ? true : undefined));
  const id = `cryo-t1-${process.pid}`;
  const pid = await r.start(id, ['--console-socket', sock]);
  await until('3 ticks on the console', () => (consoleAfterLastMaster(out).ticks.length >= 3 ? true : undefined));

  const d = r.dirs();
  const cp = await r.checkpoint(id, d);
  assert.equal(cp.code, 0, cp.out + r.log(d, 'dump.log') + r.s.report());
  await r.gone(pid);
  const before = consoleAfterLastMaster(out).ticks.at(-1)!;

  const rs = await r.restore(id, d, ['--console-socket', sock]);
  assert.equal(rs.code, 0, rs.out + r.log(d, 'restore.log') + r.s.report());
  const rpid = await r.pidOf(id);
  // A second master came, and the container's output goes on through it.
  const after = await until('ticks through the new master', () => {
    const c = consoleAfterLastMaster(out);
    return c.masters === 2 && c.ticks.length >= 3 ? c.ticks : undefined;
  });
  assert.ok(after[0]! >= before, `the restored container counts from ${after[0]}, before ${before} where it was checkpointed`);
  checkContained(rpid, HOSTNAME, r.counter, r.counterFile);
  // Its terminal is pty 0 of its own devpts (the one on its /dev/pts), its controlling terminal.
  const devpts = /^(\d+) \S+ \S+ \/ \/dev\/pts /m.exec(fs.readFileSync(`/proc/${rpid}/mountinfo`, 'utf8'))?.[1];
  for (const fd of [0, 1, 2]) {
    assert.equal(fs.readlinkSync(`/proc/${rpid}/fd/${fd}`), '/dev/pts/0');
    assert.match(fs.readFileSync(`/proc/${rpid}/fdinfo/${fd}`, 'utf8'), new RegExp(`^mnt_id:\\s+${devpts}$`, 'm'), `fd ${fd} is not on the container's devpts (mount ${devpts})`);
  }
  const ttyNr = Number(fs.readFileSync(`/proc/${rpid}/stat`, 'utf8').split(') ')[1]!.split(' ')[4]);
  assert.equal(ttyNr, (136 << 8) | 0, 'the restored init has not /dev/pts/0 as its controlling terminal');
});
