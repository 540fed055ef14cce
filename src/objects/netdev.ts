// The links of a tree's network namespace, as CRIU keeps them in netdev-N.img
// (net_device_entry): the loopback, veth pairs, bridges with their ports,
// macvlans on a link outside (--external macvlan[IFNAME]:HOSTIF), and
// persistent tun/tap devices (tun_link_entry; the files of tun devices that
// tasks hold are not carried yet). A veth keeps its index,
// name, MTU, MAC address and flags; peer_ifindex is the index of its other
// end, and peer_nsid the namespace that end is in when it is the tree's (the
// same one: cryo dumps one network namespace). A veth whose other end is
// outside the tree has no peer_nsid: the restore makes the pair with that end
// in cryo's own namespace, named by --external veth[IFNAME]:HOSTIF[@BRIDGE].
// The links are made first, then the caller restores addresses and routes.
import { closeSync } from 'node:fs';
import { create, isFieldSet, MacvlanLinkEntrySchema, NetDeviceEntrySchema, NdType, TunLinkEntrySchema, type NetDeviceEntry, type SysctlEntry, type TunLinkEntry } from '../images/index.js';
import { netlink, tun } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';
import { readConf, writeConf, type SysctlWriter } from './netns-sysctl.js';

const AF_PACKET = 17;
const IFLA_INFO_DATA = 2;
const IFLA_NET_NS_FD = 28;
const VETH_INFO_PEER = 1;
const NLM_F_EXCL = 0x200;

/** Where the links are dumped: the tree's namespace as named in errors. */
export interface LinkDumpEnv {
  /** The task named in errors: the tree's root. */
  who: string;
  /** The namespace's link, "net:[INO]". */
  nsLink: string;
  /** Its id in the images. */
  nsId: number;
  log: Logger;
  /** A file of the tree's attached to tun device `name` (cryo's copy, closed here). */
  tunFile?: (name: string) => number | undefined;
  /** The images' id of the tree's network namespace this one names `nsid` (a link's IFLA_LINK_NETNSID), if it is one of the tree's. */
  treeNs?: (nsid: number) => number | undefined;
}

/** The entries of the links of the calling thread's namespace; one cryo cannot make again fails the dump. */
export function dumpLinks(env: LinkDumpEnv): NetDeviceEntry[] {
  return netlink.listLinks().map((l) => {
    const base = {
      ifindex: l.index, mtu: l.mtu, flags: l.flags, name: l.name,
      conf4: readConf('ipv4', l.name), conf6: readConf('ipv6', l.name),
      ...(l.master !== undefined ? { master: l.master } : {}),
    };
    // As CRIU with nsid support: a link without a peer names itself, in this namespace.
    const self = { peerIfindex: l.index, peerNsid: env.nsId };
    if (l.type === netlink.ARPHRD_LOOPBACK) return create(NetDeviceEntrySchema, { type: NdType.LOOPBACK, ...base, ...self });
    if (l.kind === 'veth') {
      // Its other end here, in another network namespace of the tree's (CRIU's link_nsid), or outside the tree.
      const peerNs = l.linkNetnsid === undefined ? env.nsId : env.treeNs?.(l.linkNetnsid);
      if (peerNs === undefined) env.log.warn(`${env.who}: veth ${l.name} of network namespace ${env.nsLink} has its peer outside the tree: the restore needs --external veth[${l.name}]:HOSTIF`);
      return create(NetDeviceEntrySchema, {
        type: NdType.VETH, ...base, ...(l.address ? { address: l.address } : {}),
        peerIfindex: l.link ?? l.index, ...(peerNs === undefined ? {} : { peerNsid: peerNs }),
      });
    }
    // A bridge of the namespace: its ports name it as their master (as CRIU, none of its own settings).
    const address = l.address ? { address: l.address } : {};
    if (l.kind === 'bridge') return create(NetDeviceEntrySchema, { type: NdType.BRIDGE, ...base, ...address, ...self });
    if (l.kind === 'macvlan') {
      const d = l.infoData ? netlink.parseAttrs(l.infoData, 0) : new Map<number, Buffer>();
      const mode = d.get(1); // IFLA_MACVLAN_MODE
      if (!mode) throw new CryoError(`${env.who}: macvlan ${l.name} of its network namespace ${env.nsLink}: the kernel does not show its mode`);
      const flags = d.get(2); // IFLA_MACVLAN_FLAGS
      // As CRIU, the restore makes it on a link of cryo's namespace that --external macvlan[] names: one on a link of its own namespace could not come back so.
      if (l.linkNetnsid === undefined) throw new CryoError(`${env.who}: macvlan ${l.name} of its network namespace ${env.nsLink} is on a link of that namespace, which cryo does not dump yet (only a macvlan on a link outside the tree)`);
      env.log.warn(`${env.who}: macvlan ${l.name} of network namespace ${env.nsLink} has its lower link outside the tree: the restore needs --external macvlan[${l.name}]:HOSTIF`);
      return create(NetDeviceEntrySchema, {
        type: NdType.MACVLAN, ...base, ...address, peerIfindex: l.link ?? l.index,
        macvlan: create(MacvlanLinkEntrySchema, { mode: mode.readUInt32LE(0), ...(flags ? { flags: flags.readUInt16LE(0) } : {}) }),
      });
    }
    if (l.kind === 'tun') return create(NetDeviceEntrySchema, { type: NdType.TUN, ...base, ...(l.type === ARPHRD_ETHER ? address : {}), ...self, tun: dumpTun(l, env) });
    throw new CryoError(`${env.who}: its network namespace ${env.nsLink} has link ${l.name} (${l.kind ?? `type ${l.type}`}), which cryo does not dump yet (only the loopback, veth pairs, bridges, macvlans and persistent tun/tap devices are carried)`);
  });
}

