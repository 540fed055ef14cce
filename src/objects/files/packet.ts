// Packet sockets (AF_PACKET: SOCK_RAW, SOCK_DGRAM and the old SOCK_PACKET), as
// CRIU's PacketSockEntry keeps them: type, protocol, the interface bound to,
// the TPACKET version, reserve, timestamp source, copy threshold, the aux
// data/orig dev/vnet header/loss flags, memberships (promiscuous, all-multi,
// unicast and multicast addresses), the fanout group and the rings' layout.
// Read from packet_diag (one sock_diag dump per dump), made again in cryo.
// What the image cannot hold fails the dump: packets waiting (in the queue or
// in an rx ring), a BPF fanout program, the options CRIU drops.
import { closeSync } from 'node:fs';
import {
  create, FdTypes, FileEntrySchema, PacketMclistSchema, PacketRingSchema, PacketSockEntrySchema,
  type FileEntry, type PacketRing, type PacketSockEntry,
} from '../../images/index.js';
import { F, NR, O, SO, SOL_SOCKET, SysError, sock, sockDiagDump, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind, type FdProbe } from './kind.js';
import { netnsHere, noFown, type FileTable } from './table.js';
import { dumpSockOpts, restoreSockFilter, restoreSockOpts } from './sockopts.js';

const AF_PACKET = 17;
const SOCK_PACKET = 10;
const SOL_PACKET = 263;
const PACKET = {
  ADD_MEMBERSHIP: 1, RX_RING: 5, COPY_THRESH: 7, AUXDATA: 8, ORIGDEV: 9, VERSION: 10, RESERVE: 12,
  TX_RING: 13, LOSS: 14, VNET_HDR: 15, TIMESTAMP: 17, FANOUT: 18,
} as const;
/** SOL_PACKET options CRIU's images have no field for. */
const UNKEPT: Array<[number, string]> = [[19, 'PACKET_TX_HAS_OFF'], [20, 'PACKET_QDISC_BYPASS'], [23, 'PACKET_IGNORE_OUTGOING']];
/** packet_diag_info's pdi_flags. */
const PDI = { AUXDATA: 2, ORIGDEV: 4, VNETHDR: 8, LOSS: 0x10 } as const;
/** Membership types (PACKET_MR_*) and what CRIU keeps of them. */
const MR = { MULTICAST: 0, PROMISC: 1, ALLMULTI: 2, UNICAST: 3 } as const;
const FANOUT_CBPF = 6;
const FANOUT_EBPF = 7;
/** PACKET_FANOUT_FLAG_UNIQUEID (in the option's top byte): the kernel chose the id, which is set as it is. */
const FANOUT_UNIQUEID = 0x20 << 24;
/** The default of PacketSockEntry.fanout: in no group. */
const NO_FANOUT = 0xffffffff;

/** One packet socket as packet_diag shows it. */
export interface PacketDiag {
  type: number;
  /** The protocol in host order (pdiag_num). */
  num: number;
  info?: Buffer;
  mclist?: Buffer;
  rx?: Buffer;
  tx?: Buffer;
  fanout: boolean;
}

/** packet_diag of every packet socket of the network namespace cryo is in (the socket's), by inode, once per dump. */
function packetDiag(files: FileTable): Map<number, PacketDiag> {
  const ns = netnsHere();
  const had = files.packetDiag.get(ns);
  if (had) return had;
  const m = new Map<number, PacketDiag>();
  const req = Buffer.alloc(20); // struct packet_diag_req
  req.writeUInt8(AF_PACKET, 0);
  req.writeUInt32LE(0x1 | 0x2 | 0x4 | 0x8, 8); // PACKET_SHOW_INFO | MCLIST | RING_CFG | FANOUT
  for (const msg of sockDiagDump(req)) {
    if (msg.length < 16) continue;
    const d: PacketDiag = { type: msg.readUInt8(1), num: msg.readUInt16LE(2), fanout: false };
    for (let off = 16; off + 4 <= msg.length; ) {
      const len = msg.readUInt16LE(off);
      if (len < 4) break;
      const data = msg.subarray(off + 4, off + len);
      switch (msg.readUInt16LE(off + 2)) {
        case 0: d.info = data; break;
        case 1: d.mclist = data; break;
        case 2: d.rx = data; break;
        case 3: d.tx = data; break;
        case 4: d.fanout = true; break;
      }
      off += (len + 3) & ~3;
    }
    m.set(msg.readUInt32LE(4), d);
  }
  files.packetDiag.set(ns, m);
  return m;
}

