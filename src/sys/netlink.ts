// Network namespaces from cryo's side: enter one with the calling (main)
// thread, find the one a socket lives in, and talk rtnetlink and nfnetlink in
// it. A socket keeps the namespace it was made in, so a netlink or inet socket
// made while the thread is inside serves that namespace after the thread left.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { syscall, trySyscall } from './libc.js';
import { SysError } from './errors.js';
import { AF, NLM_F, NLMSG, NR, SOCK } from './nr.js';

const AF_UNSPEC = 0;
const AF_PACKET = 17;
const SOCK_RAW = 3;

const CLONE_NEWNET = 0x40000000;
const SIOCGSKNS = 0x894c;
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

export const RTM = { NEWLINK: 16, GETLINK: 18, SETLINK: 19 } as const;
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, LINKINFO: 18, LINK_NETNSID: 37 } as const;
export const IFLA_INFO_KIND = 1;
export const ARPHRD_LOOPBACK = 772;
export const IFF_UP = 1;

/** The inode of a namespace file (what /proc/PID/ns/net names as net:[INO]). */
export function nsInode(fd: number): number {
  return Number(fstatSync(fd).ino);
}

/**
 * Run `fn` with the calling thread in the network namespace open at `nsFd`,
 * then go back to the one it was in (also when `fn` throws).
 */
export function inNetns<T>(nsFd: number, fn: () => T): T {
  const back = openSync('/proc/thread-self/ns/net', 'r');
  try {
    syscall('setns(net)', NR.setns, nsFd, CLONE_NEWNET);
    try {
      return fn();
    } finally {
      syscall('setns(net)', NR.setns, back, CLONE_NEWNET);
    }
  } finally {
    closeSync(back);
  }
}

/** The network namespace a socket belongs to (SIOCGSKNS): a new fd of cryo's; undefined where the kernel cannot say. */
export function socketNetns(sockFd: number): number | undefined {
  const r = trySyscall(NR.ioctl, sockFd, SIOCGSKNS, 0);
  return r < 0 ? undefined : r;
}

/** One netlink message: its type and flags, and its payload after the 16-byte header. */
export interface NlMsg {
  type: number;
  flags: number;
  /** The whole message, header included (as CRIU writes conntrack entries). */
  raw: Buffer;
  payload: Buffer;
}

