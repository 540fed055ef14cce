// What a restore does about the images' TCP connections: what they ask of its
// options (as CRIU's), and the network lock the dump left on them, taken out
// once the tree is there.
import { IPPROTO, SOCK } from '../../sys/index.js';
import { CryoError, type Logger } from '../../context.js';
import type { FileEntry, InventoryEntry } from '../../images/index.js';
import { lockMethodOf, nftTableName, unlockRestored, type LockedConn } from '../netlock.js';
import { showAddr, STATE_NAMES } from './inet.js';
import { REPAIRABLE } from './tcp.js';

/** What the restore does about the images' TCP connections, decided before anything is made. */
export interface TcpRestorePlan {
  /** The tree is restored: the dump's lock on the connections goes (before they leave repair mode). */
  unlock(log: Logger): void;
  /** The restore failed: the lock stays, for another restore of the images. */
  failed(log: Logger): void;
}

/**
 * Before anything is made: what the images' TCP connections ask of the restore
 * options (as CRIU's), and the network lock the dump left on them (inventory's
 * method and run id), to be taken out once the tree is there.
 */
export function planTcpRestore(inv: InventoryEntry, files: Iterable<FileEntry>, o: { tcpClose: boolean; tcpEstablished: boolean }, rootPid: number, wholeNs = false): TcpRestorePlan {
  if (inv.tcpClose && !o.tcpClose) throw new CryoError('the images were dumped with --tcp-close: restore with it too');
  const method = lockMethodOf(inv.networkLockMethod);
  if (!method) throw new CryoError(`bad image: inventory.img: network lock method ${inv.networkLockMethod}`);
  const conns: LockedConn[] = [];
  for (const fe of files) {
    const ie = fe.isk;
    // CRIU's tcp_connection(): each was locked on dump.
    if (!ie || ie.proto !== IPPROTO.TCP || ie.type !== SOCK.STREAM || ie.dstPort === 0) continue;
    const what = `inet socket ${ie.ino} (${showAddr(ie.family, { port: ie.srcPort, addr: ie.srcAddr })} -> ${showAddr(ie.family, { port: ie.dstPort, addr: ie.dstAddr })})`;
    if (!o.tcpClose && !REPAIRABLE.has(ie.state)) throw new CryoError(`${what}: a TCP connection in state ${STATE_NAMES[ie.state] ?? ie.state}, which cryo restores only closed (--tcp-close)`);
    if (!o.tcpClose && !o.tcpEstablished) throw new CryoError(`${what}: an established TCP connection; restore with --tcp-established (or --tcp-close)`);
    if (!wholeNs) conns.push({ family: ie.family, src: ie.srcAddr, srcPort: ie.srcPort, dst: ie.dstAddr, dstPort: ie.dstPort });
  }
  // CRIU's images of before dump_criu_run_id named the table by the root's pid.
  const table = nftTableName(inv.dumpCriuRunId || String(rootPid));
  let unlocked = false;
  return {
    // Unlike CRIU, also with --tcp-close: nothing of the dump's lock is left behind.
    unlock: (log) => {
      unlocked = true;
      unlockRestored(method, table, conns, log);
    },
    failed: (log) => {
      if (unlocked) log.error('the network lock was taken out already: the connections may have lost data');
      else if (method !== 'skip' && conns.length) log.warn(`the ${conns.length} TCP connection(s) of the images stay locked (${method}) for another restore`);
    },
  };
}
