// Whole command lines: what they set, what CRIU refuses, and where paths end up.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseCommandLine, type ParseEnv, type ParseOutcome } from '../../src/options/parse.js';
import { defaultOptions } from '../../src/options/index.js';
import { CPU_CAP_ALL, CPU_CAP_DEFAULT, CPU_CAP_FPU, CPU_CAP_IMAGE, CPU_CAP_INS } from '../../src/options/values.js';

const penv = (env: Record<string, string> = {}): ParseEnv => ({
  env,
  cwd: '/cwd',
  progName: 'criu',
  readFile: () => undefined,
});
const parse = (argv: string[], env: Record<string, string> = {}) => parseCommandLine(argv, penv(env));
const ok = (argv: string[], env: Record<string, string> = {}) => {
  const r = parse(argv, env);
  if (r.kind !== 'run') assert.fail(`${argv.join(' ')}: ${JSON.stringify(r)}`);
  return r;
};
const opts = (argv: string[]) => ok(argv).opts;
const error = (argv: string[]): Extract<ParseOutcome, { kind: 'error' }> => {
  const r = parse(argv);
  if (r.kind !== 'error') assert.fail(`${argv.join(' ')}: expected an error, got ${JSON.stringify(r)}`);
  return r;
};

describe('container engine command lines', () => {
  it('parses a runc/podman-style dump', () => {
    const r = ok([
      'dump', '--tcp-established', '--ext-unix-sk', '--shell-job', '--file-locks', '--manage-cgroups=soft',
      '--tcp-close', '--evasive-devices', '--link-remap', '--log-file', 'dump.log', '-v4',
      '--images-dir', '/var/lib/ctr/cp', '--work-dir', '/run/ctr/work', '--root', '/run/ctr/rootfs',
      '--external', 'mnt[/etc/hosts]:/etc/hosts', '--external', 'net[4026531992]:extRootNetNS',
      '--lsm-profile', 'apparmor:ctr-default', '--leave-running', '-t', '4242',
    ]);
    assert.equal(r.action, 'dump');
    const o = r.opts;
    assert.equal(o.tree, 4242);
    assert.equal(o.tcpEstablished && o.extUnixSk && o.shellJob && o.fileLocks, true);
    assert.equal(o.tcpClose && o.evasiveDevices && o.linkRemap && o.leaveRunning, true);
    assert.equal(o.manageCgroups, 'soft');
    assert.equal(o.logLevel, 4);
    assert.equal(o.imagesDir, '/var/lib/ctr/cp');
    assert.equal(o.workDir, '/run/ctr/work');
    assert.equal(o.logFile, '/run/ctr/work/dump.log');
    assert.equal(o.root, '/run/ctr/rootfs');
    assert.deepEqual(o.external, ['mnt[/etc/hosts]:/etc/hosts', 'net[4026531992]:extRootNetNS']);
    assert.equal(o.lsmProfile, 'apparmor:ctr-default');
  });

  it('parses a runc/podman-style restore with options after the action and -d', () => {
    const r = ok([
      'restore', '-d', '-S', '--tcp-established', '--ext-unix-sk', '--shell-job', '--file-locks',
      '--manage-cgroups=soft', '--evasive-devices', '--link-remap', '-o', 'restore.log', '-v4',
      '-D', '/var/lib/ctr/cp', '-W', '/run/ctr/work', '--root', '/run/ctr/rootfs',
      '--external', 'mnt[/etc/hosts]:/host/hosts', '--inherit-fd', 'fd[3]:pipe:[12345]',
      '--pidfile', 'pid', '--lsm-profile', 'selinux:system_u:system_r:container_t:s0',
      '--cgroup-root', '/ctr/123', '--cgroup-root', 'memory:/ctr/mem',
    ]);
    assert.equal(r.action, 'restore');
    const o = r.opts;
    assert.equal(o.restoreDetached && o.restoreSibling, true);
    assert.deepEqual(o.inheritFd, [{ fd: 3, key: 'pipe:[12345]' }]);
    assert.equal(o.pidfile, '/run/ctr/work/pid');
    assert.deepEqual(o.cgroupRoot, [{ path: '/ctr/123' }, { ctrl: 'memory', path: '/ctr/mem' }]);
  });

  it('parses LXC\'s dump and restore lines', () => {
    const d = opts([
      'dump', '--tcp-established', '--file-locks', '--link-remap', '--manage-cgroups=full',
      '--ext-mount-map', 'auto', '--enable-external-sharing', '--enable-external-masters',
      '--enable-fs', 'hugetlbfs', '--enable-fs', 'tracefs', '-D', '/ck', '-o', '/ck/dump.log',
      '--cgroup-root', 'cpu,cpuacct:/lxc/c1', '-vvvvvv', '--ext-mount-map', '/mnt/x:mnt/x',
      '-t', '100', '--skip-in-flight', '--freeze-cgroup', '/sys/fs/cgroup/freezer/lxc/c1',
      '--ext-mount-map', '/dev/console:console', '--external', 'tty[88:4]', '--force-irmap',
      '--ghost-limit', '1024', '--leave-running',
    ]);
    assert.equal(d.autoExtMnt, true);
    assert.equal(d.manageCgroups, 'full');
    assert.equal(d.logLevel, 2 + 6);
    assert.deepEqual(d.enableFs, ['hugetlbfs', 'tracefs']);
    assert.deepEqual(d.external, ['mnt[/mnt/x]:mnt/x', 'mnt[/dev/console]:console', 'tty[88:4]']);
    assert.equal(d.ghostLimit, 1024);
    const r = opts([
      'restore', '--root', '/var/lib/lxc/c1/rootfs', '--restore-detached', '--restore-sibling',
      '--inherit-fd', 'fd[5]:tty[88:4]', '--ext-mount-map', 'console:/dev/pts/3',
      '--lsm-profile', 'apparmor:lxc-default', '--veth-pair', 'eth0=vethABC@lxcbr0', '-D', '/ck',
    ]);
    assert.deepEqual(r.external, ['mnt[console]:/dev/pts/3', 'veth[eth0]:vethABC@lxcbr0']);
  });
});

