// What cryo promises, walked whole: every option of the option table and every
// feature `check --feature` and the RPC FEATURE_CHECK can name is classified here,
// by hand. An option is carried out (and a test file names it), refused (cryo is
// run with it: one line "... is not supported yet", exit 1, no task touched), or
// accepted as moot (the table says why). A feature is a yes only where the kernel
// has it and cryo does it (and a test file names it); the others are a no that
// says what cryo does not do. A new option or feature that is not classified
// here fails this test.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cryo } from '../../src/index.js';
import { probeFeatures } from '../../src/check.js';
import { CHECK_FEATURES, OPTION_TABLE } from '../../src/options/table.js';
import { ROOT, Session, runningFree, tracerPid } from './harness.js';

type OptionClass =
  /** Carried out; this test file (under test/) names it. */
  | { test: string }
  /** Refused: the arguments after the action; `action` default dump; `named` default --LONG. */
  | { refused: string[]; action?: 'dump' | 'restore'; named?: string }
  /** Accepted, moot in cryo, for this reason (the table's `inert` says it too). */
  | { harmless: string }
  /** CRIU itself refuses it. */
  | { retired: string[] };

const OPTIONS: Record<string, OptionClass> = {
  'tree': { test: 'e2e/errors.test.ts' },
  'leave-stopped': { test: 'e2e/leave-stopped.test.ts' },
  'leave-running': { test: 'e2e/leave-running.test.ts' },
  'restore-detached': { test: 'e2e/errors.test.ts' },
  'restore-sibling': { test: 'e2e/restore-attached.test.ts' },
  'daemon': { test: 'e2e/rpc.test.ts' },
  'images-dir': { test: 'e2e/errors.test.ts' },
  'work-dir': { test: 'e2e/irmap.test.ts' },
  'log-file': { test: 'e2e/errors.test.ts' },
  'join-ns': { test: 'e2e/joinns.test.ts' },
  'root': { test: 'e2e/mntns.test.ts' },
  'ext-unix-sk': { test: 'e2e/unix.test.ts' },
  'help': { test: 'unit/cli-main.test.ts' },
  'tcp-established': { test: 'e2e/inet.test.ts' },
  'close': { test: 'e2e/options.test.ts' },
  'log-pid': { harmless: 'logging only; cryo warns that it writes one log (options.test.ts)' },
  'version': { test: 'unit/cli-main.test.ts' },
  'evasive-devices': { test: 'e2e/chardev.test.ts' },
  'pidfile': { test: 'e2e/errors.test.ts' },
  'veth-pair': { test: 'e2e/netdev.test.ts' },
  'action-script': { test: 'e2e/pidns.test.ts' },
  'link-remap': { test: 'e2e/linkremap.test.ts' },
  'shell-job': { test: 'e2e/shell-job.test.ts' },
  'file-locks': { test: 'e2e/locks.test.ts' },
  'page-server': { refused: ['--page-server'] },
  'address': { test: 'e2e/rpc.test.ts' },
  'port': { harmless: 'for the page server only, which is refused' },
  'prev-images-dir': { test: 'e2e/predump.test.ts' },
  'ms': { retired: ['check', '--ms'] },
  'track-mem': { test: 'e2e/predump.test.ts' },
  'auto-dedup': { refused: ['--auto-dedup'] },
  'libdir': { refused: ['--libdir', '/usr/lib/criu'] },
  'cpu-cap': { refused: ['--cpu-cap=fpu,ins'] }, // only "none" asks for what cryo does (nothing)
  'force-irmap': { test: 'e2e/irmap.test.ts' },
  'ext-mount-map': { test: 'e2e/lxc.test.ts' }, // KEY:VAL in mntns.test.ts; auto as LXC gives it
  'exec-cmd': { test: 'e2e/rpc.test.ts' },
  'manage-cgroups': { test: 'e2e/cgroups.test.ts' },
  'cgroup-root': { test: 'e2e/cgroups.test.ts' },
  'inherit-fd': { test: 'e2e/inherit-fd.test.ts' },
  'feature': { test: 'e2e/check.test.ts' },
  'skip-mnt': { refused: ['--skip-mnt', '/mnt'] },
  'enable-fs': { harmless: 'a permission: a mount of a file system cryo does not carry is refused at the dump, naming it (lxc.test.ts)' },
  'enable-external-sharing': { harmless: 'a permission: a mount that is a peer of mounts outside is refused at the dump, naming it' },
  'enable-external-masters': { test: 'e2e/mntns.test.ts' },
  'freeze-cgroup': { test: 'e2e/freeze-cgroup.test.ts' },
  'ghost-limit': { test: 'e2e/ghost.test.ts' },
  'irmap-scan-path': { test: 'e2e/irmap.test.ts' },
  'lsm-profile': { test: 'e2e/lxc.test.ts' }, // only for an LSM the kernel lacks, for tasks that had none
  'timeout': { test: 'e2e/vfork.test.ts' },
  // tty[], unix[], net[], mnt[], veth[], macvlan[] and netdev[] are carried out (inherit-fd.test.ts, unix.test.ts, netns.test.ts, mntns.test.ts, netdev.test.ts); the other kinds are refused.
  'external': { refused: ['--external', 'dev[sdb]:b'], named: '--external dev[sdb]:b' },
  'empty-ns': { test: 'e2e/netns.test.ts' },
  'lazy-pages': { refused: ['--lazy-pages'] },
  'extra': { test: 'e2e/check.test.ts' },
  'experimental': { test: 'e2e/check.test.ts' },
  'all': { test: 'e2e/check.test.ts' },
  'cgroup-props': { test: 'unit/cgroup.test.ts' }, // the same tables as --cgroup-props-file (cgroups.test.ts)
  'cgroup-props-file': { test: 'e2e/cgroups.test.ts' },
  'cgroup-dump-controller': { test: 'e2e/cgroups.test.ts' },
  'skip-in-flight': { test: 'e2e/netlock.test.ts' },
  'deprecated': { test: 'e2e/fanotify.test.ts' },
  'display-stats': { test: 'e2e/options.test.ts' },
  'weak-sysctls': { harmless: 'skips a net sysctl of the images that this kernel lacks (netns-sysctl.ts); every one CRIU saves is in this kernel' },
  'status-fd': { test: 'e2e/options.test.ts' },
  'tcp-close': { test: 'e2e/netlock.test.ts' },
  'verbosity': { test: 'e2e/errors.test.ts' },
  'ps-socket': { harmless: 'for the page server only, which is refused' },
  'stream': { refused: ['--stream'] },
  'config': { test: 'unit/cli-config.test.ts' },
  'no-default-config': { test: 'unit/cli-config.test.ts' },
  'tls-cacert': { harmless: 'with --tls only, which is refused' },
  'tls-cacrl': { harmless: 'with --tls only, which is refused' },
  'tls-cert': { harmless: 'with --tls only, which is refused' },
  'tls-key': { harmless: 'with --tls only, which is refused' },
  'tls': { refused: ['--tls'] },
  'tls-no-cn-verify': { harmless: 'with --tls only, which is refused' },
  'cgroup-yard': { test: 'e2e/cgroups.test.ts' },
  'pre-dump-mode': { harmless: 'cryo reads memory the same way in both modes' },
  'file-validation': { refused: ['--file-validation', 'filesize'] },
  'skip-file-rwx-check': { harmless: 'cryo makes no rwx check to skip' },
  'lsm-mount-context': { refused: ['--lsm-mount-context', 'system_u:object_r:container_file_t:s0'] },
  'network-lock': { test: 'e2e/netlock.test.ts' },
  'mntns-compat-mode': { harmless: "which of CRIU's mount engines restores: cryo's one makes the same mounts (zdtm pty-console passes with it)" },
  'unprivileged': { test: 'unit/cli-main.test.ts' },
  'ghost-fiemap': { harmless: 'the layout of a ghost file in the image only' },
  'allow-uprobes': { refused: ['--allow-uprobes'] },
};

