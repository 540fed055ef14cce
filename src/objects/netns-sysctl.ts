// The sysctls of a network namespace as CRIU keeps them: net.ipv4.conf.* and
// net.ipv6.conf.* of each link and of all/default (in CRIU's order, one
// SysctlEntry per name, with a value where the kernel has it), net.unix.* and
// net.ipv4.ping_group_range; and net.core.somaxconn, in a field of cryo's own
// (CRIU keeps it not, and a restore would give the namespace the default). Read and written by cryo's thread while it is in
// the namespace: /proc/sys/net shows the namespace of the thread that opens it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { create, isFieldSet, SysctlEntrySchema, SysctlType, type SysctlEntry } from '../images/index.js';
import { CryoError } from '../context.js';

export const DEVCONFS4 = [
  'accept_local', 'accept_redirects', 'accept_source_route', 'arp_accept', 'arp_announce', 'arp_filter', 'arp_ignore',
  'arp_notify', 'bootp_relay', 'disable_policy', 'disable_xfrm', 'force_igmp_version', 'forwarding',
  'igmpv2_unsolicited_report_interval', 'igmpv3_unsolicited_report_interval', 'log_martians', 'medium_id',
  'promote_secondaries', 'proxy_arp', 'proxy_arp_pvlan', 'route_localnet', 'rp_filter', 'secure_redirects',
  'send_redirects', 'shared_media', 'src_valid_mark', 'tag', 'ignore_routes_with_linkdown', 'drop_gratuitous_arp',
  'drop_unicast_in_l2_multicast',
] as const;

export const DEVCONFS6 = [
  'accept_dad', 'accept_ra', 'accept_ra_defrtr', 'accept_ra_from_local', 'accept_ra_min_hop_limit', 'accept_ra_mtu',
  'accept_ra_pinfo', 'accept_ra_rt_info_max_plen', 'accept_ra_rtr_pref', 'accept_redirects', 'accept_source_route',
  'autoconf', 'dad_transmits', 'disable_ipv6', 'drop_unicast_in_l2_multicast', 'drop_unsolicited_na', 'force_mld_version',
  'force_tllao', 'forwarding', 'hop_limit', 'ignore_routes_with_linkdown', 'keep_addr_on_down', 'max_addresses',
  'max_desync_factor', 'mldv1_unsolicited_report_interval', 'mldv2_unsolicited_report_interval', 'mtu', 'ndisc_notify',
  'optimistic_dad', 'proxy_ndp', 'regen_max_retry', 'router_probe_interval', 'router_solicitation_delay',
  'router_solicitation_interval', 'router_solicitations', 'stable_secret', 'suppress_frag_ndisc', 'temp_prefered_lft',
  'temp_valid_lft', 'use_oif_addrs_only', 'use_optimistic', 'use_tempaddr',
] as const;

const UNIX_CONF = ['max_dgram_qlen'] as const;
/** net.core.* of a namespace's own that cryo keeps (CRIU keeps none). */
const CORE_CONF = ['somaxconn'] as const;

const read = (path: string): string | undefined => {
  try {
    return readFileSync(`/proc/sys/${path}`, 'utf8').replace(/\n$/, '');
  } catch {
    return undefined; // not in this kernel (or stable_secret never set: EIO)
  }
};

function readEntry(path: string, str: boolean): SysctlEntry {
  const v = read(path);
  if (str) return create(SysctlEntrySchema, { type: SysctlType.CTL_STR, ...(v !== undefined ? { sarg: v } : {}) });
  const n = v === undefined ? NaN : Number(v);
  return create(SysctlEntrySchema, { type: SysctlType.CTL_32, ...(Number.isInteger(n) ? { iarg: n } : {}) });
}

/** net/<proto>/conf/<tgt>/* for each name of CRIU's list. */
export function readConf(proto: 'ipv4' | 'ipv6', tgt: string): SysctlEntry[] {
  const names = proto === 'ipv4' ? DEVCONFS4 : DEVCONFS6;
  return names.map((n) => readEntry(`net/${proto}/conf/${tgt}/${n}`, n === 'stable_secret'));
}

