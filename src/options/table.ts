// The one option table: every option CRIU 4.2 accepts, in the order of
// CRIU's long option array (the order matters for getopt's ambiguity
// messages). Each entry says how it is spelled, how it takes its argument,
// what it sets in Options, its default, its help line and its criu_opts
// field. The CLI parser, config files, --help and the RPC layer all read it.
import type { Options } from './index.js';
import {
  applyCpuCap,
  cAtoi,
  cScanInt,
  CPU_CAP_DEFAULT,
  parseAutoExtMount,
  parseCgroupRoot,
  parseInheritFd,
  parseJoinNs,
  parsePid,
  parseSize,
  parseUnixInodes,
  parseLsmProfile,
} from './values.js';

export type ArgKind = 'none' | 'required' | 'optional';

/**
 * What the option holds: a boolean, a number, a string, a repeatable list, a
 * string from a fixed set, or an action of the parser itself (help, version).
 */
export type ValueType = 'bool' | 'int' | 'string' | 'list' | 'enum' | 'action';

/** The sections of --help, in CRIU's order. */
export type HelpGroup =
  | 'generic'
  | 'external'
  | 'special'
  | 'check'
  | 'logging'
  | 'memory'
  | 'server'
  | 'config'
  | 'other';

/**
 * What applying an option can ask of the parser: nothing (done), stop and
 * print help or the version, or fail. `badArg` is CRIU's "invalid argument for
 * -X: VALUE"; `usage` errors are followed by the usage hint.
 */
export type ApplyResult =
  | undefined
  | { readonly stop: 'help' | 'version' }
  | { readonly badArg: true }
  | { readonly error: string; readonly usage?: boolean };

/** Sets the option into `o`. `on` is false for the --no-X form. */
export type Applier = (o: Options, arg: string | undefined, on: boolean) => ApplyResult;

export interface OptionSpec {
  /** Long name, without dashes. */
  readonly long: string;
  /** Short letter, if any. */
  readonly short?: string;
  readonly arg: ArgKind;
  readonly type: ValueType;
  /** CRIU declares it with BOOL_OPT: `--no-<long>` exists too. */
  readonly negatable?: boolean;
  /**
   * getopt stores it straight into a variable (BOOL_OPT and a few plain
   * flags); two such names aimed at one variable with one value are the same
   * option to getopt's ambiguity check.
   */
  readonly storesFlag?: boolean;
  /** The Options field it sets (the main one when it sets several). */
  readonly prop?: keyof Options;
  /** Default of `prop`; declared once, on the option that owns the field. */
  readonly default?: unknown;
  /** Accepted values of an enum. */
  readonly values?: readonly string[];
  /** Matching criu_opts field in rpc.proto ("ps.port" for a nested one). */
  readonly rpc?: string;
  /** Argument name shown in --help. */
  readonly metavar?: string;
  readonly help: string;
  readonly group: HelpGroup;
  /** Left out of --help (deprecated or internal). */
  readonly hidden?: boolean;
  /** Custom semantics; without it the type decides. */
  readonly apply?: Applier;
  /** cryo does not do what it asks yet: refused before any task is touched (./support.ts). */
  readonly unsupported?: Unsupported;
  /**
   * Accepted, and moot in cryo for this reason (what it acts on is refused where it
   * is met, or cryo has nothing for it to change); never a promise in the log.
   */
  readonly inert?: string;
}

/**
 * When an unsupported option is refused: given for one of `actions` (default:
 * every action but check, which only probes the kernel), and in effect.
 */
export interface Unsupported {
  readonly actions?: readonly string[];
  /**
   * What is in effect, named for the message ("--external veth[eth0]:x"), or
   * undefined when nothing is. Default: the option's field is not its default.
   */
  readonly named?: (o: Options) => string | undefined;
  /** Some of its values are carried out (its help says which). */
  readonly partial?: true;
}

