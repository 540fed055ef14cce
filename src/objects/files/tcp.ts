// Established TCP connections through TCP_REPAIR, as CRIU's libsoccr: on dump the
// socket goes into repair mode (so that the task's death closes it without a FIN
// or a reset), and its sequence numbers, queues, window and negotiated options
// are read into tcp-stream-INO.img; on restore a new socket in repair mode gets
// them back, is bound and "connected" without a packet, and leaves repair mode
// once every socket of the tree exists. Half-closed connections too (FIN_WAIT1,
// FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING), as libsoccr: a FIN takes a sequence
// number but is no data, so the queues' sequence numbers and lengths leave it
// out, and it comes back by shutdown() or a segment from the "peer" (tcp-fin.ts).
import {
  IPPROTO, SO, SOL_SOCKET, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD, SOCK, TCP, TCPI_OPT, TCPOPT, TCP_ESTABLISHED, TCP_QUEUE, NR, MSG, sock, trySyscall,
} from '../../sys/index.js';
import { create, TcpStreamEntrySchema, type FileEntry, type ImageDir, type TcpStreamEntry } from '../../images/index.js';
import { CryoError } from '../../context.js';
import type { KindStore } from './kind.js';
import type { FileTable } from './table.js';
import { tcpRepairOpt, tcpRepairWindow } from '../../abi/index.js';
import { sendAsPeer, TH, type Conn } from './tcp-fin.js';

/** The states (tcp_states.h) a connection goes through repair in. */
export const TCPS = { ESTABLISHED: 1, SYN_SENT: 2, FIN_WAIT1: 4, FIN_WAIT2: 5, CLOSE: 7, CLOSE_WAIT: 8, LAST_ACK: 9, CLOSING: 11 } as const;
/** CLOSE only for a connection that ended by both FINs (it still has a peer). */
export const REPAIRABLE: ReadonlySet<number> = new Set(Object.values(TCPS));
/** Our FIN is in the send queue's sequence numbers (sent, maybe acknowledged). */
const sentFin = (state: number) => state === TCPS.FIN_WAIT1 || state === TCPS.FIN_WAIT2 || state === TCPS.CLOSING || state === TCPS.LAST_ACK || state === TCPS.CLOSE;
/** The peer's FIN was received (rcv_nxt is past it). */
const gotFin = (state: number) => state === TCPS.CLOSE_WAIT || state === TCPS.LAST_ACK || state === TCPS.CLOSING || state === TCPS.CLOSE;

export interface TcpStream {
  entry: TcpStreamEntry;
  /** The receive queue's bytes, then the send queue's (as the image's payload). */
  data: Uint8Array;
}

const int = (fd: number, opt: number) => sock.getsockoptInt(fd, IPPROTO.TCP, opt) ?? 0;

function selectQueue(fd: number, q: number): void {
  sock.setsockoptInt(fd, IPPROTO.TCP, TCP.REPAIR_QUEUE, q);
}

/** Peek the whole selected queue (in repair mode MSG_PEEK reads the send queue too). */
function peekQueue(fd: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  // MSG_PEEK starts at the queue's head each time: one call must take it all.
  const n = trySyscall(NR.recvfrom, fd, b, len, MSG.PEEK | MSG.DONTWAIT, 0, 0);
  if (n !== len) throw new Error(`a queue of ${len} bytes gave ${n < 0 ? `errno ${-n}` : `${n} bytes`} to a peek`);
  return b;
}

export function repairOn(fd: number): void {
  sock.setsockoptInt(fd, IPPROTO.TCP, TCP.REPAIR, 1);
}

export function repairOff(fd: number): void {
  sock.setsockoptInt(fd, IPPROTO.TCP, TCP.REPAIR, 0);
}

/** Out of repair mode on restore; that clears SO_REUSEADDR, which goes back as it was. */
export function repairDone(fd: number, reuseaddr: boolean): void {
  repairOff(fd);
  if (reuseaddr) sock.setsockoptInt(fd, SOL_SOCKET, SO.REUSEADDR, 1);
}

