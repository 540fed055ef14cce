// criu_opts -> Options, through the same option table as the command line:
// every plain field (bool, number, string, list of strings) is applied with
// its option's own semantics; the fields that carry fds of the client,
// nested messages or enums are mapped here by hand, as CRIU's
// setup_opts_from_req does.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { applyConfigText } from '../options/parse.js';
import { create, isFieldSet, type DescField } from '@bufbuild/protobuf';
import { CriuOptsSchema, CgroupRootSchema, CriuCgMode, CriuPreDumpMode, CriuNetworkLockMethod, type CriuOpts } from '../images/index.js';
import { OPTION_TABLE, applyOption } from '../options/table.js';
import { defaultOptions, type Options, type CgroupMode } from '../options/index.js';
import { findRefusal, refusalText } from '../options/support.js';
import { CryoError } from '../context.js';
import { EBADRQC } from '../sys/index.js';

/** Fields with meaning beyond their option (client fds, nested messages, enums). */
const BY_HAND = new Set([
  'images_dir_fd', 'images_dir', 'work_dir_fd', 'log_file', 'log_level', 'log_to_stderr', 'pid', 'leave_running',
  'leave_stopped', 'rst_sibling', 'ext_unix_sk', 'unix_sk_ino', 'status_fd', 'manage_cgroups', 'manage_cgroups_mode',
  'cg_root', 'inherit_fd', 'join_ns', 'veths', 'ext_mnt', 'ps', 'pre_dump_mode', 'network_lock', 'config_file',
  'exec_cmd', 'cpu_cap', 'empty_ns', 'notify_scripts', 'pidfd_store_sk',
]);

export interface RpcPeer {
  pid: number;
  uid: number;
}

export interface RpcOptionsEnv {
  peer: RpcPeer;
  /** Started by the client itself (swrk): client fds and rst_sibling are allowed. */
  swrk: boolean;
  /** The options of cryo's own command line and config (defaults for the request). */
  base?: Options;
}

const CG_MODES: Record<number, CgroupMode> = {
  [CriuCgMode.IGNORE]: 'ignore', [CriuCgMode.CG_NONE]: 'none', [CriuCgMode.PROPS]: 'props',
  [CriuCgMode.SOFT]: 'soft', [CriuCgMode.FULL]: 'full', [CriuCgMode.STRICT]: 'strict', [CriuCgMode.DEFAULT]: 'soft',
};

function field(name: string): DescField | undefined {
  return CriuOptsSchema.fields.find((f) => f.name === name);
}

/**
 * config_file: its options override the request's (runc's runc.conf). Read
 * with the worker's credentials, which are the client's in the service. A
 * missing file is ignored, as CRIU ignores it; an error never repeats the
 * file's text, which the client may not be allowed to read. A client of the
 * service may not name scripts through it: only cryo's own command line and
 * config run scripts.
 */
function applyConfigFile(path: string, o: Options, env: RpcOptionsEnv, bad: (text: string) => never): Set<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new Set();
    bad(`cannot read config_file ${path}: ${code ?? (e as Error).message}`);
  }
  const scripts = o.actionScript.length;
  const r = applyConfigText(text!, path, o, { env: process.env, cwd: '/', progName: 'criu', readFile: () => undefined });
  if ('error' in r) {
    const line = /, line (\d+)/.exec(r.error)?.[1];
    bad(`config_file ${path}${line ? `, line ${line},` : ''} is not a configuration file cryo can apply`);
  }
  if (!env.swrk && o.actionScript.length > scripts) bad(`config_file ${path} names an action script, which a client of the service may not do`);
  const seen = (r as { seen: Set<string> }).seen;
  if (seen.has('images-dir')) o.imagesDir = resolve(o.imagesDir);
  if (seen.has('work-dir')) o.workDir = resolve(o.workDir!);
  if (seen.has('log-file') && o.logFile !== undefined && o.logFile !== '-' && !isAbsolute(o.logFile)) o.logFile = resolve(o.workDir ?? o.imagesDir, o.logFile);
  return seen;
}

