// LXC 5 (Debian's lxc) with cryo as the criu it finds first on PATH: a
// privileged container of LXC's busybox template (no network: lxc.net.0.type =
// empty), whose init is a shell counting into a file of its /tmp, is
// checkpointed with `lxc-checkpoint -s` and restored with `lxc-checkpoint -r`,
// then checkpointed again left running, stopped, and restored from those
// images. The counter goes on in the container's own mount, uts, ipc, net, pid
// and cgroup namespaces and in its rootfs. LXC runs criu with options of its
// own (--ext-mount-map auto, --enable-external-*, --enable-fs, --cgroup-root,
// --freeze-cgroup, --external tty[..] and --inherit-fd for the console the
// counter holds, and --lsm-profile
// apparmor:... from Debian's default lxc.apparmor.profile, on a kernel without
// AppArmor). Everything LXC keeps is in the session dir (lxcpath -P); its
// cgroups go below this process's own (lxc.cgroup.relative); its lock dir in
// /run/lxc is removed afterwards. Also the template's own init (busybox init,
// rcS, syslogd bound to the container's /dev/log), checked by lxc-attach
// logger before and after. And a veth network on a bridge, all in a network
// namespace standing for the host (LXC and cryo run there, with a sysfs of it).
import { test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session, reapUntilGone, exists } from './harness.js';
import { CRYO_BIN, checkContained, counterAbove, counterScript, counterStill, readCounter, run } from './containers.js';

const CRIU = process.env['CRYO'] ?? CRYO_BIN;

class Lxc {
  readonly lxcpath: string;
  readonly env: NodeJS.ProcessEnv;
  /** Below this process's cgroup in every hierarchy (lxc.cgroup.relative). */
  readonly cgroupDir = `cryo-lxc-${process.pid}`;
  /** Container inits and LXC monitors seen: orphans of ours once they end (proc.ts makes this process a subreaper). */
  private readonly pids = new Set<number>();
  private seq = 0;

  /** A command every lxc-* runs under (nsenter into a network namespace standing for the host), or none. */
  wrap: string[] = [];

  constructor(readonly s: Session, readonly name: string, readonly counter: string) {
    this.lxcpath = s.mkdir('lxc');
    // LXC runs "criu" from PATH: cryo's, first.
    const bin = s.mkdir('bin');
    fs.symlinkSync(CRIU, path.join(bin, 'criu'));
    this.env = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` };
  }

  get rootfs(): string {
    return path.join(this.lxcpath, this.name, 'rootfs');
  }

  /** The counter file, from the host. */
  get counterFile(): string {
    return path.join(this.rootfs, 'tmp', this.counter);
  }

  /**
   * lxc-CMD ARGS -n NAME -P LXCPATH, with LXC's own log in the session dir.
   * quiet: stdio /dev/null (a monitor it leaves behind keeps it).
   */
  async lxc(cmd: string, args: string[], quiet = false): Promise<{ code: number | null; out: string }> {
    const log = path.join(this.s.dir, `lxc-${++this.seq}-${cmd}.log`);
    const r = await this.run(`lxc-${cmd}`, [...args, '-n', this.name, '-P', this.lxcpath, '-l', 'INFO', '-o', log], quiet, 90_000);
    const logText = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => / (ERROR|WARN) /.test(l)).join('\n') : '';
    const out = `$ lxc-${cmd} ${args.join(' ')}\n${r.stdout}${r.stderr}${logText ? `${logText}\n` : ''}`;
    this.s.note(out.trimEnd());
    return { code: r.code, out };
  }

  async ok(cmd: string, args: string[], quiet = false, logs: string[] = []): Promise<void> {
    const r = await this.lxc(cmd, args, quiet);
    const more = logs.map((f) => `--- ${f}:\n${fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').slice(-30).join('\n') : '(missing)'}\n`).join('');
    assert.equal(r.code, 0, r.out + more + this.s.report());
  }

  /** An lxc-* command (under `wrap`), with this container's PATH. */
  run(cmd: string, args: string[], quiet = false, timeoutMs = 90_000): ReturnType<typeof run> {
    const [c, ...pre] = [...this.wrap, cmd];
    return run(c!, [...pre, ...args], quiet, timeoutMs, this.env);
  }

  async state(): Promise<string> {
    const r = await this.run('lxc-info', ['-n', this.name, '-P', this.lxcpath, '-sH']);
    return r.stdout.trim();
  }

  /** The running container's init, as the host numbers it; its monitor is its parent. */
  async pid(): Promise<number> {
    assert.equal(await this.state(), 'RUNNING', `container ${this.name} is not running`);
    const r = await this.run('lxc-info', ['-n', this.name, '-P', this.lxcpath, '-pH']);
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0, `lxc-info -p: ${r.stdout}${r.stderr}`);
    this.pids.add(pid);
    const monitor = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    if (monitor > 1) this.pids.add(monitor);
    return pid;
  }

