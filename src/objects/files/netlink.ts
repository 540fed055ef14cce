// Netlink sockets, as CRIU's NetlinkSkEntry keeps them: the protocol, the port
// id it is bound to, its multicast groups and the peer it is connected to
// (port id and group). Read with getsockname/getpeername and
// NETLINK_LIST_MEMBERSHIPS on cryo's copy (netlink_diag may be missing), made
// again in cryo and bound to the same port id. What the image cannot hold
// fails the dump: messages waiting to be read, a pending error (an overrun),
// the SOL_NETLINK options (NETLINK_EXT_ACK...), which CRIU drops.
import { closeSync } from 'node:fs';
import { create, FdTypes, FileEntrySchema, NetlinkSkEntrySchema, type FileEntry, type NetlinkSkEntry } from '../../images/index.js';
import { AF, F, NR, O, SO, SOL_SOCKET, sock, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind, type FdProbe } from './kind.js';
import { noFown } from './table.js';
import { dumpSockOpts, restoreSockFilter, restoreSockOpts } from './sockopts.js';

const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_LIST_MEMBERSHIPS = 9;
/** SOL_NETLINK flags CRIU's images have no field for. */
const NETLINK_FLAGS: Array<[number, string]> = [
  [3, 'NETLINK_PKTINFO'], [4, 'NETLINK_BROADCAST_ERROR'], [5, 'NETLINK_NO_ENOBUFS'], [8, 'NETLINK_LISTEN_ALL_NSID'],
  [10, 'NETLINK_CAP_ACK'], [11, 'NETLINK_EXT_ACK'], [12, 'NETLINK_GET_STRICT_CHK'],
];
/** netlink_sock's states (NetlinkSkEntry.state). */
const NETLINK_UNCONNECTED = 0;
const NETLINK_CONNECTED = 1;

const SOCK_DGRAM = 2;
const SOCK_RAW = 3;

/** A sockaddr_nl: nl_family (2), pad (2), nl_pid (4), nl_groups (4). */

function sockaddrNl(pid: number, groups: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF.NETLINK, 0);
  b.writeUInt32LE(pid >>> 0, 4);
  b.writeUInt32LE(groups >>> 0, 8);
  return b;
}

function isNetlink(p: FdProbe): boolean {
  return p.st.isSocket() && sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.DOMAIN) === AF.NETLINK;
}

function dumpNetlink(p: FdProbe, id: number): NetlinkSkEntry {
  const fd = p.copy();
  const protocol = sock.getsockoptInt(fd, SOL_SOCKET, SO.PROTOCOL) ?? 0;
  const where = `task ${p.pid} fd ${p.fd} (netlink socket of protocol ${protocol} ${p.st.ino})`;
  // SOCK_DGRAM works as SOCK_RAW, but CRIU's entry has no type: cryo keeps it in a field of its own, else it would come back another SO_TYPE.
  const type = sock.getsockoptInt(fd, SOL_SOCKET, SO.TYPE);
  if (type !== SOCK_RAW && type !== SOCK_DGRAM) throw new CryoError(`${where}: a netlink socket of type ${type}`);
  const ev = sock.pollEvents(fd);
  if (ev & 0x1 /* POLLIN */) throw new CryoError(`${where}: messages wait to be read, which cryo cannot carry`);
  if (ev & 0x8 /* POLLERR */) throw new CryoError(`${where}: an error (a receive overrun?) waits to be read, which cryo cannot carry`);
  for (const [opt, name] of NETLINK_FLAGS) {
    if (sock.getsockoptInt(fd, SOL_NETLINK, opt)) throw new CryoError(`${where}: ${name} is set, which CRIU's images cannot hold`);
  }
  const self = sock.sockaddrOf(fd, false)!;
  const portid = self.readUInt32LE(4);
  // Every group, also those past 32 that sockaddr_nl cannot name; the trailing empty words left out.
  const list = sock.getsockoptRaw(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, 128);
  const groups = Array.from({ length: list.length >> 2 }, (_, i) => list.readUInt32LE(4 * i));
  while (groups.length && groups.at(-1) === 0) groups.pop();
  if (groups.length && !portid) throw new CryoError(`${where}: in multicast groups but bound to no port id`);
  // The peer: its port id and its group as a mask (one bit, or none).
  const peer = sock.sockaddrOf(fd, true);
  const dstPortid = peer?.readUInt32LE(4) ?? 0;
  const mask = peer?.readUInt32LE(8) ?? 0;
  const dstGroup = mask ? 32 - Math.clz32(mask) : 0;
  const connected = dstPortid !== 0 || dstGroup !== 0;
  return create(NetlinkSkEntrySchema, {
    id, ino: Number(p.st.ino), protocol, state: connected ? NETLINK_CONNECTED : NETLINK_UNCONNECTED,
    flags: p.info.flags & ~O.CLOEXEC, portid, groups, dstPortid, dstGroup, fown: noFown(), opts: dumpSockOpts(fd, where),
    ...(type === SOCK_DGRAM ? { sockType: SOCK_DGRAM } : {}),
  });
}