/** Read a connection in repair mode (the caller turned it on), in `state`. */
export function dumpTcpStream(fd: number, state: number = TCPS.ESTABLISHED): TcpStream {
  selectQueue(fd, TCP_QUEUE.RECV);
  const inqSeq = int(fd, TCP.QUEUE_SEQ);
  const inqLen = sock.queued(fd, SIOCINQ);
  const inq = inqLen ? peekQueue(fd, inqLen) : Buffer.alloc(0);
  selectQueue(fd, TCP_QUEUE.SEND);
  const outqSeq = int(fd, TCP.QUEUE_SEQ);
  let outqLen = sock.queued(fd, SIOCOUTQ);
  let unsqLen = sock.queued(fd, SIOCOUTQNSD);
  // A connection that ended has nothing left to send (its peer is done with it).
  if (state === TCPS.CLOSE) outqLen = unsqLen = 0;
  // Our FIN counts in SIOCOUTQ until acknowledged and in SIOCOUTQNSD until sent; it is no data.
  if (sentFin(state)) {
    if (outqLen) outqLen--;
    if (unsqLen) unsqLen--;
  }
  const outq = outqLen ? peekQueue(fd, outqLen) : Buffer.alloc(0);
  selectQueue(fd, TCP_QUEUE.NO);
  const info = sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.INFO, 104);
  const optMask = info[5]!;
  const win = tcpRepairWindow.decode(sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.REPAIR_WINDOW, tcpRepairWindow.size));
  const entry = create(TcpStreamEntrySchema, {
    inqLen, inqSeq: inqSeq >>> 0, outqLen, outqSeq: outqSeq >>> 0, optMask,
    sndWscale: info[6]! & 0xf, rcvWscale: info[6]! >> 4, mssClamp: int(fd, TCP.MAXSEG),
    ...(optMask & TCPI_OPT.TIMESTAMPS ? { timestamp: int(fd, TCP.TIMESTAMP) >>> 0 } : {}),
    cork: int(fd, TCP.CORK) !== 0, nodelay: int(fd, TCP.NODELAY) !== 0, unsqLen,
    sndWl1: win.snd_wl1, sndWnd: win.snd_wnd, maxWindow: win.max_window, rcvWnd: win.rcv_wnd, rcvWup: win.rcv_wup,
  });
  return { entry, data: Buffer.concat([inq, outq]) };
}

/** The state a connection's stream is made in: a reset one is made established, then reset (resetAsPeer). */
export function streamState(state: number, s: TcpStreamEntry): number {
  return s.resetErrno ? TCPS.ESTABLISHED : state;
}

/**
 * A connection that was reset: the peer's RST, at rcv_nxt (which the kernel
 * takes whatever the timestamps say), while the socket is still in repair mode,
 * so that it sends nothing; it goes to CLOSE with ECONNRESET waiting to be read.
 */
export function resetAsPeer(fd: number, s: TcpStreamEntry, conn: Conn): void {
  sendAsPeer(conn, TH.RST | TH.ACK, s.inqSeq >>> 0, s.outqSeq >>> 0, 0, (s.optMask & TCPI_OPT.TIMESTAMPS) !== 0);
  awaitState(fd, TCPS.CLOSE);
}

/**
 * The sequence numbers after each queue's data, before any FIN (which the
 * dump's include); in SYN_SENT before the SYN, which takes one too: the connect
 * sends it again from there (libsoccr's).
 */
function dataSeqs(s: TcpStreamEntry, state: number): { inq: number; outq: number } {
  return { inq: (s.inqSeq - (gotFin(state) ? 1 : 0)) >>> 0, outq: (s.outqSeq - (sentFin(state) || state === TCPS.SYN_SENT ? 1 : 0)) >>> 0 };
}

/** Before bind and connect: a new socket in repair mode with the dumped sequence numbers. */
export function prepareTcpStream(fd: number, s: TcpStreamEntry, state: number = TCPS.ESTABLISHED): void {
  repairOn(fd);
  const seq = dataSeqs(s, state);
  // TCP_QUEUE_SEQ gave the sequence after each queue; the queues are sent again below.
  selectQueue(fd, TCP_QUEUE.RECV);
  sock.setsockoptInt(fd, IPPROTO.TCP, TCP.QUEUE_SEQ, (seq.inq - s.inqLen) | 0);
  selectQueue(fd, TCP_QUEUE.SEND);
  sock.setsockoptInt(fd, IPPROTO.TCP, TCP.QUEUE_SEQ, (seq.outq - s.outqLen) | 0);
  selectQueue(fd, TCP_QUEUE.NO);
}