export function readUnixConf(): SysctlEntry[] {
  const l = UNIX_CONF.map((n) => readEntry(`net/unix/${n}`, false));
  return l.some((e) => valueOf(e) !== undefined) ? l : [];
}

/** net.core.somaxconn, as cryo's own field of netns.img. */
export function readCoreConf(): SysctlEntry[] {
  return CORE_CONF.map((n) => readEntry(`net/core/${n}`, false));
}

export function writeCoreConf(conf: SysctlEntry[], w: SysctlWriter): void {
  writeList('core', CORE_CONF, conf, w);
}

/** net.ipv4.ping_group_range; the default "1 0" (no group may ping) is kept without a value, as CRIU. */
export function readIpv4Sysctls(): SysctlEntry[] {
  const v = read('net/ipv4/ping_group_range');
  if (v === undefined) return [];
  const def = /^1\s+0$/.test(v.trim());
  return [create(SysctlEntrySchema, { type: SysctlType.CTL_STR, ...(def ? {} : { sarg: v }) })];
}

export interface SysctlWriter {
  weak: boolean;
  /** Said in errors: "the restored network namespace". */
  where: string;
}

function write(path: string, value: string, w: SysctlWriter): void {
  const now = read(path);
  // stable_secret reads EIO until it is set: it is there all the same.
  if (now === undefined && !existsSync(`/proc/sys/${path}`)) {
    if (w.weak) return;
    throw new CryoError(`cannot restore ${path.replace(/\//g, '.')} in ${w.where}: this kernel does not have it (--weak-sysctls skips it)`);
  }
  if (now !== undefined && now.trim().split(/\s+/).join(' ') === value.trim().split(/\s+/).join(' ')) return;
  try {
    writeFileSync(`/proc/sys/${path}`, value);
  } catch (e) {
    throw new CryoError(`cannot set ${path.replace(/\//g, '.')} to ${value} in ${w.where}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The entry's value; none where the image has none (proto2: an unset field reads as its default). */
const valueOf = (e: SysctlEntry): string | undefined => {
  if (e.type === SysctlType.CTL_32) return isFieldSet(e, SysctlEntrySchema.field.iarg) ? String(e.iarg) : undefined;
  return isFieldSet(e, SysctlEntrySchema.field.sarg) ? e.sarg : undefined;
};

/**
 * Write a conf list back. As CRIU: names past the image's list are left, a
 * link's value equal to the default is skipped (not lo's, nor mtu), and
 * accept_redirects goes last (forwarding changes it).
 */
export function writeConf(proto: 'ipv4' | 'ipv6', tgt: string, conf: SysctlEntry[], w: SysctlWriter, def?: SysctlEntry[]): void {
  const names = proto === 'ipv4' ? DEVCONFS4 : DEVCONFS6;
  let last: [string, string] | undefined;
  names.forEach((n, i) => {
    const e = conf[i];
    if (!e) return;
    const v = valueOf(e);
    if (v === undefined) return;
    if (def && n !== 'mtu' && def[i] && valueOf(def[i]!) === v) return;
    const path = `net/${proto}/conf/${tgt}/${n}`;
    if (n === 'accept_redirects') last = [path, v];
    else write(path, v, w);
  });
  if (last) write(last[0], last[1], w);
}

export function writeUnixConf(conf: SysctlEntry[], w: SysctlWriter): void {
  writeList('unix', UNIX_CONF, conf, w);
}

/** net.<dir>.<name> for each of `names`, from the entries in that order (none: the images have none). */
function writeList(dir: string, names: readonly string[], conf: SysctlEntry[], w: SysctlWriter): void {
  if (!conf.length) return;
  if (conf.length !== names.length) throw new CryoError(`bad image: netns: ${conf.length} net.${dir} sysctls, not ${names.length}`);
  names.forEach((n, i) => {
    const v = valueOf(conf[i]!);
    if (v !== undefined) write(`net/${dir}/${n}`, v, w);
  });
}

export function writeIpv4Sysctls(conf: SysctlEntry[], w: SysctlWriter): void {
  const v = conf[0] && valueOf(conf[0]);
  if (v !== undefined && v !== '') write('net/ipv4/ping_group_range', v, w);
}