  /** Wait for every init and monitor seen to be gone (reaped when they are ours). */
  async reap(): Promise<void> {
    for (const p of this.pids) {
      if (exists(p)) await reapUntilGone(p, 15_000);
      this.pids.delete(p);
    }
  }

  /** A busybox container from LXC's template, with this test's settings (and `more` lines of config). */
  async create(more: string[] = [], realInit = false): Promise<void> {
    const conf = path.join(this.s.dir, 'lxc.conf');
    // An id map is the template's business too: it makes the rootfs owned by the mapped ids.
    const idmap = more.filter((l) => l.startsWith('lxc.idmap'));
    more = more.filter((l) => !idmap.includes(l));
    fs.writeFileSync(conf, ['lxc.net.0.type = empty', ...idmap, ''].join('\n'));
    // The container's root (a mapped uid) walks to its rootfs through the session dir.
    if (idmap.length) fs.chmodSync(this.s.dir, 0o711);
    await this.ok('create', ['-t', 'busybox', '-f', conf]);
    const file = path.join(this.lxcpath, this.name, 'config');
    let config = fs.readFileSync(file, 'utf8');
    // A network of the test's own instead of none.
    if (more.some((l) => l.startsWith('lxc.net.0.type'))) config = config.replace(/^lxc\.net\.0\.type = empty\n/m, '');
    // LXC 5.0.2's monitor of a restored container has no tty array, and the first
    // lxc-info makes it crash on a NULL one (lxc_terminal_free) when lxc.tty.max > 0.
    config = config.replace(/^lxc\.tty\.max = \d+$/m, 'lxc.tty.max = 0');
    // The counter holds the container's console (a pty of the host's that LXC names --external tty[..] and gives back with --inherit-fd).
    fs.writeFileSync(path.join(this.rootfs, 'cryo-counter.sh'), `exec 3<>/dev/console\n${counterScript(this.counter)}\n`);
    if (realInit) {
      // No getty on tty1: there is none (lxc.tty.max = 0).
      const inittab = path.join(this.rootfs, 'etc/inittab');
      fs.writeFileSync(inittab, fs.readFileSync(inittab, 'utf8').replace(/^tty1::.*\n/m, ''));
    }
    config += [
      ...(realInit ? [] : ['lxc.init.cmd = /bin/sh /cryo-counter.sh']),
      // Debian's default (/etc/lxc/default.conf): LXC asks the restore for --lsm-profile apparmor:generated.
      'lxc.apparmor.profile = generated',
      'lxc.cgroup.relative = 1',
      `lxc.cgroup.dir.monitor = ${this.cgroupDir}/monitor`,
      `lxc.cgroup.dir.monitor.pivot = ${this.cgroupDir}/pivot`,
      `lxc.cgroup.dir.container = ${this.cgroupDir}/payload`,
      ...more,
      '',
    ].join('\n');
    fs.writeFileSync(file, config);
  }

  async checkpoint(dir: string, stop: boolean): Promise<void> {
    await this.ok('checkpoint', [...(stop ? ['-s'] : []), '-v', '-D', dir], false, [path.join(dir, 'dump.log')]);
  }

  async restore(dir: string): Promise<number> {
    // Its monitor stays, holding stdio.
    await this.ok('checkpoint', ['-r', '-v', '-D', dir], true, [path.join(dir, 'restore.log')]);
    return this.pid();
  }