const ARPHRD_ETHER = 1;

/**
 * A tun/tap device's settings (CRIU's tun_link_entry): its flags, owner and group
 * as netlink shows them (IFLA_TUN_*), its send buffer and vnet header size read
 * on a file attached to it: a task's of the tree (its tun files are dumped with
 * it, tunfile.ts), or for a persistent device nobody holds one of cryo's,
 * attached with those same flags (which TUNSETIFF gives the device). A device
 * held by a file outside the tree is refused.
 */
function dumpTun(l: netlink.Link, env: LinkDumpEnv): TunLinkEntry {
  const where = `${env.who}: tun link ${l.name} of its network namespace ${env.nsLink}`;
  const d = l.infoData ? netlink.parseAttrs(l.infoData, 0) : new Map<number, Buffer>();
  const u8 = (t: number): number | undefined => d.get(t)?.readUInt8(0);
  const type = u8(3); // IFLA_TUN_TYPE
  if (type !== tun.IFF_TUN && type !== tun.IFF_TAP) throw new CryoError(`${where}: the kernel does not show its settings (IFLA_TUN_TYPE)`);
  const persistent = !!u8(6);
  const flags = type | (u8(4) ? 0 : tun.IFF_NO_PI) | (u8(5) ? tun.IFF_VNET_HDR : 0) | (u8(7) ? tun.IFF_MULTI_QUEUE : 0);
  const id = (t: number): number => (d.get(t) ? d.get(t)!.readInt32LE(0) : -1); // IFLA_TUN_OWNER/GROUP: none when unset
  const held = env.tunFile?.(l.name);
  if (held === undefined && !persistent) throw new CryoError(`${where} is not persistent and held open by no task of the tree (a process outside it holds it)`);
  const fd = held ?? tun.openTun();
  try {
    if (held === undefined) {
      try {
        tun.attach(fd, l.name, flags);
      } catch (e) {
        if ((e as { errno?: number }).errno === 16 /* EBUSY */) throw new CryoError(`${where} is attached to a file of a process outside the tree`);
        throw e;
      }
    }
    if (type === tun.IFF_TAP && tun.filterLength(fd)) throw new CryoError(`${where} has a socket filter (TUNSETTXFILTER/TUNATTACHFILTER), which cryo cannot dump (as CRIU)`);
    const s = tun.settings(fd);
    return create(TunLinkEntrySchema, { flags: flags | (persistent ? tun.IFF_PERSIST : 0), owner: id(1), group: id(2), vnethdr: s.vnethdr, sndbuf: s.sndbuf });
  } finally {
    closeSync(fd);
  }
}

/** --external veth[NAME]:HOSTIF[@BRIDGE] (--veth-pair NAME=HOSTIF as CRIU rewrites it): the host end's name and bridge. */
/** --external netdev[NAME]:HOSTDEV: a link made beforehand in cryo's namespace, to be moved in (CRIU's move_veth). */
export function netdevExternal(external: readonly string[], name: string): string | undefined {
  const key = `netdev[${name}]:`;
  return external.find((e) => e.startsWith(key))?.slice(key.length) || undefined;
}

/** --external macvlan[NAME]:HOSTIF: the lower link in cryo's namespace. */
export function macvlanExternal(external: readonly string[], name: string): string | undefined {
  const key = `macvlan[${name}]:`;
  return external.find((e) => e.startsWith(key))?.slice(key.length) || undefined;
}

