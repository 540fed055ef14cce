// Sockets in cryo's own process: the calls unix sockets need (create, bind,
// connect, peek at queues, pass fds) and sock_diag over netlink.
import { addressOf, processVmRead, syscall, trySyscall } from './libc.js';
import { SysError } from './errors.js';
import { AF, MSG, NETLINK_SOCK_DIAG, NLM_F, NLMSG, NR, SCM_RIGHTS, SO, SOCK, SOCK_DIAG_BY_FAMILY, SOL_SOCKET } from './nr.js';

const SUN_PATH_MAX = 108;

/** A sockaddr_un for a name as the kernel reports it (abstract names start with NUL). */
function sockaddrUn(name: Uint8Array): Buffer {
  if (name.length > SUN_PATH_MAX) throw new SysError('sockaddr_un', 36 /* ENAMETOOLONG */);
  const a = Buffer.alloc(2 + name.length);
  a.writeUInt16LE(AF.UNIX, 0);
  a.set(name, 2);
  return a;
}

export function socket(domain: number, type: number, proto = 0): number {
  return syscall('socket', NR.socket, domain, type | SOCK.CLOEXEC, proto);
}

export function socketpair(type: number): [number, number] {
  const fds = new Int32Array(2);
  syscall('socketpair', NR.socketpair, AF.UNIX, type | SOCK.CLOEXEC, 0, new Uint8Array(fds.buffer));
  return [fds[0]!, fds[1]!];
}

export function bindUnix(fd: number, name: Uint8Array): void {
  const a = sockaddrUn(name);
  syscall('bind', NR.bind, fd, a, a.length);
}

/** connect(2) to a unix name; returns 0 or -errno (the caller words the error). */
export function connectUnix(fd: number, name: Uint8Array): number {
  const a = sockaddrUn(name);
  return trySyscall(NR.connect, fd, a, a.length);
}

/** connect(2) to AF_UNSPEC: a datagram socket lets go of its peer (and of its queue). */
export function disconnect(fd: number): void {
  const a = Buffer.alloc(2); // sa_family AF_UNSPEC
  syscall('connect(AF_UNSPEC)', NR.connect, fd, a, a.length);
}

export function listen(fd: number, backlog: number): void {
  syscall('listen', NR.listen, fd, backlog);
}

export function accept(fd: number): number {
  return syscall('accept4', NR.accept4, fd, 0, 0, SOCK.CLOEXEC);
}

export function shutdown(fd: number, how: number): void {
  syscall('shutdown', NR.shutdown, fd, how);
}

export function getsockoptRaw(fd: number, level: number, opt: number, size = 4): Buffer {
  const b = Buffer.alloc(size);
  const len = new Uint32Array([size]);
  syscall('getsockopt', NR.getsockopt, fd, level, opt, b, new Uint8Array(len.buffer));
  return b.subarray(0, len[0]!);
}

/** getsockopt of an int, or undefined where the kernel has no such option. */
export function getsockoptInt(fd: number, level: number, opt: number): number | undefined {
  try {
    const b = getsockoptRaw(fd, level, opt);
    return b.length >= 4 ? b.readInt32LE(0) : b.length ? b.readUInt8(0) : 0;
  } catch (e) {
    if (e instanceof SysError) return undefined;
    throw e;
  }
}

export function setsockoptRaw(fd: number, level: number, opt: number, value: Uint8Array): void {
  syscall('setsockopt', NR.setsockopt, fd, level, opt, value, value.length);
}

export function setsockoptInt(fd: number, level: number, opt: number, v: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  setsockoptRaw(fd, level, opt, b);
}

/** The bytes waiting in one of the socket's queues (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD). */
export function queued(fd: number, req: number): number {
  const b = Buffer.alloc(4);
  syscall('ioctl', NR.ioctl, fd, req, b);
  return b.readInt32LE(0);
}

/** The socket's own address (`peer`: its peer's) as a whole sockaddr; undefined when it has no peer. */
export function sockaddrOf(fd: number, peer: boolean): Buffer | undefined {
  const a = Buffer.alloc(128);
  const len = new Uint32Array([a.length]);
  const r = trySyscall(peer ? NR.getpeername : NR.getsockname, fd, a, new Uint8Array(len.buffer));
  if (peer && r === -107 /* ENOTCONN */) return undefined;
  if (r < 0) throw new SysError(peer ? 'getpeername' : 'getsockname', -r);
  return a.subarray(0, len[0]!);
}

