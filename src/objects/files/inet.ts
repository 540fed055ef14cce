// Inet sockets (IPv4 and IPv6; TCP, UDP and UDP-Lite): unbound and bound
// sockets, TCP listeners with nothing in their accept queue, UDP sockets
// connected or not, and with --tcp-established established TCP connections
// whose peer is in the tree too (tcp.ts). Read from cryo's copy of the socket,
// written as CRIU's InetSkEntry, and made again in cryo (the task takes a copy)
// with the same address, port, options and backlog. A connection cryo cannot
// carry (closing states, one waiting to be accepted, a peer outside the tree,
// which needs the network lock) fails the dump.
import { closeSync } from 'node:fs';
import {
  create, isFieldSet, FdTypes, FileEntrySchema, InetSkEntrySchema, IpOptsEntrySchema, SkOptsEntrySchema, TcpOptsEntrySchema,
  type FileEntry, type InetSkEntry, type TcpOptsEntry,
} from '../../images/index.js';
import {
  AF, F, IP, IPPROTO, IPV6, NR, O, SHUT, SIOCINQ, SIOCOUTQ, SO, SOCK, SOL_SOCKET, TCP, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, UDP_CORK,
  SysError, dupCloexec, sock, sockDiagDump, syscall, trySyscall,
} from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, type DumpFilesEnv, type FdKind, type FdProbe, type RestoreFilesEnv } from './kind.js';
import { netnsHere, noFown, type FileTable } from './table.js';
import {
  connectSynSent, dumpTcpStream, finishTcpStream, loadTcpStreams, prepareTcpStream, REPAIRABLE, repairDone, repairOff, repairOn, resetAsPeer, streamState, TCPS, tcpStreamsOf, writeTcpStreams,
} from './tcp.js';
import { dumpSockOpts, restoreSockFilter, restoreSockOpts } from './sockopts.js';
import { diagConnections } from './tcp-lock.js';
import { dumpRawOpts, isPing, pingSocketAsGroup, procRawSockets, rawBindPort, rawName, rawShutdown, restoreRawOpts } from './inet-raw.js';

export const STATE_NAMES: Record<number, string> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE',
  8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING',
};
const TYPE_NAMES: Record<number, string> = { 1: 'stream', 2: 'datagram', 3: 'raw', 4: 'rdm', 5: 'seqpacket', 10: 'packet' };
const PROTOS = new Map<number, string>([[IPPROTO.TCP, 'TCP'], [IPPROTO.UDP, 'UDP'], [IPPROTO.UDPLITE, 'UDP-Lite']]);

const SO_PEERNAME = 28;

const int = (fd: number, level: number, opt: number) => sock.getsockoptInt(fd, level, opt) ?? 0;

/** A sockaddr_in/in6 as CRIU keeps it: the port, and the address as 32-bit words of its bytes. */
interface Addr {
  port: number;
  addr: number[];
}

function parseSockaddr(sa: Buffer | undefined, family: number): Addr {
  if (!sa || sa.length < 2 || sa.readUInt16LE(0) === 0) return { port: 0, addr: family === AF.INET ? [0] : [0, 0, 0, 0] };
  const port = sa.readUInt16BE(2);
  const words = (off: number, n: number) => Array.from({ length: n }, (_, i) => sa.readUInt32LE(off + 4 * i));
  return family === AF.INET ? { port, addr: words(4, 1) } : { port, addr: words(8, 4) };
}

function sockaddr(family: number, port: number, addr: readonly number[]): Buffer {
  const b = Buffer.alloc(family === AF.INET ? 16 : 28);
  b.writeUInt16LE(family, 0);
  b.writeUInt16BE(port, 2);
  addr.forEach((w, i) => b.writeUInt32LE(w >>> 0, (family === AF.INET ? 4 : 8) + 4 * i));
  return b;
}