export function vethExternal(external: readonly string[], name: string): { host: string; bridge?: string } | undefined {
  const key = `veth[${name}]:`;
  const v = external.find((e) => e.startsWith(key))?.slice(key.length);
  if (v === undefined) return undefined;
  const at = v.indexOf('@');
  return at < 0 ? { host: v } : { host: v.slice(0, at), bridge: v.slice(at + 1) };
}

/**
 * Before anything is made: every link of `links` (netdev image `file` of
 * namespace `nsId`) can be made again. `who` names the tree's root.
 */
export function checkLinks(links: NetDeviceEntry[], nsId: number, file: string, external: readonly string[], who: string, attachedTun: ReadonlySet<string> = new Set(), treeNs: ReadonlySet<number> = new Set()): void {
  const byIndex = new Map(links.map((l) => [l.ifindex, l]));
  for (const l of links) {
    if (l.master) {
      const m = byIndex.get(l.master);
      if (!m || m.type !== NdType.BRIDGE) throw new CryoError(`bad image: ${file}: link ${l.name} has master index ${l.master}, which is not a bridge of the namespace`);
    }
    if (l.type === NdType.LOOPBACK || l.type === NdType.BRIDGE) continue;
    if (l.type === NdType.MACVLAN) {
      if (!l.macvlan) throw new CryoError(`bad image: ${file}: macvlan ${l.name} has no macvlan entry`);
      // As CRIU: the lower link is always named on restore (the namespace's own is not looked for).
      if (!macvlanExternal(external, l.name)) throw new CryoError(`restore failed: ${who}: macvlan ${l.name} of its network namespace (${file}) needs its lower link named: --external macvlan[${l.name}]:HOSTIF`);
      continue;
    }
    if (l.type === NdType.TUN) {
      if (!l.tun) throw new CryoError(`bad image: ${file}: tun link ${l.name} has no tun entry`);
      // Made persistent at first; the first file of the tree attached drops it.
      if (!(l.tun.flags & tun.IFF_PERSIST) && !attachedTun.has(l.name)) throw new CryoError(`bad image: ${file}: tun link ${l.name} is not persistent, and no tun file of files.img is attached to it`);
      continue;
    }
    if (l.type !== NdType.VETH) throw new CryoError(`bad image: ${file}: link ${l.name} is of type ${NdType[l.type] ?? l.type}, which cryo does not restore yet`);
    const named = netdevExternal(external, l.name) !== undefined || vethExternal(external, l.name) !== undefined;
    if (named && isFieldSet(l, NetDeviceEntrySchema.field.peerNsid)) {
      throw new CryoError(`--external names veth ${l.name} of ${file}, whose peer is in the tree's namespace too (index ${l.peerIfindex}): it is made with its peer, not outside`);
    }
    if (netdevExternal(external, l.name)) continue;
    if (vethExternal(external, l.name)) {
      if (!vethExternal(external, l.name)!.host) throw new CryoError(`--external veth[${l.name}]: names no host interface`);
      continue;
    }
    if (!isFieldSet(l, NetDeviceEntrySchema.field.peerNsid)) {
      throw new CryoError(`restore failed: ${who}: veth ${l.name} of its network namespace (${file}) has its peer outside the tree, and no --external veth[${l.name}]:HOSTIF names it`);
    }
    if (l.peerNsid !== nsId) {
      // Its peer in another network namespace of the tree's: made with it, from whichever namespace comes first.
      if (treeNs.has(l.peerNsid)) continue;
      throw new CryoError(`bad image: ${file}: veth ${l.name} has its peer in network namespace ${l.peerNsid}, which is not the tree's (${nsId})`);
    }
    const peer = byIndex.get(l.peerIfindex);
    if (!peer || peer.type !== NdType.VETH || peer.peerIfindex !== l.ifindex || peer === l) {
      throw new CryoError(`bad image: ${file}: veth ${l.name} has peer index ${l.peerIfindex}, which is not a veth paired with it`);
    }
  }
}