describe('option values', () => {
  it('keeps the defaults when nothing is given', () => {
    const o = opts(['check']);
    const d = defaultOptions();
    assert.equal(o.logLevel, 2);
    assert.equal(o.cpuCap, CPU_CAP_DEFAULT);
    assert.equal(o.manageCgroups, 'ignore');
    assert.equal(o.ghostLimit, 1 << 20);
    assert.equal(o.timeout, 10);
    assert.equal(o.ghostFiemap, true);
    assert.equal(o.statusFd, -1);
    assert.equal(o.psSocket, -1);
    assert.equal(o.imagesDir, '/cwd');
    assert.equal(o.workDir, '/cwd');
    assert.equal(d.imagesDir, '.');
    assert.equal(d.workDir, undefined);
  });
  it('follows CRIU\'s -v arithmetic', () => {
    assert.equal(opts(['check', '-v']).logLevel, 3);
    assert.equal(opts(['check', '-vvv']).logLevel, 5);
    assert.equal(opts(['check', '-v0']).logLevel, 0);
    assert.equal(opts(['check', '--verbosity=1']).logLevel, 1);
    assert.equal(opts(['check', '--verbosity=vv']).logLevel, 5);
    assert.equal(opts(['check', '-v', '-v']).logLevel, 4);
    assert.equal(opts(['-v1', 'check', '-v']).logLevel, 2);
  });
  it('-s and -R: the last one wins', () => {
    assert.deepEqual([opts(['check', '-s', '-R']).leaveRunning, opts(['check', '-s', '-R']).leaveStopped], [true, false]);
    assert.deepEqual([opts(['check', '-R', '-s']).leaveRunning, opts(['check', '-R', '-s']).leaveStopped], [false, true]);
  });
  it('takes a pid as a whole decimal number and nothing else', () => {
    assert.equal(opts(['dump', '-t42']).tree, 42);
    assert.equal(opts(['dump', '--tree', '007']).tree, 7);
    for (const bad of ['12abc', '1.5', '1e3', ' 12', '12 ', '+12', '0x10', '', '4194305', '99999999999']) {
      assert.equal(error(['dump', '-t', bad]).line, `Error: invalid argument for -t: ${bad}`, bad);
    }
  });
  it('parses numbers with atoi semantics and rejects what CRIU rejects', () => {
    assert.equal(error(['dump', '-t', '0']).line, 'Error: invalid argument for -t: 0');
    assert.equal(error(['dump', '--tree=-3']).line, 'Error: invalid argument for --tree: -3');
    assert.equal(error(['dump', '--tre', 'x']).line, 'Error: invalid argument for --tree: x');
    assert.equal(opts(['check', '--port', '8080']).port, 8080);
    assert.equal(error(['check', '--port', '65536']).line, 'Error: invalid argument for --port: 65536');
    assert.equal(opts(['check', '--ghost-limit', '2M']).ghostLimit, 2 << 20);
    assert.equal(opts(['check', '--ghost-limit', '3K']).ghostLimit, 3 << 10);
    assert.equal(opts(['check', '--status-fd', ' 7']).statusFd, 7);
    assert.equal(error(['check', '--status-fd', 'x']).exitCode, 1);
  });
  it('parses --cpu-cap like CRIU', () => {
    assert.equal(opts(['check', '--cpu-cap']).cpuCap, CPU_CAP_ALL | CPU_CAP_IMAGE | CPU_CAP_DEFAULT);
    assert.equal(opts(['check', '--cpu-cap=none']).cpuCap, 0);
    assert.equal(opts(['check', '--cpu-cap=fpu']).cpuCap, CPU_CAP_DEFAULT | CPU_CAP_IMAGE);
    assert.equal(opts(['check', '--cpu-cap=^ins']).cpuCap, CPU_CAP_FPU | CPU_CAP_IMAGE);
    // The value is optional, so it must be attached: a separate word is an operand.
    assert.match(error(['check', '--cpu-cap', 'cpu']).line, /excessive parameter for command check/);
    const e = error(['check', '--cpu-cap=gpu']);
    assert.equal(e.usage, true);
    void CPU_CAP_INS;
  });
  it('parses --manage-cgroups, --network-lock, --pre-dump-mode, --file-validation', () => {
    assert.equal(opts(['check', '--manage-cgroups']).manageCgroups, 'soft');
    assert.equal(opts(['check', '--manage-cgroups=ignore']).manageCgroups, 'ignore');
    assert.equal(error(['check', '--manage-cgroups=bogus']).usage, true);
    assert.equal(opts(['check', '--network-lock', 'none']).networkLock, 'skip');
    assert.equal(opts(['check', '--network-lock', 'nftables']).networkLock, 'nftables');
    assert.equal(error(['check', '--network-lock', 'x']).usage, false);
    assert.equal(opts(['check', '--pre-dump-mode', 'read']).preDumpMode, 'read');
    assert.equal(opts(['check', '--file-validation', 'filesize']).fileValidation, 'filesize');
    assert.equal(error(['check', '--file-validation', 'x']).usage, true);
  });
  it('rewrites the old external forms as CRIU does', () => {
    assert.deepEqual(opts(['check', '-x12,34']).external, ['unix[12]', 'unix[34]']);
    assert.equal(opts(['check', '-x']).extUnixSk, true);
    assert.equal(error(['check', '--ext-unix-sk=12x']).exitCode, 1);
    assert.equal(error(['check', '-M', 'nocolon']).line, 'Error: invalid argument for -M: nocolon');
    assert.equal(error(['check', '--veth-pair', 'a']).line, 'Error: invalid argument for --veth-pair: a');
    const o = opts(['check', '--external', 'mnt[]:m']);
    assert.deepEqual([o.autoExtMnt, o.enableExternalMasters, o.external], [true, true, []]);
    assert.equal(error(['check', '--external', 'mnt[]:x']).exitCode, 1);
  });
  it('parses --join-ns, --inherit-fd, --empty-ns, --feature', () => {
    assert.deepEqual(opts(['restore', '-J', 'net:/proc/1/ns/net']).joinNs, [{ ns: 'net', nsFile: '/proc/1/ns/net', extraOpt: undefined }]);
    assert.deepEqual(opts(['restore', '--join-ns', 'user:42,0,0']).joinNs, [{ ns: 'user', nsFile: '42', extraOpt: '0,0' }]);
    assert.equal(error(['restore', '-J', 'net']).line, 'Error: invalid argument for -J: net');
    assert.match(error(['restore', '-J', 'pid:1']).line, /pid namespace/);
    assert.match(error(['restore', '-J', 'user:1,x']).line, /extra_opts/);
    assert.match(error(['restore', '--inherit-fd', 'fd3:x']).line, /inherit fd/);
    assert.deepEqual(opts(['restore', '--inherit-fd', 'fd[ 4]:file[1:2]']).inheritFd, [{ fd: 4, key: 'file[1:2]' }]);
    assert.equal(opts(['restore', '--empty-ns', 'net']).emptyNs, 0x40000000);
    assert.equal(error(['restore', '--empty-ns', 'ipc']).exitCode, 1);
    assert.equal(opts(['check', '--feature', 'timens']).feature, 'timens');
    assert.match(error(['check', '--feature', 'nope']).line, /unknown feature nope/);
    assert.match(error(['check', '--ms']).line, /deprecated/);
  });
  it('--all turns on --extra and --experimental', () => {
    const o = opts(['check', '--all']);
    assert.equal(o.extra && o.experimental, true);
  });
});

