// Every unix socket of the network namespace cryo's thread is in (the tree's) as sock_diag reports it: the
// peer, the name, the queue lengths, the connections waiting on a listener.
// /proc shows none of this, and both ends of a connection need it.
import { AF, UDIAG_SHOW, UNIX_DIAG, sockDiagDump } from '../../sys/index.js';

export interface UnixDiag {
  ino: number;
  type: number;
  state: number;
  /** Bound name as the kernel keeps it (abstract names start with NUL); empty if unbound. */
  name: Buffer;
  /** The inode of the file a path name made, when bound to a path. */
  vfsIno?: number;
  peer: number;
  /** A listener's queued connections: the inode of each connecting socket (0 once closed). */
  icons: number[];
  /** Bytes (or connections, for a listener) queued to read / to write (backlog for a listener). */
  rqlen: number;
  wqlen: number;
  shutdown: number;
}

/** One SOCK_DIAG_BY_FAMILY reply: struct unix_diag_msg and its attributes. */
export function parseUnixDiag(m: Buffer): UnixDiag {
  const d: UnixDiag = {
    type: m.readUInt8(1), state: m.readUInt8(2), ino: m.readUInt32LE(4),
    name: Buffer.alloc(0), peer: 0, icons: [], rqlen: 0, wqlen: 0, shutdown: 0,
  };
  for (let off = 16; off + 4 <= m.length; ) {
    const len = m.readUInt16LE(off);
    const type = m.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4) break;
    const v = m.subarray(off + 4, off + len);
    switch (type) {
      case UNIX_DIAG.NAME: d.name = Buffer.from(v); break;
      case UNIX_DIAG.VFS: d.vfsIno = v.readUInt32LE(0); break;
      case UNIX_DIAG.PEER: d.peer = v.readUInt32LE(0); break;
      case UNIX_DIAG.ICONS: for (let i = 0; i + 4 <= v.length; i += 4) d.icons.push(v.readUInt32LE(i)); break;
      case UNIX_DIAG.RQLEN: d.rqlen = v.readUInt32LE(0); d.wqlen = v.readUInt32LE(4); break;
      case UNIX_DIAG.SHUTDOWN: d.shutdown = v.readUInt8(0); break;
    }
    off += (len + 3) & ~3;
  }
  return d;
}

/** All unix sockets of the namespace, by inode. */
export function collectUnixSockets(): Map<number, UnixDiag> {
  const req = Buffer.alloc(24);
  req.writeUInt8(AF.UNIX, 0);
  req.writeUInt32LE(0xffffffff, 4); // every state
  req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN, 12);
  const out = new Map<number, UnixDiag>();
  for (const m of sockDiagDump(req)) {
    const d = parseUnixDiag(m);
    out.set(d.ino, d);
  }
  return out;
}