/** Where a test file names an option: --long, or its short form in quotes ('-d', '-v4'). */
function names(text: string, long: string, short: string | undefined): boolean {
  if (new RegExp(`--${long}(?![a-z-])`).test(text)) return true;
  return short !== undefined && new RegExp(`['"]-${short}(?![a-zA-Z])`).test(text);
}

test('every option of the table is classified, and each class holds what it says', async (t) => {
  const longs = OPTION_TABLE.map((o) => o.long);
  assert.deepEqual(longs.filter((l) => !(l in OPTIONS)), [], 'options of the table not classified here');
  assert.deepEqual(Object.keys(OPTIONS).filter((l) => !longs.includes(l)), [], 'classified here but not in the table');

  const s = Session.for(t, 'support-options');
  const target = await s.start('pipes');
  const before = fs.readFileSync(`/proc/${target.pid}/stat`, 'utf8').split(' ').slice(0, 2).join(' ');
  for (const spec of OPTION_TABLE) {
    const c = OPTIONS[spec.long]!;
    const what = `--${spec.long}: ${JSON.stringify(c)}`;
    if ('test' in c) {
      assert.equal(spec.unsupported, undefined, `${what}: the table refuses it`);
      assert.equal(spec.inert, undefined, `${what}: the table calls it moot`);
      const file = path.join(ROOT, 'test', c.test);
      assert.ok(fs.existsSync(file), `${what}: no such test file`);
      assert.ok(names(fs.readFileSync(file, 'utf8'), spec.long, spec.short), `${what}: the test file does not name it`);
    } else if ('harmless' in c) {
      assert.equal(spec.unsupported, undefined, `${what}: the table refuses it`);
      assert.ok(spec.inert && c.harmless, `${what}: the table gives no reason`);
    } else if ('retired' in c) {
      const r = await s.cryo(c.retired);
      assert.deepEqual([r.code, r.stdout, r.stderr.split('\n').length], [1, '', 2], `${what}${s.report()}`);
    } else {
      assert.ok(spec.unsupported, `${what}: the table does not refuse it`);
      const images = s.mkdir();
      const argv = c.action === 'restore'
        ? ['restore', '-D', images, ...c.refused]
        : ['dump', '-t', String(target.pid), '-D', images, ...c.refused];
      const r = await s.cryo(argv);
      assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', `Error: ${c.named ?? `--${spec.long}`} is not supported yet\n`], `${what}${s.report()}`);
      assert.deepEqual(fs.readdirSync(images), [], `${what}: something was written`);
      assert.ok(runningFree(target.pid) && tracerPid(target.pid) === 0, `${what}: the target was touched${s.report()}`);
    }
  }
  assert.equal(fs.readFileSync(`/proc/${target.pid}/stat`, 'utf8').split(' ').slice(0, 2).join(' '), before);
  await s.expectPass(target);
});