export function bindAddr(fd: number, sa: Uint8Array): void {
  syscall('bind', NR.bind, fd, sa, sa.length);
}

export function connectAddr(fd: number, sa: Uint8Array): void {
  syscall('connect', NR.connect, fd, sa, sa.length);
}

export function getsockname(fd: number): Buffer {
  const a = Buffer.alloc(2 + SUN_PATH_MAX);
  const len = new Uint32Array([a.length]);
  syscall('getsockname', NR.getsockname, fd, a, new Uint8Array(len.buffer));
  return a.subarray(2, len[0]!);
}

// struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
const MSGHDR = 56;
const CMSG_HDR = 16;
const align8 = (n: number) => (n + 7) & ~7;

/**
 * One sendmsg(2): `data` as one message, with `fds` as SCM_RIGHTS, to the
 * socket's peer or to the unix name `to`. Returns the bytes sent.
 */
export function sendMsg(fd: number, data: Uint8Array, fds: number[] = [], to?: Uint8Array, flags: number = MSG.NOSIGNAL | MSG.DONTWAIT): number {
  const addr = to ? sockaddrUn(to) : Buffer.alloc(0);
  const cmsgLen = fds.length ? CMSG_HDR + 4 * fds.length : 0;
  // iovec, address and control message in one buffer: syscall() keeps three alive.
  const aux = Buffer.alloc(16 + align8(addr.length) + align8(cmsgLen));
  const addrOff = 16;
  const ctlOff = addrOff + align8(addr.length);
  const base = addressOf(aux);
  const hdr = Buffer.alloc(MSGHDR);
  aux.writeBigUInt64LE(addressOf(data), 0);
  aux.writeBigUInt64LE(BigInt(data.length), 8);
  hdr.writeBigUInt64LE(base, 16);
  hdr.writeBigUInt64LE(1n, 24);
  if (to) {
    addr.copy(aux, addrOff);
    hdr.writeBigUInt64LE(base + BigInt(addrOff), 0);
    hdr.writeUInt32LE(addr.length, 8);
  }
  if (fds.length) {
    aux.writeBigUInt64LE(BigInt(cmsgLen), ctlOff);
    aux.writeInt32LE(SOL_SOCKET, ctlOff + 8);
    aux.writeInt32LE(SCM_RIGHTS, ctlOff + 12);
    fds.forEach((f, i) => aux.writeInt32LE(f, ctlOff + CMSG_HDR + 4 * i));
    hdr.writeBigUInt64LE(base + BigInt(ctlOff), 32);
    hdr.writeBigUInt64LE(BigInt(align8(cmsgLen)), 40);
  }
  return syscall('sendmsg', NR.sendmsg, fd, hdr, flags, aux, data);
}

export interface Peeked {
  /** Bytes of the message (or stream chunk) peeked, -errno when nothing was there. */
  n: number;
  truncated: boolean;
  /** fds the kernel installed in cryo for SCM_RIGHTS (peek duplicates them). */
  fds: number[];
  /** Control messages other than SCM_RIGHTS (SCM_CREDENTIALS and the like), by type. */
  other: number[];
}

/** recvmsg(MSG_PEEK|MSG_DONTWAIT) into `buf`: nothing leaves the queue. */
export function recvPeek(fd: number, buf: Uint8Array): Peeked {
  const ctl = Buffer.alloc(16 + 1024);
  const base = addressOf(ctl);
  ctl.writeBigUInt64LE(addressOf(buf), 0);
  ctl.writeBigUInt64LE(BigInt(buf.length), 8);
  const hdr = Buffer.alloc(MSGHDR);
  hdr.writeBigUInt64LE(base, 16);
  hdr.writeBigUInt64LE(1n, 24);
  hdr.writeBigUInt64LE(base + 16n, 32);
  hdr.writeBigUInt64LE(1024n, 40);
  const n = trySyscall(NR.recvmsg, fd, hdr, MSG.PEEK | MSG.DONTWAIT | MSG.CMSG_CLOEXEC, ctl, buf);
  const out: Peeked = { n, truncated: false, fds: [], other: [] };
  if (n < 0) return out;
  const flags = hdr.readInt32LE(48);
  out.truncated = (flags & (MSG.TRUNC | MSG.CTRUNC)) !== 0;
  const ctlLen = Number(hdr.readBigUInt64LE(40));
  for (let off = 16; off + CMSG_HDR <= 16 + ctlLen; ) {
    const len = Number(ctl.readBigUInt64LE(off));
    if (len < CMSG_HDR) break;
    const level = ctl.readInt32LE(off + 8);
    const type = ctl.readInt32LE(off + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = 0; i < (len - CMSG_HDR) / 4; i++) out.fds.push(ctl.readInt32LE(off + CMSG_HDR + 4 * i));
    } else {
      out.other.push(type);
    }
    off += align8(len);
  }
  return out;
}

