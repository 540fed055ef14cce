// `check --feature tcp_half_closed`: a half-closed connection over loopback is
// carried the way a restore carries one. The end that got the FIN (CLOSE_WAIT)
// goes into repair mode (CRIU's probe stops there) and is read; it is closed in
// repair mode (no packet) and made again from what was read: bound, "connected",
// its queues back, and the FIN by a segment from its peer through a raw socket
// with the network lock's mark. Yes only if it is in CLOSE_WAIT again and reads
// the unread byte, then the end.
import { AF, IPPROTO, SOCK, TCP, sock } from '../sys/index.js';
import { closeFd } from '../kerndat.js';
import { dumpTcpStream, finishTcpStream, prepareTcpStream, repairOff, repairOn, TCPS } from '../objects/files/tcp.js';

const loopback = () => {
  const a = Buffer.alloc(16);
  a.writeUInt16LE(AF.INET, 0);
  a.writeUInt32BE(0x7f000001, 4);
  return a;
};
const stateOf = (fd: number) => sock.getsockoptRaw(fd, IPPROTO.TCP, TCP.INFO, 104)[0]!;
const words = (sa: Buffer) => [sa.readUInt32LE(4)];

export function probeTcpHalfClosed(): true | string {
  const fds: number[] = [];
  const mk = () => {
    const fd = sock.socket(AF.INET, SOCK.STREAM, 0);
    fds.push(fd);
    return fd;
  };
  try {
    const ls = mk();
    sock.bindAddr(ls, loopback());
    sock.listen(ls, 1);
    const lsa = sock.sockaddrOf(ls, false)!;
    const c = mk();
    sock.connectAddr(c, lsa);
    const s = sock.accept(ls);
    fds.push(s);
    sock.sendTo(c, Buffer.from('x'), lsa);
    sock.shutdown(c, 1 /* SHUT_WR */);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 1000 && stateOf(s) !== TCPS.CLOSE_WAIT; i++) Atomics.wait(nap, 0, 0, 1);
    if (stateOf(s) !== TCPS.CLOSE_WAIT) return `the end that got a FIN is in state ${stateOf(s)}, not CLOSE_WAIT`;
    try {
      repairOn(s);
    } catch (e) {
      return `TCP_REPAIR on a half-closed connection: ${(e as Error).message}`;
    }
    const st = dumpTcpStream(s, TCPS.CLOSE_WAIT);
    const local = sock.sockaddrOf(s, false)!;
    const peer = sock.sockaddrOf(s, true)!;
    closeFd(fds.splice(fds.indexOf(s), 1)[0]!); // in repair mode: no FIN, no reset
    const n = mk();
    prepareTcpStream(n, st.entry, TCPS.CLOSE_WAIT);
    sock.bindAddr(n, local);
    sock.connectAddr(n, peer);
    finishTcpStream(n, st.entry, st.data, TCPS.CLOSE_WAIT,
      { family: AF.INET, src: words(local), srcPort: local.readUInt16BE(2), dst: words(peer), dstPort: peer.readUInt16BE(2) });
    repairOff(n);
    if (stateOf(n) !== TCPS.CLOSE_WAIT) return `the connection came back in state ${stateOf(n)}, not CLOSE_WAIT`;
    const b = Buffer.alloc(2);
    const got = sock.recvPeek(n, b);
    if (got.n !== 1 || b[0] !== 0x78) return `the byte in flight did not come back (${got.n})`;
    return true;
  } catch (e) {
    return (e as Error).message;
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}
