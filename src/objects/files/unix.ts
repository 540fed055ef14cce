// Unix sockets, dump side. sock_diag gives what /proc cannot (peer, name,
// queued connections); cryo's own copy of the socket (pidfd_getfd) gives the
// options and the queued data, peeked with SO_PEEK_OFF so nothing is consumed.
// Peers are checked once the whole tree is dumped: a peer outside it is an
// external socket (--ext-unix-sk, --external unix[ino]) or an error.
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { create, FdTypes, FileEntrySchema, SkPacketEntrySchema, ScmEntrySchema, UnixSkEntrySchema, FilePermsEntrySchema, SkOptsEntrySchema, type FileEntry, type UnixSkEntry, type SkPacketEntry } from '../../images/index.js';
import { netnsHere, noFown } from './table.js';
import { AF, NR, O, SO, SOCK, SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS, SIOCUNIXFILE, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, openInRoot, sock, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { DumpFilesEnv, FdKind, FdProbe } from './kind.js';
import { collectUnixSockets, type UnixDiag } from './unix-diag.js';
import { dumpSockOpts } from './sockopts.js';
import { checkUnix, loadSkQueues, openUnix, unixFdsOf, USK_EXTERN } from './unix-restore.js';
import type { FileTable } from './table.js';

export interface UnixDump {
  diag: Map<number, UnixDiag>;
  /** A connecting socket not yet accepted -> the listener it waits on. */
  listenerOf: Map<number, number>;
  /** Dumped sockets by inode, with the fd that showed them (for messages). */
  byIno: Map<number, { ue: UnixSkEntry; where: string }>;
  /** sk-queues.img: each queued packet and its bytes. */
  queues: Array<{ msg: SkPacketEntry; extra: Buffer }>;
  /**
   * The file id of every socket dumped or being dumped, by inode: one socket is
   * one file, however often it is met (in its own queue, in another's).
   */
  ids: Map<number, number>;
  /**
   * cryo's copies of the fds in flight, open until the dump ends: kcmp tells
   * shared files apart by fd number, which a closed copy would hand to the next.
   */
  held: number[];
  /** The network namespaces (inodes) whose sockets are in `diag`. */
  scanned: Set<number>;
}

/** What sock_diag shows of unix sockets, once per network namespace (the one cryo is in: the socket's). */
function unixState(files: FileTable): UnixDump {
  const u = (files.unix ??= { diag: new Map(), listenerOf: new Map(), byIno: new Map(), queues: [], ids: new Map(), held: [], scanned: new Set() });
  const ns = netnsHere();
  if (!u.scanned.has(ns)) {
    u.scanned.add(ns);
    for (const [ino, d] of collectUnixSockets()) {
      u.diag.set(ino, d);
      for (const ic of d.icons) if (ic) u.listenerOf.set(ic, d.ino);
    }
  }
  return u;
}

function isUnix(p: FdProbe): boolean {
  return p.st.isSocket() && sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.DOMAIN) === AF.UNIX;
}