export function showAddr(family: number, a: Addr): string {
  const bytes = Buffer.alloc(4 * a.addr.length);
  a.addr.forEach((w, i) => bytes.writeUInt32LE(w >>> 0, 4 * i));
  if (family === AF.INET) return `${[...bytes].join('.')}:${a.port}`;
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]:${a.port}`;
}

/** An end's address as both families name it: an IPv4-mapped IPv6 address as the IPv4 one. */
function endKey(family: number, a: Addr): string {
  const mapped = family === AF.INET6 && a.addr[0] === 0 && a.addr[1] === 0 && a.addr[2] === 0xffff0000;
  return mapped ? showAddr(AF.INET, { port: a.port, addr: [a.addr[3]!] }) : showAddr(family, a);
}

const INET_DIAG_SHUTDOWN = 8;

/** The raw sockets of a family (inet-raw.ts), read once per dump. */
function rawSockets(files: FileTable, family: number): Map<number, { state: number; dst: number[] }> {
  let m = files.rawSockets.get(family);
  if (!m) files.rawSockets.set(family, (m = procRawSockets(family)));
  return m;
}

/**
 * What only sock_diag tells of an inet socket: its shutdown bits (RCV 1, SEND 2,
 * as SkShutdown has them), by inode. One sock_diag dump per family and protocol
 * for the whole dump (the tree is frozen).
 */
function diagShutdowns(files: FileTable, family: number, proto: number): Map<number, number> {
  // Per network namespace: sock_diag answers for the one cryo is in (the socket's).
  const key = `${netnsHere()}:${family}:${proto}`;
  let m = files.inetShutdowns.get(key);
  if (m) return m;
  m = new Map();
  const req = Buffer.alloc(56); // struct inet_diag_req_v2
  req.writeUInt8(family, 0);
  req.writeUInt8(proto, 1);
  req.writeUInt32LE(0xffffffff, 4); // every state
  for (const msg of sockDiagDump(req)) {
    if (msg.length < 72) continue;
    let shut = 0;
    for (let off = 72; off + 4 <= msg.length; ) { // after struct inet_diag_msg
      const len = msg.readUInt16LE(off);
      if (len < 4) break;
      if ((msg.readUInt16LE(off + 2) & 0x3fff) === INET_DIAG_SHUTDOWN) shut = msg.readUInt8(off + 4);
      off += (len + 3) & ~3;
    }
    m.set(msg.readUInt32LE(68), shut); // idiag_inode
  }
  files.inetShutdowns.set(key, m);
  return m;
}

/** TCP_INFO's state, and for a listener the connections in its accept queue and its backlog. */
function tcpInfo(fd: number): { state: number; acceptQueue: number; backlog: number } {
  const b = sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.INFO, 104);
  // struct tcp_info: tcpi_state is byte 0; for a listener the kernel puts the
  // accept queue's length in tcpi_unacked (offset 24) and the backlog in tcpi_sacked (28).
  return { state: b[0]!, acceptQueue: b.readUInt32LE(24), backlog: b.readUInt32LE(28) };
}

/** TCP_INFO's tcpi_bytes_received (a FIN counts one), tcpi_bytes_sent and tcpi_bytes_retrans (data only). */
function tcpBytes(fd: number): { received: bigint; sent: bigint; retrans: bigint } {
  const b = sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.INFO, 216);
  if (b.length < 216) throw new CryoError(`TCP_INFO gave ${b.length} bytes, without tcpi_bytes_sent (Linux 4.19)`);
  return { received: b.readBigUInt64LE(128), sent: b.readBigUInt64LE(200), retrans: b.readBigUInt64LE(208) };
}

/**
 * Each reset connection whose peer's end was reset too (tcpResets): that end is
 * one of the tree's, and this one took no FIN of it before the reset (else its
 * error could be EPIPE, which cryo cannot tell): it had not received all the
 * peer wrote (rcv_nxt short of the peer's write_seq), or only data (no more
 * bytes than the peer sent, less what it sent again). Else refused.
 */
function checkTcpResets(files: FileTable): void {
  for (const r of files.tcpResets) {
    const me = files.tcp.find((t) => t.local === r.local && t.peer === r.peer);
    const peer = files.tcp.find((t) => t.local === r.peer && t.peer === r.local);
    if (!me || !peer) throw new CryoError(`${r.where}: cryo carries it only with the peer's end in the tree, before any FIN of it`);
    const behind = ((peer.stream.entry.outqSeq - me.stream.entry.inqSeq) >>> 0) !== 0;
    const p = tcpBytes(peer.fd);
    if (!behind && r.received > p.sent - p.retrans) throw new CryoError(`${r.where}: it may have taken its peer's FIN before the reset (EPIPE, not ECONNRESET), which cryo cannot tell`);
  }
}

/**
 * A TCP socket in CLOSE: never connected, or a connection that ended (both
 * FINs, or a reset). Its end of stream (RCV_SHUTDOWN: POLLRDHUP, as CRIU reads
 * it) comes back as a shutdown for reading, so that reads give 0 and not
 * ENOTCONN; writes fail either way. What a connection left to be read (data,
 * or the error of a reset) cryo cannot carry yet: refused.
 */
