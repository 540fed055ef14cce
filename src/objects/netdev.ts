// The links of a tree's network namespace, as CRIU keeps them in netdev-N.img
// (net_device_entry): the loopback, veth pairs and bridges with their ports. A veth keeps its index,
// name, MTU, MAC address and flags; peer_ifindex is the index of its other
// end, and peer_nsid the namespace that end is in when it is the tree's (the
// same one: cryo dumps one network namespace). A veth whose other end is
// outside the tree has no peer_nsid: the restore makes the pair with that end
// in cryo's own namespace, named by --external veth[IFNAME]:HOSTIF[@BRIDGE].
// The links are made first, then the caller restores addresses and routes.
import { create, isFieldSet, NetDeviceEntrySchema, NdType, type NetDeviceEntry, type SysctlEntry } from '../images/index.js';
import { netlink } from '../sys/index.js';
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
}

/** The entries of the links of the calling thread's namespace; one cryo cannot make again fails the dump. */
export function dumpLinks(env: LinkDumpEnv): NetDeviceEntry[] {
  return netlink.listLinks().map((l) => {
    const base = {
      ifindex: l.index, mtu: l.mtu, flags: l.flags, name: l.name,
      conf4: readConf('ipv4', l.name), conf6: readConf('ipv6', l.name),
      ...(l.master !== undefined ? { master: l.master } : {}),
    };
    if (l.type === netlink.ARPHRD_LOOPBACK) {
      // As CRIU with nsid support: a link without a peer names itself, in this namespace.
      return create(NetDeviceEntrySchema, { type: NdType.LOOPBACK, ...base, peerIfindex: l.index, peerNsid: env.nsId });
    }
    if (l.kind === 'veth') {
      const outside = l.linkNetnsid !== undefined;
      if (outside) env.log.warn(`${env.who}: veth ${l.name} of network namespace ${env.nsLink} has its peer outside the tree: the restore needs --external veth[${l.name}]:HOSTIF`);
      return create(NetDeviceEntrySchema, {
        type: NdType.VETH, ...base, ...(l.address ? { address: l.address } : {}),
        peerIfindex: l.link ?? l.index, ...(outside ? {} : { peerNsid: env.nsId }),
      });
    }
    // A bridge of the namespace: its ports name it as their master (as CRIU, none of its own settings).
    if (l.kind === 'bridge') return create(NetDeviceEntrySchema, { type: NdType.BRIDGE, ...base, ...(l.address ? { address: l.address } : {}) });
    throw new CryoError(`${env.who}: its network namespace ${env.nsLink} has link ${l.name} (${l.kind ?? `type ${l.type}`}), which cryo does not dump yet (only the loopback, veth pairs and bridges are carried)`);
  });
}

/** --external veth[NAME]:HOSTIF[@BRIDGE] (--veth-pair NAME=HOSTIF as CRIU rewrites it): the host end's name and bridge. */
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
export function checkLinks(links: NetDeviceEntry[], nsId: number, file: string, external: readonly string[], who: string): void {
  const byIndex = new Map(links.map((l) => [l.ifindex, l]));
  for (const l of links) {
    if (l.master) {
      const m = byIndex.get(l.master);
      if (!m || m.type !== NdType.BRIDGE) throw new CryoError(`bad image: ${file}: link ${l.name} has master index ${l.master}, which is not a bridge of the namespace`);
    }
    if (l.type === NdType.LOOPBACK || l.type === NdType.BRIDGE) continue;
    if (l.type !== NdType.VETH) throw new CryoError(`bad image: ${file}: link ${l.name} is of type ${NdType[l.type] ?? l.type}, which cryo does not restore yet`);
    if (vethExternal(external, l.name)) {
      if (!vethExternal(external, l.name)!.host) throw new CryoError(`--external veth[${l.name}]: names no host interface`);
      continue;
    }
    if (!isFieldSet(l, NetDeviceEntrySchema.field.peerNsid)) {
      throw new CryoError(`restore failed: ${who}: veth ${l.name} of its network namespace (${file}) has its peer outside the tree, and no --external veth[${l.name}]:HOSTIF names it`);
    }
    if (l.peerNsid !== nsId) throw new CryoError(`bad image: ${file}: veth ${l.name} has its peer in network namespace ${l.peerNsid}, which is not the tree's (${nsId})`);
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
  /** cryo's own network namespace: where the outside end of a veth goes. */
  hostNsFd: number;
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
  const made = new Set<number>();
  for (const l of links) {
    try {
      if (l.type === NdType.LOOPBACK) {
        netlink.setLink(l.name, l.flags, l.mtu);
      } else if (l.type === NdType.BRIDGE) {
        const info = netlink.attr(netlink.IFLA.LINKINFO, netlink.attr(netlink.IFLA_INFO_KIND, Buffer.from('bridge')));
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK | netlink.NLM_F_CREATE | NLM_F_EXCL,
          Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l), info]));
      } else if (made.has(l.ifindex)) {
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK, Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l)]));
      } else {
        const ext = vethExternal(env.external, l.name);
        const peer = ext
          ? [netlink.attr(netlink.IFLA.IFNAME, Buffer.from(ext.host)), netlink.attr(IFLA_NET_NS_FD, u32(env.hostNsFd))]
          : [];
        const peerInfo = Buffer.concat([ifinfo(ext ? 0 : l.peerIfindex, 0), ...peer]);
        const info = netlink.attr(netlink.IFLA.LINKINFO, Buffer.concat([
          netlink.attr(netlink.IFLA_INFO_KIND, Buffer.from('veth')),
          netlink.attr(IFLA_INFO_DATA, netlink.attr(VETH_INFO_PEER, peerInfo)),
        ]));
        netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.NEWLINK, netlink.NLM_F_REQUEST_ACK | netlink.NLM_F_CREATE | NLM_F_EXCL,
          Buffer.concat([ifinfo(l.ifindex, l.flags), ...linkAttrs(l), info]));
        if (!ext) made.add(l.peerIfindex);
        else if (ext.bridge) netlink.inNetns(env.hostNsFd, () => toBridge(ext.host, ext.bridge!));
        env.log.info(`made veth ${l.name} (index ${l.ifindex}), its peer ${ext ? `${ext.host} in cryo's network namespace` : `index ${l.peerIfindex}`}`);
      }
    } catch (e) {
      const ext = l.type === NdType.VETH ? vethExternal(env.external, l.name) : undefined;
      throw new CryoError(`${env.what}: cannot make link ${l.name} (${NdType[l.type] ?? l.type}${ext ? `, peer ${ext.host}` : ''}) as it was (index ${l.ifindex}, flags 0x${l.flags.toString(16)}, mtu ${l.mtu}): ${(e as Error).message}`);
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

/** The host end of an external veth into its bridge (as CRIU's move_veth_to_bridge), in the calling thread's namespace. */
function toBridge(host: string, bridge: string): void {
  const br = netlink.listLinks().find((k) => k.name === bridge);
  if (!br) throw new CryoError(`there is no bridge ${bridge} for ${host}`);
  netlink.netlinkTalk(netlink.NETLINK_ROUTE, netlink.RTM.SETLINK, netlink.NLM_F_REQUEST_ACK,
    Buffer.concat([ifinfo(0, 0), netlink.attr(netlink.IFLA.IFNAME, Buffer.from(host)), netlink.attr(netlink.IFLA.MASTER, u32(br.index))]));
}
