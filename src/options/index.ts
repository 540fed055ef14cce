// Parsed options, the result of the option table (CLI, config files, RPC).
// Field names are camelCase forms of CRIU's long option names; where CRIU
// folds an option into another (--veth-pair, --ext-mount-map and the inode
// form of --ext-unix-sk all become --external entries; --daemon is
// --restore-detached; -v is --verbosity) the field is the one CRIU fills.
// The table in ./table.ts says, for every option, which field it sets and its
// default; defaultOptions() is built from it.
import type { CgroupRoot, InheritFd, JoinNs } from './values.js';
import { OPTION_TABLE } from './table.js';

export type { CgroupRoot, InheritFd, JoinNs } from './values.js';

/** --manage-cgroups modes. */
export type CgroupMode = 'none' | 'props' | 'soft' | 'full' | 'strict' | 'ignore';
/** --network-lock methods ('none' on the command line is stored as 'skip'). */
export type NetworkLockMethod = 'iptables' | 'nftables' | 'skip';
/** --pre-dump-mode. */
export type PreDumpMode = 'splice' | 'read';
/** --file-validation. */
export type FileValidationMethod = 'filesize' | 'buildid';

export interface Options {
  // ---- fields the engine already uses -------------------------------------
  /** -t/--tree PID: root of the tree to dump. */
  tree?: number;
  /** -D/--images-dir DIR (default "."). */
  imagesDir: string;
  /** -W/--work-dir DIR (default: images dir). */
  workDir?: string;
  /** -o/--log-file FILE, relative to the work dir (or images dir) unless absolute; "-" is stdout. */
  logFile?: string;
  /** -v[N]/--verbosity[=N]: log level 0..4, default 2. */
  logLevel: number;
  /** -R/--leave-running: leave the tasks running after dump (clears leaveStopped). */
  leaveRunning: boolean;
  /** -j/--shell-job. */
  shellJob: boolean;
  /** -d/--restore-detached (also --daemon for page-server/service/lazy-pages). */
  restoreDetached: boolean;
  /** -S/--restore-sibling. */
  restoreSibling: boolean;
  /** --pidfile FILE (relative to the work dir). */
  pidfile?: string;

  // ---- task state and tree --------------------------------------------------
  /** -s/--leave-stopped: leave the tasks stopped after dump (clears leaveRunning). */
  leaveStopped: boolean;
  /** -r/--root PATH: root of the restored tasks' file system. */
  root?: string;
  /** --freeze-cgroup PATH: freeze the tree with this cgroup's freezer. */
  freezeCgroup?: string;
  /** --timeout SECONDS for collecting tasks on dump (default 10). */
  timeout: number;
  /** --exec-cmd: the command after the action word, exec'ed after restore. */
  execCmd?: string[];
  /** --unprivileged: run without root, with CAP_CHECKPOINT_RESTORE. */
  unprivileged: boolean;
  /** --allow-uprobes. */
  allowUprobes: boolean;
  /** --stream: images go through criu-image-streamer. */
  stream: boolean;
  /** --lazy-pages: restore memory on demand. */
  lazyPages: boolean;
  /** --weak-sysctls: skip sysctls missing on the restoring kernel. */
  weakSysctls: boolean;
  /** --mntns-compat-mode: the old mount engine. */
  mntnsCompatMode: boolean;
  /** --network-lock METHOD; 'auto' (the default): nftables where it works, else iptables. */
  networkLock: NetworkLockMethod | 'auto';
  /** --cpu-cap[=CAPS]: mask of CPU_CAP_* bits (values.ts); default FPU|INS. */
  cpuCap: number;
  /** -L/--libdir DIR: plugin directory. */
  libdir?: string;
  /** --deprecated: allow deprecated behaviour (also env CRIU_DEPRECATED). */
  deprecated: boolean;
  /** --display-stats. */
  displayStats: boolean;

  // ---- external resources ---------------------------------------------------
  /** --external RES (and --veth-pair, --ext-mount-map K:V, -xINO as CRIU rewrites them). */
  external: string[];
  /** -x/--ext-unix-sk: allow external unix sockets. */
  extUnixSk: boolean;
  /** -M auto or --external mnt[]: detect external mounts. */
  autoExtMnt: boolean;
  /** --enable-external-sharing. */
  enableExternalSharing: boolean;
  /** --enable-external-masters. */
  enableExternalMasters: boolean;
  /** --inherit-fd fd[N]:RES (restore only). */
  inheritFd: InheritFd[];
  /** -J/--join-ns NS:{PID|FILE}[,OPTS]. */
  joinNs: JoinNs[];
  /** --empty-ns net: bitmask of CLONE_NEW* flags. */
  emptyNs: number;

