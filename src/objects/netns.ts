// The network namespace of a tree that has one of its own, in CRIU's images:
// netdev-N.img (its links with their net.ipv4/ipv6.conf sysctls), netns-N.img
// (all/default confs, net.unix, ping_group_range; or only the key of an
// external namespace), ifaddr-N, route-N, route6-N, rule-N (the output of
// `ip ... save`), iptables-N/ip6tables-N (legacy iptables-save), nftables-N
// (`nft list ruleset`), netns-ct-N/netns-exp-N (conntrack, raw nfnetlink).
// cryo's main thread enters the namespace (setns) and runs the tools from
// there, so they see it; on restore the same inside the root's new namespace.
// Its links (lo and veth pairs) are netdev.ts's; any other link fails the dump.
import { closeSync, constants, existsSync, fstatSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { create, NetnsEntrySchema, type ImageDir, type NetDeviceEntry, type NetnsEntry } from '../images/index.js';
import { checkLinks, dumpLinks, restoreLinks } from './netdev.js';
import { netlink } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';
import { lockNetnsRules, type LockMethod } from './netlock.js';
import { readConf, readCoreConf, readIpv4Sysctls, readUnixConf, writeConf, writeCoreConf, writeIpv4Sysctls, writeUnixConf, type SysctlWriter } from './netns-sysctl.js';

const O_TMPFILE = 0o20200000;

type RawImage = 'ifaddr' | 'route' | 'route6' | 'rule' | 'iptables' | 'ip6tables' | 'nftables' | 'netnfCt' | 'netnfExp';

const ipv6 = (): boolean => existsSync('/proc/sys/net/ipv6');

export function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(`${d || '.'}/${cmd}`));
}

/** Run a tool in the calling thread's namespace (a fork inherits it), stdin/stdout from image fds. */
function run(argv: string[], io: { stdin?: number; stdout?: number }, what: string, shell = false): void {
  const r = shell
    ? spawnSync('sh', ['-c', argv.join(' ')], { stdio: [io.stdin ?? 'ignore', io.stdout ?? 'ignore', 'pipe'] })
    : spawnSync(argv[0]!, argv.slice(1), { stdio: [io.stdin ?? 'ignore', io.stdout ?? 'ignore', 'pipe'] });
  if (r.error) throw new CryoError(`${what}: cannot run ${argv[0]}: ${r.error.message}`);
  if (r.status !== 0) {
    const err = (r.stderr?.toString() ?? '').trim().split('\n')[0] ?? '';
    throw new CryoError(`${what}: ${argv.join(' ')} failed (${r.status === null ? `signal ${r.signal}` : `exit ${r.status}`})${err ? `: ${err}` : ''}`);
  }
}

const ipTool = (): string => process.env['CR_IP_TOOL'] ?? 'ip';

/** As CRIU built with libnftables: iptables rules in the nft backend are in nftables-N.img; only legacy ones go to iptables-N.img. */
export function legacyIptables(v6: boolean, restore: boolean): string | undefined {
  const base = `${v6 ? 'ip6' : 'ip'}tables`;
  const plain = `${base}-${restore ? 'restore' : 'save'}`;
  const legacy = `${base}-legacy-${restore ? 'restore' : 'save'}`;
  const isNft = (cmd: string): boolean | undefined => {
    if (!onPath(cmd)) return undefined;
    const r = spawnSync(cmd, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    return r.status === 0 ? /nf_tables/.test(r.stdout.toString()) : undefined;
  };
  if (isNft(plain) === false) return plain;
  if (isNft(legacy) === false) return legacy;
  return undefined;
}

/** cryo's fd of the tree's network namespace, held through the dump or the restore. */
export class TreeNetns {
  readonly fd: number;
  readonly ino: number;
  private open = true;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
    this.ino = netlink.nsInode(this.fd);
  }

  /** The inode of the network namespace cryo's thread is in. */
  static mine(): number {
    return Number(statSync('/proc/thread-self/ns/net').ino);
  }

  /** Run `fn` in the namespace (sockets made or looked up there); as it is without one. */
  static within<T>(ns: TreeNetns | undefined, fn: () => T): T {
    return ns ? netlink.inNetns(ns.fd, fn) : fn();
  }

  close(): void {
    if (this.open) closeSync(this.fd);
    this.open = false;
  }
}