/** Kernel features `criu check --feature` knows (CRIU 4.2). */
export const CHECK_FEATURES: readonly string[] = [
  'mnt_id', 'mem_dirty_track', 'aio_remap', 'timerfd', 'tun', 'tun_ns', 'userns',
  'fdinfo_lock', 'seccomp_suspend', 'seccomp_filters', 'loginuid', 'cgroupns', 'autofs',
  'tcp_half_closed', 'compat_cr', 'uffd', 'uffd-noncoop', 'can_map_vdso', 'sk_ns',
  'sk_unix_file', 'net_diag_raw', 'nsid', 'link_nsid', 'kcmp_epoll', 'timens',
  'external_net_ns', 'clone3_set_tid', 'newifindex', 'nftables', 'has_ipt_legacy',
  'pidfd_store', 'ns_pid', 'apparmor_stacking', 'network_lock_nftables',
  'sockopt_buf_lock', 'memfd_hugetlb', 'move_mount_set_group', 'openat2', 'get_rseq_conf',
  'ipv6_freebind', 'pagemap_scan', 'timer_cr_ids', 'overlayfs_maps', 'breakpoints',
  'pagemap_scan_guard_pages',
];

/** CLONE_NEWNET, the only namespace --empty-ns accepts. */
export const CLONE_NEWNET = 0x40000000;

type Spec = Omit<OptionSpec, 'long' | 'arg' | 'type' | 'help' | 'group'>;
type Group = HelpGroup;

// Small constructors so that each option reads as one line or two.
const bool = (long: string, group: Group, help: string, more: Spec = {}): OptionSpec => ({
  long, arg: 'none', type: 'bool', negatable: true, storesFlag: true, default: false, group, help, ...more,
});
const str = (long: string, group: Group, metavar: string, help: string, more: Spec = {}): OptionSpec => ({
  long, arg: 'required', type: 'string', group, metavar, help, ...more,
});
const list = (long: string, group: Group, metavar: string, help: string, more: Spec = {}): OptionSpec => ({
  long, arg: 'required', type: 'list', default: [], group, metavar, help, ...more,
});

// Why an accepted option is moot in cryo (see `inert`).
const PAGE_SERVER_ONLY = 'used by the page server only: --page-server and the page-server and lazy-pages actions are not supported yet';
const TLS_ONLY = 'used with --tls only, which is not supported yet';

/** Refused whenever given (and in effect), for every action but check. */
const REFUSED: Unsupported = {};
/** The --external kinds cryo acts on (on dump; restore takes them back with --inherit-fd). */
const EXTERNAL_KINDS = ['tty', 'unix', 'net', 'mnt', 'veth', 'macvlan', 'netdev'];

const fail = (error: string): ApplyResult => ({ error });
const usageFail = (error: string): ApplyResult => ({ error, usage: true });

