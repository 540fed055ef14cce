// What raw inet sockets (SOCK_RAW, any protocol) and ICMP "ping" sockets
// (SOCK_DGRAM with IPPROTO_ICMP/ICMPV6) add to the inet kind: their options
// in CRIU's IpOptsRawEntry (IP_HDRINCL, IP_NODEFRAG, the ICMP type filter), and
// how they are bound again. Neither keeps a port of its own: a raw socket's
// "port" is its protocol, a ping socket's is its echo identifier.
import { readFileSync } from 'node:fs';
import { create, IpOptsRawEntrySchema, type IpOptsRawEntry } from '../../images/index.js';
import {
  AF, ICMP_FILTER, ICMPV6_FILTER, IP, IPPROTO, IPV6, SOCK, SOL_ICMPV6, SOL_RAW, SOL_SOCKET, SysError, sock, withEgid,
} from '../../sys/index.js';
import { CryoError } from '../../context.js';

const int = (fd: number, level: number, opt: number) => sock.getsockoptInt(fd, level, opt) ?? 0;

/** A ping socket: ICMP echo over SOCK_DGRAM (net.ipv4.ping_group_range). */
export function isPing(type: number, proto: number): boolean {
  return type === SOCK.DGRAM && (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6);
}

/** What a message calls the socket ("raw socket of protocol 17", "ICMP socket"). */
export function rawName(type: number, proto: number): string | undefined {
  if (type === SOCK.RAW) return `raw socket of protocol ${proto}`;
  if (isPing(type, proto)) return proto === IPPROTO.ICMP ? 'ICMP socket' : 'ICMPv6 socket';
  return undefined;
}

/** The ICMP type filter of a raw ICMP socket: struct icmp_filter (1 word) or icmp6_filter (8). */
function icmpFilter(family: number, proto: number): { level: number; opt: number; words: number } | undefined {
  if (family === AF.INET && proto === IPPROTO.ICMP) return { level: SOL_RAW, opt: ICMP_FILTER, words: 1 };
  if (family === AF.INET6 && proto === IPPROTO.ICMPV6) return { level: SOL_ICMPV6, opt: ICMPV6_FILTER, words: 8 };
  return undefined;
}

/** A raw socket's own options, as CRIU's dump_ip_raw_opts() reads them. */
export function dumpRawOpts(fd: number, family: number, proto: number, where: string): IpOptsRawEntry {
  const v6 = family === AF.INET6;
  const r = create(IpOptsRawEntrySchema, {});
  const hdrincl = int(fd, v6 ? IPPROTO.IPV6 : IPPROTO.IP, v6 ? IPV6.HDRINCL : IP.HDRINCL) !== 0;
  if (hdrincl) r.hdrincl = true;
  if (!v6 && int(fd, IPPROTO.IP, IP.NODEFRAG)) r.nodefrag = true;
  // IPV6_CHECKSUM is an offset, which CRIU's bool cannot hold; a new socket
  // has the kernel's own (ICMPv6 2, fixed; the mobility header's 4; else none).
  if (v6 && proto !== IPPROTO.ICMPV6) {
    const off = sock.getsockoptInt(fd, IPPROTO.IPV6, IPV6.CHECKSUM);
    const dflt = proto === 135 /* IPPROTO_MH */ ? 4 : -1;
    if (off !== undefined && off !== dflt) throw new CryoError(`${where}: IPV6_CHECKSUM is set (offset ${off}), which CRIU's images cannot hold`);
  }
  const f = icmpFilter(family, proto);
  if (f) {
    const b = sock.getsockoptRaw(fd, f.level, f.opt, 4 * f.words);
    r.icmpvFilter = Array.from({ length: b.length >> 2 }, (_, i) => b.readUInt32LE(4 * i));
  }
  return r;
}

/** Set a raw socket's options again (where they differ from a new socket's). */
export function restoreRawOpts(fd: number, family: number, proto: number, r: IpOptsRawEntry, where: string): void {
  const v6 = family === AF.INET6;
  const setIf = (level: number, opt: number, v: boolean | undefined) => {
    if (v !== undefined && Number(v) !== int(fd, level, opt)) sock.setsockoptInt(fd, level, opt, Number(v));
  };
  setIf(v6 ? IPPROTO.IPV6 : IPPROTO.IP, v6 ? IPV6.HDRINCL : IP.HDRINCL, r.hdrincl ?? false);
  if (!v6) setIf(IPPROTO.IP, IP.NODEFRAG, r.nodefrag ?? false);
  const f = icmpFilter(family, proto);
  if (f && r.icmpvFilter.length) {
    if (r.icmpvFilter.length !== f.words) throw new CryoError(`${where}: an ICMP filter of ${r.icmpvFilter.length} words, want ${f.words}`);
    const b = Buffer.alloc(4 * f.words);
    r.icmpvFilter.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
    sock.setsockoptRaw(fd, f.level, f.opt, b);
  }
}

/**
 * The port to bind a raw or ping socket with: none for a raw socket (its
 * protocol is its port, the kernel ignores what bind says), the echo
 * identifier for a ping socket (bound to it, or given it by its first send).
 */
export function rawBindPort(type: number, srcPort: number): number {
  return type === SOCK.RAW ? 0 : srcPort;
}