/** --external net[INO]:KEY naming this namespace (its link "net:[INO]"), as CRIU: its key goes into netns-N.img. */
export function netnsExtKey(external: readonly string[], link: string): { extKey?: string } {
  const ino = /^net:\[(\d+)\]$/.exec(link)?.[1];
  for (const e of external) {
    const m = /^net\[(\d+)\]:(.+)$/.exec(e);
    if (m && m[1] === ino) return { extKey: m[2]! };
  }
  return {};
}

export interface NetnsDumpEnv {
  dir: ImageDir;
  log: Logger;
  /** The task named in errors: the tree's root. */
  who: string;
  /** --empty-ns net: the namespace's contents are not dumped (the caller sets them up again). */
  empty: boolean;
  /** --external net[INO]:KEY for this namespace: only the key is dumped. */
  extKey?: string;
  /** A file of the tree's attached to tun device `name` (cryo's copy, closed by the caller). */
  tunFile?: (name: string) => number | undefined;
  /** The tree's other network namespaces: cryo's fd of each, its id (veths between them are the tree's). */
  others?: ReadonlyArray<{ fd: number; nsId: number }>;
}

/** Conntrack entries or expectations of the namespace, as the raw nfnetlink messages CRIU writes. */
function conntrack(exp: boolean): Buffer[] {
  const g = Buffer.alloc(4); // struct nfgenmsg, AF_UNSPEC
  try {
    return netlink.netlinkDump(netlink.NETLINK_NETFILTER, ((exp ? 2 : 1) << 8) | 1 /* IPCTNL_MSG_*_GET */, g).map((m) => m.raw);
  } catch (e) {
    // No conntrack in this kernel (or not loaded): nothing is tracked.
    if ((e as { errno?: number }).errno === 95 /* EOPNOTSUPP */ || (e as { errno?: number }).errno === 93 /* EPROTONOSUPPORT */) return [];
    throw e;
  }
}