const swap16 = (v: number) => ((v & 0xff) << 8) | (v >> 8);

function ring(b: Buffer | undefined): PacketRing | undefined {
  if (!b || b.length < 28) return undefined;
  const w = (i: number) => b.readUInt32LE(4 * i);
  // struct packet_diag_ring: block size and count, frame size and count, retire timeout, private size, features.
  return create(PacketRingSchema, { blockSize: w(0), blockNr: w(1), frameSize: w(2), frameNr: w(3), retireTmo: w(4), sizeofPriv: w(5), features: w(6) });
}

function isPacket(p: FdProbe): boolean {
  return p.st.isSocket() && sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.DOMAIN) === AF_PACKET;
}

function dumpPacket(p: FdProbe, id: number, files: FileTable): PacketSockEntry {
  const fd = p.copy();
  const type = sock.getsockoptInt(fd, SOL_SOCKET, SO.TYPE) ?? 0;
  const where = `task ${p.pid} fd ${p.fd} (packet socket ${p.st.ino})`;
  const d = packetDiag(files).get(Number(p.st.ino));
  if (!d?.info || d.info.length < 24) throw new CryoError(`${where}: not found by packet_diag (another network namespace?)`);
  // POLLIN: packets in the queue, or a frame of the rx ring handed to the task.
  if (sock.pollEvents(fd) & 0x1) throw new CryoError(`${where}: packets wait to be read (in its queue or its rx ring), which cryo cannot carry`);
  const inf = (i: number) => d.info!.readUInt32LE(4 * i);
  const flags = inf(5);
  const e = create(PacketSockEntrySchema, {
    id, type: d.type, protocol: swap16(d.num), flags: p.info.flags & ~O.CLOEXEC, ifindex: inf(0), fown: noFown(),
    opts: dumpSockOpts(fd, where), version: inf(1), reserve: inf(2), copyThresh: inf(3), timestamp: inf(4),
    auxData: (flags & PDI.AUXDATA) !== 0, origDev: (flags & PDI.ORIGDEV) !== 0, vnetHdr: (flags & PDI.VNETHDR) !== 0, loss: (flags & PDI.LOSS) !== 0,
  });
  if (type !== SOCK_PACKET) {
    for (const [opt, name] of UNKEPT) {
      if (sock.getsockoptInt(fd, SOL_PACKET, opt)) throw new CryoError(`${where}: ${name} is set, which CRIU's images cannot hold`);
    }
  }
  // struct packet_diag_mclist (44 bytes): ifindex, count, type, address length, address.
  for (let off = 0; d.mclist && off + 44 <= d.mclist.length; off += 44) {
    const mc = d.mclist;
    const mtype = mc.readUInt16LE(off + 8);
    if (mtype > MR.UNICAST) throw new CryoError(`${where}: a membership of type ${mtype}, which CRIU's images cannot hold`);
    const addr = mtype === MR.MULTICAST || mtype === MR.UNICAST ? Buffer.from(mc.subarray(off + 12, off + 12 + Math.min(32, mc.readUInt16LE(off + 10)))) : Buffer.alloc(0);
    // A membership added n times is n entries: each is added again.
    for (let n = mc.readUInt32LE(off + 4); n > 0; n--) e.mclist.push(create(PacketMclistSchema, { index: mc.readUInt32LE(off), type: mtype, addr }));
  }
  if (d.fanout) {
    const v = sock.getsockoptInt(fd, SOL_PACKET, PACKET.FANOUT) ?? 0;
    const ftype = (v >>> 16) & 0xff;
    if (ftype === FANOUT_CBPF || ftype === FANOUT_EBPF) throw new CryoError(`${where}: in a fanout group steered by a BPF program, which cryo cannot read`);
    e.fanout = (v & ~FANOUT_UNIQUEID) >>> 0;
  }
  const rx = ring(d.rx);
  const tx = ring(d.tx);
  if (rx) e.rxRing = rx;
  if (tx) e.txRing = tx;
  if (rx || tx) checkRings(fd, e.version, rx, tx, where);
  return e;
}

const ringSize = (r: PacketRing | undefined) => (r ? r.blockSize * r.blockNr : 0);