  async cleanup(): Promise<void> {
    if (fs.existsSync(path.join(this.lxcpath, this.name))) await this.lxc('stop', ['-k'], true);
    await this.reap().catch((e: Error) => console.error(`lxc cleanup: ${e.message}`));
    // Its cgroups, below this process's own in each hierarchy, deepest first.
    const own = new Set(fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean).map((l) => l.split(':').slice(2).join(':')));
    for (const h of fs.readdirSync('/sys/fs/cgroup')) {
      for (const o of own) {
        const dir = path.join('/sys/fs/cgroup', h, o, this.cgroupDir);
        if (fs.existsSync(dir)) spawnSync('find', [dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
      }
    }
    // Its lock dir, /run/lxc/lock/LXCPATH, and the parents it made, as long as they are empty.
    const top = this.s.dir.split('/').filter(Boolean);
    fs.rmSync(path.join('/run/lxc/lock', ...top), { recursive: true, force: true });
    for (let i = top.length - 1; i >= -1; i--) {
      try {
        fs.rmdirSync(i < 0 ? '/run/lxc' : path.join('/run/lxc/lock', ...top.slice(0, i)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') break;
      }
    }
  }
}

/** Whether an LSM of this kernel labels tasks (AppArmor, SELinux): /proc/self/attr/current reads. */
function lsmLabels(): boolean {
  try {
    fs.readFileSync('/proc/self/attr/current');
    return true;
  } catch {
    return false;
  }
}

const nsOf = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

/** The restored container is LXC's: in its own cgroup namespace, its tasks in the cgroup LXC made for it. */
function checkLxcContainer(l: Lxc, pid: number): void {
  checkContained(pid, l.name, l.counter, l.counterFile);
  // Its fd 3 is the console of the container as restored (the pty LXC made for it, bound on its /dev/console).
  const fd3 = fs.statSync(`/proc/${pid}/fd/3`);
  const consoleDev = fs.statSync(`/proc/${pid}/root/dev/console`);
  assert.ok(fd3.isCharacterDevice() && fd3.rdev === consoleDev.rdev, `fd 3 of the restored container (rdev ${fd3.rdev}) is not its /dev/console (rdev ${consoleDev.rdev})`);
  assert.notEqual(nsOf(pid, 'cgroup'), nsOf('self', 'cgroup'), `the restored container (pid ${pid}) is in the host's cgroup namespace`);
  // The memory controller's group (cgroup v1), or the unified one.
  const groups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  const memory = (/^\d+:memory:(.*)$/m.exec(groups) ?? /^0::(.*)$/m.exec(groups))?.[1];
  assert.ok(memory?.endsWith(`/${l.cgroupDir}/payload`), `the restored container is in cgroup ${memory}, not in LXC's ${l.cgroupDir}/payload`);
}

async function setup(t: TestContext, more: string[] = [], realInit = false): Promise<Lxc> {
  const s = new Session('lxc');
  const l = new Lxc(s, `cryo-lxc-${process.pid}`, `cryo-lxc-count-${process.pid}`);
  t.after(async () => {
    await l.cleanup();
    await s.cleanup();
  });
  await l.create(more, realInit);
  return l;
}

test('lxc-checkpoint: a busybox container checkpointed with -s and restored with -r, then checkpointed left running, stopped and restored again; the counter goes on in the container', { timeout: 240_000 }, async (t) => {
  const l = await setup(t);
  await l.ok('start', ['-d'], true);
  const pid = await l.pid();
  await counterAbove(l.counterFile, 3, 'the started container');

  // Checkpointed and stopped, then restored.
  const dir1 = l.s.mkdir('checkpoint-stop');
  await l.checkpoint(dir1, true);
  await l.reap();
  assert.ok(!exists(pid), `the init of the container checkpointed with -s (pid ${pid}) still runs`);
  assert.equal(await l.state(), 'STOPPED', 'the container checkpointed with -s still runs');
  const stopped = await counterStill(l.counterFile, 'the container checkpointed with -s');
  const rpid = await l.restore(dir1);
  assert.ok(readCounter(l.counterFile) >= stopped, 'the restored counter went back');
  await counterAbove(l.counterFile, stopped + 2, 'the restored container');
  checkLxcContainer(l, rpid);
  // LXC asked for an AppArmor profile this kernel cannot give (or cryo refused it, and the restore failed above).
  const restoreLog = fs.readFileSync(path.join(dir1, 'restore.log'), 'utf8');
  if (!lsmLabels()) {
    assert.match(restoreLog, /--lsm-profile apparmor:generated: this kernel has no apparmor; the tasks had no LSM confinement/);
  }

  // Checkpointed left running: the same container goes on.
  const dir2 = l.s.mkdir('checkpoint-running');
  await l.checkpoint(dir2, false);
  assert.equal(await l.pid(), rpid, 'the container checkpointed without -s is not the one that ran');
  const atDump = readCounter(l.counterFile);
  await counterAbove(l.counterFile, atDump + 2, 'the container left running');
  await l.ok('stop', ['-k'], true);
  await l.reap();
  assert.equal(await l.state(), 'STOPPED');
  const stale = readCounter(l.counterFile);

  // Those images restored: the counter goes on (from where it was dumped, so past what the stopped one wrote later).
  const ipid = await l.restore(dir2);
  await counterAbove(l.counterFile, stale + 2, 'the container restored from the images taken while it ran');
  checkLxcContainer(l, ipid);
});

test('lxc-checkpoint: an unprivileged container (lxc.idmap: its root is host uid 100000 in a user namespace of its own) checkpointed with -s and restored with -r; the counter goes on, in the same id map', { timeout: 240_000 }, async (t) => {
  const l = await setup(t, ['lxc.idmap = u 0 100000 65536', 'lxc.idmap = g 0 100000 65536']);
  await l.ok('start', ['-d'], true);
  const pid = await l.pid();
  await counterAbove(l.counterFile, 3, 'the started container');
  const maps = (p: number) => ['uid_map', 'gid_map'].map((f) => fs.readFileSync(`/proc/${p}/${f}`, 'utf8').trim().split(/\s+/).join(' '));
  assert.deepEqual(maps(pid), ['0 100000 65536', '0 100000 65536']);
  assert.equal(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1], '100000');
  const dir = l.s.mkdir('checkpoint-userns');
  await l.checkpoint(dir, true);
  await l.reap();
  const stopped = await counterStill(l.counterFile, 'the unprivileged container checkpointed with -s');
  const rpid = await l.restore(dir);
  await counterAbove(l.counterFile, stopped + 2, 'the restored unprivileged container');
  checkLxcContainer(l, rpid);
  assert.notEqual(nsOf(rpid, 'user'), nsOf('self', 'user'), 'the restored container is in the host\'s user namespace');
  assert.deepEqual(maps(rpid), ['0 100000 65536', '0 100000 65536'], 'the restored container has another id map');
  assert.equal(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${rpid}/status`, 'utf8'))?.[1], '100000', 'the restored init is not host uid 100000');
  // The counter's file is written as the container's root: host uid 100000.
  assert.equal(fs.statSync(l.counterFile).uid, 100000);
});

test('lxc-checkpoint: a container with a mount cryo cannot dump (hugetlbfs, which LXC allows with --enable-fs) fails in one line of dump.log and runs on untouched', { timeout: 120_000 }, async (t) => {
  const l = await setup(t, ['lxc.mount.entry = none dev/hugepages hugetlbfs rw,create=dir 0 0']);
  await l.ok('start', ['-d'], true);
  const pid = await l.pid();
  await counterAbove(l.counterFile, 3, 'the started container');
  const dir = l.s.mkdir('checkpoint-refused');
  const r = await l.lxc('checkpoint', ['-s', '-v', '-D', dir]);
  assert.notEqual(r.code, 0, `lxc-checkpoint of a container with a hugetlbfs mount succeeded\n${r.out}`);
  const errors = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8').split('\n').filter((line) => /Error/.test(line));
  assert.equal(errors.length, 1, `dump.log has ${errors.length} error lines:\n${errors.join('\n')}`);
  assert.match(errors[0]!, /Error: task \d+ \(sh\): mount \d+ at \/dev\/hugepages \(hugetlbfs\) is a file system cryo does not dump \(--enable-fs hugetlbfs is not supported yet\)/);
  assert.ok(!fs.existsSync(path.join(dir, 'inventory.img')), 'the refused dump left an inventory.img');
  // The container as it was: the same init, its counter moving.
  assert.equal(await l.pid(), pid, 'the container is not the one that ran before the refused dump');
  // Thawed: LXC had cryo freeze its cgroup (--freeze-cgroup).
  await counterAbove(l.counterFile, readCounter(l.counterFile) + 2, 'the container after the refused dump');
});

/** The commands of the container's processes, from the host (every process whose root is the container's rootfs). */
function commsIn(l: Lxc): string[] {
  const root = fs.statSync(l.rootfs);
  const out: string[] = [];
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const st = fs.statSync(`/proc/${p}/root/`);
      if (st.ino === root.ino && st.dev === root.dev) out.push(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '));
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out.sort();
}

test("lxc-checkpoint: the busybox template's own init (busybox init, syslogd on the container's /dev/log, a shell asking on the console) checkpointed with -s and restored; the restored syslogd logs what is sent to /dev/log inside the container", { timeout: 240_000 }, async (t) => {
  const l = await setup(t, [], true);
  await l.ok('start', ['-d'], true);
  const pid = await l.pid();
  const cmdline = (p: number) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
  const initCmd = cmdline(pid);
  const messages = path.join(l.rootfs, 'var/log/messages');
  const logged = (tag: string) => fs.existsSync(messages) && fs.readFileSync(messages, 'utf8').includes(tag);
  const log = async (tag: string, what: string) => {
    const r = await run('lxc-attach', ['-n', l.name, '-P', l.lxcpath, '--', '/bin/logger', '-t', 'cryo', tag], true, 30_000, l.env);
    assert.equal(r.code, 0, `lxc-attach -- logger: ${r.stdout}${r.stderr}`);
    const end = Date.now() + 10_000;
    while (!logged(tag)) {
      assert.ok(Date.now() < end, `${what}: "${tag}" did not reach ${messages}:\n${fs.existsSync(messages) ? fs.readFileSync(messages, 'utf8') : '(none)'}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await log(`before-${process.pid}`, 'the started container');
  const before = commsIn(l);
  assert.ok(before.includes('/bin/syslogd'), `no syslogd in the container: ${before.join(', ')}`);

  const dir = l.s.mkdir('checkpoint-init');
  await l.checkpoint(dir, true);
  await l.reap();
  assert.equal(await l.state(), 'STOPPED', 'the container checkpointed with -s still runs');
  assert.deepEqual(commsIn(l), [], 'processes of the container run after the checkpoint -s');
  const rpid = await l.restore(dir);
  assert.deepEqual(commsIn(l), before, 'the restored container runs other processes');
  // A new pid namespace: another pid on the host, 1 inside.
  assert.equal(/^NSpid:.*\s(\d+)$/m.exec(fs.readFileSync(`/proc/${rpid}/status`, 'utf8'))?.[1], '1', 'the restored init is not pid 1 of its namespace');
  assert.equal(cmdline(rpid), initCmd, "the restored container's init runs another command");
  assert.notEqual(nsOf(rpid, 'mnt'), nsOf('self', 'mnt'), "the restored container is in the host's mount namespace");
  await log(`after-${process.pid}`, 'the restored container');
});

/** An ICMP echo to `addr` answered within 2 s (python3, a raw socket: no ping here). */
const PING = `import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
p = struct.pack('!BBHHH', 8, 0, 0, 0x1234, 1) + b'cryo'
s.sendto(p[:2] + struct.pack('!H', csum(p)) + p[4:], (sys.argv[1], 0))
end = time.time() + 2
while time.time() < end:
    d, a = s.recvfrom(1500)
    if a[0] == sys.argv[1] and d[20] == 0:
        sys.exit(0)
sys.exit(1)
`;

test('lxc-checkpoint: a container with a veth network on a bridge (in a network namespace standing for the host) checkpointed with -s and restored with -r: LXC names a new host end (--external veth[eth0]:vethXXXX@bridge), the container is on the bridge again with its address and answers', { timeout: 240_000 }, async (t) => {
  const l = await setup(t, ['lxc.net.0.type = veth', 'lxc.net.0.link = cryobr0', 'lxc.net.0.flags = up', 'lxc.net.0.name = eth0', 'lxc.net.0.ipv4.address = 10.88.0.2/24']);
  const outer = await l.s.startCommand('outer', ['unshare', '-n', '/bin/sh', '-c',
    'ip link set lo up && ip link add cryobr0 type bridge && ip addr add 10.88.0.1/24 dev cryobr0 && ip link set cryobr0 up && echo READY && exec sleep 1000000']);
  const enter = ['nsenter', `--net=/proc/${outer.pid}/ns/net`];
  // LXC finds the bridge in /sys/class/net: a sysfs of that namespace over the host's, in a mount namespace of the command's own.
  const sys = l.s.mkdir('sys');
  l.wrap = [...enter, 'unshare', '-m', '--propagation', 'slave', '/bin/sh', '-c',
    `mount -t sysfs sysfs ${sys} && mount --bind ${sys}/class/net /sys/class/net && mount --bind ${sys}/devices/virtual/net /sys/devices/virtual/net && exec "$@"`, 'sh'];
  const inOuter = (argv: string[]) => spawnSync(enter[0]!, [...enter.slice(1), ...argv], { encoding: 'utf8', timeout: 20_000 });
  const answers = () => inOuter(['/usr/bin/python3', '-c', PING, '10.88.0.2']).status === 0;
  const bridged = () => inOuter(['ip', '-o', 'link', 'show', 'master', 'cryobr0']).stdout.split('\n').filter(Boolean).map((line) => line.split(':')[1]!.trim().split('@')[0]!);
  await l.ok('start', ['-d'], true);
  const pid = await l.pid();
  await counterAbove(l.counterFile, 3, 'the started container');
  const end = Date.now() + 15_000;
  while (!answers()) {
    assert.ok(Date.now() < end, 'the started container does not answer on 10.88.0.2');
    await new Promise((r) => setTimeout(r, 200));
  }
  const portsBefore = bridged();
  assert.equal(portsBefore.length, 1, `the bridge's ports: ${portsBefore.join(', ')}`);

  const dir = l.s.mkdir('checkpoint-veth');
  await l.checkpoint(dir, true);
  await l.reap();
  assert.ok(!exists(pid), 'the checkpointed container still runs');
  assert.deepEqual(bridged(), [], 'the old host end is still on the bridge');
  assert.ok(!answers(), 'something answers on 10.88.0.2 while the container is down');
  const stopped = await counterStill(l.counterFile, 'the container checkpointed with -s');

  const rpid = await l.restore(dir);
  // The host end LXC named (--external veth[eth0]:vethXXXXXX@cryobr0), on the bridge.
  const made = /made veth eth0 \(index \d+\), its peer (veth\w+) in cryo's network namespace/.exec(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8'));
  assert.ok(made, 'restore.log does not say which host end was made');
  assert.deepEqual(bridged(), [made[1]], "the bridge's ports after the restore");
  assert.notEqual(made[1], portsBefore[0], 'the restored host end has the old name');
  assert.ok(answers(), 'the restored container does not answer on 10.88.0.2');
  const eth0 = spawnSync('nsenter', ['-t', String(rpid), '-n', 'ip', '-4', '-o', 'addr', 'show', 'eth0'], { encoding: 'utf8', timeout: 20_000 }).stdout;
  assert.match(eth0, /inet 10\.88\.0\.2\/24/, eth0);
  assert.notEqual(nsOf(rpid, 'net'), fs.readlinkSync(`/proc/${outer.pid}/ns/net`), "the restored container is in the bridge's network namespace");
  assert.notEqual(nsOf(rpid, 'net'), nsOf('self', 'net'), "the restored container is in the host's network namespace");
  await counterAbove(l.counterFile, stopped + 2, 'the restored container');
  checkLxcContainer(l, rpid);
});