/** Dump the network namespace open at `nsFd` as the images of id `nsId`. */
export function dumpNetNs(nsFd: number, nsId: number, nsLink: string, env: NetnsDumpEnv): void {
  const { dir } = env;
  if (env.extKey !== undefined) {
    dir.write('netns', [create(NetnsEntrySchema, { extKey: env.extKey })], nsId);
    return;
  }
  if (env.empty) return;
  netlink.inNetns(nsFd, () => {
    // The ids this namespace gives the tree's others, by which its veths name the namespace of their peers.
    const byNsid = new Map<number, number>();
    for (const o of env.others ?? []) {
      const nsid = netlink.nsidOf(o.fd);
      if (nsid >= 0) byNsid.set(nsid, o.nsId);
    }
    dir.write('netdev', dumpLinks({ who: env.who, nsLink, nsId, log: env.log, ...(env.tunFile ? { tunFile: env.tunFile } : {}), treeNs: (nsid) => byNsid.get(nsid) }), nsId);
    const raw = (kind: RawImage, fn: (fd: number) => void): void => {
      const fd = dir.openRaw(kind, nsId, 'w');
      try {
        fn(fd);
      } finally {
        closeSync(fd);
      }
    };
    const what = `${env.who}: cannot dump its network namespace ${nsLink}`;
    raw('ifaddr', (fd) => run([ipTool(), 'addr', 'save'], { stdout: fd }, what));
    raw('route', (fd) => run([ipTool(), 'route', 'save', 'table', 'all'], { stdout: fd }, what));
    if (ipv6()) raw('route6', (fd) => run([ipTool(), '-6', 'route', 'save', 'table', 'all'], { stdout: fd }, what));
    raw('rule', (fd) => run([ipTool(), 'rule', 'save'], { stdout: fd }, what));
    const ipt = process.env['CR_IPTABLES'];
    const ipt4 = ipt ?? legacyIptables(false, false);
    if (ipt4) raw('iptables', (fd) => run([ipt4], { stdout: fd }, what, true));
    const ipt6 = ipt ?? (ipv6() ? legacyIptables(true, false) : undefined);
    if (ipt6) raw('ip6tables', (fd) => run([ipt6], { stdout: fd }, what, true));
    if (onPath('nft')) raw('nftables', (fd) => run(['nft', 'list', 'ruleset'], { stdout: fd }, what));
    dir.write('netns', [create(NetnsEntrySchema, {
      defConf4: readConf('ipv4', 'default'), allConf4: readConf('ipv4', 'all'),
      defConf6: ipv6() ? readConf('ipv6', 'default') : [], allConf6: ipv6() ? readConf('ipv6', 'all') : [],
      unixConf: readUnixConf(), ipv4Sysctl: readIpv4Sysctls(), cryoCoreConf: readCoreConf(),
    })], nsId);
    // As CRIU: written only when there is an entry (its image is opened lazily).
    for (const [kind, exp] of [['netnfCt', false], ['netnfExp', true]] as const) {
      const msgs = conntrack(exp);
      if (msgs.length) raw(kind, (fd) => { for (const m of msgs) writeAll(fd, m); });
    }
  });
  env.log.info(`dumped network namespace ${nsLink} as ${nsId}`);
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** What the restore of a network namespace needs from the images, read before anything is made. */
export interface NetnsImages {
  id: number;
  netns?: NetnsEntry;
  links: NetDeviceEntry[];
  /** Raw images present and not empty, by kind. */
  raw: Map<RawImage, Buffer>;
}

/**
 * Read and check the images of network namespace `nsId`; `empty`: --empty-ns net, nothing of it is read.
 * `external`: the --external list (veth[IFNAME]:HOSTIF); `who` names the tree's root in errors.
 */
export function loadNetNs(dir: ImageDir, nsId: number, empty: boolean, external: readonly string[], who: string, attachedTun: ReadonlySet<string> = new Set(), treeNs: ReadonlySet<number> = new Set()): NetnsImages {
  const img: NetnsImages = { id: nsId, links: [], raw: new Map() };
  if (dir.exists('netns', nsId)) img.netns = dir.readOne('netns', nsId);
  if (img.netns?.extKey) return img;
  if (empty) return img;
  if (!dir.exists('netdev', nsId)) {
    throw new CryoError(`bad image: ${dir.fileName('netdev', nsId)} is missing (the tree's network namespace was dumped with --empty-ns net? restore with it too)`);
  }
  img.links = dir.read('netdev', nsId);
  checkLinks(img.links, nsId, dir.fileName('netdev', nsId), external, who, attachedTun, treeNs);
  for (const kind of ['ifaddr', 'route', 'route6', 'rule', 'iptables', 'ip6tables', 'nftables', 'netnfCt', 'netnfExp'] as const) {
    if (!dir.exists(kind, nsId)) continue;
    const fd = dir.openRaw(kind, nsId, 'r');
    try {
      if (fstatSync(fd).size > 0) img.raw.set(kind, readFileSync(fd));
    } finally {
      closeSync(fd);
    }
  }
  if (img.raw.has('nftables') && !onPath('nft')) throw new CryoError(`cannot restore ${dir.fileName('nftables', nsId)}: nft is not installed`);
  // The firewall goes in late (restoreNetnsFirewall): its tools are checked now, before anything is made.
  for (const [kind, v6] of [['iptables', false], ['ip6tables', true]] as const) {
    if (img.raw.has(kind) && !iptablesRestore(v6)) throw new CryoError(`cannot restore ${dir.fileName(kind, nsId)}: it holds legacy ${v6 ? 'ip6tables' : 'iptables'} rules, and no legacy ${v6 ? 'ip6tables' : 'iptables'}-restore is installed`);
  }
  return img;
}

/** An image as a tool's stdin: an unnamed temporary file, opened again to read it from the start. */
function withInput(data: Buffer, fn: (fd: number) => void): void {
  const fd = openSync('/tmp', O_TMPFILE | constants.O_RDWR, 0o600);
  try {
    writeAll(fd, data);
    const r = openSync(`/proc/self/fd/${fd}`, 'r');
    try {
      fn(r);
    } finally {
      closeSync(r);
    }
  } finally {
    closeSync(fd);
  }
}

/** Conntrack TCP entries come back "be liberal" (the window tracking restarts), as CRIU's ct_restore_callback. */
function liberal(msg: Buffer): Buffer {
  const m = Buffer.from(msg);
  const family = m.readUInt8(16);
  if (family !== 2 && family !== 10) return m;
  const proto = netlink.parseAttrs(m.subarray(20), 0).get(4 /* CTA_PROTOINFO */);
  const tcp = proto && netlink.parseAttrs(proto, 0).get(1 /* CTA_PROTOINFO_TCP */);
  if (!tcp) return m;
  const a = netlink.parseAttrs(tcp, 0);
  for (const t of [4, 5]) { // CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, _REPLY: struct nf_ct_tcp_flags
    const f = a.get(t);
    if (f && f.length >= 2) {
      f[0]! |= 0x08; // IP_CT_TCP_FLAG_BE_LIBERAL
      f[1]! |= 0x08;
    }
  }
  return m;
}

const IP_ROUTE_SAVE_MAGIC = 0x45311224;

/**
 * `ip route save` keeps a route through a link without carrier (a veth whose
 * peer is down) with RTNH_F_LINKDOWN, which RTM_NEWROUTE refuses: the kernel
 * sets it again itself. Cleared here (and RTNH_F_DEAD) in each route message.
 */
function liveRoutes(b: Buffer, file: string): Buffer {
  if (b.length < 4 || b.readUInt32LE(0) !== IP_ROUTE_SAVE_MAGIC) return b;
  const out = Buffer.from(b);
  for (const m of netlinkMessages(out.subarray(4), file)) {
    if (m.readUInt16LE(4) === 24 /* RTM_NEWROUTE */ && m.length >= 16 + 12) {
      m.writeUInt32LE(m.readUInt32LE(16 + 8) & ~(0x01 /* RTNH_F_DEAD */ | 0x10 /* RTNH_F_LINKDOWN */), 16 + 8);
    }
  }
  return out;
}

function* netlinkMessages(b: Buffer, file: string): Generator<Buffer> {
  for (let off = 0; off < b.length; ) {
    const len = off + 16 <= b.length ? b.readUInt32LE(off) : 0;
    if (len < 16 || off + len > b.length) throw new CryoError(`bad image: ${file}: a truncated netlink message at offset ${off}`);
    yield b.subarray(off, off + len);
    off += len;
  }
}

export interface NetnsRestoreEnv {
  dir: ImageDir;
  log: Logger;
  weakSysctls: boolean;
  /** --external: veth[IFNAME]:HOSTIF for a veth whose other end was outside the tree. */
  external: readonly string[];
  /** The tree's other network namespaces, made already (a veth's peer may be in one), and the links made in all of them. */
  netnsFd?: (nsId: number) => number | undefined;
  made?: Set<string>;
  /** The dump's lock of the namespace (inventory's method and run id), put in before anything of it is made. */
  lock?: { method: LockMethod; runId: string };
}

/**
 * Fill the new network namespace open at `nsFd` (the restored root's) from
 * the images, locked first: sysctls, links, addresses, routes, rules,
 * conntrack. Its firewall comes later (restoreNetnsFirewall).
 */
export function restoreNetNs(nsFd: number, img: NetnsImages, env: NetnsRestoreEnv): void {
  if (img.netns?.extKey || madeEmpty(img)) return;
  const w: SysctlWriter = { weak: env.weakSysctls, where: 'the restored network namespace' };
  const id = img.id;
  const what = 'restore failed: the root\'s new network namespace';
  // The namespace cryo runs in, where the outside end of a veth goes (as CRIU's).
  const hostNsFd = openSync('/proc/thread-self/ns/net', 'r');
  try {
    netlink.inNetns(nsFd, () => restoreIn(img, env, w, what, hostNsFd, nsFd));
  } finally {
    closeSync(hostNsFd);
  }
  env.log.info(`restored network namespace ${id}: ${img.links.length} link(s), ${[...img.raw.keys()].join(', ') || 'no tool images'}`);
}

/** The contents of the namespace, from inside it (the calling thread is in it). */
function restoreIn(img: NetnsImages, env: NetnsRestoreEnv, w: SysctlWriter, what: string, hostNsFd: number, nsFd: number): void {
  const id = img.id;
  if (env.lock) {
    try {
      lockNetnsRules(env.lock.method, env.lock.runId, ipv6());
    } catch (e) {
      throw new CryoError(`${what}: cannot lock it (--network-lock ${env.lock.method} of the dump): ${(e as Error).message}`);
    }
  }
  const n = img.netns;
  if (n) {
    writeConf('ipv4', 'all', n.allConf4, w);
    writeConf('ipv4', 'default', n.defConf4, w);
    if (ipv6()) {
      writeConf('ipv6', 'all', n.allConf6, w);
      writeConf('ipv6', 'default', n.defConf6, w);
    }
    writeUnixConf(n.unixConf, w);
    writeIpv4Sysctls(n.ipv4Sysctl, w);
    writeCoreConf(n.cryoCoreConf, w);
  }
  restoreLinks(img.links, {
    hostNsFd, nsFd, nsId: id, made: env.made ?? new Set(), ...(env.netnsFd ? { netnsFd: env.netnsFd } : {}), external: env.external, w, defConf4: n?.defConf4 ?? [], defConf6: n?.defConf6 ?? [], ipv6: ipv6(), log: env.log, what,
  });
  const feed = feeder(img, env.dir, what);
  feed('ifaddr', [ipTool(), 'addr', 'restore']);
  for (const kind of ['route', 'route6'] as const) {
    const data = img.raw.get(kind);
    if (data) img.raw.set(kind, liveRoutes(data, env.dir.fileName(kind, id)));
    feed(kind, [ipTool(), 'route', 'restore']);
  }
  if (img.raw.has('rule')) {
    // The kernel's three default rules would be there twice.
    run([ipTool(), 'rule', 'flush'], {}, what);
    run([ipTool(), 'rule', 'delete', 'table', 'local'], {}, what);
    feed('rule', [ipTool(), 'rule', 'restore']);
  }
  for (const kind of ['netnfCt', 'netnfExp'] as const) {
    const data = img.raw.get(kind);
    if (!data) continue;
    for (const m of netlinkMessages(data, env.dir.fileName(kind, id))) {
      try {
        netlink.netlinkSendRaw(netlink.NETLINK_NETFILTER, kind === 'netnfCt' ? liberal(m) : Buffer.from(m));
      } catch (e) {
        throw new CryoError(`${what}: cannot restore a conntrack ${kind === 'netnfCt' ? 'entry' : 'expectation'}: ${(e as Error).message}`);
      }
    }
  }
}

/** The legacy iptables-restore (or CR_IPTABLES, as CRIU's), if there is one. */
function iptablesRestore(v6: boolean): string | undefined {
  return process.env['CR_IPTABLES'] ?? legacyIptables(v6, true);
}

/** A namespace restored empty (--empty-ns net): nothing of the images, nor the lock, is in it. */
export function madeEmpty(img: NetnsImages): boolean {
  return !img.links.length && !img.netns;
}

/** A raw image of `img` given to a tool as its stdin, if there is one. */
function feeder(img: NetnsImages, dir: ImageDir, what: string) {
  return (kind: RawImage, argv: string[], shell = false): void => {
    const data = img.raw.get(kind);
    if (data) withInput(data, (fd) => run(argv, { stdin: fd }, `${what} (${dir.fileName(kind, img.id)})`, shell));
  };
}

/**
 * The firewall of a network namespace restoreNetNs filled, once the tree's
 * connections are made: the segments a half-closed one needs from its peer
 * pass the lock by its mark, which a DROP of the tree's own rules would not
 * let through (nftables' accept is not final, and the images' rules come
 * after the lock's). The namespace stays locked meanwhile.
 */
export function restoreNetnsFirewall(nsFd: number, img: NetnsImages, dir: ImageDir): void {
  if (img.netns?.extKey || madeEmpty(img)) return;
  const what = 'restore failed: the firewall of the root\'s new network namespace';
  const feed = feeder(img, dir, what);
  netlink.inNetns(nsFd, () => {
    for (const [kind, v6] of [['iptables', false], ['ip6tables', true]] as const) {
      if (img.raw.has(kind)) feed(kind, [iptablesRestore(v6)!, '-w'], true);
    }
    // The images hold the dump's lock again: added to the restore's, both go at the unlock.
    feed('nftables', ['nft', '-f', '-']);
  });
}