  // ---- special resources ----------------------------------------------------
  /** --tcp-established. */
  tcpEstablished: boolean;
  /** --skip-in-flight. */
  skipInFlight: boolean;
  /** --tcp-close. */
  tcpClose: boolean;
  /** --evasive-devices. */
  evasiveDevices: boolean;
  /** --link-remap. */
  linkRemap: boolean;
  /** --ghost-limit SIZE in bytes (default 1 MiB). */
  ghostLimit: number;
  /** --ghost-fiemap (default on). */
  ghostFiemap: boolean;
  /** --action-script FILE. */
  actionScript: string[];
  /** -l/--file-locks. */
  fileLocks: boolean;
  /** --force-irmap. */
  forceIrmap: boolean;
  /** --irmap-scan-path PATH. */
  irmapScanPath: string[];
  /** --manage-cgroups[=MODE]: soft without MODE; without the option ignore (cgroups are opt-in). */
  manageCgroups: CgroupMode;
  /** --cgroup-root [CTRL:]PATH; entries without ctrl set the default root. */
  cgroupRoot: CgroupRoot[];
  /** --cgroup-props STRING. */
  cgroupProps?: string;
  /** --cgroup-props-file FILE. */
  cgroupPropsFile?: string;
  /** --cgroup-dump-controller NAME. */
  cgroupDumpController: string[];
  /** --cgroup-yard PATH. */
  cgroupYard?: string;
  /** --lsm-profile TYPE:NAME. */
  lsmProfile?: string;
  /** --lsm-mount-context CTX. */
  lsmMountContext?: string;
  /** --skip-mnt PATH. */
  skipMnt: string[];
  /** --enable-fs FS[,FS...], each argument as given. */
  enableFs: string[];
  /** --file-validation METHOD (default buildid). */
  fileValidation: FileValidationMethod;
  /** --skip-file-rwx-check. */
  skipFileRwxCheck: boolean;

  // ---- check ------------------------------------------------------------------
  /** --extra (or --all). */
  extra: boolean;
  /** --experimental (or --all). */
  experimental: boolean;
  /** --feature NAME: check only this kernel feature. */
  feature?: string;

  // ---- logging ----------------------------------------------------------------
  /** --log-pid: one log file per restored process. */
  logPid: boolean;

  // ---- memory -------------------------------------------------------------------
  /** --track-mem. */
  trackMem: boolean;
  /** --prev-images-dir DIR (relative to the images dir). */
  prevImagesDir?: string;
  /** --page-server: send pages to a page server. */
  pageServer: boolean;
  /** --auto-dedup. */
  autoDedup: boolean;
  /** --pre-dump-mode MODE (default splice). */
  preDumpMode: PreDumpMode;

  // ---- page server / service ----------------------------------------------------
  /** --address ADDR. */
  address?: string;
  /** --port PORT. */
  port?: number;
  /** --ps-socket FD (default -1). */
  psSocket: number;
  /** --status-fd FD (default -1). */
  statusFd: number;
  /** --tls. */
  tls: boolean;
  /** --tls-cacert FILE. */
  tlsCacert?: string;
  /** --tls-cacrl FILE. */
  tlsCacrl?: string;
  /** --tls-cert FILE. */
  tlsCert?: string;
  /** --tls-key FILE. */
  tlsKey?: string;
  /** --tls-no-cn-verify. */
  tlsNoCnVerify: boolean;

  // ---- configuration and misc -----------------------------------------------------
  /** --config FILE, as given on the command line. */
  config?: string;
  /** --no-default-config. */
  noDefaultConfig: boolean;
  /** orphan_pts_master (RPC only): a shell job's pty master goes to the client. */
  orphanPtsMaster?: boolean;
  /** --close FD: descriptors CRIU would close at start (recorded, not acted on). */
  close: number[];
}

/** A fresh Options holding every default, built from the option table. */
export function defaultOptions(): Options {
  const o: Record<string, unknown> = {};
  for (const spec of OPTION_TABLE) {
    if (spec.prop === undefined || spec.default === undefined) continue;
    const d = spec.default;
    o[spec.prop] = Array.isArray(d) ? [...(d as unknown[])] : d;
  }
  return o as unknown as Options;
}