/**
 * After the connect (repair mode: no packet sent): options, timestamps, queues,
 * window; then the FINs of a half-closed connection (`conn` names its ends).
 */
export function finishTcpStream(fd: number, s: TcpStreamEntry, data: Uint8Array, state: number = TCPS.ESTABLISHED, conn?: Conn): void {
  if (state === TCPS.SYN_SENT) {
    // Nothing negotiated, queued or windowed yet: the SYN went out (connectSynSent).
    if (s.inqLen || s.outqLen) throw new Error(`a connection in SYN_SENT with ${s.inqLen + s.outqLen} bytes queued`);
    if (s.nodelay) sock.setsockoptInt(fd, IPPROTO.TCP, TCP.NODELAY, 1);
    if (s.cork) sock.setsockoptInt(fd, IPPROTO.TCP, TCP.CORK, 1);
    return;
  }
  const opts: Array<[number, number]> = [[TCPOPT.MSS, s.mssClamp]];
  if (s.optMask & TCPI_OPT.WSCALE) opts.push([TCPOPT.WINDOW, s.sndWscale + ((s.rcvWscale ?? 0) << 16)]);
  if (s.optMask & TCPI_OPT.TIMESTAMPS) opts.push([TCPOPT.TIMESTAMP, 0]);
  if (s.optMask & TCPI_OPT.SACK) opts.push([TCPOPT.SACK_PERM, 0]);
  const ob = Buffer.alloc(opts.length * tcpRepairOpt.size);
  opts.forEach(([code, val], i) => tcpRepairOpt.encode({ opt_code: code, opt_val: val }, ob, i * tcpRepairOpt.size));
  sock.setsockoptRaw(fd, IPPROTO.TCP, TCP.REPAIR_OPTIONS, ob);
  if (s.optMask & TCPI_OPT.TIMESTAMPS && s.timestamp !== undefined) sock.setsockoptInt(fd, IPPROTO.TCP, TCP.TIMESTAMP, s.timestamp | 0);
  const inq = data.subarray(0, s.inqLen);
  const outq = data.subarray(s.inqLen, s.inqLen + s.outqLen);
  // In repair mode what goes into the send queue counts as sent and not yet
  // acknowledged: the kernel sends it again when its retransmission timer says.
  // The part never sent is written out of repair mode, as libsoccr does: it
  // goes when the peer's window lets it (at once when the peer opens a closed
  // window, where a retransmission may wait for a timer backed off meanwhile).
  const unsent = Math.min(s.unsqLen ?? 0, outq.length);
  if (inq.length) sendQueue(fd, TCP_QUEUE.RECV, inq);
  if (outq.length > unsent) sendQueue(fd, TCP_QUEUE.SEND, outq.subarray(0, outq.length - unsent));
  selectQueue(fd, TCP_QUEUE.NO);
  if (unsent) {
    repairOff(fd);
    try {
      sendQueue(fd, TCP_QUEUE.NO, outq.subarray(outq.length - unsent));
    } finally {
      repairOn(fd);
    }
  }
  if (s.sndWnd !== undefined) {
    // The peer's FIN is not received yet: the window as it was before it (a
    // FIN at the edge of a zero window would be dropped).
    const fin = gotFin(state) ? 1 : 0;
    sock.setsockoptRaw(fd, IPPROTO.TCP, TCP.REPAIR_WINDOW, tcpRepairWindow.encode({
      snd_wl1: s.sndWl1 ?? 0, snd_wnd: s.sndWnd, max_window: s.maxWindow ?? 0, rcv_wnd: (s.rcvWnd ?? 0) + fin, rcv_wup: ((s.rcvWup ?? 0) - fin) >>> 0,
    }));
  }
  if (state !== TCPS.ESTABLISHED) restoreFins(fd, s, state, conn);
  if (s.nodelay) sock.setsockoptInt(fd, IPPROTO.TCP, TCP.NODELAY, 1);
  if (s.cork) sock.setsockoptInt(fd, IPPROTO.TCP, TCP.CORK, 1);
}