function closedTcp(fd: number, where: string): number {
  const ev = sock.pollEvents(fd);
  if (ev & 0x8 /* POLLERR */) throw new CryoError(`${where}: a closed TCP connection whose error (a reset?) waits to be read, which cryo cannot carry yet`);
  const unread = sock.queued(fd, SIOCINQ);
  if (unread) throw new CryoError(`${where}: a closed TCP connection with ${unread} bytes waiting to be read, which cryo cannot carry yet`);
  return ev & 0x2000 /* POLLRDHUP */ ? 1 : 0;
}

/**
 * The peer's end of a connection is here (sock_diag lists it) in a state that
 * sent no FIN (ESTABLISHED, CLOSE_WAIT): the connection was reset
 * before any FIN of the peer, with ECONNRESET.
 */
function peerSentNoFin(family: number, src: Addr, dst: Addr): boolean {
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((w, i) => w === b[i]);
  const peer = diagConnections(family).find((c) => c.conn.srcPort === dst.port && c.conn.dstPort === src.port && same(c.conn.src, dst.addr) && same(c.conn.dst, src.addr));
  return peer !== undefined && (peer.state === TCP_ESTABLISHED || peer.state === TCPS.CLOSE_WAIT);
}

function isInet(p: FdProbe): boolean {
  if (!p.st.isSocket()) return false;
  const d = sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.DOMAIN);
  return d === AF.INET || d === AF.INET6;
}

/** What a dump with --tcp-close leaves as it is (CRIU's connected states). */
const CONNECTED = new Set([1, 2, 4, 5, 8, 9, 11]); // ESTABLISHED, SYN_SENT, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING

/**
 * An established connection: locked (--network-lock), then in repair mode
 * through cryo's own fd, kept to the end of the dump (repair mode must be left
 * again if the tasks run on), and read.
 */
function holdConnection(fd: number, where: string, desc: string, c: Omit<FileTable['tcp'][number], 'fd' | 'stream' | 'where'>, files: FileTable, reset = false): number {
  const held = dupCloexec(fd);
  const lock = files.netlock;
  try {
    lock?.lock(c.conn);
  } catch (e) {
    closeSync(held);
    throw new CryoError(`${where}: cannot lock the connection (${desc}) with ${lock!.method}: ${(e as Error).message}`);
  }
  try {
    repairOn(held);
    // The state again in repair mode: a FIN that came in before it counts.
    const st = tcpInfo(held).state;
    if (!REPAIRABLE.has(st)) throw new Error(`it went to state ${STATE_NAMES[st] ?? st}`);
    // A reset connection (CLOSE: its send queue is gone with the reset), with ECONNRESET.
    const stream = dumpTcpStream(held, st);
    if (reset) {
      if (stream.entry.inqSeq === 0) throw new Error('it was reset before it was made (a refused connect, ECONNREFUSED), which cryo cannot carry yet');
      stream.entry.resetErrno = 104; // ECONNRESET
    }
    files.tcp.push({ ...c, where, fd: held, stream });
    return st;
  } catch (e) {
    if (files.tcp.at(-1)?.fd !== held) {
      // Its lock goes with the others' when the failed dump lets go (releaseTcp).
      try { repairOff(held); } catch { /* never was on */ }
      closeSync(held);
    }
    throw new CryoError(`${where}: cannot read the connection (${desc}) in repair mode: ${(e as Error).message}`);
  }
}

