// Unix sockets, restore side. Sockets depend on each other (a pair, a listener
// and the clients waiting on it, a queue refilled through the peer), so at the
// first one cryo builds every unix socket of the images at once, in an order
// where each step finds what it needs: connected pairs, then names and
// listeners, then options and queues, then connections by name, then
// shutdowns. A socket whose queue no peer of the tree can refill (its peer
// closed, or it is a datagram socket others only send to) gets a pair of its
// own, whose other end sends the queue and goes, as CRIU's fake queuers.
import { closeSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ImageError, type FileEntry, type ImageDir, type SkPacketEntry, type UnixSkEntry } from '../../images/index.js';
import { F, NR, O, SHUT, SO, SOCK, SOL_SOCKET, TCP_ESTABLISHED, TCP_LISTEN, netlink, sock, syscall, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, hexId, partOf, type CheckFilesEnv, type KindStore, type RestoreFilesEnv } from './kind.js';
import { restoreSockFilter, restoreSockOpts } from './sockopts.js';
import { closeGhosts, isPath, show, type UnixNames } from './unix-names.js';
import { enterMntNs, enterTreeRoot } from '../mntns/enter.js';
import { helperFs, hostNames, rootFs, treeBinder, treeNames, treePath, uncover, type TreeFs } from './unix-treenames.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import { withHelper } from '../../tracer/seed.js';
import { under } from '../mntns/load.js';

export interface UnixRestore {
  /** --ext-unix-sk was given: sockets may be reconnected to names outside the tree. */
  extUnixSk: boolean;
  /** The tree's own mount namespace: the mount point of each mount of the images, by its dumped id. */
  mountpoints?: Map<number, string>;
}

type Queues = Map<number, Array<{ msg: SkPacketEntry; data: Uint8Array }>>;
/** sk-queues.img: the packets queued in each socket, by the socket's file id (in the kinds' store). */
export const skQueuesOf = (s: KindStore) => s.get<Queues>('unix:queues', () => new Map());
/** cryo's fd of each socket built, by inode (closed when the restore ends). */
export const unixFdsOf = (s: KindStore) => s.get<Map<number, number>>('unix:fds', () => new Map());

/** Read sk-queues.img (none when no socket had anything queued). */
export function loadSkQueues(dir: ImageDir, store: KindStore): void {
  const queues = skQueuesOf(store);
  for (const { msg, extra } of dir.exists('skQueues') ? dir.readEntries('skQueues') : []) {
    const m = msg as SkPacketEntry;
    const l = queues.get(m.idFor) ?? [];
    l.push({ msg: m, data: extra ?? new Uint8Array() });
    queues.set(m.idFor, l);
  }
}

/** UnixSkEntry.uflags: a socket outside the tree, written so its peers can reach it. */
export const USK_EXTERN = 1;

/** Make a socket of entry `ue` in the network namespace it is of. */
type InNs = <T>(ue: UnixSkEntry, fn: () => T) => T;

/**
 * A connected stream pair where `srv` came from accept() and carries its
 * listener's name; `cli` is the other end (undefined: an end made to be closed).
 * Each end is made in its own network namespace (a name on a path reaches across them).
 */
function acceptedPair(srv: UnixSkEntry, cli: UnixSkEntry | undefined, ghosts: Map<number, number>, names: UnixNames, inNs: InNs): [number, number] {
  const l = inNs(srv, () => sock.socket(1 /* AF_UNIX */, srv.type));
  let ghost: number | undefined;
  try {
    ghost = names.bind(l, srv);
    sock.listen(l, 1);
    const c = inNs(cli ?? srv, () => sock.socket(1, srv.type));
    if (cli?.name.length) {
      const g = names.bind(c, cli);
      if (g !== undefined) ghosts.set(cli.ino, g);
    }
    names.connect(c, cli ?? srv, srv, ghost);
    return [sock.accept(l), c];
  } finally {
    closeSync(l);
    if (ghost !== undefined) closeSync(ghost);
    else names.clear(srv);
  }
}

/**
 * Build every unix socket of the images in cryo. A tree with its own mount
 * namespace has its path names bound in there, by a helper that entered it.
 */