/**
 * A sock_diag dump: `req` is the family's request (e.g. unix_diag_req); returns
 * the payload of every reply message.
 */
export function sockDiagDump(req: Uint8Array): Buffer[] {
  const fd = socket(AF.NETLINK, SOCK.DGRAM, NETLINK_SOCK_DIAG);
  try {
    const msg = Buffer.alloc(16 + req.length);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    msg.writeUInt16LE(NLM_F.REQUEST | NLM_F.DUMP, 6);
    msg.writeUInt32LE(1, 8);
    msg.set(req, 16);
    syscall('sendto', NR.sendto, fd, msg, msg.length, 0, 0, 0);
    const out: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = syscall('recvfrom', NR.recvfrom, fd, buf, buf.length, 0, 0, 0);
      for (let off = 0; off + 16 <= n; ) {
        const len = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        if (len < 16) return out;
        if (type === NLMSG.DONE) return out;
        if (type === NLMSG.ERROR) {
          const err = -buf.readInt32LE(off + 16);
          if (err) throw new SysError('sock_diag', err);
        } else {
          out.push(Buffer.from(buf.subarray(off + 16, off + len)));
        }
        off += (len + 3) & ~3;
      }
    }
  } finally {
    syscall('close', NR.close, fd);
  }
}

/**
 * One whole packet of a SOCK_SEQPACKET socket, sized first with MSG_PEEK|MSG_TRUNC;
 * null at end of stream, 'again' when `nonblock` and nothing is there yet.
 */
export function recvPacket(fd: number, nonblock = false): Buffer | null | 'again' {
  const f = nonblock ? MSG.DONTWAIT : 0;
  const len = trySyscall(NR.recvfrom, fd, 0, 0, MSG.PEEK | MSG.TRUNC | f, 0, 0);
  if (len === -11 /* EAGAIN */) return 'again';
  if (len < 0) throw new SysError('recv', -len);
  const buf = Buffer.alloc(Math.max(len, 1));
  const n = syscall('recvfrom', NR.recvfrom, fd, buf, buf.length, f, 0, 0);
  if (n === 0 && len === 0) return null;
  return buf.subarray(0, n);
}

/** SO_PEERCRED: who is at the other end of a unix socket. */
export function peerCred(fd: number): { pid: number; uid: number; gid: number } {
  const b = getsockoptRaw(fd, SOL_SOCKET, SO.PEERCRED, 12);
  return { pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) };
}

/** SO_PEERGROUPS: the supplementary groups of the peer when it connected. */
export function peerGroups(fd: number): number[] {
  const b = getsockoptRaw(fd, SOL_SOCKET, SO.PEERGROUPS, 4 * 65536);
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i += 4) out.push(b.readUInt32LE(i));
  return out;
}

/** SO_PEERPIDFD: a pidfd of the peer process (which stays that process even if its pid is reused). */
export function peerPidfd(fd: number): number {
  return getsockoptRaw(fd, SOL_SOCKET, SO.PEERPIDFD, 4).readInt32LE(0);
}

/**
 * The classic BPF program attached with SO_ATTACH_FILTER (SO_GET_FILTER), as
 * the kernel's struct sock_filter array (8 bytes an instruction); empty when
 * none. For this option the kernel counts optlen in instructions, not bytes.
 * An eBPF program (SO_ATTACH_BPF) cannot be read: EACCES.
 */