type FeatureClass =
  /** The kernel has it here and cryo does it: this test file names the feature. */
  | { test: string }
  /** cryo does not do it (whatever the kernel has): the answer is no, saying what cryo does not do. */
  | { no: true };

const NO = { no: true } as const;
const FEATURES: Record<string, FeatureClass> = {
  'mnt_id': { test: 'e2e/fanotify.test.ts' },
  'mem_dirty_track': { test: 'e2e/predump.test.ts' },
  'aio_remap': { test: 'e2e/mm.test.ts' },
  'timerfd': { test: 'e2e/fdkinds.test.ts' },
  'tun': { test: 'e2e/netdev.test.ts' },
  'tun_ns': { test: 'e2e/netdev.test.ts' },
  'userns': { test: 'e2e/userns.test.ts' },
  'fdinfo_lock': { test: 'e2e/locks.test.ts' },
  'seccomp_suspend': { test: 'e2e/seccomp.test.ts' },
  'seccomp_filters': { test: 'e2e/seccomp.test.ts' },
  'loginuid': { test: 'e2e/tasks.test.ts' },
  'cgroupns': { test: 'e2e/cgroupns.test.ts' },
  'autofs': NO,
  'tcp_half_closed': { test: 'e2e/tcphalf.test.ts' },
  'compat_cr': NO,
  'uffd': NO,
  'uffd-noncoop': NO,
  'can_map_vdso': NO,
  'sk_ns': { test: 'e2e/netns.test.ts' },
  'sk_unix_file': { test: 'e2e/unix.test.ts' },
  'net_diag_raw': { test: 'e2e/rawsk.test.ts' },
  'nsid': { test: 'e2e/netns.test.ts' },
  'link_nsid': { test: 'e2e/netns.test.ts' },
  'kcmp_epoll': { test: 'e2e/epoll.test.ts' },
  'timens': { test: 'e2e/timens.test.ts' },
  'external_net_ns': { test: 'e2e/netns.test.ts' },
  'clone3_set_tid': { test: 'e2e/tree.test.ts' },
  'newifindex': { test: 'e2e/netdev.test.ts' },
  'nftables': { test: 'e2e/netns.test.ts' },
  'has_ipt_legacy': { test: 'e2e/netns.test.ts' },
  'pidfd_store': NO,
  'ns_pid': { test: 'e2e/pidns.test.ts' },
  'apparmor_stacking': NO,
  'network_lock_nftables': { test: 'e2e/netlock.test.ts' },
  'sockopt_buf_lock': { test: 'e2e/unix.test.ts' },
  'memfd_hugetlb': { test: 'e2e/errors.test.ts' },
  'move_mount_set_group': { test: 'e2e/mntns.test.ts' },
  'openat2': { test: 'e2e/mntns.test.ts' },
  'get_rseq_conf': { test: 'e2e/misc.test.ts' },
  'ipv6_freebind': { test: 'e2e/inet.test.ts' },
  'pagemap_scan': { test: 'e2e/memory.test.ts' },
  'timer_cr_ids': { test: 'e2e/timers.test.ts' },
  'overlayfs_maps': NO,
  'breakpoints': NO,
  'pagemap_scan_guard_pages': { test: 'e2e/mm.test.ts' },
};