/**
 * A connection in SYN_SENT is connected for real, out of repair mode, so that
 * its SYN goes (again) with the dumped initial sequence number; the network
 * lock holds it back until the restore is done, and the kernel's SYN timer
 * sends it after. Non-blocking for the call: it waits for no answer.
 */
export function connectSynSent(fd: number, sa: Uint8Array): void {
  repairOff(fd);
  const fl = trySyscall(NR.fcntl, fd, 3 /* F_GETFL */, 0);
  if (fl < 0) throw new Error(`fcntl(F_GETFL): errno ${-fl}`);
  trySyscall(NR.fcntl, fd, 4 /* F_SETFL */, fl | 0o4000 /* O_NONBLOCK */);
  const r = trySyscall(NR.connect, fd, sa, sa.length);
  trySyscall(NR.fcntl, fd, 4 /* F_SETFL */, fl);
  if (r < 0 && r !== -115 /* EINPROGRESS */) throw new Error(`connect: errno ${-r}`);
  repairOn(fd);
}

/**
 * Put `data` into queue `q`. The kernel charges a queue more than its bytes
 * (the buffers' overhead): the socket's buffer is raised for the moment, and
 * a chunk it refuses is halved, as libsoccr does.
 */
function sendQueue(fd: number, q: number, data: Uint8Array): void {
  const opt = q === TCP_QUEUE.RECV ? SO.RCVBUF : SO.SNDBUF;
  const force = q === TCP_QUEUE.RECV ? SO.RCVBUFFORCE : SO.SNDBUFFORCE;
  const before = sock.getsockoptInt(fd, SOL_SOCKET, opt) ?? 0;
  // *BUFFORCE also locks the size (no autotuning): the lock goes back as it was.
  const lock = sock.getsockoptInt(fd, SOL_SOCKET, SO.BUF_LOCK) ?? 0;
  sock.setsockoptInt(fd, SOL_SOCKET, force, Math.max(before, 4 * data.length + (1 << 20)));
  try {
    // Out of repair mode (TCP_QUEUE.NO) there is no queue to select.
    if (q !== TCP_QUEUE.NO) selectQueue(fd, q);
    let off = 0;
    let chunk = data.length;
    while (off < data.length) {
      const len = Math.min(chunk, data.length - off);
      const n = trySyscall(NR.sendto, fd, data.subarray(off, off + len), len, MSG.NOSIGNAL | MSG.DONTWAIT, 0, 0);
      if (n > 0) {
        off += n;
        continue;
      }
      if (chunk > 1024 && (n === -11 /* EAGAIN */ || n === -12 /* ENOMEM */ || n === -105 /* ENOBUFS */)) {
        chunk >>= 1;
        continue;
      }
      throw new Error(`the ${q === TCP_QUEUE.RECV ? 'receive' : 'send'} queue took ${off} of ${data.length} bytes (errno ${-n})`);
    }
  } finally {
    // The kernel reports twice what was set.
    sock.setsockoptInt(fd, SOL_SOCKET, force, before >> 1);
    sock.setsockoptInt(fd, SOL_SOCKET, SO.BUF_LOCK, lock);
  }
}

/**
 * The FINs of a half-closed connection, in the order of its states (libsoccr's):
 * ours first where we closed first (FIN_WAIT*, CLOSING), the peer's by a
 * segment from it, ours after it where the peer closed first (LAST_ACK, and
 * CLOSE: an ended connection goes the peer-closed-first way), and for
 * FIN_WAIT2 and CLOSE the peer's acknowledgement of ours. Our FIN is queued as sent
 * where it was acknowledged (TCP_REPAIR_QUEUE on the send queue), else as not
 * yet sent: the kernel sends it (the network lock keeps it from the peer until
 * the restore is done, and then it goes again).
 */