function dumpInet(p: FdProbe, id: number, env: DumpFilesEnv): InetSkEntry {
  const fd = p.copy();
  const family = int(fd, SOL_SOCKET, SO.DOMAIN);
  const type = int(fd, SOL_SOCKET, SO.TYPE);
  const proto = int(fd, SOL_SOCKET, SO.PROTOCOL);
  const protoName = PROTOS.get(proto);
  const fam = family === AF.INET ? 'IPv4' : 'IPv6';
  const plain = protoName !== undefined && (type === SOCK.STREAM || type === SOCK.DGRAM);
  const raw = type === SOCK.RAW;
  const what = plain ? `${protoName} socket` : rawName(type, proto) ?? `${TYPE_NAMES[type] ?? `type ${type}`} socket of protocol ${proto}`;
  const where = `task ${p.pid} fd ${p.fd} (${fam} ${what} ${p.st.ino})`;
  if (!plain && !raw && !isPing(type, proto)) throw new CryoError(`${where}: only TCP, UDP, UDP-Lite, ICMP and raw inet sockets are supported yet`);
  // Before repair mode, which reads as SO_REUSEADDR (it forces the port's reuse).
  const reuseaddr = int(fd, SOL_SOCKET, SO.REUSEADDR) !== 0;
  const src = parseSockaddr(sock.sockaddrOf(fd, false), family);
  let peer = sock.sockaddrOf(fd, true);
  // A TCP socket closed after a connection keeps its peer for SO_PEERNAME (not
  // for getpeername): a connection, as CRIU reads it: with --tcp-close restored
  // closed and unbound (its port went with the close), with --tcp-established
  // through repair (an end by both FINs; a reset is refused).
  if (!peer && type === SOCK.STREAM) {
    try {
      // The kernel wants exactly the address's size.
      const p2 = sock.getsockoptRaw(fd, SOL_SOCKET, SO_PEERNAME, family === AF.INET ? 16 : 28);
      if (p2.length >= 4 && p2.readUInt16BE(2) !== 0) peer = p2;
    } catch {
      /* ENOTCONN: never connected */
    }
  }
  let dst = parseSockaddr(peer, family);
  let state: number;
  let backlog = 0;
  let shutdown = 0;
  if (type === SOCK.STREAM) {
    const t = tcpInfo(fd);
    state = t.state;
    if (state === TCP_LISTEN) {
      // As CRIU: --skip-in-flight dumps the listener without them (their clients see a reset).
      if (t.acceptQueue && !env.skipInFlight) {
        throw new CryoError(`${where}: listening on ${showAddr(family, src)} with ${t.acceptQueue} connection(s) waiting to be accepted, which cryo cannot carry; --skip-in-flight drops them`);
      }
      backlog = t.backlog;
    } else if (state === TCP_CLOSE && (env.tcpClose || !peer)) {
      // Never connected (or --tcp-close, which takes a connection that ended as any other).
      if (!peer) shutdown = closedTcp(fd, where);
    } else {
      const conn = `${showAddr(family, src)} -> ${showAddr(family, dst)}`;
      if (env.tcpClose && CONNECTED.has(state)) {
        // --tcp-close: left as it is, and restored closed (no repair, no lock).
      } else if (state === TCP_CLOSE && sock.pollEvents(fd) & 0x8 /* POLLERR */) {
        // A reset whose error waits to be read: made again established and reset by its peer.
        if (!env.tcpEstablished) throw new CryoError(`${where}: a TCP connection that was reset (${conn}), its error not read yet; dump with --tcp-established`);
        // The error is ECONNRESET unless the peer's FIN came first (EPIPE), which the socket
        // does not tell: its peer's end must be here, never having sent one; a peer's end reset
        // too is not listed, and is looked for among the tree's connections at the end (finish).
        const listed = peerSentNoFin(family, src, dst);
        const c = { ino: Number(p.st.ino), local: endKey(family, src), peer: endKey(family, dst), reuseaddr, conn: { family, src: src.addr, srcPort: src.port, dst: dst.addr, dstPort: dst.port } };
        if (!listed) env.files.tcpResets.push({ where: `${where}: a TCP connection that was reset (${conn}), its error not read yet`, local: c.local, peer: c.peer, received: tcpBytes(fd).received });
        state = holdConnection(fd, where, conn, c, env.files, true);
      } else if (!REPAIRABLE.has(state)) {
        throw new CryoError(`${where}: a TCP connection in state ${STATE_NAMES[state] ?? state} (${conn}), which cryo cannot dump yet (--tcp-close restores it closed)`);
      } else if (!env.tcpEstablished) {
        const what = state === TCP_ESTABLISHED ? 'an established TCP connection' : state === TCP_CLOSE ? 'a TCP connection that ended'
          : state === TCPS.SYN_SENT ? 'a TCP connection being made (SYN_SENT)' : `a half-closed TCP connection (${STATE_NAMES[state] ?? state})`;
        throw new CryoError(`${where}: ${what} (${conn}); dump with --tcp-established`);
      } else {
        // The entry's state is the one the stream was read in.
        state = holdConnection(fd, where, conn, { ino: Number(p.st.ino), local: endKey(family, src), peer: endKey(family, dst), reuseaddr,
          conn: { family, src: src.addr, srcPort: src.port, dst: dst.addr, dstPort: dst.port } }, env.files);
      }
    }
  } else {
    state = peer ? TCP_ESTABLISHED : TCP_CLOSE;
    if (plain) {
      const unsent = sock.queued(fd, SIOCOUTQ);
      if (unsent && int(fd, proto, UDP_CORK)) throw new CryoError(`${where}: corked with ${unsent} bytes not yet sent, which cannot be dumped`);
    }
    // CRIU drops them with a warning; cryo does not lose data it was given.
    // Ping sockets have no SIOCINQ: poll tells whether anything waits.
    const ping = isPing(type, proto);
    const ev = ping || raw ? sock.pollEvents(fd) : 0;
    const unread = ping ? 0 : sock.queued(fd, SIOCINQ);
    if (unread) throw new CryoError(`${where}: ${unread} bytes of datagrams wait to be read, which cryo cannot carry yet`);
    if (ping || raw) {
      if (ev & 0x8 /* POLLERR */) throw new CryoError(`${where}: an ICMP error waits to be read, which cryo cannot carry yet`);
      // Shut down for reading, a ping socket always polls readable: a peek tells (0 is the end).
      const waiting = ping && (ev & 0x2000 /* POLLRDHUP */ ? sock.recvPeek(fd, Buffer.alloc(1)).n > 0 : (ev & 0x1) !== 0);
      if (waiting) throw new CryoError(`${where}: replies wait to be read, which cryo cannot carry yet`);
      shutdown = rawShutdown(fd, family, type, proto, ev, src.port !== 0, peer !== undefined, where);
      const r = raw ? rawSockets(env.files, family).get(Number(p.st.ino)) : undefined;
      if (r?.state === TCP_ESTABLISHED) {
        state = TCP_ESTABLISHED;
        dst = { port: 0, addr: r.dst };
      }
    } else {
      // An unbound socket is in no table sock_diag walks (and has nothing shut
      // down); raw_diag lists raw sockets of every protocol under IPPROTO_RAW.
      const shut = diagShutdowns(env.files, family, proto).get(Number(p.st.ino));
      if (shut === undefined && (src.port || peer)) throw new CryoError(`${where}: not found by sock_diag (another network namespace?)`);
      shutdown = shut ?? 0;
    }
  }
  const v6 = family === AF.INET6;
  const ipOpts = create(IpOptsEntrySchema, {
    freebind: int(fd, v6 ? IPPROTO.IPV6 : IPPROTO.IP, v6 ? IPV6.FREEBIND : IP.FREEBIND) !== 0,
    pktinfo: int(fd, v6 ? IPPROTO.IPV6 : IPPROTO.IP, v6 ? IPV6.RECVPKTINFO : IP.PKTINFO) !== 0,
    tos: int(fd, v6 ? IPPROTO.IPV6 : IPPROTO.IP, v6 ? IPV6.TCLASS : IP.TOS),
    ttl: v6 ? int(fd, IPPROTO.IPV6, IPV6.UNICAST_HOPS) : int(fd, IPPROTO.IP, IP.TTL),
    ...(raw ? { raw: dumpRawOpts(fd, family, proto, where) } : {}),
  });
  const opts = dumpSockOpts(fd, where);
  opts.reuseaddr = reuseaddr;
  const dev = sock.getsockoptRaw(fd, SOL_SOCKET, SO.BINDTODEVICE, 16);
  const ifname = dev.subarray(0, Math.max(0, dev.indexOf(0))).toString();
  if (ifname) opts.soBoundDev = ifname;
  // As CRIU 4: TCP's own options, the keepalive ones too, are in tcp_opts (each only where not 0);
  // TCP_USER_TIMEOUT too, in a field of cryo's own (CRIU loses it).
  let tcpOpts: TcpOptsEntry | undefined;
  if (type === SOCK.STREAM) {
    tcpOpts = create(TcpOptsEntrySchema);
    const t = tcpOpts as unknown as Record<string, number | boolean>;
    for (const [k, opt] of [['nodelay', TCP.NODELAY], ['cork', TCP.CORK]] as const) if (int(fd, IPPROTO.TCP, opt)) t[k] = true;
    for (const [k, opt] of [['keepcnt', TCP.KEEPCNT], ['keepidle', TCP.KEEPIDLE], ['keepintvl', TCP.KEEPINTVL], ['cryoUserTimeout', TCP.USER_TIMEOUT]] as const) {
      const v = int(fd, IPPROTO.TCP, opt);
      if (v) t[k] = v;
    }
  }
  return create(InetSkEntrySchema, {
    id, ino: Number(p.st.ino), family, type, proto, state, srcPort: src.port, dstPort: dst.port,
    flags: p.info.flags & ~O.CLOEXEC, backlog, srcAddr: src.addr, dstAddr: dst.addr,
    fown: noFown(), opts, ipOpts, ...(shutdown ? { shutdown } : {}),
    ...(v6 ? { v6only: int(fd, IPPROTO.IPV6, IPV6.V6ONLY) !== 0 } : {}),
    ...(tcpOpts ? { tcpOpts } : {}),
  });
}

