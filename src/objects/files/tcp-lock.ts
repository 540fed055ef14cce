// The network lock of a frozen tree's TCP connections in one batch, before any
// of them is dumped: sock_diag lists the connections of the network namespace,
// and those whose socket is an fd of a task of the tree are locked at once. The
// dump of each connection then finds it locked (a connection sock_diag did not
// list is locked by itself there, as before).
import { fdLinks } from '../../proc/fds.js';
import { AF, IPPROTO, sockDiagDump } from '../../sys/index.js';
import type { NetLock, LockedConn } from '../netlock.js';
import { TCPS } from './tcp.js';

/** The inodes of the sockets the tasks hold as fds. */
function socketInodes(pids: readonly number[]): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    for (const { link } of fdLinks(pid)) {
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) out.add(Number(m[1]));
    }
  }
  return out;
}

/** The connections (TCP states the dump carries, CLOSE aside: it has no peer in sock_diag) of one family, with their sockets' inodes and states. */
export function diagConnections(family: number): Array<{ ino: number; state: number; conn: LockedConn }> {
  const states = Object.values(TCPS).filter((s) => s !== TCPS.CLOSE).reduce((m, s) => m | (1 << s), 0);
  const req = Buffer.alloc(56); // struct inet_diag_req_v2
  req.writeUInt8(family, 0);
  req.writeUInt8(IPPROTO.TCP, 1);
  req.writeUInt32LE(states, 4);
  const words = (msg: Buffer, off: number) => (family === AF.INET ? [msg.readUInt32LE(off)] : [0, 4, 8, 12].map((i) => msg.readUInt32LE(off + i)));
  const out: Array<{ ino: number; state: number; conn: LockedConn }> = [];
  for (const msg of sockDiagDump(req)) {
    if (msg.length < 72) continue;
    // struct inet_diag_msg: the sockid's ports (big-endian) at 4 and 6, addresses at 8 and 24; the inode at 68.
    out.push({
      ino: msg.readUInt32LE(68),
      state: msg.readUInt8(1),
      conn: { family, srcPort: msg.readUInt16BE(4), dstPort: msg.readUInt16BE(6), src: words(msg, 8), dst: words(msg, 24) },
    });
  }
  return out;
}

/** Lock every TCP connection of the tasks (all in the caller's network namespace) in one batch; throws an Error saying why it cannot. */
export function lockTreeConnections(pids: readonly number[], lock: NetLock): void {
  if (lock.method === 'skip') return;
  const inodes = socketInodes(pids);
  const conns = [AF.INET, AF.INET6].flatMap(diagConnections).filter((c) => inodes.has(c.ino)).map((c) => c.conn);
  lock.lockAll(conns);
}