export const OPTION_TABLE: readonly OptionSpec[] = [
  {
    long: 'tree', short: 't', arg: 'required', type: 'int', prop: 'tree', rpc: 'pid',
    metavar: 'PID', group: 'generic', help: 'checkpoint the process tree rooted at PID',
    apply: (o, arg) => {
      const pid = parsePid(arg!);
      if (pid === undefined) return { badArg: true };
      o.tree = pid;
      return undefined;
    },
  },
  {
    long: 'leave-stopped', short: 's', arg: 'none', type: 'bool', prop: 'leaveStopped', default: false,
    rpc: 'leave_stopped', group: 'generic', help: 'leave the tasks stopped (SIGSTOP, detached) after a dump or restore',
    apply: (o) => {
      o.leaveStopped = true;
      o.leaveRunning = false;
      return undefined;
    },
  },
  {
    long: 'leave-running', short: 'R', arg: 'none', type: 'bool', prop: 'leaveRunning', default: false,
    rpc: 'leave_running', group: 'generic', help: 'let the tasks run on after a dump',
    apply: (o) => {
      o.leaveRunning = true;
      o.leaveStopped = false;
      return undefined;
    },
  },
  bool('restore-detached', 'generic', 'do not wait for the restored tree; exit once it runs', {
    short: 'd', prop: 'restoreDetached',
  }),
  bool('restore-sibling', 'generic', 'restore the root task as a sibling of cryo (needs -d)', {
    short: 'S', prop: 'restoreSibling', rpc: 'rst_sibling',
  }),
  bool('daemon', 'server', 'detach and run in the background once the socket is ready', {
    prop: 'restoreDetached', default: undefined,
  }),
  str('images-dir', 'generic', 'DIR', 'directory holding the image files (default: current)', {
    short: 'D', prop: 'imagesDir', default: '.', rpc: 'images_dir',
  }),
  str('work-dir', 'generic', 'DIR', 'directory for logs, pidfile and stats (default: the images dir)', {
    short: 'W', prop: 'workDir', rpc: 'work_dir_fd',
  }),
  str('log-file', 'logging', 'FILE', 'write the log to FILE, relative to the work dir ("-" is stdout)', {
    short: 'o', prop: 'logFile', rpc: 'log_file',
  }),
  list('join-ns', 'special', 'NS:{PID|FILE}[,OPTS]', 'restore into an existing namespace (user:PID,UID,GID for userns)', {
    short: 'J', prop: 'joinNs', rpc: 'join_ns',
    apply: (o, arg) => {
      const r = parseJoinNs(arg!);
      if (r === 'bad-arg') return { badArg: true };
      if ('error' in r) return fail(r.error);
      o.joinNs.push(r);
      return undefined;
    },
  }),
  str('root', 'special', 'PATH', 'root of the file system of the tasks (inside their mount namespace)', {
    short: 'r', prop: 'root', rpc: 'root',
  }),
  {
    long: 'ext-unix-sk', short: 'x', arg: 'optional', type: 'bool', prop: 'extUnixSk', default: false,
    rpc: 'ext_unix_sk', metavar: 'INO[,INO...]', group: 'external',
    help: 'allow unix sockets connected outside the tree (optionally only these inodes)',
    apply: (o, arg) => {
      if (arg !== undefined) {
        const ext = parseUnixInodes(arg);
        if (ext === undefined) return fail(`cannot parse unix socket inode(s) from ${arg}`);
        o.external.push(...ext);
      }
      o.extUnixSk = true;
      return undefined;
    },
  },
  {
    long: 'help', short: 'h', arg: 'none', type: 'action', group: 'other', help: 'print this help and exit',
    apply: () => ({ stop: 'help' }),
  },
  bool('tcp-established', 'special', 'dump and restore established TCP connections', {
    prop: 'tcpEstablished', rpc: 'tcp_established',
  }),
  {
    long: 'close', arg: 'required', type: 'list', prop: 'close', default: [], metavar: 'FD', group: 'other',
    help: 'close descriptor FD, inherited from the caller, before doing anything',
    apply: (o, arg) => {
      o.close.push(cAtoi(arg!));
      return undefined;
    },
  },
  bool('log-pid', 'logging', 'one log file per restored process (FILE.PID)', {
    prop: 'logPid', inert: 'logging only: cryo restores every task from its one process and writes one log (it warns)',
  }),
  {
    long: 'version', short: 'V', arg: 'none', type: 'action', group: 'other', help: 'print the version and exit',
    apply: () => ({ stop: 'version' }),
  },
  bool('evasive-devices', 'special', 'dump a device file by its path when that path now names another node of the same device', {
    prop: 'evasiveDevices', rpc: 'evasive_devices',
  }),
  str('pidfile', 'generic', 'FILE', 'write the pid of the restored root, service or page server to FILE', {
    prop: 'pidfile',
  }),
  {
    long: 'veth-pair', arg: 'required', type: 'list', prop: 'external', rpc: 'veths', metavar: 'IN=OUT',
    group: 'external', help: 'old form of --external veth[IN]:OUT', hidden: true,
    apply: (o, arg) => {
      const eq = arg!.indexOf('=');
      if (eq < 0) return { badArg: true };
      o.external.push(`veth[${arg!.slice(0, eq)}]:${arg!.slice(eq + 1)}`);
      return undefined;
    },
  },
  list('action-script', 'special', 'FILE', 'run FILE at each stage of dump and restore', { prop: 'actionScript' }),
  bool('link-remap', 'special', 'allow linking unlinked files back into place', {
    prop: 'linkRemap', rpc: 'link_remap',
  }),
  bool('shell-job', 'special', 'allow dumping and restoring a job of a shell (session on a tty)', {
    short: 'j', prop: 'shellJob', rpc: 'shell_job',
  }),
  bool('file-locks', 'special', 'dump and restore file locks', {
    short: 'l', prop: 'fileLocks', rpc: 'file_locks',
  }),
  bool('page-server', 'memory', 'send pages to a page server (see --address, --port)', {
    prop: 'pageServer', rpc: 'ps', unsupported: REFUSED,
  }),
  str('address', 'server', 'ADDR', 'address of the page server or service', { prop: 'address', rpc: 'ps.address' }),
  {
    long: 'port', arg: 'required', type: 'int', prop: 'port', rpc: 'ps.port', metavar: 'PORT', group: 'server',
    help: 'port of the page server', inert: PAGE_SERVER_ONLY,
    apply: (o, arg) => {
      const port = cAtoi(arg!) & 0xffff;
      if (port === 0) return { badArg: true };
      o.port = port;
      return undefined;
    },
  },
  str('prev-images-dir', 'memory', 'DIR', 'images of the previous (pre-)dump, relative to the images dir', {
    prop: 'prevImagesDir', rpc: 'parent_img',
  }),
  {
    long: 'ms', arg: 'none', type: 'action', group: 'other', hidden: true, help: 'removed; see the check options',
    apply: () => fail('--ms is deprecated; see the check options in --help'),
  },
  bool('track-mem', 'memory', 'track memory changes in the kernel for later incremental dumps', {
    prop: 'trackMem', rpc: 'track_mem',
  }),
  bool('auto-dedup', 'memory', 'drop pages of older images as they are superseded or restored', {
    prop: 'autoDedup', rpc: 'auto_dedup', unsupported: REFUSED,
  }),
  str('libdir', 'special', 'DIR', 'plugin directory (default /usr/lib/criu/)', {
    short: 'L', prop: 'libdir', unsupported: REFUSED,
  }),
  {
    long: 'cpu-cap', arg: 'optional', type: 'int', prop: 'cpuCap', default: CPU_CAP_DEFAULT, rpc: 'cpu_cap',
    metavar: 'CAPS', group: 'generic',
    help: 'CPU features to record or check: comma list of cpu, fpu, ins, all, none, ^CAP to drop one; no value means all (only none is supported yet)',
    // cryo neither records nor checks the CPU yet: only "none" asks for what it does.
    unsupported: { partial: true, named: (o) => (o.cpuCap === 0 ? undefined : '--cpu-cap') },
    apply: (o, arg) => {
      const cap = applyCpuCap(o.cpuCap, arg);
      if (cap === undefined) return usageFail(`unknown CPU capability in '${arg}'`);
      o.cpuCap = cap;
      return undefined;
    },
  },
  bool('force-irmap', 'special', 'always resolve paths of inotify and fanotify watches', {
    prop: 'forceIrmap', rpc: 'force_irmap',
  }),
  {
    long: 'ext-mount-map', short: 'M', arg: 'required', type: 'list', prop: 'external', rpc: 'ext_mnt',
    metavar: 'KEY:VAL', group: 'external', help: 'old form of --external mnt[KEY]:VAL; "auto" detects them',
    apply: (o, arg) => {
      if (arg === 'auto') {
        o.autoExtMnt = true;
        return undefined;
      }
      const colon = arg!.indexOf(':');
      if (colon < 0) return { badArg: true };
      o.external.push(`mnt[${arg!.slice(0, colon)}]:${arg!.slice(colon + 1)}`);
      return undefined;
    },
  },
  {
    long: 'exec-cmd', arg: 'none', type: 'bool', prop: 'execCmd', rpc: 'exec_cmd', group: 'generic',
    help: 'after restore, exec the command given after the action word, as parent of the tree',
    apply: (o) => {
      o.execCmd = [];
      return undefined;
    },
  },
  {
    long: 'manage-cgroups', arg: 'optional', type: 'enum', prop: 'manageCgroups', default: 'ignore',
    values: ['none', 'props', 'soft', 'full', 'strict', 'ignore'], rpc: 'manage_cgroups_mode', metavar: 'MODE',
    group: 'special',
    help: 'dump and restore cgroups: none, props, soft (without MODE), full, strict; without the option (ignore) only membership is recorded',
    apply: (o, arg) => {
      if (arg === undefined) o.manageCgroups = 'soft';
      else if (['none', 'props', 'soft', 'full', 'strict', 'ignore'].includes(arg)) {
        o.manageCgroups = arg as Options['manageCgroups'];
      } else return usageFail(`unknown cgroups mode '${arg}'`);
      return undefined;
    },
  },
  list('cgroup-root', 'special', '[CTRL:]PATH', 'root cgroup for a controller (or for all when no controller)', {
    prop: 'cgroupRoot', rpc: 'cg_root',
    apply: (o, arg) => {
      o.cgroupRoot.push(parseCgroupRoot(arg!));
      return undefined;
    },
  }),
  list('inherit-fd', 'external', 'fd[N]:RES', 'on restore, use descriptor N for the resource RES', {
    prop: 'inheritFd', rpc: 'inherit_fd',
    apply: (o, arg) => {
      const r = parseInheritFd(arg!);
      if (r === undefined) return fail(`invalid inherit fd argument: ${arg}`);
      if (!('debug' in r)) o.inheritFd.push(r);
      return undefined;
    },
  }),
  {
    long: 'feature', arg: 'required', type: 'enum', prop: 'feature', values: CHECK_FEATURES, metavar: 'FEAT',
    group: 'check', help: 'check only this kernel feature',
    apply: (o, arg) => {
      if (!CHECK_FEATURES.includes(arg!)) return fail(`unknown feature ${arg}`);
      o.feature = arg!;
      return undefined;
    },
  },
  list('skip-mnt', 'special', 'PATH', 'leave this mount point out of the mount namespace dump', {
    prop: 'skipMnt', rpc: 'skip_mnt', unsupported: REFUSED,
  }),
  list('enable-fs', 'special', 'FS[,FS...]', 'dump and restore mounts of these file systems anyway ("all" for any)', {
    prop: 'enableFs', rpc: 'enable_fs',
    inert: 'a permission: a mount of a file system cryo does not carry is still refused at the dump, naming it, so it asks for nothing cryo does',
  }),
  bool('enable-external-sharing', 'external', 'allow external mounts with shared propagation', {
    negatable: false, prop: 'enableExternalSharing', rpc: 'ext_sharing',
    inert: 'a permission: a mount that is a peer of mounts outside its namespace is still refused at the dump, naming it',
  }),
  bool('enable-external-masters', 'external', 'allow external mounts with slave propagation', {
    negatable: false, prop: 'enableExternalMasters', rpc: 'ext_masters',
  }),
  str('freeze-cgroup', 'generic', 'PATH', 'freeze the tasks with this freezer cgroup', {
    prop: 'freezeCgroup', rpc: 'freeze_cgroup',
  }),
  {
    long: 'ghost-limit', arg: 'required', type: 'int', prop: 'ghostLimit', default: 1 << 20, rpc: 'ghost_limit',
    metavar: 'SIZE', group: 'special', help: 'largest deleted file to carry in the images (K, M, G suffixes)',
    apply: (o, arg) => {
      o.ghostLimit = parseSize(arg!);
      return undefined;
    },
  },
  list('irmap-scan-path', 'special', 'PATH', 'where to look for paths of inotify watches', {
    prop: 'irmapScanPath', rpc: 'irmap_scan_paths',
  }),
  str('lsm-profile', 'special', 'TYPE:NAME', 'LSM profile for the restored tasks (apparmor:NAME, selinux:LABEL or none:); only one this kernel lacks, for tasks that had none, is accepted yet', {
    prop: 'lsmProfile', rpc: 'lsm_profile',
    apply: (o, arg) => {
      const p = parseLsmProfile(arg!);
      if ('error' in p) return fail(p.error);
      o.lsmProfile = arg!;
      return undefined;
    },
  }),
  {
    long: 'timeout', arg: 'required', type: 'int', prop: 'timeout', default: 10, rpc: 'timeout', metavar: 'SECONDS',
    group: 'special', help: 'time limit for collecting the tasks on dump (default 10)',
    apply: (o, arg) => {
      o.timeout = cAtoi(arg!) >>> 0;
      return undefined;
    },
  },
  list('external', 'external', 'RES', 'treat RES as external: tty[..], file[..], dev[..], unix[..], mnt[..], veth[..], macvlan[..], netdev[..] (only tty, unix, net, mnt, veth, macvlan and netdev are supported yet)', {
    rpc: 'external', prop: 'external',
    unsupported: {
      partial: true,
      named: (o) => {
        // One not of the form KIND[...] names nothing either tool ever looks up (CRIU keeps it unused; LXC passes such).
        const other = o.external.find((e) => { const k = /^([a-z]*)\[/.exec(e)?.[1]; return k !== undefined && !EXTERNAL_KINDS.includes(k); });
        return other === undefined ? undefined : `--external ${other}`;
      },
    },
    apply: (o, arg) => {
      if (arg!.startsWith('mnt[]')) {
        const auto = parseAutoExtMount(arg!.slice(5));
        if (auto === undefined) return fail(`cannot add external resource ${arg}`);
        o.autoExtMnt = true;
        if (auto.masters) o.enableExternalMasters = true;
        if (auto.sharing) o.enableExternalSharing = true;
        return undefined;
      }
      o.external.push(arg!);
      return undefined;
    },
  }),
  {
    long: 'empty-ns', arg: 'required', type: 'enum', prop: 'emptyNs', default: 0, values: ['net'], rpc: 'empty_ns',
    metavar: 'net', group: 'special', help: 'create the namespace but leave its contents to action scripts',
    apply: (o, arg) => {
      if (arg !== 'net') return fail(`unsupported empty namespace: ${arg}`);
      o.emptyNs |= CLONE_NEWNET;
      return undefined;
    },
  },
  {
    long: 'lazy-pages', arg: 'none', type: 'bool', prop: 'lazyPages', default: false, rpc: 'lazy_pages',
    group: 'generic', help: 'restore memory on demand, served by "lazy-pages" (needs userfaultfd)',
    unsupported: REFUSED,
  },
  bool('extra', 'check', 'also check extra kernel features', { prop: 'extra' }),
  bool('experimental', 'check', 'also check experimental kernel features', { prop: 'experimental' }),
  {
    long: 'all', arg: 'none', type: 'bool', group: 'check', help: 'same as --extra --experimental',
    apply: (o) => {
      o.extra = true;
      o.experimental = true;
      return undefined;
    },
  },
  str('cgroup-props', 'special', 'STRING', 'cgroup controllers and properties to dump, in a small YAML form', {
    prop: 'cgroupProps', rpc: 'cgroup_props',
  }),
  str('cgroup-props-file', 'special', 'FILE', 'like --cgroup-props, read from FILE', {
    prop: 'cgroupPropsFile', rpc: 'cgroup_props_file',
  }),
  list('cgroup-dump-controller', 'special', 'NAME', 'dump this cgroup controller and skip the others', {
    prop: 'cgroupDumpController', rpc: 'cgroup_dump_controller',
  }),
  bool('skip-in-flight', 'special', 'ignore TCP connections not yet accepted', {
    prop: 'skipInFlight', rpc: 'tcp_skip_in_flight',
  }),
  bool('deprecated', 'other', 'allow deprecated behaviour', { prop: 'deprecated' }),
  bool('display-stats', 'logging', 'print dump or restore statistics at the end', {
    prop: 'displayStats', rpc: 'display_stats',
  }),
  bool('weak-sysctls', 'generic', 'skip sysctls the restoring kernel does not have', {
    prop: 'weakSysctls', rpc: 'weak_sysctls',
    inert: 'it concerns the net sysctls of a restored network namespace (netns-sysctl.ts), and every one CRIU saves is in this kernel',
  }),
  {
    long: 'status-fd', arg: 'required', type: 'int', prop: 'statusFd', default: -1, rpc: 'status_fd', metavar: 'FD',
    group: 'server', help: 'write a zero byte to FD and close it once ready for requests',
    apply: (o, arg) => {
      const fd = cScanInt(arg!);
      if (fd === undefined) return fail('cannot parse the value of --status-fd');
      o.statusFd = fd;
      return undefined;
    },
  },
  bool('tcp-close', 'special', 'leave established TCP connections alone on dump and restore them closed', {
    prop: 'tcpClose', rpc: 'tcp_close',
  }),
  {
    long: 'verbosity', short: 'v', arg: 'optional', type: 'int', prop: 'logLevel', default: 2, rpc: 'log_level',
    metavar: 'N', group: 'logging',
    help: 'raise the log level by one (-vv... by more) or set it: 0 none, 1 errors, 2 warnings (default), 3 info, 4 debug',
    apply: (o, arg) => {
      if (arg === undefined) o.logLevel++;
      else if (arg.startsWith('v')) o.logLevel += arg.length + 1;
      else o.logLevel = cAtoi(arg);
      return undefined;
    },
  },
  {
    long: 'ps-socket', arg: 'required', type: 'int', prop: 'psSocket', default: -1, rpc: 'ps.fd', metavar: 'FD',
    group: 'server', help: 'use FD as the page server socket', inert: PAGE_SERVER_ONLY,
    apply: (o, arg) => {
      o.psSocket = cAtoi(arg!);
      return undefined;
    },
  },
  bool('stream', 'generic', 'read or write images through criu-image-streamer', { prop: 'stream', unsupported: REFUSED }),
  str('config', 'config', 'FILE', 'read options from FILE (and skip the default config files)', {
    prop: 'config', rpc: 'config_file',
  }),
  {
    long: 'no-default-config', arg: 'none', type: 'bool', prop: 'noDefaultConfig', default: false, group: 'config',
    help: 'do not read /etc/criu/default.conf and ~/.criu/default.conf',
  },
  str('tls-cacert', 'server', 'FILE', 'trust only certificates signed by this CA', {
    prop: 'tlsCacert', rpc: 'tls_cacert', inert: TLS_ONLY,
  }),
  str('tls-cacrl', 'server', 'FILE', 'certificate revocation list of the CA', { prop: 'tlsCacrl', rpc: 'tls_cacrl', inert: TLS_ONLY }),
  str('tls-cert', 'server', 'FILE', 'TLS certificate', { prop: 'tlsCert', rpc: 'tls_cert', inert: TLS_ONLY }),
  str('tls-key', 'server', 'FILE', 'TLS private key', { prop: 'tlsKey', rpc: 'tls_key', inert: TLS_ONLY }),
  bool('tls', 'server', 'secure the page server connection with TLS', { prop: 'tls', rpc: 'tls', unsupported: REFUSED }),
  bool('tls-no-cn-verify', 'server', 'do not verify the common name of the server certificate', {
    negatable: false, prop: 'tlsNoCnVerify', rpc: 'tls_no_cn_verify', inert: TLS_ONLY,
  }),
  str('cgroup-yard', 'special', 'PATH', 'use cgroup hierarchies already mounted under PATH', {
    prop: 'cgroupYard', rpc: 'cgroup_yard',
  }),
  {
    long: 'pre-dump-mode', arg: 'required', type: 'enum', prop: 'preDumpMode', default: 'splice',
    values: ['splice', 'read'], rpc: 'pre_dump_mode', metavar: 'MODE', group: 'memory',
    help: 'how pre-dump reads memory: splice (default) or read (process_vm_readv)',
    inert: 'cryo pre-dumps with the tree frozen, reading memory by the task\'s own pwritev either way',
    apply: (o, arg) => {
      if (arg === 'read') o.preDumpMode = 'read';
      else if (arg === 'splice') o.preDumpMode = 'splice';
      else return fail('cannot parse the value of --pre-dump-mode');
      return undefined;
    },
  },
  {
    long: 'file-validation', arg: 'required', type: 'enum', prop: 'fileValidation', default: 'buildid',
    values: ['filesize', 'buildid'], metavar: 'METHOD', group: 'special',
    help: 'how to check that files are unchanged on restore: filesize or buildid (default)',
    // cryo checks neither yet: whatever METHOD is asked for, it would not be done.
    unsupported: { named: () => '--file-validation' },
    apply: (o, arg) => {
      if (arg === 'filesize' || arg === 'buildid') o.fileValidation = arg;
      else return usageFail(`unknown file validation method '${arg}'`);
      return undefined;
    },
  },
  bool('skip-file-rwx-check', 'special', 'do not check file permission bits on restore', {
    prop: 'skipFileRwxCheck', rpc: 'skip_file_rwx_check',
    inert: 'cryo does not check the permission bits of files on restore yet, so there is no check to skip',
  }),
  str('lsm-mount-context', 'special', 'CTX', 'replace the context= option of mounts that have one with CTX', {
    prop: 'lsmMountContext', rpc: 'lsm_mount_context', unsupported: REFUSED,
  }),
  {
    long: 'network-lock', arg: 'required', type: 'enum', prop: 'networkLock', default: 'auto',
    values: ['iptables', 'nftables', 'skip', 'none'], rpc: 'network_lock', metavar: 'METHOD', group: 'generic',
    help: 'how to lock the network during dump: iptables, nftables (the default where it works, else iptables), or skip/none',
    apply: (o, arg) => {
      if (arg === 'iptables' || arg === 'nftables') o.networkLock = arg;
      else if (arg === 'skip' || arg === 'none') o.networkLock = 'skip';
      else return fail(`invalid value for --network-lock: ${arg}`);
      return undefined;
    },
  },
  bool('mntns-compat-mode', 'generic', 'restore mounts with the older engine (restore only)', {
    prop: 'mntnsCompatMode', rpc: 'mntns_compat_mode',
    inert: "which of CRIU's two engines restores the mounts: cryo has one, which makes the same mounts either way",
  }),
  bool('unprivileged', 'generic', 'run as non-root with CAP_CHECKPOINT_RESTORE, accepting its limits', {
    prop: 'unprivileged', rpc: 'unprivileged',
  }),
  bool('ghost-fiemap', 'special', 'store deleted files sparsely using fiemap (default on)', {
    prop: 'ghostFiemap', default: true,
    inert: 'how a ghost file is laid out in the image: cryo stores it whole either way, and it restores the same',
  }),
  bool('allow-uprobes', 'generic', 'allow tasks with a uprobes mapping', { prop: 'allowUprobes', unsupported: REFUSED }),
];

/** The entry for a long name or short letter. */
export function findOption(name: string): OptionSpec | undefined {
  return OPTION_TABLE.find((o) => o.long === name || (name.length === 1 && o.short === name));
}

/**
 * Apply one option with its value: the entry's own semantics if it has any,
 * otherwise those of its type.
 */
export function applyOption(spec: OptionSpec, o: Options, arg: string | undefined, on = true): ApplyResult {
  if (spec.apply) return spec.apply(o, arg, on);
  const rec = o as unknown as Record<string, unknown>;
  const prop = spec.prop;
  if (prop === undefined) return undefined;
  switch (spec.type) {
    case 'bool':
      rec[prop] = on;
      return undefined;
    case 'string':
      rec[prop] = arg;
      return undefined;
    case 'list':
      (rec[prop] as string[]).push(arg!);
      return undefined;
    case 'int':
      rec[prop] = cAtoi(arg!);
      return undefined;
    case 'enum':
      if (!spec.values!.includes(arg!)) return fail(`invalid value for --${spec.long}: ${arg}`);
      rec[prop] = arg;
      return undefined;
    case 'action':
      return undefined;
  }
}