function ifinfo(index: number, flags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(AF_PACKET, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  return b;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};

/** The attributes of a link as it was: name, MTU, MAC address. */
function linkAttrs(l: NetDeviceEntry): Buffer[] {
  const a = [netlink.attr(netlink.IFLA.IFNAME, Buffer.from(l.name)), netlink.attr(netlink.IFLA.MTU, u32(l.mtu))];
  if (l.address.length) a.push(netlink.attr(netlink.IFLA.ADDRESS, l.address));
  return a;
}

export interface LinkRestoreEnv {
  /** cryo's own network namespace: where the outside end of a veth goes, and a macvlan's lower link is. */
  hostNsFd: number;
  /** The tree's new namespace (the calling thread is in it), and its id. */
  nsFd: number;
  nsId: number;
  /** cryo's fd of the tree's other network namespace `nsId` (where the peer of a veth may be). */
  netnsFd?: (nsId: number) => number | undefined;
  /** The links made so far in the tree's namespaces ("nsId/ifindex"): a veth's peer, made with it. */
  made: Set<string>;
  external: readonly string[];
  w: SysctlWriter;
  /** The namespace's default confs: a link's values equal to them are not written (it has them already). */
  defConf4: SysctlEntry[];
  defConf6: SysctlEntry[];
  ipv6: boolean;
  log: Logger;
  what: string;
}

/**
 * Make the links of `links` in the calling thread's namespace (the new one),
 * each with its index, name, MTU, address and flags, and write their confs.
 * A veth pair of the namespace is made by its first end (the second one gets
 * its name and the rest after); an outside one with its other end in cryo's namespace.
 */
export function restoreLinks(links: NetDeviceEntry[], env: LinkRestoreEnv): void {
  const made = env.made;
  const key = (nsId: number, index: number) => `${nsId}/${index}`;
  for (const l of links) {
    try {
      if (l.type === NdType.LOOPBACK) {
        netlink.setLink(l.name, l.flags, l.mtu);
      } else if (l.type === NdType.BRIDGE) {
        const info = netlink.attr(netlink.IFLA.LINKINFO, netlink.attr(netlink.IFLA_INFO_KIND, Buffer.from('bridge')));
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK | netlink.NLM_F_CREATE | NLM_F_EXCL,
          Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l), info]));
      } else if (l.type === NdType.MACVLAN) {
        makeMacvlan(l, env);
      } else if (l.type === NdType.TUN) {
        const t = l.tun!;
        const fd = tun.openTun();
        try {
          tun.makeDevice(fd, { name: l.name, index: l.ifindex, flags: t.flags & ~tun.IFF_PERSIST, owner: t.owner, group: t.group, sndbuf: t.sndbuf, vnethdr: t.vnethdr });
        } finally {
          closeSync(fd);
        }
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l)]));
      } else if (l.type === NdType.VETH && netdevExternal(env.external, l.name)) {
        moveIn(l, netdevExternal(env.external, l.name)!, env);
      } else if (made.has(key(env.nsId, l.ifindex))) {
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l)]));
      } else {
        const ext = vethExternal(env.external, l.name);
        // The peer in another network namespace of the tree's (its own restore then only sets it as it was).
        const peerNs = !ext && l.peerNsid !== env.nsId ? env.netnsFd?.(l.peerNsid) : undefined;
        if (!ext && l.peerNsid !== env.nsId && peerNs === undefined) throw new CryoError(`its peer's network namespace ${l.peerNsid} is not made`);
        const peer = ext
          ? [netlink.attr(netlink.IFLA.IFNAME, Buffer.from(ext.host)), netlink.attr(IFLA_NET_NS_FD, u32(env.hostNsFd))]
          : peerNs !== undefined ? [netlink.attr(IFLA_NET_NS_FD, u32(peerNs))] : [];
        const peerInfo = Buffer.concat([ifinfo(ext ? 0 : l.peerIfindex, 0), ...peer]);
        const info = netlink.attr(netlink.IFLA.LINKINFO, Buffer.concat([
          netlink.attr(netlink.IFLA_INFO_KIND, Buffer.from('veth')),
          netlink.attr(IFLA_INFO_DATA, netlink.attr(VETH_INFO_PEER, peerInfo)),
        ]));
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK | netlink.NLM_F_CREATE | NLM_F_EXCL,
          Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l), info]));
        if (!ext) made.add(key(l.peerNsid, l.peerIfindex));
        else if (ext.bridge) netlink.inNetns(env.hostNsFd, () => toBridge(ext.host, ext.bridge!));
        env.log.info(`made veth ${l.name} (index ${l.ifindex}), its peer ${ext ? `${ext.host} in cryo's network namespace` : `index ${l.peerIfindex}`}`);
      }
    } catch (e) {
      const ext = l.type === NdType.VETH ? netdevExternal(env.external, l.name) ?? vethExternal(env.external, l.name)?.host : l.type === NdType.MACVLAN ? macvlanExternal(env.external, l.name) : undefined;
      throw new CryoError(`${env.what}: cannot make link ${l.name} (${NdType[l.type] ?? l.type}${ext ? `, ${l.type === NdType.VETH ? 'peer' : 'lower link'} ${ext}` : ''}) as it was (index ${l.ifindex}, flags 0x${l.flags.toString(16)}, mtu ${l.mtu}): ${(e as Error).message}`);
    }
    // lo is made with the namespace, before default is set: all of its values are written (CRIU).
    const lo = l.type === NdType.LOOPBACK;
    writeConf('ipv4', l.name, l.conf4, env.w, lo ? undefined : env.defConf4);
    if (env.ipv6) writeConf('ipv6', l.name, l.conf6, env.w, lo ? undefined : env.defConf6);
  }
  // Every link made: the ports into their bridges (CRIU's restore_master_link).
  for (const l of links) {
    if (!l.master) continue;
    try {
      netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK,
        Buffer.concat([ifinfo(l.ifindex, 0), netlink.attr(netlink.IFLA.MASTER, u32(l.master))]));
    } catch (e) {
      throw new CryoError(`${env.what}: cannot put link ${l.name} into bridge index ${l.master}: ${(e as Error).message}`);
    }
  }
}