export function getSocketFilter(fd: number): Buffer {
  const len = new Uint32Array([0]);
  syscall('getsockopt(SO_GET_FILTER)', NR.getsockopt, fd, SOL_SOCKET, SO.GET_FILTER, 0, new Uint8Array(len.buffer));
  const n = len[0]!;
  if (!n) return Buffer.alloc(0);
  const b = Buffer.alloc(8 * n);
  syscall('getsockopt(SO_GET_FILTER)', NR.getsockopt, fd, SOL_SOCKET, SO.GET_FILTER, b, new Uint8Array(len.buffer));
  return b.subarray(0, 8 * Math.min(n, len[0]!));
}

/** SO_ATTACH_FILTER: `prog` is a struct sock_filter array (8 bytes an instruction). */
export function attachSocketFilter(fd: number, prog: Uint8Array): void {
  const fprog = Buffer.alloc(16); // struct sock_fprog { u16 len; struct sock_filter *filter; }
  fprog.writeUInt16LE(prog.length / 8, 0);
  fprog.writeBigUInt64LE(addressOf(prog), 8);
  syscall('setsockopt(SO_ATTACH_FILTER)', NR.setsockopt, fd, SOL_SOCKET, SO.ATTACH_FILTER, fprog, fprog.length, 0, prog);
}

/** poll(2) at once, for every event: what the fd reports now (POLLIN 1, POLLOUT 4, POLLHUP 0x10, POLLRDHUP 0x2000...). */
export function pollEvents(fd: number): number {
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(0x2000 | 0x1 | 0x4, 4);
  syscall('poll', NR.poll, pfd, 1, 0);
  return pfd.readUInt16LE(6);
}

/**
 * Read what a socket's mmap shows (a packet socket's rings, `len` bytes from
 * offset 0): mapped shared and read-only into cryo, `fn` reads ranges of it
 * (copies), then it is unmapped. Nothing is written to the mapping.
 */
export function withSocketMap<T>(fd: number, len: number, fn: (read: (off: number, n: number) => Buffer) => T): T {
  const addr = BigInt(syscall('mmap', NR.mmap, 0, len, 1 /* PROT_READ */, 1 /* MAP_SHARED */, fd, 0));
  try {
    return fn((off, n) => {
      const b = Buffer.alloc(n);
      processVmRead(process.pid, b, addr + BigInt(off));
      return b;
    });
  } finally {
    syscall('munmap', NR.munmap, addr, len);
  }
}

/**
 * A send that cannot send: sendmsg(MSG_DONTWAIT|MSG_NOSIGNAL) of `head` and then
 * `faulting` bytes at an address below mmap_min_addr, which faults when the kernel copies
 * them. Returns -errno (or what was sent, which should never happen): what the
 * kernel checks before it copies the payload shows (a ping socket's SEND_SHUTDOWN
 * is EPIPE), and nothing leaves. `to`: a sockaddr, or none for the peer.
 */
export function sendFaulting(fd: number, head: Uint8Array, to: Uint8Array | undefined, faulting: number): number {
  // One buffer for the header and the address: the call keeps only three alive.
  const blob = Buffer.concat([head, to ?? Buffer.alloc(0)]);
  const iov = Buffer.alloc(32);
  iov.writeBigUInt64LE(addressOf(blob), 0);
  iov.writeBigUInt64LE(BigInt(head.length), 8);
  iov.writeBigUInt64LE(4096n, 16);
  iov.writeBigUInt64LE(BigInt(faulting), 24);
  const hdr = Buffer.alloc(MSGHDR);
  if (to) {
    hdr.writeBigUInt64LE(addressOf(blob) + BigInt(head.length), 0);
    hdr.writeUInt32LE(to.length, 8);
  }
  hdr.writeBigUInt64LE(addressOf(iov), 16);
  hdr.writeBigUInt64LE(2n, 24);
  return trySyscall(NR.sendmsg, fd, hdr, MSG.NOSIGNAL | MSG.DONTWAIT, iov, blob);
}

/** sendto(2) of one datagram to the sockaddr `to` (MSG_DONTWAIT|MSG_NOSIGNAL); returns the bytes sent. */
export function sendTo(fd: number, data: Uint8Array, to: Uint8Array): number {
  return syscall('sendto', NR.sendto, fd, data, data.length, MSG.NOSIGNAL | MSG.DONTWAIT, to, to.length);
}
