// Unix sockets, restore side. Sockets depend on each other (a pair, a listener
// and the clients waiting on it, a queue refilled through the peer), so at the
// first one cryo builds every unix socket of the images at once, in an order
// where each step finds what it needs: connected pairs, then names and
// listeners, then connections, then queues, shutdowns and options.
import { lstatSync, unlinkSync, chmodSync, lchownSync, closeSync } from 'node:fs';
import { ImageError, type FileEntry, type SkPacketEntry, type UnixSkEntry } from '../../images/index.js';
import { F, NR, O, SHUT, SO, SOCK, SOL_SOCKET, TCP_ESTABLISHED, TCP_LISTEN, sock, syscall, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, hexId, partOf, type CheckFilesEnv, type RestoreFilesEnv } from './kind.js';
import { restoreSockOpts } from './sockopts.js';

export interface UnixRestore {
  /** Queued packets, by the file id of the socket they wait in. */
  queues: Map<number, Array<{ msg: SkPacketEntry; data: Uint8Array }>>;
  /** --ext-unix-sk was given: sockets may be reconnected to names outside the tree. */
  extUnixSk: boolean;
  /** cryo's fd of each socket built, by inode (closed when the restore ends). */
  fds: Map<number, number>;
}

/** UnixSkEntry.uflags: a socket outside the tree, written so its peers can reach it. */
export const USK_EXTERN = 1;

const isPath = (n: Uint8Array) => n.length > 0 && n[0] !== 0;
const pathOf = (n: Uint8Array) => Buffer.from(n).toString().replace(/\0+$/, '');
const show = (ue: UnixSkEntry) => (!ue.name.length ? `unix socket ${ue.ino}` : `unix socket ${ue.ino} (${isPath(ue.name) ? pathOf(ue.name) : '@' + Buffer.from(ue.name.subarray(1)).toString()})`);

/** Run `fn` in the directory a relative name was bound in. */
function inDir<T>(ue: UnixSkEntry, fn: () => T): T {
  if (!isPath(ue.name) || ue.name[0] === 0x2f /* / */ || !ue.nameDir) return fn();
  const back = process.cwd();
  process.chdir(ue.nameDir);
  try {
    return fn();
  } finally {
    process.chdir(back);
  }
}

/** A socket file left behind by the dumped socket is in the way of bind(). */
function clearName(ue: UnixSkEntry): void {
  if (!isPath(ue.name)) return;
  inDir(ue, () => {
    const p = pathOf(ue.name);
    try {
      if (lstatSync(p).isSocket()) unlinkSync(p);
    } catch {
      /* nothing there */
    }
  });
}

function bind(fd: number, ue: UnixSkEntry): void {
  inDir(ue, () => {
    try {
      sock.bindUnix(fd, ue.name);
    } catch (e) {
      throw new CryoError(`cannot bind ${show(ue)}: ${(e as Error).message}`);
    }
    if (isPath(ue.name) && ue.filePerms) {
      const p = pathOf(ue.name);
      chmodSync(p, ue.filePerms.mode & 0o7777);
      lchownSync(p, ue.filePerms.uid, ue.filePerms.gid);
    }
  });
}

function connect(fd: number, ue: UnixSkEntry, to: UnixSkEntry): void {
  const r = inDir(to, () => sock.connectUnix(fd, to.name));
  if (r < 0) throw new CryoError(`cannot connect ${show(ue)} to ${show(to)}: errno ${-r}`);
}

/** A connected stream pair where `srv` came from accept() and carries its listener's name. */
function acceptedPair(srv: UnixSkEntry, cli: UnixSkEntry): [number, number] {
  const l = sock.socket(1 /* AF_UNIX */, srv.type);
  try {
    clearName(srv);
    bind(l, srv);
    sock.listen(l, 1);
    const c = sock.socket(1, cli.type);
    if (cli.name.length) {
      clearName(cli);
      bind(c, cli);
    }
    connect(c, cli, srv);
    return [sock.accept(l), c];
  } finally {
    closeSync(l);
    clearName(srv);
  }
}