/**
 * The rings come back empty (CRIU keeps no frames either), so a frame whose
 * contents still matter fails the dump: in the rx ring one handed to the task
 * and not given back (TP_STATUS_USER; in TPACKET_V3 a block, or packets in the
 * block the kernel fills), in the tx ring one queued to be sent, being sent or
 * rejected (TP_STATUS_SEND_REQUEST, SENDING, WRONG_FORMAT). Read through a
 * mapping of cryo's own: packet_poll only looks at the frame before the head.
 */
function checkRings(fd: number, version: number, rx: PacketRing | undefined, tx: PacketRing | undefined, where: string): void {
  const V3 = 2;
  sock.withSocketMap(fd, ringSize(rx) + ringSize(tx), (read) => {
    if (rx && version === V3) {
      let newest: { seq: bigint; pkts: number } | undefined;
      for (let b = 0; b < rx.blockNr; b++) {
        // struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: status, packets, ..., seq_num at 24.
        const h = read(b * rx.blockSize, 32);
        if (h.readUInt32LE(8) & 1) throw new CryoError(`${where}: block ${b} of its rx ring holds packets not yet given back (TP_STATUS_USER), which cryo cannot carry`);
        const seq = h.readBigUInt64LE(24);
        if (!newest || seq > newest.seq) newest = { seq, pkts: h.readUInt32LE(12) };
      }
      if (newest?.pkts) throw new CryoError(`${where}: ${newest.pkts} packet(s) wait in the open block of its rx ring, which cryo cannot carry`);
    } else if (rx) {
      forFrames(rx, 0, read, (b, off, i) => {
        if (b.readUInt32LE(off) & 1) throw new CryoError(`${where}: frame ${i} of its rx ring holds a packet not yet given back (TP_STATUS_USER), which cryo cannot carry`);
      });
    }
    if (tx) {
      // tp_status is the first word of tpacket_hdr and tpacket2_hdr, at 20 in tpacket3_hdr.
      const at = version === V3 ? 20 : 0;
      let pending = 0;
      forFrames(tx, ringSize(rx), read, (b, off) => {
        if (b.readUInt32LE(off + at) & 0x7) pending++;
      });
      if (pending) throw new CryoError(`${where}: ${pending} frame(s) of its tx ring are queued to be sent, being sent or rejected, which cryo cannot carry`);
    }
  });
}

/** Each frame of a ring at `base` in the mapping: its block (read once) and offset in it. Frames do not cross blocks. */
function forFrames(r: PacketRing, base: number, read: (off: number, n: number) => Buffer, fn: (block: Buffer, off: number, i: number) => void): void {
  const perBlock = r.frameSize >= 32 ? Math.floor(r.blockSize / r.frameSize) : 0;
  let block: Buffer = Buffer.alloc(0);
  for (let i = 0; i < r.frameNr && perBlock; i++) {
    if (i % perBlock === 0) block = read(base + (i / perBlock) * r.blockSize, r.blockSize);
    fn(block, (i % perBlock) * r.frameSize, i);
  }
}

/** The name of interface `ifindex` (SIOCGIFNAME, in the namespace the socket is of). */
function ifName(fd: number, ifindex: number): Buffer {
  const ifr = Buffer.alloc(40);
  ifr.writeInt32LE(ifindex, 16);
  syscall('ioctl(SIOCGIFNAME)', NR.ioctl, fd, 0x8910, ifr);
  return ifr.subarray(0, 16);
}

function setInt(fd: number, opt: number, v: number, where: string, name: string): void {
  try {
    sock.setsockoptInt(fd, SOL_PACKET, opt, v);
  } catch (e) {
    throw new CryoError(`${where}: cannot set ${name} ${v} again: ${(e as Error).message}`);
  }
}

function setRing(fd: number, opt: number, r: PacketRing, where: string): void {
  const b = Buffer.alloc(28); // struct tpacket_req3
  [r.blockSize, r.blockNr, r.frameSize, r.frameNr, r.retireTmo, r.sizeofPriv, r.features].forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  try {
    sock.setsockoptRaw(fd, SOL_PACKET, opt, b);
  } catch (e) {
    throw new CryoError(`${where}: cannot make its ${opt === PACKET.RX_RING ? 'rx' : 'tx'} ring again: ${(e as Error).message}`);
  }
}