/** A request whose options are refused; `partial`: what was read of them (where its log goes). */
export class RpcOptionsError extends CryoError {
  constructor(message: string, readonly partial: Options) {
    super(message, 1, EBADRQC);
  }
}

/** A directory of the client's, by its fd (through /proc, as CRIU does). */
const clientFd = (peer: RpcPeer, fd: number) => `/proc/${peer.pid}/fd/${fd}`;

export function optionsFromRpc(req: CriuOpts | undefined, env: RpcOptionsEnv, action: 'dump' | 'restore' | 'check' | 'pre-dump'): Options {
  const o: Options = env.base ? structuredClone(env.base) : defaultOptions();
  const m = req ?? create(CriuOptsSchema);
  const set = (name: string) => req !== undefined && isFieldSet(req, field(name)!);
  const bad = (text: string): never => {
    throw new RpcOptionsError(`RPC request: ${text}`, o);
  };
  for (const spec of OPTION_TABLE) {
    const name = spec.rpc;
    if (!name || name.includes('.') || BY_HAND.has(name) || !set(name)) continue;
    const v = (m as unknown as Record<string, unknown>)[field(name)!.localName];
    const values = Array.isArray(v) ? v : [v];
    for (const x of values) {
      const r = typeof x === 'boolean' ? applyOption(spec, o, undefined, x) : applyOption(spec, o, String(x));
      if (r && 'error' in r) bad(r.error);
      if (r && 'badArg' in r) bad(`invalid value for ${name}: ${String(x)}`);
    }
  }
  // Where the images are: the client's fd, else a path.
  if (m.imagesDirFd !== undefined && m.imagesDirFd !== -1) o.imagesDir = clientFd(env.peer, m.imagesDirFd);
  else if (m.imagesDir) o.imagesDir = m.imagesDir;
  else if (action !== 'check') bad('neither images_dir_fd nor images_dir was given');
  if (set('work_dir_fd')) o.workDir = clientFd(env.peer, m.workDirFd!);
  else o.workDir = o.workDir ?? o.imagesDir;
  if (m.logFile) {
    if (m.logFile.includes('/')) bad('no subdirectories are allowed in log_file');
    o.logFile = m.logFile;
  } else if (m.logToStderr) {
    o.logFile = undefined;
  } else {
    o.logFile = o.logFile ?? (action === 'check' ? undefined : `${action}.log`);
  }
  if (o.logFile !== undefined && !isAbsolute(o.logFile)) o.logFile = resolve(o.workDir, o.logFile);
  o.logLevel = m.logLevel ?? 2;
  if (action === 'dump' || action === 'pre-dump') {
    if (set('pid') && !(m.pid! > 0)) bad(`invalid pid ${m.pid}`);
    o.tree = set('pid') ? m.pid : env.peer.pid;
  }
  if (m.leaveRunning) { o.leaveRunning = true; o.leaveStopped = false; }
  if (m.leaveStopped) { o.leaveStopped = true; o.leaveRunning = false; }
  if (set('rst_sibling')) {
    if (!env.swrk) bad('rst_sibling is not allowed in the standalone service');
    o.restoreSibling = m.rstSibling!;
  }
  if (set('ext_unix_sk')) {
    o.extUnixSk = m.extUnixSk!;
    for (const u of m.unixSkIno) o.external.push(`unix[${u.inode}]`);
  }
  if (set('manage_cgroups')) o.manageCgroups = m.manageCgroups ? 'soft' : 'ignore';
  if (set('manage_cgroups_mode')) {
    const mode = CG_MODES[m.manageCgroupsMode!];
    if (!mode) bad(`unknown manage_cgroups_mode ${m.manageCgroupsMode}`);
    o.manageCgroups = mode!;
  }
  // An unset ctrl (not an empty one, which names the v2 hierarchy) sets the root of every hierarchy.
  for (const c of m.cgRoot) o.cgroupRoot.push(isFieldSet(c, CgroupRootSchema.field.ctrl) ? { ctrl: c.ctrl, path: c.path } : { path: c.path });
  if (m.inheritFd.length && !env.swrk) bad('inherit_fd is not allowed in the standalone service');
  for (const i of m.inheritFd) o.inheritFd.push({ fd: i.fd, key: i.key });
  for (const j of m.joinNs) o.joinNs.push({ ns: j.ns, nsFile: j.nsFile, extraOpt: j.extraOpt });
  for (const v of m.veths) o.external.push(`veth[${v.ifIn}]:${v.ifOut}`);
  for (const e of m.extMnt) o.external.push(`mnt[${e.key}]:${e.val}`);
  if (m.ps) bad('page server options are not supported yet');
  if (set('pre_dump_mode')) o.preDumpMode = m.preDumpMode === CriuPreDumpMode.VM_READ ? 'read' : 'splice';
  if (set('network_lock')) {
    o.networkLock = ({ [CriuNetworkLockMethod.IPTABLES]: 'iptables', [CriuNetworkLockMethod.NFTABLES]: 'nftables', [CriuNetworkLockMethod.SKIP]: 'skip' } as const)[m.networkLock!] ?? bad(`unknown network_lock ${m.networkLock}`);
  }
  if (m.execCmd.length) {
    if (action !== 'restore') bad('exec_cmd is for restore only');
    o.execCmd = [...m.execCmd];
  }
  if (set('cpu_cap')) o.cpuCap = m.cpuCap!;
  if (set('empty_ns')) {
    if (m.emptyNs! & ~0x40000000) bad('empty_ns takes the net namespace only');
    o.emptyNs = m.emptyNs!;
  }
  if (m.orphanPtsMaster) o.orphanPtsMaster = true;
  if (set('status_fd')) o.statusFd = -1; // obsolete in CRIU; status-ready goes by notification
  const fromConfig = m.configFile ? applyConfigFile(m.configFile, o, env, bad) : new Set<string>();
  if (set('pidfd_store_sk')) bad('pidfd_store_sk is not supported yet');
  if (m.autoExtMnt) bad('auto_ext_mnt is not supported yet');
  // Named by their criu_opts field, unless they came from the config file.
  const refused = findRefusal(o, action, (spec) => fromConfig.has(spec.long) || (spec.rpc !== undefined && !spec.rpc.includes('.') && set(spec.rpc)));
  if (refused) {
    const rpc = refused.spec.rpc;
    const prefix = `--${refused.spec.long}`;
    const viaRpc = !fromConfig.has(refused.spec.long) && rpc !== undefined && refused.named.startsWith(prefix);
    bad(refusalText(viaRpc ? { ...refused, named: rpc + refused.named.slice(prefix.length) } : refused));
  }
  return o;
}

/**
 * The client's answer to query-ext-files: the external resources it names (as
 * CRIU, only `external` is read from it). They go through the --external
 * option as the request's own do, so a kind cryo does not carry out (file[..],
 * dev[..], mnt[..]...) fails the dump in one line instead of being ignored.
 */
export function applyQueriedExternals(o: Options, keys: readonly string[]): void {
  const bad = (text: string): never => {
    throw new CryoError(`RPC query-ext-files answer: ${text}`);
  };
  const spec = OPTION_TABLE.find((x) => x.long === 'external')!;
  for (const key of keys) {
    const r = applyOption(spec, o, key);
    if (r && 'error' in r) bad(r.error);
    if (r && 'badArg' in r) bad(`invalid value for external: ${key}`);
  }
  const refused = findRefusal(o, 'dump', (x) => x === spec);
  if (refused) bad(refusalText({ ...refused, named: 'external' + refused.named.slice('--external'.length) }));
}