export function buildUnix(all: UnixSkEntry[], env: RestoreFilesEnv, u: UnixRestore): void {
  const root = env.nsRoot;
  if (root === undefined || env.nsPid === undefined || !all.some((ue) => isPath(ue.name))) return build(all, env, u, hostNames);
  const pid = env.nsPid;
  let mounts: MountInfo[] | undefined;
  /** A removed name whose directory has a mount over it now, made since its file was: the mount point of its file's mount. */
  const coveredAt = (ue: UnixSkEntry): string | undefined => {
    const mp = ue.mntId !== undefined && ue.mntId >= 0 ? u.mountpoints?.get(ue.mntId) : undefined;
    if (mp === undefined) return undefined;
    const dir = dirname(treePath(ue));
    mounts ??= parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
    return mounts.some((m) => m.mountpoint !== mp && under(m.mountpoint, mp) && under(dir, m.mountpoint)) ? mp : undefined;
  };
  const covered = (ue: UnixSkEntry) => {
    const mp = coveredAt(ue);
    if (mp === undefined) return undefined;
    return <T>(fn: (fs: TreeFs) => T): T => withHelper((rem) => {
      enterTreeRoot(rem, pid);
      uncover(rem, mp);
      return fn(helperFs(rem));
    });
  };
  // Names in the tree's other mount namespaces: each bound by a helper of its own that entered that one.
  const nested = [...new Set(all.filter((ue) => isPath(ue.name)).map((ue) => env.mntNsOf?.(ue.mntId)).filter((m) => m !== undefined && m.root !== root))];
  const others = new Map<number, UnixNames>();
  const withNames = (i: number, names: UnixNames): void => {
    if (i === nested.length) {
      // Each name in the namespace of its file's mount; a connect by name in the target's.
      const pick = (ue: UnixSkEntry) => others.get(env.mntNsOf?.(ue.mntId)?.root ?? -1) ?? names;
      build(all, env, u, others.size === 0 ? names : {
        bind: (fd, ue) => pick(ue).bind(fd, ue),
        connect: (fd, ue, to, ghost) => pick(to).connect(fd, ue, to, ghost),
        clear: (ue) => pick(ue).clear(ue),
      });
      return;
    }
    withHelper((rem) => {
      enterMntNs(rem, nested[i]!);
      others.set(nested[i]!.root, treeNames(rootFs(nested[i]!.root, treeBinder(rem))));
      withNames(i + 1, names);
    });
  };
  withHelper((rem) => {
    enterTreeRoot(rem, pid);
    withNames(0, treeNames(rootFs(root, treeBinder(rem)), covered));
  });
}

