// Socket options every family shares (SkOptsEntry): read from cryo's copy of
// the socket on dump, set on the new socket on restore.
import { create, SkOptsEntrySchema, type SkOptsEntry } from '../../images/index.js';
import { SO, SOL_SOCKET, SysError, sock } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { timeval as abiTimeval } from '../../abi/index.js';

const int = (fd: number, opt: number) => sock.getsockoptInt(fd, SOL_SOCKET, opt) ?? 0;

function timeval(fd: number, opt: number): { sec: bigint; usec: bigint } {
  const t = abiTimeval.decode(sock.getsockoptRaw(fd, SOL_SOCKET, opt, abiTimeval.size));
  return { sec: t.tv_sec, usec: t.tv_usec };
}

/**
 * The classic BPF filter (SO_ATTACH_FILTER) as CRIU's so_filter keeps it: one
 * word an instruction, code << 48 | jt << 40 | jf << 32 | k. What the images
 * cannot hold fails the dump: an eBPF program (SO_ATTACH_BPF, which
 * SO_GET_FILTER cannot read) and SO_LOCK_FILTER (CRIU drops the lock).
 */
function dumpFilter(fd: number, where: string): bigint[] {
  let prog: Buffer;
  try {
    prog = sock.getSocketFilter(fd);
  } catch (e) {
    if (SysError.is(e, 'EACCES')) throw new CryoError(`${where}: an eBPF socket filter (SO_ATTACH_BPF) is attached, which cryo cannot dump (CRIU's images hold only classic BPF)`);
    throw new CryoError(`${where}: cannot read its socket filter: ${(e as Error).message}`);
  }
  if (!prog.length) return [];
  if (int(fd, SO.LOCK_FILTER)) throw new CryoError(`${where}: its socket filter is locked (SO_LOCK_FILTER), which CRIU's images cannot hold`);
  const out: bigint[] = [];
  for (let off = 0; off + 8 <= prog.length; off += 8) {
    out.push((BigInt(prog.readUInt16LE(off)) << 48n) | (BigInt(prog[off + 2]!) << 40n) | (BigInt(prog[off + 3]!) << 32n) | BigInt(prog.readUInt32LE(off + 4)));
  }
  return out;
}

/**
 * Attach the socket's filter again. Separate from restoreSockOpts: a socket
 * whose queue is refilled on restore gets it only after (the filter would see
 * the packets again).
 */
export function restoreSockFilter(fd: number, o: SkOptsEntry): void {
  if (!o.soFilter.length) return;
  const prog = Buffer.alloc(8 * o.soFilter.length);
  o.soFilter.forEach((w, i) => {
    prog.writeUInt16LE(Number((w >> 48n) & 0xffffn), 8 * i);
    prog[8 * i + 2] = Number((w >> 40n) & 0xffn);
    prog[8 * i + 3] = Number((w >> 32n) & 0xffn);
    prog.writeUInt32LE(Number(w & 0xffffffffn), 8 * i + 4);
  });
  sock.attachSocketFilter(fd, prog);
}

export function dumpSockOpts(fd: number, where: string): SkOptsEntry {
  const soFilter = dumpFilter(fd, where);
  const snd = timeval(fd, SO.SNDTIMEO);
  const rcv = timeval(fd, SO.RCVTIMEO);
  const linger = sock.getsockoptRaw(fd, SOL_SOCKET, SO.LINGER, 8);
  return create(SkOptsEntrySchema, {
    soSndbuf: int(fd, SO.SNDBUF), soRcvbuf: int(fd, SO.RCVBUF),
    soSndTmoSec: snd.sec, soSndTmoUsec: snd.usec, soRcvTmoSec: rcv.sec, soRcvTmoUsec: rcv.usec,
    reuseaddr: int(fd, SO.REUSEADDR) !== 0, soPriority: int(fd, SO.PRIORITY), soRcvlowat: int(fd, SO.RCVLOWAT),
    soMark: int(fd, SO.MARK), soPasscred: int(fd, SO.PASSCRED) !== 0, soPasssec: int(fd, SO.PASSSEC) !== 0,
    soDontroute: int(fd, SO.DONTROUTE) !== 0, soNoCheck: int(fd, SO.NO_CHECK) !== 0,
    soReuseport: int(fd, SO.REUSEPORT) !== 0, soBroadcast: int(fd, SO.BROADCAST) !== 0,
    soKeepalive: int(fd, SO.KEEPALIVE) !== 0, soOobinline: int(fd, SO.OOBINLINE),
    soLinger: linger.readInt32LE(0) ? linger.readInt32LE(4) : 0, soBufLock: int(fd, SO.BUF_LOCK), soFilter,
  });
}

/** Set what differs from a fresh socket's defaults (all but the filter: restoreSockFilter). */
export function restoreSockOpts(fd: number, o: SkOptsEntry): void {
  const set = (opt: number, v: number | boolean | undefined) => {
    const n = typeof v === 'boolean' ? Number(v) : v ?? 0;
    if (n !== int(fd, opt)) sock.setsockoptInt(fd, SOL_SOCKET, opt, n);
  };
  // The kernel doubles what is asked for and reports the doubled value.
  if (o.soSndbuf && o.soSndbuf !== int(fd, SO.SNDBUF)) sock.setsockoptInt(fd, SOL_SOCKET, SO.SNDBUFFORCE, o.soSndbuf >> 1);
  if (o.soRcvbuf && o.soRcvbuf !== int(fd, SO.RCVBUF)) sock.setsockoptInt(fd, SOL_SOCKET, SO.RCVBUFFORCE, o.soRcvbuf >> 1);
  for (const [opt, sec, usec] of [[SO.SNDTIMEO, o.soSndTmoSec, o.soSndTmoUsec], [SO.RCVTIMEO, o.soRcvTmoSec, o.soRcvTmoUsec]] as const) {
    if (!sec && !usec) continue;
    sock.setsockoptRaw(fd, SOL_SOCKET, opt, abiTimeval.encode({ tv_sec: sec, tv_usec: usec }));
  }
  set(SO.REUSEADDR, o.reuseaddr);
  set(SO.PRIORITY, o.soPriority);
  if (o.soRcvlowat && o.soRcvlowat !== 1) set(SO.RCVLOWAT, o.soRcvlowat);
  set(SO.MARK, o.soMark);
  set(SO.PASSCRED, o.soPasscred);
  set(SO.PASSSEC, o.soPasssec);
  set(SO.DONTROUTE, o.soDontroute);
  set(SO.NO_CHECK, o.soNoCheck);
  set(SO.REUSEPORT, o.soReuseport);
  set(SO.BROADCAST, o.soBroadcast);
  set(SO.KEEPALIVE, o.soKeepalive);
  set(SO.OOBINLINE, o.soOobinline);
  if (o.soLinger) {
    const b = Buffer.alloc(8);
    b.writeInt32LE(1, 0);
    b.writeInt32LE(o.soLinger, 4);
    sock.setsockoptRaw(fd, SOL_SOCKET, SO.LINGER, b);
  }
  set(SO.BUF_LOCK, o.soBufLock);
}