function openPacket(pe: PacketSockEntry): number {
  const where = `packet socket ${pe.id} (type ${pe.type}, protocol 0x${swap16(pe.protocol).toString(16)}, interface ${pe.ifindex})`;
  const fd = sock.socket(AF_PACKET, pe.type, pe.protocol);
  try {
    if (pe.type === SOCK_PACKET) {
      if (pe.ifindex > 0) {
        const sa = Buffer.alloc(16); // struct sockaddr: family, then the device name
        sa.writeUInt16LE(AF_PACKET, 0);
        ifName(fd, pe.ifindex).copy(sa, 2, 0, 13);
        sock.bindAddr(fd, sa);
      }
    } else {
      const sll = Buffer.alloc(20); // struct sockaddr_ll; protocol 0 keeps the socket's
      sll.writeUInt16LE(AF_PACKET, 0);
      sll.writeInt32LE(pe.ifindex, 4);
      try {
        sock.bindAddr(fd, sll);
      } catch (e) {
        throw new CryoError(`${where}: cannot bind it again: ${(e as Error).message}`);
      }
      // The version and reserve before the rings: they shape the frames.
      setInt(fd, PACKET.VERSION, pe.version, where, 'PACKET_VERSION');
      setInt(fd, PACKET.RESERVE, pe.reserve, where, 'PACKET_RESERVE');
      setInt(fd, PACKET.TIMESTAMP, pe.timestamp, where, 'PACKET_TIMESTAMP');
      setInt(fd, PACKET.COPY_THRESH, pe.copyThresh, where, 'PACKET_COPY_THRESH');
      if (pe.auxData) setInt(fd, PACKET.AUXDATA, 1, where, 'PACKET_AUXDATA');
      if (pe.origDev) setInt(fd, PACKET.ORIGDEV, 1, where, 'PACKET_ORIGDEV');
      if (pe.vnetHdr) setInt(fd, PACKET.VNET_HDR, 1, where, 'PACKET_VNET_HDR');
      if (pe.loss) setInt(fd, PACKET.LOSS, 1, where, 'PACKET_LOSS');
      for (const mc of pe.mclist) {
        const mreq = Buffer.alloc(40); // struct packet_mreq_max: ifindex, type, address length, address[32]
        mreq.writeInt32LE(mc.index, 0);
        mreq.writeUInt16LE(mc.type, 4);
        mreq.writeUInt16LE(mc.addr.length, 6);
        mreq.set(mc.addr, 8);
        try {
          sock.setsockoptRaw(fd, SOL_PACKET, PACKET.ADD_MEMBERSHIP, mreq);
        } catch (e) {
          throw new CryoError(`${where}: cannot add its membership of type ${mc.type} on interface ${mc.index} again: ${(e as Error).message}`);
        }
      }
      if (pe.rxRing) setRing(fd, PACKET.RX_RING, pe.rxRing, where);
      if (pe.txRing) setRing(fd, PACKET.TX_RING, pe.txRing, where);
      if (pe.fanout !== undefined && pe.fanout !== NO_FANOUT) setInt(fd, PACKET.FANOUT, pe.fanout | 0, where, 'PACKET_FANOUT');
    }
    restoreSockOpts(fd, pe.opts!);
    restoreSockFilter(fd, pe.opts!);
    if (pe.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
    return fd;
  } catch (e) {
    closeSync(fd);
    if (e instanceof SysError) throw new CryoError(`${where}: ${e.message}`);
    throw e;
  }
}

function checkPacket(entries: FileEntry[]): void {
  for (const fe of entries) {
    const pe = partOf(fe, 'psk');
    if (!pe.opts || !pe.fown) throw badFile(fe, 'packet socket entry without its opts or fown');
    if (pe.type !== 2 && pe.type !== 3 && pe.type !== SOCK_PACKET) throw badFile(fe, `packet socket of type ${pe.type}`);
    if (pe.protocol > 0xffff) throw badFile(fe, `packet socket of protocol ${pe.protocol}`);
    for (const mc of pe.mclist) {
      if (mc.type > MR.UNICAST || mc.addr.length > 32) throw badFile(fe, `packet socket membership of type ${mc.type} with a ${mc.addr.length}-byte address`);
    }
  }
}

export const packetsk: FdKind = {
  name: 'packet socket',
  type: FdTypes.PACKETSK,
  match: isPacket,
  dump(p, env) {
    const id = env.files.newId();
    // The key finds it for a mapping of its ring (mm.ts).
    env.files.add(create(FileEntrySchema, { type: FdTypes.PACKETSK, id, psk: dumpPacket(p, id, env.files) }), `packet:${p.st.ino}`);
    return id;
  },
  open(fe) {
    return openPacket(partOf(fe, 'psk'));
  },
  check: checkPacket,
};