function build(all: UnixSkEntry[], env: RestoreFilesEnv, u: UnixRestore, names: UnixNames): void {
  const byIno = new Map(all.map((ue) => [ue.ino, ue]));
  const fds = unixFdsOf(env.kinds);
  const queues = skQueuesOf(env.kinds);
  /** The other end of a pair made for a socket whose queue no peer refills: it sends the queue, then goes. */
  const fakePeers = new Map<number, number>();
  /** O_PATH fds of the sockets bound to names whose file is gone, for connecting to them. */
  const ghosts = new Map<number, number>();
  /** Sockets whose name is in place (accepted ones carry their listener's). */
  const named = new Set<number>();
  const inherited = (ue: UnixSkEntry) => env.inherited.has(`socket:[${ue.ino}]`);
  const inTree = (ue: UnixSkEntry) => !(ue.uflags & USK_EXTERN) && !inherited(ue);
  const own = all.filter(inTree);
  /** Make a socket in the network namespace its entry names (the two ends of a socketpair are of one: the dump checked it). */
  const inNs = <T>(ue: UnixSkEntry, fn: () => T): T => {
    const fd = ue.nsId ? env.netnsFd?.(ue.nsId) : undefined;
    return fd === undefined ? fn() : netlink.inNetns(fd, fn);
  };
  const queued = (ue: UnixSkEntry) => (queues.get(ue.id)?.length ?? 0) > 0;
  /** Its peer in the tree, connected back to it: the two are made as one pair. */
  const mutual = (ue: UnixSkEntry) => {
    const b = ue.state === TCP_ESTABLISHED ? byIno.get(ue.peer) : undefined;
    return b && b !== ue && inTree(b) && b.peer === ue.ino ? b : undefined;
  };
  try {
    // 1. Connected pairs with both ends in the tree; pairs for queues no peer refills.
    const paired = new Set<number>();
    const faked = new Set<number>();
    const listenerNames = new Set(own.filter((x) => x.state === TCP_LISTEN).map((x) => Buffer.from(x.name).toString('hex')));
    for (const a of own) {
      if (fds.has(a.ino)) continue;
      const b = mutual(a);
      if (b && !fds.has(b.ino)) {
        const srvs = [a, b].filter((x) => x.name.length);
        if (a.type !== SOCK.DGRAM && srvs.length) {
          // The accepted end carries its listener's name.
          const srv = srvs.find((x) => listenerNames.has(Buffer.from(x.name).toString('hex'))) ?? srvs[0]!;
          const cli = srv === a ? b : a;
          const [s, c] = acceptedPair(srv, cli, ghosts, names, inNs);
          fds.set(srv.ino, s);
          fds.set(cli.ino, c);
          named.add(srv.ino).add(cli.ino);
        } else {
          // Datagram pairs are bound to their names below.
          const [x, y] = inNs(a, () => sock.socketpair(a.type));
          fds.set(a.ino, x);
          fds.set(b.ino, y);
        }
        paired.add(a.ino).add(b.ino);
      } else if (a.state === TCP_ESTABLISHED && !a.peer && a.type !== SOCK.DGRAM) {
        // Its peer closed: a pair whose other end goes once the queue is back.
        const [x, y] = a.name.length ? acceptedPair(a, undefined, ghosts, names, inNs) : inNs(a, () => sock.socketpair(a.type));
        fds.set(a.ino, x);
        fakePeers.set(a.ino, y);
        faked.add(a.ino);
        named.add(a.ino);
      } else if (a.type === SOCK.DGRAM && queued(a)) {
        // Sent to by others (or by a peer now gone): its own end lets go of the pair at once.
        const [x, y] = inNs(a, () => sock.socketpair(SOCK.DGRAM));
        sock.disconnect(x);
        fds.set(a.ino, x);
        fakePeers.set(a.ino, y);
      }
    }
    // 2. The rest; names bound; listeners listen.
    for (const ue of own) {
      if (!fds.has(ue.ino)) fds.set(ue.ino, inNs(ue, () => sock.socket(1, ue.type)));
      if (!named.has(ue.ino)) {
        const g = names.bind(fds.get(ue.ino)!, ue);
        if (g !== undefined) ghosts.set(ue.ino, g);
        named.add(ue.ino);
      }
      if (ue.state === TCP_LISTEN) sock.listen(fds.get(ue.ino)!, ue.backlog);
    }
    // 3. Options first: the buffer sizes bound how much a queue can take.
    for (const ue of own) if (ue.opts) restoreSockOpts(fds.get(ue.ino)!, ue.opts);
    // 4. Queued data, sent by the peer or by the pair made for it. Before any
    //    connection by name: a datagram socket takes packets only from its peer once it has one.
    for (const ue of own) {
      const q = queues.get(ue.id);
      if (!q?.length) continue;
      const fake = fakePeers.get(ue.ino);
      const peer = mutual(ue);
      const from = fake ?? (peer ? fds.get(peer.ino) : undefined);
      if (from === undefined) throw new CryoError(`${show(ue)}: no way to put its queued data back`);
      // The sender holds what it sent until it is read: room for all of it. A real
      // peer's own size goes back after (its last packet may have gone in just
      // under the limit, and the queue then be a little over it).
      const need = q.reduce((n, p) => n + p.data.length + 1024, 0);
      if (fake !== undefined || (sock.getsockoptInt(from, SOL_SOCKET, SO.SNDBUF) ?? 0) < need) sock.setsockoptInt(from, SOL_SOCKET, SO.SNDBUFFORCE, need);
      for (const { msg, data } of q) {
        const rights = (msg.scm[0]?.rights ?? []).map((id) => env.openId(id));
        const n = sock.sendMsg(from, data, rights);
        if (n !== data.length) throw new CryoError(`${show(ue)}: only ${n} of ${data.length} queued bytes went back`);
      }
      if (fake === undefined && peer?.opts) restoreSockOpts(from, peer.opts);
    }
    for (const f of fakePeers.values()) closeSync(f);
    fakePeers.clear();
    // Filters once the queues are back (they would judge the packets again).
    for (const ue of own) if (ue.opts) restoreSockFilter(fds.get(ue.ino)!, ue.opts);
    // 5. Connections by name: clients waiting on a listener, datagram sockets.
    for (const ue of own) {
      if (!ue.peer || ue.state !== TCP_ESTABLISHED) continue;
      const to = byIno.get(ue.peer);
      if (!to) throw new CryoError(`${show(ue)}: its peer ${ue.peer} was outside the tree; give the socket with --inherit-fd fd[N]:socket:[${ue.ino}]`);
      if (paired.has(ue.ino) || inherited(to)) continue;
      if (!inTree(to) && !u.extUnixSk) throw new CryoError(`${show(ue)} was connected to ${show(to)} outside the tree; restore with --ext-unix-sk`);
      names.connect(fds.get(ue.ino)!, ue, to, ghosts.get(to.ino));
    }
    // 6. Shutdowns and file flags, last: a shut-down end could not have been refilled.
    for (const ue of own) {
      const fd = fds.get(ue.ino)!;
      const how = [undefined, SHUT.RD, SHUT.WR, SHUT.RDWR][ue.shutdown ?? 0];
      // A stream end whose peer closed is shut down by the close of the pair made for it.
      if (how !== undefined && !faked.has(ue.ino)) sock.shutdown(fd, how);
      syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, ue.flags & ~(O.CLOEXEC | 3));
    }
  } finally {
    for (const f of fakePeers.values()) closeSync(f);
    closeGhosts(ghosts);
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
    if (ue.deleted && !isPath(ue.name)) throw badFile(fe, `unix socket ${ue.ino} is marked deleted but has no path name`);
    byIno.set(ue.ino, ue);
  }
  const inherited = (ue: UnixSkEntry) => env.inherited.has(`socket:[${ue.ino}]`);
  const inTree = (ue: UnixSkEntry) => !(ue.uflags & USK_EXTERN) && !inherited(ue);
  // One file per path: of the sockets bound there themselves (datagram ones and
  // listeners; an accepted connection shows its listener's name), one at most
  // still has it. CRIU's dumps do not mark a socket whose file was renamed away
  // as deleted, so its images may name two: which one is at the path cannot be told.
  const bound = new Map<string, FileEntry>();
  for (const fe of entries) {
    const ue = fe.usk!;
    if (!inTree(ue) || ue.deleted || !isPath(ue.name) || (ue.type !== SOCK.DGRAM && ue.state !== TCP_LISTEN)) continue;
    // A path of its own mount namespace: one name in each.
    const ns = ue.mntId !== undefined && ue.mntId >= 0 ? env.mntNsOf?.(ue.mntId) : undefined;
    const key = `${ns ?? ''}\0${ue.nameDir ?? ''}\0${Buffer.from(ue.name).toString('latin1')}`;
    const other = bound.get(key);
    if (other) throw badFile(fe, `${show(ue)} and ${show(other.usk!)} are both bound to that name and neither is marked deleted: the file of one was moved away, and the images do not say which`);
    bound.set(key, fe);
  }
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
    const q = skQueuesOf(env.kinds).get(ue.id);
    if (q?.length) {
      // As buildUnix: through its peer, or a pair made for it (a stream end whose peer closed, any datagram socket).
      const refill = (ue.state === TCP_ESTABLISHED && !ue.peer && ue.type !== SOCK.DGRAM) || (peer && peer !== ue && inTree(peer) && peer.peer === ue.ino) || ue.type === SOCK.DGRAM;
      if (!refill) throw badFile(fe, `${show(ue)}: no way to put its queued data back`);
    }
  }
  for (const [id, q] of skQueuesOf(env.kinds)) {
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
  const fds = unixFdsOf(env.kinds);
  if (!fds.size) {
    const all = [...env.files.values()].flatMap((f) => (f.usk ? [f.usk] : []));
    buildUnix(all, env, u);
  }
  const fd = fds.get(ue.ino);
  if (fd === undefined) throw new CryoError(`${show(ue)} was not rebuilt`);
  return dupCloexec(fd);
}