/** FEATURE_CHECK's fields and the row of `cryo check` that answers each. */
const RPC_FEATURES = { memTrack: 'mem_dirty_track', lazyPages: 'lazy_pages', pidfdStore: 'pidfd_store' } as const;

test('every feature check --feature and FEATURE_CHECK can name is classified; yes only where cryo does it', async (t) => {
  assert.deepEqual(CHECK_FEATURES.filter((n) => !(n in FEATURES)), [], 'features of --feature not classified here');
  assert.deepEqual(Object.keys(FEATURES).filter((n) => !CHECK_FEATURES.includes(n)), [], 'classified here but not a --feature name');
  const bin = path.join(ROOT, 'bin/cryo');
  for (const name of CHECK_FEATURES) {
    const c = FEATURES[name]!;
    const r = spawnSync(bin, ['check', '--no-default-config', '--feature', name], { encoding: 'utf8', cwd: '/' });
    if ('no' in c) {
      assert.deepEqual([r.status, r.stdout], [1, ''], name);
      assert.match(r.stderr, new RegExp(`^Error: ${name} is not supported: cryo [^\\n]+\\n$`), name);
    } else {
      const file = path.join(ROOT, 'test', c.test);
      assert.ok(fs.readFileSync(file, 'utf8').includes(name), `${name}: ${c.test} does not name it`);
      // Yes here, where the kernel has all of them; elsewhere a no would name the kernel's lack.
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, `${name} is supported\n`, ''], name);
    }
  }

  const s = Session.for(t, 'support-features');
  const asked = await new Cryo().featureCheck({ memTrack: true, lazyPages: true, pidfdStore: true });
  const rows = new Map(probeFeatures(Object.values(RPC_FEATURES)).map((r) => [r.name, r]));
  for (const [field, row] of Object.entries(RPC_FEATURES)) {
    assert.ok(rows.has(row), `${field}: no row ${row}`);
    assert.equal(asked[field as keyof typeof RPC_FEATURES], rows.get(row)!.ok, `${field}${s.report()}`);
    // Memory tracking is done (objects/track.ts); lazy restore and pidfd_store_sk are not yet.
    assert.equal(rows.get(row)!.implemented, row === 'mem_dirty_track', row);
  }
  assert.deepEqual({ ...RPC_FEATURES }, { memTrack: 'mem_dirty_track', lazyPages: 'lazy_pages', pidfdStore: 'pidfd_store' });
});