function header(type: number, flags: number, body: Uint8Array): Buffer {
  const msg = Buffer.alloc(16 + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(flags, 6);
  msg.writeUInt32LE(1, 8);
  msg.set(body, 16);
  return msg;
}

/**
 * Send one request on a new netlink socket of `proto` (made in the calling
 * thread's namespace) and read replies up to NLMSG_DONE (a dump) or the ACK.
 */
export function netlinkTalk(proto: number, type: number, flags: number, body: Uint8Array): NlMsg[] {
  const fd = syscall('socket', NR.socket, AF.NETLINK, SOCK_RAW | SOCK.CLOEXEC, proto);
  try {
    const msg = header(type, flags, body);
    syscall('sendto', NR.sendto, fd, msg, msg.length, 0, 0, 0);
    const out: NlMsg[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = syscall('recvfrom', NR.recvfrom, fd, buf, buf.length, 0, 0, 0);
      for (let off = 0; off + 16 <= n; ) {
        const len = buf.readUInt32LE(off);
        if (len < 16 || off + len > n) return out;
        const t = buf.readUInt16LE(off + 4);
        if (t === NLMSG.DONE) return out;
        if (t === NLMSG.ERROR) {
          const err = -buf.readInt32LE(off + 16);
          if (err) throw new SysError(`netlink request ${type}`, err);
          return out; // the ACK
        }
        const raw = Buffer.from(buf.subarray(off, off + len));
        out.push({ type: t, flags: buf.readUInt16LE(off + 6), raw, payload: raw.subarray(16) });
        off += (len + 3) & ~3;
      }
    }
  } finally {
    syscall('close', NR.close, fd);
  }
}

/** A netlink dump request. */
export function netlinkDump(proto: number, type: number, body: Uint8Array): NlMsg[] {
  return netlinkTalk(proto, type, NLM_F.REQUEST | NLM_F.DUMP, body);
}

/** Send a whole message (header included, as read from an image) with NLM_F_REQUEST|ACK|CREATE; throws on a NACK. */
export function netlinkSendRaw(proto: number, raw: Buffer): void {
  netlinkTalk(proto, raw.readUInt16LE(4), NLM_F.REQUEST | NLM_F.ACK | NLM_F_CREATE, raw.subarray(16));
}

export const NLM_F_CREATE = 0x400;
export const NLM_F_REQUEST_ACK = NLM_F.REQUEST | NLM_F.ACK;

/** Attributes (struct nlattr/rtattr) from `off` on, by type (the nested bit masked off). */
export function parseAttrs(b: Buffer, off: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  while (off + 4 <= b.length) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > b.length) break;
    out.set(b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

/** One attribute, padded to 4 bytes. */
export function attr(type: number, value: Uint8Array): Buffer {
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  b.set(value, 4);
  return b;
}

/** A link as RTM_GETLINK reports it. */
export interface Link {
  index: number;
  /** ARPHRD_* */
  type: number;
  flags: number;
  name: string;
  mtu: number;
  /** IFLA_INFO_KIND (veth, tun, macvlan...), when the link has one. */
  kind?: string;
  /** IFLA_INFO_DATA: the kind's own attributes (IFLA_TUN_*...), as the kernel gave them. */
  infoData?: Buffer;
  address?: Buffer;
  master?: number;
  /** IFLA_LINK: the index of a veth's other end (in its own namespace). */
  link?: number;
  /** IFLA_LINK_NETNSID: set when that end is in another namespace (its id as seen from here). */
  linkNetnsid?: number;
}

const cstr = (b: Buffer | undefined): string | undefined => {
  if (!b) return undefined;
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString();
};

/** Every link of the calling thread's network namespace. */
export function listLinks(): Link[] {
  const ifi = Buffer.alloc(16);
  ifi.writeUInt8(AF_UNSPEC, 0);
  return netlinkDump(NETLINK_ROUTE, RTM.GETLINK, ifi).filter((m) => m.type === RTM.NEWLINK).map((m) => {
    const p = m.payload;
    const a = parseAttrs(p, 16);
    const info = a.get(IFLA.LINKINFO);
    const infoAttrs = info ? parseAttrs(info, 0) : undefined;
    const kind = cstr(infoAttrs?.get(IFLA_INFO_KIND));
    const infoData = infoAttrs?.get(2 /* IFLA_INFO_DATA */);
    const address = a.get(IFLA.ADDRESS);
    const master = a.get(IFLA.MASTER);
    const link = a.get(IFLA.LINK);
    const nsid = a.get(IFLA.LINK_NETNSID);
    return {
      index: p.readInt32LE(4), type: p.readUInt16LE(2), flags: p.readUInt32LE(8),
      name: cstr(a.get(IFLA.IFNAME)) ?? '', mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
      ...(kind ? { kind } : {}), ...(infoData ? { infoData: Buffer.from(infoData) } : {}), ...(address ? { address: Buffer.from(address) } : {}), ...(master ? { master: master.readUInt32LE(0) } : {}),
      ...(link ? { link: link.readUInt32LE(0) } : {}), ...(nsid ? { linkNetnsid: nsid.readInt32LE(0) } : {}),
    };
  });
}

const RTM_GETNSID = 90;
const RTM_NEWNSID = 88;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;

/**
 * The id the calling thread's network namespace gives the one open at `nsFd`
 * (what its links' IFLA_LINK_NETNSID name it by): -1 where it has none.
 */
export function nsidOf(nsFd: number): number {
  const fd = Buffer.alloc(4);
  fd.writeUInt32LE(nsFd, 0);
  const msgs = netlinkTalk(NETLINK_ROUTE, RTM_GETNSID, NLM_F.REQUEST | NLM_F.ACK, Buffer.concat([Buffer.alloc(4), attr(NETNSA_FD, fd)]));
  const m = msgs.find((x) => x.type === RTM_NEWNSID);
  return m ? parseAttrs(m.payload, 4).get(NETNSA_NSID)?.readInt32LE(0) ?? -1 : -1;
}

/** Does the kernel answer RTM_GETNSID (as CRIU's kerndat_nsid)? */
export function hasNsid(): boolean {
  const fd = openSync('/proc/thread-self/ns/net', 'r');
  try {
    nsidOf(fd);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

const IFLA_NEW_IFINDEX = 49;

/**
 * Can a link moved into another namespace be given its index there
 * (IFLA_NEW_IFINDEX)? As CRIU's probe: a negative one for a link that is not
 * there gives ERANGE where it is understood, ENODEV where it is not.
 */
export function hasNewIfindex(): boolean {
  const ifi = Buffer.alloc(16);
  const v = Buffer.alloc(4);
  v.writeInt32LE(-1, 0);
  try {
    netlinkTalk(NETLINK_ROUTE, RTM.SETLINK, NLM_F.REQUEST | NLM_F.ACK | NLM_F_CREATE, Buffer.concat([ifi, attr(IFLA_NEW_IFINDEX, v), attr(IFLA.IFNAME, Buffer.from('cryo-kdat'))]));
  } catch (e) {
    return (e as { errno?: number }).errno === 34; // ERANGE
  }
  return false;
}

/** IFLA_NEW_IFINDEX, for a link moved into another namespace. */
export const IFLA_NEW_IFINDEX_ATTR = IFLA_NEW_IFINDEX;

/** RTM_SETLINK: link `index` of the calling thread's namespace down (IFF_UP alone changed). */
export function setLinkDown(index: number): void {
  const ifi = Buffer.alloc(16);
  ifi.writeUInt8(AF_UNSPEC, 0);
  ifi.writeInt32LE(index, 4);
  ifi.writeUInt32LE(IFF_UP, 12); // ifi_change
  netlinkTalk(NETLINK_ROUTE, RTM.SETLINK, NLM_F.REQUEST | NLM_F.ACK, ifi);
}

/** RTM_SETLINK by name, as CRIU restores a loopback: its flags and MTU. */
export function setLink(name: string, flags: number, mtu: number): void {
  const ifi = Buffer.alloc(16);
  ifi.writeUInt8(AF_PACKET, 0);
  ifi.writeUInt32LE(flags >>> 0, 8);
  const m = Buffer.alloc(4);
  m.writeUInt32LE(mtu >>> 0, 0);
  netlinkTalk(NETLINK_ROUTE, RTM.SETLINK, NLM_F.REQUEST | NLM_F.ACK, Buffer.concat([ifi, attr(IFLA.IFNAME, Buffer.from(name)), attr(IFLA.MTU, m)]));
}