/**
 * A veth made beforehand in cryo's namespace (--external netdev[NAME]:HOSTDEV,
 * its other end left there) moved into the tree's, as CRIU's move_veth: with
 * the name, MTU, MAC and flags it had, and its index (IFLA_NEW_IFINDEX).
 */
function moveIn(l: NetDeviceEntry, host: string, env: LinkRestoreEnv): void {
  netlink.inNetns(env.hostNsFd, () => {
    const link = netlink.listLinks().find((k) => k.name === host);
    if (!link) throw new CryoError(`there is no link ${host} in cryo's network namespace`);
    const ifi = ifinfo(link.index, l.flags);
    ifi.writeUInt8(0, 0); // AF_UNSPEC
    netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([
      ifi, ...linkAttrs(l), netlink.attr(netlink.IFLA_NEW_IFINDEX_ATTR, u32(l.ifindex)), netlink.attr(IFLA_NET_NS_FD, u32(env.nsFd)),
    ]));
  });
}

/**
 * A macvlan made on its lower link in cryo's namespace (as CRIU): the request
 * goes there, with IFLA_LINK the lower link's index and IFLA_NET_NS_FD the
 * tree's namespace, where it is made with its index, name, MTU, MAC and flags.
 */
function makeMacvlan(l: NetDeviceEntry, env: LinkRestoreEnv): void {
  const lower = macvlanExternal(env.external, l.name)!;
  const m = l.macvlan!;
  const data = [netlink.attr(1 /* IFLA_MACVLAN_MODE */, u32(m.mode))];
  if (isFieldSet(m, MacvlanLinkEntrySchema.field.flags)) {
    const f = Buffer.alloc(2);
    f.writeUInt16LE(m.flags, 0);
    data.push(netlink.attr(2 /* IFLA_MACVLAN_FLAGS */, f));
  }
  const info = netlink.attr(netlink.IFLA.LINKINFO, Buffer.concat([
    netlink.attr(netlink.IFLA_INFO_KIND, Buffer.from('macvlan')), netlink.attr(IFLA_INFO_DATA, Buffer.concat(data)),
  ]));
  netlink.inNetns(env.hostNsFd, () => {
    const link = netlink.listLinks().find((k) => k.name === lower);
    if (!link) throw new CryoError(`there is no link ${lower} in cryo's network namespace`);
    netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK | netlink.NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([
      ifinfo(l.ifindex, l.flags), ...linkAttrs(l), netlink.attr(netlink.IFLA.LINK, u32(link.index)), netlink.attr(IFLA_NET_NS_FD, u32(env.nsFd)), info,
    ]));
  });
}

/** The host end of an external veth into its bridge, and up (as CRIU's move_veth_to_bridge), in the calling thread's namespace. */
function toBridge(host: string, bridge: string): void {
  const br = netlink.listLinks().find((k) => k.name === bridge);
  if (!br) throw new CryoError(`there is no bridge ${bridge} for ${host}`);
  const name = netlink.attr(netlink.IFLA.IFNAME, Buffer.from(host));
  netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([ifinfo(0, 0), name, netlink.attr(netlink.IFLA.MASTER, u32(br.index))]));
  const up = ifinfo(0, netlink.IFF_UP);
  up.writeUInt32LE(netlink.IFF_UP, 12); // ifi_change: only IFF_UP
  netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([up, name]));
}