/** Build every unix socket of the images in cryo. */
export function buildUnix(all: UnixSkEntry[], env: RestoreFilesEnv, u: UnixRestore): void {
  const byIno = new Map(all.map((ue) => [ue.ino, ue]));
  const fds = u.fds;
  const fakePeers = new Map<number, number>();
  const inherited = (ue: UnixSkEntry) => env.inherited.has(`socket:[${ue.ino}]`);
  const inTree = (ue: UnixSkEntry) => !(ue.uflags & USK_EXTERN) && !inherited(ue);
  const own = all.filter(inTree);
  // 1. Connected pairs with both ends in the tree.
  const paired = new Set<number>();
  const listenerNames = new Set(own.filter((x) => x.state === TCP_LISTEN).map((x) => Buffer.from(x.name).toString('hex')));
  for (const a of own) {
    if (fds.has(a.ino) || a.state !== TCP_ESTABLISHED) continue;
    const b = byIno.get(a.peer);
    if (b && inTree(b) && b.peer === a.ino && !fds.has(b.ino)) {
      const named = [a, b].filter((x) => x.name.length);
      if (a.type !== SOCK.DGRAM && named.length) {
        // The accepted end carries its listener's name.
        const srv = named.find((x) => listenerNames.has(Buffer.from(x.name).toString('hex'))) ?? named[0]!;
        const cli = srv === a ? b : a;
        const [s, c] = acceptedPair(srv, cli);
        fds.set(srv.ino, s);
        fds.set(cli.ino, c);
      } else if (!named.length) {
        const [x, y] = sock.socketpair(a.type);
        fds.set(a.ino, x);
        fds.set(b.ino, y);
      } else {
        continue; // named datagram sockets: bound, then connected by name below
      }
      paired.add(a.ino).add(b.ino);
    } else if (!a.peer && a.type !== SOCK.DGRAM) {
      // Its peer closed: a pair whose other end goes once the queue is back.
      const [x, y] = sock.socketpair(a.type);
      fds.set(a.ino, x);
      fakePeers.set(a.ino, y);
    }
  }
  // 2. The rest, bound to their names; listeners listen.
  for (const ue of own) {
    if (fds.has(ue.ino)) continue;
    const fd = sock.socket(1, ue.type);
    fds.set(ue.ino, fd);
    if (ue.name.length) {
      clearName(ue);
      bind(fd, ue);
    }
    if (ue.state === TCP_LISTEN) sock.listen(fd, ue.backlog);
  }
  // 3. Connections by name: clients waiting on a listener, datagram sockets.
  for (const ue of own) {
    if (!ue.peer || ue.state !== TCP_ESTABLISHED) continue;
    const to = byIno.get(ue.peer);
    if (!to) throw new CryoError(`${show(ue)}: its peer ${ue.peer} was outside the tree; give the socket with --inherit-fd fd[N]:socket:[${ue.ino}]`);
    if (paired.has(ue.ino) || inherited(to)) continue;
    if (!inTree(to) && !u.extUnixSk) throw new CryoError(`${show(ue)} was connected to ${show(to)} outside the tree; restore with --ext-unix-sk`);
    connect(fds.get(ue.ino)!, ue, to);
  }
  // 4. Names that were unlinked while bound.
  for (const ue of own) {
    if (ue.deleted && isPath(ue.name)) inDir(ue, () => unlinkSync(pathOf(ue.name)));
  }
  // 5. Options first: the buffer sizes bound how much a queue can take.
  for (const ue of own) if (ue.opts) restoreSockOpts(fds.get(ue.ino)!, ue.opts);
  // 6. Queued data, sent by whoever can reach the socket.
  for (const ue of own) {
    const q = u.queues.get(ue.id);
    if (!q?.length) continue;
    const peer = byIno.get(ue.peer);
    let from = fakePeers.get(ue.ino) ?? (peer && peer.peer === ue.ino ? fds.get(peer.ino) : undefined);
    let to: Uint8Array | undefined;
    let tmp: number | undefined;
    if (from === undefined) {
      if (ue.type !== SOCK.DGRAM || !ue.name.length) throw new CryoError(`${show(ue)}: no way to put its queued data back`);
      from = tmp = sock.socket(1, SOCK.DGRAM);
      to = ue.name;
    }
    // A sender cryo made holds what it sent until it is read: room for all of it.
    const bytes = q.reduce((n, p) => n + p.data.length + 1024, 0);
    if (tmp !== undefined || fakePeers.has(ue.ino)) sock.setsockoptInt(from, SOL_SOCKET, SO.SNDBUFFORCE, bytes);
    try {
      for (const { msg, data } of q) {
        const rights = (msg.scm[0]?.rights ?? []).map((id) => env.openId(id));
        const n = inDir(ue, () => sock.sendMsg(from!, data, rights, to));
        if (n !== data.length) throw new CryoError(`${show(ue)}: only ${n} of ${data.length} queued bytes went back`);
      }
    } finally {
      if (tmp !== undefined) closeSync(tmp);
    }
  }
  for (const f of fakePeers.values()) closeSync(f);
  // 7. Shutdowns and file flags, last: a shut-down end could not have been refilled.
  for (const ue of own) {
    const fd = fds.get(ue.ino)!;
    const how = [undefined, SHUT.RD, SHUT.WR, SHUT.RDWR][ue.shutdown ?? 0];
    if (how !== undefined && !fakePeers.has(ue.ino)) sock.shutdown(fd, how);
    syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, ue.flags & ~(O.CLOEXEC | 3));
  }
}