/**
 * A ping socket that cryo's group may not make (net.ipv4.ping_group_range of the
 * tree's network namespace, that of a user namespace, leaves it out: EACCES),
 * made with the first group of the range as cryo's effective one (read here,
 * in cryo's view); else why it cannot be made.
 */
export function pingSocketAsGroup(e: Error, make: () => number, where: string): number {
  const fail = (why: string) => new CryoError(`${where}: cannot make an ICMP socket again: ${why} (net.ipv4.ping_group_range must include cryo's group)`);
  if (!SysError.is(e, 'EACCES')) throw fail(e.message);
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
  if (low === undefined || high === undefined || !(low <= high)) throw fail(e.message);
  try {
    return withEgid(low, make);
  } catch (e2) {
    throw fail(`${(e2 as Error).message}, as group ${low} too`);
  }
}

/**
 * Raw sockets as /proc/net/raw and raw6 list them (of the calling thread's
 * network namespace), by inode: their state and peer. sock_diag knows raw
 * sockets only through the raw_diag module, which kernels may lack (CRIU then
 * loses a raw socket's peer: getpeername says ENOTCONN without a port).
 */
export function procRawSockets(family: number): Map<number, { state: number; dst: number[] }> {
  const m = new Map<number, { state: number; dst: number[] }>();
  let text: string;
  try {
    text = readFileSync(`/proc/thread-self/net/${family === AF.INET ? 'raw' : 'raw6'}`, 'utf8');
  } catch {
    return m;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const rem = f[2]!.split(':')[0]!;
    // Each word printed as the u32 in memory ("%08X"), as CRIU's address words hold it.
    const dst = Array.from({ length: rem.length / 8 }, (_, i) => parseInt(rem.slice(8 * i, 8 * i + 8), 16) >>> 0);
    m.set(Number(f[9]), { state: parseInt(f[3]!, 16), dst });
  }
  return m;
}

const SO_BINDTOIFINDEX = 62;
const EFAULT = 14;
const EPIPE = 32;

/**
 * A raw or ping socket's shutdown bits (SkShutdown's READ 1, WRITE 2). Neither
 * is in a sock_diag table cryo can count on (raw_diag is often not built):
 * reading shut down shows in poll (POLLRDHUP in `ev`, POLLHUP both ways),
 * writing alone only to a send, tried through cryo's fd with a payload that
 * faults: the kernel refuses a socket shut down for writing (EPIPE) before it
 * copies the payload (EFAULT), and nothing is sent. A raw socket checks only
 * with IP_HDRINCL (without it a send ignores the shutdown until the task sets
 * it), which is set for the send. Any send binds an unbound ping socket (to an
 * identifier of the kernel's): connect(AF_UNSPEC) unbinds it again, which also
 * lets go of its device, bound again. `ev` must show no error (POLLERR): a
 * send would take it.
 */
export function rawShutdown(fd: number, family: number, type: number, proto: number, ev: number, bound: boolean, connected: boolean, where: string): number {
  if (ev & 0x10 /* POLLHUP */) return 3;
  const rd = ev & 0x2000 /* POLLRDHUP */ ? 1 : 0;
  const v6 = family === AF.INET6;
  const raw = type === SOCK.RAW;
  // An IPv6 raw socket of a protocol past 255 (IPPROTO_MPTCP...) can never
  // send (EINVAL before anything else): a shutdown for writing changes nothing.
  if (raw && v6 && proto > 255) return rd;
  let head: Buffer;
  let to: Buffer | undefined;
  if (!connected || raw) {
    to = Buffer.alloc(v6 ? 28 : 16);
    to.writeUInt16LE(family, 0);
    if (v6) to[23] = 1; // ::1
    else to.writeUInt32BE(0x7f000001, 4);
  }
  let r: number;
  if (raw) {
    // The whole packet, its IP header too, faults: nothing of it is read.
    head = Buffer.alloc(0);
    const [level, opt] = v6 ? [IPPROTO.IPV6, IPV6.HDRINCL] : [IPPROTO.IP, IP.HDRINCL];
    const hdrincl = int(fd, level, opt) !== 0;
    if (!hdrincl) sock.setsockoptInt(fd, level, opt, 1);
    try {
      r = sock.sendFaulting(fd, head, to, v6 ? 40 : 20);
    } finally {
      if (!hdrincl) sock.setsockoptInt(fd, level, opt, 0);
    }
  } else {
    head = Buffer.from([v6 ? 128 : 8, 0, 0, 0, 0, 0, 0, 0]); // an echo request, code 0
    const dev = bound ? 0 : (sock.getsockoptInt(fd, SOL_SOCKET, SO_BINDTOIFINDEX) ?? 0);
    r = sock.sendFaulting(fd, head, to, 8);
    if (!bound) {
      sock.disconnect(fd);
      if (dev) sock.setsockoptInt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, dev);
    }
  }
  if (r === -EPIPE) return rd | 2;
  if (r !== -EFAULT) throw new CryoError(`${where}: cannot tell whether it is shut down for writing (a send that faults said ${r < 0 ? `errno ${-r}` : `${r} bytes`})`);
  return rd;
}
