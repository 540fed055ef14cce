// Half-closed TCP connections (CRIU's tcp_half_closed): the FINs a restored
// connection must have seen. Our own FIN comes back by shutdown(SHUT_WR) in
// repair mode; the peer's, and its ACK of ours, by a packet that seems to come
// from the peer, sent by cryo through a raw socket to the restored socket's own
// (local) address with the network lock's mark, so that the lock lets it pass.
import { closeSync } from 'node:fs';
import { AF, IPPROTO, IP, SO, SOCK, SOL_SOCKET, sock } from '../../sys/index.js';

/** The mark the network lock lets through (CRIU's SOCCR_MARK). */
const SOCCR_MARK = 0xc114;
export const TH = { FIN: 0x01, RST: 0x04, ACK: 0x10 } as const;

/** One end of the connection: the restored socket's (local) and its peer's. */
export interface Conn {
  family: number;
  src: readonly number[];
  srcPort: number;
  dst: readonly number[];
  dstPort: number;
}

/** An address's bytes from CRIU's words (each the u32 as it is in memory). */
function bytes(words: readonly number[]): Buffer {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  return b;
}

/** The one's complement sum of `parts`, folded to 16 bits. */
function checksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Send the restored socket a segment from its peer: `flags` at sequence `seq`
 * acknowledging `ack`, advertising `window` (already scaled down). With
 * timestamps negotiated it carries a timestamp of 0, which PAWS lets through
 * (the socket's ts_recent is still 0) and which leaves no ts_recent behind.
 */
export function sendAsPeer(c: Conn, flags: number, seq: number, ack: number, window: number, timestamps: boolean): void {
  let family = c.family;
  let local = bytes(c.src);
  let peer = bytes(c.dst);
  // An IPv4-mapped IPv6 connection travels as IPv4.
  if (family === AF.INET6 && local.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]))) {
    family = AF.INET;
    local = local.subarray(12);
    peer = peer.subarray(12);
  }
  const optLen = timestamps ? 12 : 0;
  const tcp = Buffer.alloc(20 + optLen);
  tcp.writeUInt16BE(c.dstPort, 0);
  tcp.writeUInt16BE(c.srcPort, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = ((20 + optLen) / 4) << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(Math.min(0xffff, Math.max(0, window)), 14);
  if (timestamps) tcp.set([1, 1, 8, 10], 20); // NOP, NOP, TIMESTAMP: TSval 0, TSecr 0
  const len = Buffer.alloc(4);
  len.writeUInt32BE(tcp.length, 0);
  const pseudo = family === AF.INET
    ? Buffer.concat([peer, local, Buffer.from([0, IPPROTO.TCP]), len.subarray(2)])
    : Buffer.concat([peer, local, len, Buffer.from([0, 0, 0, IPPROTO.TCP])]);
  tcp.writeUInt16BE(checksum(pseudo, tcp), 16);
  let ip: Buffer;
  const to = Buffer.alloc(family === AF.INET ? 16 : 28);
  to.writeUInt16LE(family, 0);
  if (family === AF.INET) {
    ip = Buffer.alloc(20); // the kernel fills in the length, id and checksum
    ip[0] = 0x45;
    ip[8] = 64;
    ip[9] = IPPROTO.TCP;
    peer.copy(ip, 12);
    local.copy(ip, 16);
    local.copy(to, 4);
  } else {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(tcp.length, 4);
    ip[6] = IPPROTO.TCP;
    ip[7] = 64;
    peer.copy(ip, 8);
    local.copy(ip, 24);
    local.copy(to, 8);
  }
  // IPPROTO_RAW: the header is ours (IP_HDRINCL), also for IPv6.
  const fd = sock.socket(family, SOCK.RAW, IPPROTO.RAW);
  try {
    if (family === AF.INET) sock.setsockoptInt(fd, IPPROTO.IP, IP.HDRINCL, 1);
    sock.setsockoptInt(fd, SOL_SOCKET, SO.MARK, SOCCR_MARK);
    const pkt = Buffer.concat([ip, tcp]);
    const n = sock.sendTo(fd, pkt, to);
    if (n !== pkt.length) throw new Error(`a segment of ${pkt.length} bytes went out as ${n}`);
  } finally {
    closeSync(fd);
  }
}