/**
 * Before anything is created: every socket buildUnix() would build finds what it
 * needs in the images (its peer, a name to connect to, a way to put its queue
 * back), and every queue and fd in flight belongs to something.
 */
export function checkUnix(entries: FileEntry[], env: CheckFilesEnv): void {
  const byIno = new Map<number, UnixSkEntry>();
  for (const fe of entries) {
    const ue = partOf(fe, 'usk');
    if (byIno.has(ue.ino)) throw badFile(fe, `unix socket inode ${ue.ino} is also file id ${hexId(byIno.get(ue.ino)!.id)}`);
    if (![SOCK.STREAM, SOCK.DGRAM, SOCK.SEQPACKET].includes(ue.type as 1)) throw badFile(fe, `unix socket of type ${ue.type}`);
    if (ue.name.length > 108) throw badFile(fe, `unix socket name of ${ue.name.length} bytes`);
    byIno.set(ue.ino, ue);
  }
  const inherited = (ue: UnixSkEntry) => env.inherited.has(`socket:[${ue.ino}]`);
  const inTree = (ue: UnixSkEntry) => !(ue.uflags & USK_EXTERN) && !inherited(ue);
  for (const fe of entries) {
    const ue = fe.usk!;
    if (!inTree(ue)) continue;
    const peer = ue.peer ? byIno.get(ue.peer) : undefined;
    if (ue.peer && ue.state === TCP_ESTABLISHED) {
      if (!peer) throw badFile(fe, `${show(ue)}: its peer ${ue.peer} is no socket of files.img; if it was outside the tree, give the socket with --inherit-fd fd[N]:socket:[${ue.ino}]`);
      const paired = inTree(peer) && peer.peer === ue.ino;
      if (!paired && !inherited(peer)) {
        if (!inTree(peer) && !env.extUnixSk) throw badFile(fe, `${show(ue)} was connected to ${show(peer)} outside the tree; restore with --ext-unix-sk`);
        // Connected again by the peer's name: a named datagram socket, or a listener.
        if (!peer.name.length) throw badFile(fe, `${show(ue)}: its peer ${show(peer)} is not its pair and has no name to connect to`);
        if (ue.type !== SOCK.DGRAM && peer.state !== TCP_LISTEN) throw badFile(fe, `${show(ue)}: its peer ${show(peer)} is not its pair and not listening`);
      }
    }
    const q = env.skQueues.get(ue.id);
    if (q?.length) {
      // As buildUnix: through a pair made for a peer that closed, the peer, or the name.
      const refill = (ue.state === TCP_ESTABLISHED && !ue.peer && ue.type !== SOCK.DGRAM) || (peer && inTree(peer) && peer.peer === ue.ino) || (ue.type === SOCK.DGRAM && ue.name.length);
      if (!refill) throw badFile(fe, `${show(ue)}: no way to put its queued data back`);
    }
  }
  for (const [id, q] of env.skQueues) {
    const bad = (what: string) => new ImageError('IMG_INVALID', 'sk-queues.img', undefined, what);
    const fe = env.files.get(id);
    if (!fe?.usk) throw bad(`packets queued in file id ${hexId(id)}, which is no unix socket of files.img`);
    for (const { msg } of q) {
      for (const r of msg.scm[0]?.rights ?? []) if (!env.files.has(r)) throw bad(`a packet for file id ${hexId(id)} carries file id ${hexId(r)}, which names no entry of files.img`);
    }
  }
}

/** The task's copy of a unix socket: every socket is built at the first one. */
export function openUnix(ue: UnixSkEntry, env: RestoreFilesEnv): number {
  const u = env.unix;
  if (!u.fds.size) {
    const all = [...env.files.values()].flatMap((f) => (f.usk ? [f.usk] : []));
    buildUnix(all, env, u);
  }
  const fd = u.fds.get(ue.ino);
  if (fd === undefined) throw new CryoError(`${show(ue)} was not rebuilt`);
  return dupCloexec(fd);
}