/** Set an int option where it differs from the new socket's; a refusal names the socket, the option and the value. */
function setIf(fd: number, level: number, opt: number, v: number | boolean | undefined, where: string): void {
  if (v === undefined) return;
  const n = typeof v === 'boolean' ? Number(v) : v;
  if (n === int(fd, level, opt)) return;
  try {
    sock.setsockoptInt(fd, level, opt, n);
  } catch (e) {
    throw new CryoError(`restore failed: ${where}: setsockopt(level ${level}, option ${opt}, ${n}): ${SysError.is(e) ? e.code : (e as Error).message}`);
  }
}

function openInet(ie: InetSkEntry, env: RestoreFilesEnv): number {
  const where = `inet socket ${ie.ino}`;
  const opts = ie.opts;
  if (!opts) throw new CryoError(`${where}: no socket options in its entry`);
  let fd: number;
  try {
    fd = sock.socket(ie.family, ie.type, ie.proto);
  } catch (e) {
    if (!isPing(ie.type, ie.proto)) throw e;
    fd = pingSocketAsGroup(e as Error, () => sock.socket(ie.family, ie.type, ie.proto), where);
  }
  try {
    const v6 = ie.family === AF.INET6;
    if (v6 && ie.v6only !== undefined) setIf(fd, IPPROTO.IPV6, IPV6.V6ONLY, ie.v6only, where);
    if (opts.soBoundDev) sock.setsockoptRaw(fd, SOL_SOCKET, SO.BINDTODEVICE, Buffer.from(opts.soBoundDev + '\0'));
    const ip = ie.ipOpts;
    if (ip) {
      const lvl = v6 ? IPPROTO.IPV6 : IPPROTO.IP;
      setIf(fd, lvl, v6 ? IPV6.FREEBIND : IP.FREEBIND, ip.freebind, where);
      setIf(fd, lvl, v6 ? IPV6.RECVPKTINFO : IP.PKTINFO, ip.pktinfo, where);
      setIf(fd, lvl, v6 ? IPV6.TCLASS : IP.TOS, ip.tos, where);
      setIf(fd, lvl, v6 ? IPV6.UNICAST_HOPS : IP.TTL, ip.ttl, where);
      if (ie.type === SOCK.RAW && ip.raw) restoreRawOpts(fd, ie.family, ie.proto, ip.raw, where);
    }
    if (ie.type === SOCK.STREAM) {
      // Optional in the image, each set only where the socket had it: 0 is not a value the kernel takes.
      // The keepalive ones are in sk_opts in images of CRIU before 3.18, in tcp_opts since (both are read, as CRIU).
      const so = SkOptsEntrySchema.field;
      if (isFieldSet(opts, so.tcpKeepcnt)) setIf(fd, IPPROTO.TCP, TCP.KEEPCNT, opts.tcpKeepcnt, where);
      if (isFieldSet(opts, so.tcpKeepidle)) setIf(fd, IPPROTO.TCP, TCP.KEEPIDLE, opts.tcpKeepidle, where);
      if (isFieldSet(opts, so.tcpKeepintvl)) setIf(fd, IPPROTO.TCP, TCP.KEEPINTVL, opts.tcpKeepintvl, where);
      const t = ie.tcpOpts;
      const to = TcpOptsEntrySchema.field;
      if (t && isFieldSet(t, to.nodelay)) setIf(fd, IPPROTO.TCP, TCP.NODELAY, t.nodelay, where);
      if (t && isFieldSet(t, to.cork)) setIf(fd, IPPROTO.TCP, TCP.CORK, t.cork, where);
      if (t && isFieldSet(t, to.keepcnt)) setIf(fd, IPPROTO.TCP, TCP.KEEPCNT, t.keepcnt, where);
      if (t && isFieldSet(t, to.keepidle)) setIf(fd, IPPROTO.TCP, TCP.KEEPIDLE, t.keepidle, where);
      if (t && isFieldSet(t, to.keepintvl)) setIf(fd, IPPROTO.TCP, TCP.KEEPINTVL, t.keepintvl, where);
      if (t && isFieldSet(t, to.cryoUserTimeout)) setIf(fd, IPPROTO.TCP, TCP.USER_TIMEOUT, t.cryoUserTimeout, where);
    }
    if (ie.type === SOCK.STREAM && ie.dstPort !== 0 && env.tcpClose) {
      // As CRIU's --tcp-close: a new socket, unbound, shut down both ways (the
      // kernel sets the bits of an unconnected one and says ENOTCONN).
      restoreSockOpts(fd, opts);
      restoreSockFilter(fd, opts);
      const r = trySyscall(NR.shutdown, fd, SHUT.RDWR);
      if (r < 0 && r !== -107 /* ENOTCONN */) throw new CryoError(`${where}: cannot shut it down (errno ${-r})`);
      if (ie.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
      return fd;
    }
    const repair = ie.type === SOCK.STREAM && REPAIRABLE.has(ie.state) && (ie.state !== TCP_CLOSE || ie.dstPort !== 0);
    const stream = repair ? tcpStreamsOf(env.kinds).get(ie.ino) : undefined;
    if (repair && !stream) throw new CryoError(`${where}: connected (${STATE_NAMES[ie.state] ?? ie.state}), but tcp-stream-${ie.ino.toString(16)}.img is missing`);
    if (stream && !env.tcpEstablished) throw new CryoError(`${where}: an established TCP connection; restore with --tcp-established`);
    if (stream) prepareTcpStream(fd, stream.entry, streamState(ie.state, stream.entry));
    const anyAddr = ie.srcAddr.every((w) => w === 0);
    let bound = false;
    if (ie.srcPort || !anyAddr) {
      // As CRIU: SO_REUSEADDR for the bind (old connections of the port may linger
      // in TIME_WAIT), and freebind (it may have been bound with it, then had it
      // cleared); then the socket's own values.
      const freebind: [number, number] = v6 ? [IPPROTO.IPV6, IPV6.FREEBIND] : [IPPROTO.IP, IP.FREEBIND];
      sock.setsockoptInt(fd, SOL_SOCKET, SO.REUSEADDR, 1);
      // Sockets sharing a port by SO_REUSEPORT all need it for their binds,
      // also one that cleared it after: it goes back once all are bound.
      sock.setsockoptInt(fd, SOL_SOCKET, SO.REUSEPORT, 1);
      bound = true;
      sock.setsockoptInt(fd, ...freebind, 1);
      // SO_REUSEADDR took the force-reuse of repair mode, which binds over the
      // TIME_WAIT an ended connection left: repair mode again gives it back.
      if (stream) repairOn(fd);
      try {
        sock.bindAddr(fd, sockaddr(ie.family, rawBindPort(ie.type, ie.srcPort), ie.srcAddr));
      } catch (e) {
        throw new CryoError(`${where}: cannot bind ${showAddr(ie.family, { port: ie.srcPort, addr: ie.srcAddr })} again: ${(e as Error).message}`);
      }
      sock.setsockoptInt(fd, ...freebind, ie.ipOpts?.freebind ? 1 : 0);
    }
    // SO_REUSEADDR back to the socket's own; SO_REUSEPORT at the end.
    restoreSockOpts(fd, bound ? { ...opts, soReuseport: true } : opts);
    restoreSockFilter(fd, opts);
    if (ie.state === TCP_LISTEN) sock.listen(fd, ie.backlog);
    if (stream) {
      try {
        // In repair mode: no SYN, the socket is ESTABLISHED at once; one in SYN_SENT sends its SYN.
        if (ie.state === TCPS.SYN_SENT) connectSynSent(fd, sockaddr(ie.family, ie.dstPort, ie.dstAddr));
        else sock.connectAddr(fd, sockaddr(ie.family, ie.dstPort, ie.dstAddr));
        const conn = { family: ie.family, src: ie.srcAddr, srcPort: ie.srcPort, dst: ie.dstAddr, dstPort: ie.dstPort };
        finishTcpStream(fd, stream.entry, stream.data, streamState(ie.state, stream.entry), conn);
        if (stream.entry.resetErrno) resetAsPeer(fd, stream.entry, conn);
      } catch (e) {
        throw new CryoError(`${where}: cannot restore the connection (${STATE_NAMES[ie.state] ?? ie.state}): ${(e as Error).message}`);
      }
    }
    // Out of repair mode once every socket of the tree is there (its peer too).
    if (stream || bound) env.inetLate.push({ fd, repair: stream !== undefined, reuseaddr: opts.reuseaddr ?? false, reuseport: opts.soReuseport ?? false });
    if ((ie.type === SOCK.DGRAM || ie.type === SOCK.RAW) && ie.state === TCP_ESTABLISHED) {
      try {
        sock.connectAddr(fd, sockaddr(ie.family, ie.dstPort, ie.dstAddr));
      } catch (e) {
        throw new CryoError(`${where}: cannot connect to ${showAddr(ie.family, { port: ie.dstPort, addr: ie.dstAddr })} again: ${(e as Error).message}`);
      }
    }
    // SkShutdown's READ (1) and WRITE (2) bits; shutdown() takes SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2.
    const shut = (ie.shutdown ?? 0) & 3;
    if (shut) {
      // On an unconnected socket the kernel sets the bits and says ENOTCONN.
      const r = trySyscall(NR.shutdown, fd, shut === 3 ? SHUT.RDWR : shut === 2 ? SHUT.WR : SHUT.RD);
      if (r < 0 && !(r === -107 /* ENOTCONN */ && ie.state !== TCP_ESTABLISHED)) throw new CryoError(`${where}: cannot shut it down again (errno ${-r})`);
    }
    if (ie.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function checkInet(entries: FileEntry[]): void {
  for (const fe of entries) {
    const ie = fe.isk;
    if (!ie) throw badFile(fe, 'INETSK entry without its isk field');
    if (!ie.opts || !ie.fown) throw badFile(fe, 'inet socket entry without its opts or fown');
    if (ie.family !== AF.INET && ie.family !== AF.INET6) throw badFile(fe, `inet socket of family ${ie.family}`);
    const words = ie.family === AF.INET ? 1 : 4;
    if (ie.srcAddr.length !== words || (ie.dstAddr.length !== 0 && ie.dstAddr.length !== words)) throw badFile(fe, 'inet socket address of the wrong length');
    const known = (PROTOS.has(ie.proto) && (ie.type === SOCK.STREAM || ie.type === SOCK.DGRAM)) || isPing(ie.type, ie.proto) || (ie.type === SOCK.RAW && ie.proto < 263 /* IPPROTO_MAX */);
    if (!known) throw badFile(fe, `inet socket of type ${ie.type}, protocol ${ie.proto}`);
    if (ie.srcPort > 0xffff || ie.dstPort > 0xffff) throw badFile(fe, 'inet socket port above 65535');
    // Connected states other than ESTABLISHED come from --tcp-close dumps (planTcpRestore checks them).
    const states = [TCP_CLOSE, TCP_ESTABLISHED, ...(ie.type === SOCK.STREAM ? [TCP_LISTEN, ...CONNECTED] : [])];
    if (!states.includes(ie.state)) {
      throw badFile(fe, `inet socket in state ${STATE_NAMES[ie.state] ?? ie.state}, which needs TCP repair (not supported yet)`);
    }
  }
}

/**
 * The dump is over: cryo lets go of its fds of the connections. Where the tasks
 * run on (or the dump failed) the lock goes and the sockets leave repair mode,
 * as CRIU's network_unlock(); where they die they stay in it, so that their
 * close sends nothing to the peer, and the lock stays until the restore.
 */
export function releaseTcp(files: FileTable, runOn: boolean): void {
  for (const c of files.tcp.splice(0)) {
    if (runOn) {
      try {
        repairDone(c.fd, c.reuseaddr);
      } catch {
        /* the socket is gone with its task */
      }
    }
    closeSync(c.fd);
  }
  if (runOn) files.netlock?.release();
}

/** Once every socket of the restore exists: repair mode off, SO_REUSEPORT as it was. */
export function finishInetSockets(late: RestoreFilesEnv['inetLate']): void {
  for (const s of late.splice(0)) {
    if (s.repair) repairDone(s.fd, s.reuseaddr);
    if (!s.reuseport) sock.setsockoptInt(s.fd, SOL_SOCKET, SO.REUSEPORT, 0);
  }
}

export const inetsk: FdKind = {
  name: 'inet socket',
  type: FdTypes.INETSK,
  // A failed dump lets the connections go as they were.
  dumpCleanup: (files, cl, env) => cl.onFailure('TCP sockets in repair', () => env.inTreeNetns(() => releaseTcp(files, true))),
  finish: (files) => checkTcpResets(files),
  writeImages: (dir, files) => writeTcpStreams(files, dir),
  loadImages: loadTcpStreams,
  beforeResume: (env) => finishInetSockets(env.inetLate),
  match: isInet,
  dump(p, env) {
    const id = env.files.newId();
    env.files.add(create(FileEntrySchema, { type: FdTypes.INETSK, id, isk: dumpInet(p, id, env) }));
    return id;
  },
  open(fe, env) {
    if (!fe.isk) throw new CryoError(`file id ${fe.id}: inet socket entry without its isk field`);
    return openInet(fe.isk, env);
  },
  inheritKey: (fe) => (fe.isk ? `socket:[${fe.isk.ino}]` : undefined),
  check: checkInet,
};