const typeName = (t: number) => ({ [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'datagram', [SOCK.SEQPACKET]: 'seqpacket' })[t] ?? `type ${t}`;
const showName = (n: Uint8Array) => (n.length === 0 ? 'unnamed' : n[0] === 0 ? `@${Buffer.from(n.subarray(1)).toString()}` : Buffer.from(n).toString().replace(/\0+$/, ''));

/**
 * The file a path name made: owner, mode, and where a relative name was bound.
 * In the tree's own mount namespace (`ns`) the file must be on one of its
 * mounts (kept in mnt_id, as CRIU's), and the name is looked up from its root.
 */
function resolveName(lfd: number, d: UnixDiag, ue: UnixSkEntry, where: string, ns: DumpFilesEnv['mntns']): void {
  if (!d.name.length || d.name[0] === 0) return;
  const fd = syscall('ioctl(SIOCUNIXFILE)', NR.ioctl, lfd, SIOCUNIXFILE, 0);
  try {
    const st = fstatSync(fd);
    ue.filePerms = create(FilePermsEntrySchema, { mode: st.mode, uid: st.uid, gid: st.gid });
    let path = readlinkSync(`/proc/self/fd/${fd}`);
    if (path.endsWith(' (deleted)')) {
      path = path.slice(0, -' (deleted)'.length);
      ue.deleted = true;
    }
    const name = showName(d.name);
    let home = ns;
    if (ns) {
      const mntId = Number(/^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? -1);
      // The name is checked in the namespace of its file's mount (any of the tree's).
      home = ns.of(mntId);
      if (!home) throw new CryoError(`${where}: bound to ${name}, a file on mount ${mntId}, which is not in the tree's mount namespaces`);
      ue.mntId = mntId;
    }
    if (!name.startsWith('/')) {
      if (!path.endsWith('/' + name)) throw new CryoError(`unix socket ${d.ino}: cannot tell where its relative name ${name} is (${path})`);
      ue.nameDir = path.slice(0, -name.length - 1) || '/';
    }
    // A file renamed away from the name (and maybe another bound there since) is
    // no longer the name's: the name is restored as a removed one, as CRIU's
    // stat check of the name does, never over what the path holds now.
    if (!ue.deleted) {
      const at = name.startsWith('/') ? name : `${ue.nameDir}/${name}`;
      const now = home ? statInRoot(home.root, at) : statOrNot(at);
      if (!now || now.ino !== st.ino || now.dev !== st.dev) ue.deleted = true;
    }
  } finally {
    closeSync(fd);
  }
}

function statOrNot(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

/** stat(2) of a path of the tree, resolved from its root (`root`: /proc/PID/root), never from cryo's. */
function statInRoot(root: string, p: string): Stats | undefined {
  let r: number | undefined;
  let fd: number | undefined;
  try {
    r = openSync(root, O.PATH | O.DIRECTORY | O.CLOEXEC);
    fd = openInRoot(r, p, O.PATH | O.CLOEXEC);
    return fstatSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
    if (r !== undefined) closeSync(r);
  }
}

/** Copy the socket's queue into sk-queues.img; fds in flight are dumped as files. */
const cmsgName = (t: number) => ({ [SCM_CREDENTIALS]: "the sender's credentials", 3: 'a security label', 4: "a pidfd of the sender" })[t] ?? `control messages of type ${t}`;
const cmsgOption = (t: number) => ({ [SCM_CREDENTIALS]: 'SO_PASSCRED', 3: 'SO_PASSSEC', 4: 'SO_PASSPIDFD' })[t] ?? 'an option that asks for them';

function dumpQueue(lfd: number, id: number, ino: number, where: string, env: DumpFilesEnv, out: UnixDump['queues'], held: number[]): void {
  const peekOff = sock.getsockoptInt(lfd, SOL_SOCKET, SO.PEEK_OFF) ?? -1;
  const size = Math.max(sock.getsockoptInt(lfd, SOL_SOCKET, SO.SNDBUF) ?? 0, sock.getsockoptInt(lfd, SOL_SOCKET, SO.RCVBUF) ?? 0, 1 << 16);
  const buf = Buffer.allocUnsafe(size);
  sock.setsockoptInt(lfd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    for (;;) {
      const r = sock.recvPeek(lfd, buf);
      held.push(...r.fds);
      if (r.n === -11 /* EAGAIN */ || r.n === 0) break;
      if (r.n < 0) throw new CryoError(`unix socket ${ino}: cannot read its queue (errno ${-r.n})`);
      if (r.truncated) throw new CryoError(`unix socket ${ino}: a queued message is larger than ${size} bytes`);
      // The kernel would stamp cryo's own on the messages sent back: refused, as by CRIU.
      if (r.other.length) throw new CryoError(`${where}: its queued messages carry ${r.other.map(cmsgName).join(', ')} (the socket has ${r.other.map(cmsgOption).join(', ')}), which cannot be put back`);
      const msg = create(SkPacketEntrySchema, { idFor: id, length: r.n });
      // Pushed before its fds are dumped: a socket in flight may queue packets of its own.
      out.push({ msg, extra: Buffer.from(buf.subarray(0, r.n)) });
      if (r.fds.length) msg.scm.push(create(ScmEntrySchema, { type: SCM_RIGHTS, rights: r.fds.map((f) => env.dumpOwn(f)) }));
    }
  } finally {
    sock.setsockoptInt(lfd, SOL_SOCKET, SO.PEEK_OFF, peekOff);
  }
}

export const unixsk: FdKind = {
  name: 'unix socket',
  type: FdTypes.UNIXSK,
  dumpCleanup: (files, cl) => cl.always('unix sockets held', () => closeUnix(files)),
  // sock_diag names the peers in the tree's own network namespace.
  finish: (files, env) => env.inTreeNetns(() => finishUnix(files, env.opts.extUnixSk, env.opts.external)),
  writeImages(dir, files) {
    if (files.unix?.queues.length) dir.write('skQueues', files.unix.queues);
  },
  loadImages: loadSkQueues,
  holdCleanup(store, cl) {
    const fds = unixFdsOf(store);
    cl.always('unix sockets held', () => {
      for (const fd of fds.values()) closeSync(fd);
    });
  },
  match: isUnix,
  dump(p, env) {
    const u = unixState(env.files);
    const ino = Number(p.st.ino);
    const seen = u.ids.get(ino);
    if (seen !== undefined) return seen;
    const where = p.pid === process.pid ? `unix socket ${ino} (in flight)` : `task ${p.pid} fd ${p.fd} (unix socket ${ino})`;
    const d = u.diag.get(ino);
    if (!d) throw new CryoError(`${where}: not found by sock_diag (another network namespace?)`);
    if (![SOCK.STREAM, SOCK.DGRAM, SOCK.SEQPACKET].includes(d.type as 1)) throw new CryoError(`${where}: ${typeName(d.type)} sockets are not supported`);
    if (![TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE].includes(d.state)) throw new CryoError(`${where}: state ${d.state} is not supported`);
    const lfd = p.copy();
    const id = env.files.newId();
    u.ids.set(ino, id);
    const ue = create(UnixSkEntrySchema, {
      id, ino, type: d.type, state: d.state, flags: p.info.flags & ~O.CLOEXEC, uflags: 0,
      backlog: d.state === TCP_LISTEN ? d.wqlen : 0, peer: d.peer,
      fown: noFown(),
      opts: dumpSockOpts(lfd, where), name: d.name, shutdown: d.shutdown,
    });
    resolveName(lfd, d, ue, where, env.mntns);
    if (d.state === TCP_ESTABLISHED && d.type !== SOCK.DGRAM && !d.peer) {
      // Not accepted yet: the kernel shows no peer; the listener holds it in its queue.
      const l = u.listenerOf.get(ino);
      if (l !== undefined) {
        if (d.wqlen) throw new CryoError(`${where}: data sent on a connection not yet accepted cannot be dumped`);
        ue.peer = l;
      } else if (d.shutdown !== 3) {
        throw new CryoError(`${where}: connected, but its peer is gone and it is not shut down`);
      }
    }
    if (d.state === TCP_LISTEN && d.icons.includes(0)) {
      throw new CryoError(`${where}: a connection waiting to be accepted was already closed by its client`);
    }
    if (d.rqlen && d.state !== TCP_LISTEN) dumpQueue(lfd, id, ino, where, env, u.queues, u.held);
    u.byIno.set(ino, { ue, where });
    env.files.add(create(FileEntrySchema, { type: FdTypes.UNIXSK, id, usk: ue }));
    return id;
  },
  open(fe, env) {
    if (!fe.usk) throw new CryoError(`file id ${fe.id}: unix socket entry without its usk field`);
    return openUnix(fe.usk, env);
  },
  // --inherit-fd fd[N]:socket:[INO]: a socket of the caller's stands for it (one whose peer was outside the tree).
  inheritKey: (fe) => (fe.usk ? `socket:[${fe.usk.ino}]` : undefined),
  check: checkUnix,
};

/**
 * After every task: each peer must be in the tree, or be an external socket
 * the options allow (as CRIU: a named datagram socket with --ext-unix-sk, or
 * any socket named with --external unix[ino]).
 */
export function finishUnix(files: FileTable, extUnixSk: boolean, external: string[]): void {
  const u = files.unix;
  if (!u) return;
  // A pair made again as one socketpair (datagram, or no name to connect by) is of one network namespace (its entries' ns_id).
  const entries = new Map(files.entries.flatMap((e) => (e.usk ? [[e.usk.ino, e.usk] as const] : [])));
  for (const { ue, where } of u.byIno.values()) {
    const a = entries.get(ue.ino) ?? ue;
    const b = entries.get(a.peer);
    if (!b || b.peer !== a.ino || a.state !== TCP_ESTABLISHED || (a.nsId || 0) === (b.nsId || 0)) continue;
    if (a.type === SOCK.DGRAM || (!a.name.length && !b.name.length)) {
      throw new CryoError(`${where}: connected to unix socket ${b.ino} of another network namespace of the tree, a ${typeName(a.type)} pair cryo cannot make across namespaces yet`);
    }
  }
  const externs = new Set<number>();
  for (const { ue, where } of u.byIno.values()) {
    if (!ue.peer || u.byIno.has(ue.peer)) continue;
    if (external.includes(`unix[${ue.ino}]`)) continue;
    const pd = u.diag.get(ue.peer);
    const peerName = pd ? showName(pd.name) : 'gone';
    if (!extUnixSk) throw new CryoError(`${where}: its peer (inode ${ue.peer}, ${peerName}) is outside the dumped tree; dump with --ext-unix-sk`);
    if (!pd || pd.type !== SOCK.DGRAM) throw new CryoError(`${where}: its peer (inode ${ue.peer}) is half of a ${typeName(pd?.type ?? 0)} connection outside the tree, which cannot be dumped`);
    if (!pd.name.length) throw new CryoError(`${where}: its peer (inode ${ue.peer}) is outside the tree and has no name to reconnect to`);
    if (externs.has(ue.peer)) continue;
    externs.add(ue.peer);
    const id = files.newId();
    files.add(create(FileEntrySchema, {
      type: FdTypes.UNIXSK, id,
      usk: create(UnixSkEntrySchema, {
        id, ino: ue.peer, type: SOCK.DGRAM, state: TCP_LISTEN, flags: 0, uflags: USK_EXTERN, backlog: 0, peer: 0, name: pd.name,
        fown: noFown(),
        opts: create(SkOptsEntrySchema, { soSndbuf: 0, soRcvbuf: 0, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n }),
      }),
    }));
  }
}


/** Let go of cryo's copies of the fds in flight (the dump is over, or failed). */
export function closeUnix(files: FileTable): void {
  for (const fd of files.unix?.held.splice(0) ?? []) closeSync(fd);
}

/**
 * files.img in an order CRIU's restore can read: a socket connected to one that
 * is not connected back (a datagram client of a server) after that server.
 * CRIU's collect_one_unixsk looks a socket's peer up only among the entries read
 * before it, and fails ("Peer N unresolved") otherwise; its dump writes the peer
 * first. Everything else keeps its place.
 */
export function peersFirst(entries: FileEntry[]): FileEntry[] {
  const byIno = new Map<number, FileEntry>();
  for (const e of entries) if (e.type === FdTypes.UNIXSK && e.usk) byIno.set(e.usk.ino, e);
  const out: FileEntry[] = [];
  const placed = new Set<FileEntry>();
  const waiting = new Map<number, FileEntry[]>(); // by the ino of the peer they wait for
  const place = (e: FileEntry): void => {
    out.push(e);
    placed.add(e);
    const ino = e.type === FdTypes.UNIXSK ? e.usk?.ino : undefined;
    if (ino === undefined) return;
    const next = waiting.get(ino) ?? [];
    waiting.delete(ino);
    next.forEach(place);
  };
  for (const e of entries) {
    const u = e.type === FdTypes.UNIXSK ? e.usk : undefined;
    const peer = u?.peer ? byIno.get(u.peer) : undefined;
    if (u && peer && peer !== e && peer.usk!.peer !== u.ino && !placed.has(peer)) {
      waiting.set(u.peer, [...(waiting.get(u.peer) ?? []), e]);
      continue;
    }
    place(e);
  }
  // Chains that loop without a pair (not a state the kernel makes): as they were.
  for (const e of entries) if (!placed.has(e)) out.push(e);
  return out;
}