function restoreFins(fd: number, s: TcpStreamEntry, state: number, conn: Conn | undefined): void {
  if (!conn) throw new Error(`a connection in state ${state} needs its addresses`);
  const seq = dataSeqs(s, state);
  const sndUna = (seq.outq - s.outqLen) >>> 0;
  const window = s.sndWnd !== undefined ? s.sndWnd >>> (s.optMask & TCPI_OPT.WSCALE ? s.sndWscale : 0) : 0xffff;
  const ts = (s.optMask & TCPI_OPT.TIMESTAMPS) !== 0;
  const shutWr = (acked: boolean) => {
    if (acked) selectQueue(fd, TCP_QUEUE.SEND);
    sock.shutdown(fd, 1 /* SHUT_WR */);
    if (acked) selectQueue(fd, TCP_QUEUE.NO);
  };
  if (state === TCPS.FIN_WAIT1 || state === TCPS.FIN_WAIT2 || state === TCPS.CLOSING) shutWr(state === TCPS.FIN_WAIT2);
  if (gotFin(state)) {
    sendAsPeer(conn, TH.FIN | TH.ACK, seq.inq, sndUna, window, ts);
    awaitState(fd, state === TCPS.CLOSING ? TCPS.CLOSING : TCPS.CLOSE_WAIT);
  }
  // CLOSE: as LAST_ACK, with the FIN queued as sent so that the ACK below may take it.
  if (state === TCPS.LAST_ACK || state === TCPS.CLOSE) shutWr(state === TCPS.CLOSE);
  // rcv_nxt is past the peer's FIN by now, where there is one: the dumped inqSeq.
  if (state === TCPS.FIN_WAIT2 || state === TCPS.CLOSE) sendAsPeer(conn, TH.ACK, s.inqSeq >>> 0, s.outqSeq >>> 0, window, ts);
  awaitState(fd, state);
}

/** The segment went through loopback, which a softirq may deliver a moment later. */
function awaitState(fd: number, want: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let got = 0;
  for (let i = 0; i < 2000; i++) {
    got = sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.INFO, 104)[0]!;
    if (got === want) return;
    Atomics.wait(nap, 0, 0, 1);
  }
  throw new Error(`the connection reached state ${got}, not ${want}, after its FINs (is the segment from its peer dropped?)`);
}

/** The tcp-stream image of every connection dumped. */
export function writeTcpStreams(files: FileTable, dir: ImageDir): void {
  for (const c of files.tcp) dir.write('tcpStream', [{ msg: c.stream.entry, extra: c.stream.data }], c.ino);
}

/** tcp-stream images, by the socket's inode; as CRIU, used only with --tcp-established. */
export const tcpStreamsOf = (s: KindStore) => s.get<Map<number, TcpStream>>('inet:tcp-streams', () => new Map());

/** One tcp-stream image per established or half-closed connection of files.img, by the socket's inode. */
export function loadTcpStreams(dir: ImageDir, store: KindStore, files: ReadonlyMap<number, FileEntry>): void {
  const streams = tcpStreamsOf(store);
  for (const f of files.values()) {
    const ie = f.isk;
    if (!ie || ie.type !== SOCK.STREAM || !REPAIRABLE.has(ie.state) || streams.has(ie.ino)) continue;
    // A dump with --tcp-close writes none (the restore refuses it without --tcp-close).
    if (!dir.exists('tcpStream', ie.ino)) continue;
    const name = `tcp-stream-${ie.ino.toString(16)}.img`;
    const [e] = dir.readEntries('tcpStream', ie.ino);
    if (!e) throw new CryoError(`${name}: no entry`);
    const entry = e.msg as TcpStreamEntry;
    const data = e.extra ?? new Uint8Array();
    if (data.length !== entry.inqLen + entry.outqLen) throw new CryoError(`${name}: ${data.length} bytes of queues, the entry says ${entry.inqLen + entry.outqLen}`);
    // A reset: only ECONNRESET, of a connection dumped closed (cryo's own field).
    if (entry.resetErrno && (entry.resetErrno !== 104 || ie.state !== TCPS.CLOSE)) throw new CryoError(`bad image: ${name}: reset_errno ${entry.resetErrno} in state ${ie.state}`);
    streams.set(ie.ino, { entry, data });
  }
}