function openNetlink(ne: NetlinkSkEntry): number {
  const where = `netlink socket ${ne.ino} (protocol ${ne.protocol}, port id ${ne.portid})`;
  const fd = sock.socket(AF.NETLINK, ne.sockType === SOCK_DGRAM ? SOCK_DGRAM : SOCK_RAW, ne.protocol);
  try {
    if (ne.portid) {
      // Unlike CRIU, never another port id than the task had: a peer or the kernel may know it by it.
      try {
        sock.bindAddr(fd, sockaddrNl(ne.portid, ne.groups[0] ?? 0));
      } catch (e) {
        throw new CryoError(`${where}: cannot bind it to its port id again: ${(e as Error).message}`);
      }
      for (let w = 1; w < ne.groups.length; w++) {
        for (let bit = 0; bit < 32; bit++) {
          if ((ne.groups[w]! >>> bit) & 1) sock.setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 32 * w + bit + 1);
        }
      }
    }
    if (ne.state === NETLINK_CONNECTED) {
      try {
        sock.connectAddr(fd, sockaddrNl(ne.dstPortid, ne.dstGroup ? 2 ** (ne.dstGroup - 1) : 0));
      } catch (e) {
        throw new CryoError(`${where}: cannot connect it to port id ${ne.dstPortid}, group ${ne.dstGroup} again: ${(e as Error).message}`);
      }
    }
    restoreSockOpts(fd, ne.opts!);
    restoreSockFilter(fd, ne.opts!);
    if (ne.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function checkNetlink(entries: FileEntry[]): void {
  for (const fe of entries) {
    const ne = partOf(fe, 'nlsk');
    if (!ne.opts || !ne.fown) throw badFile(fe, 'netlink socket entry without its opts or fown');
    if (ne.protocol > 31) throw badFile(fe, `netlink socket of protocol ${ne.protocol}`);
    if (ne.state !== NETLINK_CONNECTED && ne.state !== NETLINK_UNCONNECTED) throw badFile(fe, `netlink socket in state ${ne.state}`);
    if (ne.groups.length > 32) throw badFile(fe, `netlink socket in ${ne.groups.length} words of groups`);
    if (ne.dstGroup > 32) throw badFile(fe, `netlink socket connected to group ${ne.dstGroup}`);
    if (ne.sockType && ne.sockType !== SOCK_DGRAM) throw badFile(fe, `netlink socket of type ${ne.sockType}`);
    if (ne.groups.some((g) => g !== 0) && !ne.portid) throw badFile(fe, 'netlink socket in groups without a port id');
  }
}

export const netlinksk: FdKind = {
  name: 'netlink socket',
  type: FdTypes.NETLINKSK,
  match: isNetlink,
  dump(p, env) {
    const id = env.files.newId();
    env.files.add(create(FileEntrySchema, { type: FdTypes.NETLINKSK, id, nlsk: dumpNetlink(p, id) }));
    return id;
  },
  open(fe) {
    return openNetlink(partOf(fe, 'nlsk'));
  },
  inheritKey: (fe) => (fe.nlsk ? `socket:[${fe.nlsk.ino}]` : undefined),
  check: checkNetlink,
};