describe('actions and their checks', () => {
  it('requires a command, and a known one', () => {
    assert.deepEqual(error(['-v4']), { kind: 'error', line: 'Error: command is required', usage: true, exitCode: 1 });
    assert.equal(error(['frob']).line, 'Error: unknown command: frob');
    assert.equal(error(['-v', '4', 'dump']).line, 'Error: unknown command: 4');
    assert.equal(parse([]).kind, 'usage');
  });
  it('knows every CRIU action', () => {
    for (const a of ['dump', 'pre-dump']) assert.equal(ok([a, '-t', '1']).action, a);
    for (const a of ['restore', 'lazy-pages', 'check', 'page-server', 'service', 'dedup', 'exec', 'show']) {
      assert.equal(ok([a]).action, a);
    }
    assert.equal(ok(['cpuinfo', 'dump']).action, 'cpuinfo-dump');
    assert.equal(ok(['cpuinfo', 'check']).action, 'cpuinfo-check');
    assert.match(error(['cpuinfo']).line, /requires an action/);
    assert.match(error(['cpuinfo', 'x']).line, /unknown cpuinfo sub-command: x/);
    assert.match(error(['cpuinfo', 'dump', 'x']).line, /excessive parameter for command cpuinfo/);
    assert.equal(ok(['swrk', '3']).swrkFd, '3');
    assert.deepEqual(error(['swrk']), { kind: 'error', line: 'Usage: criu swrk <fd>', usage: false, exitCode: 1 });
  });
  it('applies CRIU\'s per-action rules', () => {
    assert.deepEqual(error(['dump']), { kind: 'error', line: 'Error: pid not specified', usage: false, exitCode: 1 });
    assert.equal(error(['pre-dump']).line, 'Error: pid not specified');
    assert.match(error(['pre-dump', '-t', '1', '--lazy-pages']).line, /lazy-pages/);
    assert.match(error(['restore', '-S']).line, /--restore-sibling only makes sense with --restore-detached/);
    assert.match(error(['dump', '-t', '1', 'x', 'y']).line, /excessive parameters for command dump/);
    assert.match(error(['check', '--stream']).line, /--stream cannot be used with the check command/);
    assert.equal(ok(['dump', '-t', '1', '--stream']).opts.stream, true);
    assert.match(error(['dump', '-t', '1', '--inherit-fd', 'fd[1]:x']).line, /only valid on restore/);
    assert.match(error(['dump', '-t', '1', '--mntns-compat-mode']).line, /only valid on restore/);
    assert.match(error(['page-server', '-d', '--ps-socket', '1']).line, /daemon mode/);
  });
  it('takes the --exec-cmd command after the action, even after --', () => {
    assert.deepEqual(ok(['restore', '--exec-cmd', '--', 'sh', '-c', 'echo hi']).opts.execCmd, ['sh', '-c', 'echo hi']);
    assert.match(error(['restore', '--exec-cmd']).line, /requires a command/);
    assert.match(error(['dump', '-t', '1', '--exec-cmd', 'x']).line, /restore command only/);
    assert.match(error(['restore', '-d', '--exec-cmd', 'x']).line, /cannot be used together/);
  });
  it('leaves warnings for the log', () => {
    const r = ok(['restore', '-t', '5', '--network-lock', 'iptables']);
    assert.deepEqual(r.notes.filter((n) => n.level === 'warn').length, 2);
    assert.equal(ok(['check'], { CRIU_DEPRECATED: '1' }).opts.deprecated, true);
  });
  it('answers --help wherever it is, and -V in order', () => {
    assert.equal(parse(['dump', '--bogus', '--help']).kind, 'help');
    assert.equal(parse(['-dh']).kind, 'help');
    assert.equal(parse(['--vers']).kind, 'version');
    assert.equal(parse(['-V', '--bogus']).kind, 'version');
    assert.equal(parse(['--bogus', '-V']).kind, 'error');
  });
});

describe('paths', () => {
  it('puts -o under -W, else under -D, both relative to the cwd', () => {
    assert.equal(opts(['check', '-D', 'img', '-o', 'x.log']).logFile, '/cwd/img/x.log');
    assert.equal(opts(['check', '-D', 'img', '-W', '/work', '-o', 'x.log']).logFile, '/work/x.log');
    assert.equal(opts(['check', '-D', 'img', '-W', 'w', '-o', 'sub/x.log']).logFile, '/cwd/w/sub/x.log');
    assert.equal(opts(['check', '-o', '/abs/x.log', '-W', '/w']).logFile, '/abs/x.log');
    assert.equal(opts(['check', '-o', '-']).logFile, '-');
    assert.equal(opts(['check', '-o', 'x.log']).logFile, '/cwd/x.log');
  });
  it('resolves the pidfile against the work dir', () => {
    assert.equal(opts(['restore', '-d', '-D', '/img', '--pidfile', 'p']).pidfile, '/img/p');
  });
});
