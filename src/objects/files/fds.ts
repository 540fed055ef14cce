// The fd table of a task: dump every fd to files.img + fdinfo-N.img, and plant
// them back on restore. Each kind of fd is one module in this folder and one line
// in FD_KINDS (issue #4 adds pipes, sockets and the rest).
import { closeSync, readdirSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { create, FdinfoEntrySchema, FdTypes, type FdinfoEntry, type FileEntry } from '../../images/index.js';
import { parseFdinfo } from '../../proc/fdinfo.js';
import { O, FD_CLOEXEC, SO, SOL_SOCKET, pidfdOpen, pidfdGetfd, dupCloexec, netlink, sock } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { CheckFilesEnv, DumpFilesEnv, DumpRunEnv, FdKind, FdProbe, KindStore, RestoreFilesEnv } from './kind.js';
import type { FileTable } from './table.js';
import type { ImageDir } from '../../images/index.js';
import type { Cleanup } from '../../cleanup.js';
import { regular } from './reg.js';
import { nsfile } from './nsfile.js';
import { tty, isTty } from './tty.js';
import { pipe, fifo } from './pipe.js';
import { eventfd } from './eventfd.js';
import { epoll } from './epoll.js';
import { signalfd } from './signalfd.js';
import { timerfd } from './timerfd.js';
import { inotify } from './inotify.js';
import { fanotify } from './fanotify.js';
import { pidfd } from './pidfd.js';
import { unixsk } from './unix.js';
import { memfd } from './memfd.js';
import { inetsk } from './inet.js';
import { netlinksk } from './netlink.js';
import { packetsk } from './packet.js';
import { parseLocks } from './locks.js';
import { readFown, setFown, restoreFown, asyncOn, nsPidOf } from './fown.js';
import { socketNsId } from '../netns-tree.js';
import type { Remote } from '../../tracer/remote.js';
import { tunfile } from './tunfile.js';

// Table order is also the order of the whole-tree steps: epoll's targets include fds
// in flight in unix sockets, which unixsk's finish reads.
const FD_KINDS: FdKind[] = [nsfile, tunfile, regular, tty, pipe, fifo, eventfd, signalfd, timerfd, inotify, fanotify, pidfd, unixsk, inetsk, netlinksk, packetsk, memfd, epoll];

function kindName(st: Stats, link: string): string {
  if (st.isFIFO()) return 'pipe';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return isTty(st.rdev) ? 'terminal' : `character device ${link}`;
  if (st.isBlockDevice()) return 'block device';
  if (link.startsWith('anon_inode:')) return link.slice('anon_inode:'.length);
  return link;
}

const FAMILIES: Record<number, string> = { 2: 'inet', 10: 'inet6', 16: 'netlink', 17: 'packet', 38: 'alg', 40: 'vsock' };
const PROTOCOLS: Record<number, string> = { 6: 'TCP', 17: 'UDP', 1: 'ICMP', 58: 'ICMPv6', 132: 'SCTP', 255: 'raw' };

/** A socket of a family cryo has no kind for: its family and what it is ("an inet socket (TCP)"). */
function socketFamily(p: FdProbe): { name: string; what: string } | undefined {
  const domain = sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.DOMAIN);
  const name = domain === undefined ? undefined : FAMILIES[domain] ?? `family ${domain}`;
  if (name === undefined) return undefined;
  const proto = sock.getsockoptInt(p.copy(), SOL_SOCKET, SO.PROTOCOL);
  const inet = name === 'inet' || name === 'inet6';
  const detail = inet && proto !== undefined && PROTOCOLS[proto] ? ` (${PROTOCOLS[proto]})` : '';
  return { name, what: `${/^[aeio]/.test(name) ? 'an' : 'a'} ${name} socket${detail}` };
}

/**
 * The tree's network namespace other than the root's that the socket is of, if
 * it is; a socket of none of the tree's would come back in the wrong one, and is refused.
 */
function checkSocketNetns(p: FdProbe, files: FileTable): { fd: number; nsId: number } | undefined {
  const want = files.sockNetns;
  if (want === undefined) return undefined;
  const ns = netlink.socketNetns(p.copy());
  if (ns === undefined) return undefined; // a kernel without SIOCGSKNS: sock_diag, run in the tree's namespace, finds no stranger
  try {
    const ino = netlink.nsInode(ns);
    if (ino === want) return undefined;
    const sub = files.subNetns.get(ino);
    if (!sub) throw new CryoError(`task ${p.pid}: fd ${p.fd} (${p.link}) is a socket of network namespace net:[${ino}], not one of the tree's (net:[${want}]), which cryo cannot restore`);
    return sub;
  } finally {
    closeSync(ns);
  }
}

/** The socket's entry names the network namespace it is of (CRIU's ns_id), where it is not the root's. */
function setSocketNs(entries: FileEntry[], id: number, nsId: number): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.id !== id) continue;
    const sk = e.usk ?? e.isk ?? e.psk ?? e.nlsk;
    if (sk) sk.nsId = nsId;
    return;
  }
}

/** One fd of a task, as the kinds see it. */
function probe(pid: number, fd: number): FdProbe {
  const path = `/proc/${pid}/fd/${fd}`;
  let local: number | undefined;
  try {
    const link = readlinkSync(path);
    const st = statSync(path);
    const fdinfoText = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    return {
      pid, fd, link, st, fdinfoText, info: parseFdinfo(fdinfoText),
      copy() {
        if (local === undefined) {
          if (pid === process.pid) return fd;
          const pidfd = pidfdOpen(pid);
          try {
            local = pidfdGetfd(pidfd, fd);
          } finally {
            closeSync(pidfd);
          }
        }
        return local;
      },
      close() {
        if (local !== undefined) closeSync(local);
      },
    } as FdProbe & { close(): void };
  } catch (e) {
    throw new CryoError(`task ${pid}: cannot inspect fd ${fd}: ${(e as Error).message}`);
  }
}

/** Dump one fd (or find the file it shares); returns the kind and the file id. */
function dumpFd(pid: number, fd: number, env: DumpFilesEnv): { kind: FdKind; id: number; p: FdProbe } {
  const p = probe(pid, fd);
  try {
    const kind = FD_KINDS.find((k) => k.match(p));
    if (!kind) {
      const family = p.st.isSocket() ? socketFamily(p) : undefined;
      if (family) throw new CryoError(`task ${pid}: fd ${fd} is ${family.what} (${p.link}): ${family.name} sockets are not supported yet`);
      throw new CryoError(`task ${pid}: fd ${fd} is a ${kindName(p.st, p.link)} (${p.link}), which cryo does not support yet`);
    }
    const netns = p.st.isSocket() ? checkSocketNetns(p, env.files) : undefined;
    // dup()ed and inherited fds share one open file description: one entry.
    const inodeKey = `${p.st.dev}:${p.st.ino}`;
    let id = env.files.sharedWith(pid, fd, inodeKey);
    if (id === undefined) {
      // A socket of another network namespace of the tree's is looked up (sock_diag) there.
      id = netns ? netlink.inNetns(netns.fd, () => kind.dump(p, env)) : kind.dump(p, env);
      if (netns) setSocketNs(env.files.entries, id, netns.nsId);
      env.files.rememberDescription(pid, fd, inodeKey, id);
      // In a pid namespace of its own the tree names its file's owner otherwise.
      const vpidOf = (host: number) => (env.pidDepth === 0 ? host : nsPidOf(host, env.pidDepth, `task ${pid}: fd ${fd}`));
      const fown = readFown(p.copy(), p.info.flags, vpidOf);
      if (fown) setFown(env.files.entries, id, fown);
    }
    return { kind, id, p };
  } finally {
    (p as FdProbe & { close(): void }).close();
  }
}

/** Dump every fd of `pid`; returns the fdinfo entries (files go into env.files). */
export function dumpFds(pid: number, base: Omit<DumpFilesEnv, 'dumpOwn'>): FdinfoEntry[] {
  const out: FdinfoEntry[] = [];
  const env: DumpFilesEnv = { ...base, dumpOwn: (fd) => dumpFd(process.pid, fd, env).id };
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  for (const fd of fds) {
    const { kind, id, p } = dumpFd(pid, fd, env);
    out.push(create(FdinfoEntrySchema, { id, flags: p.info.flags & O.CLOEXEC ? FD_CLOEXEC : 0, type: kind.type, fd }));
    const locks = parseLocks(p.fdinfoText, pid, env.vpid, fd, id, env.files.locksSeen);
    if (locks.length && !env.fileLocks) {
      throw new CryoError(`task ${pid} holds a file lock on fd ${fd} (${p.link}); dump with --file-locks`);
    }
    env.files.locks.push(...locks);
  }
  env.files.taskFds.set(pid, out);
  return out;
}

/**
 * A task whose fd table another task of the tree shares and has dumped: only the
 * POSIX locks it holds itself on those fds (returns no fdinfo entries).
 */
export function dumpLocks(pid: number, env: Omit<DumpFilesEnv, 'dumpOwn'>): FdinfoEntry[] {
  for (const fd of readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch (e) {
      throw new CryoError(`task ${pid}: cannot inspect fd ${fd}: ${(e as Error).message}`);
    }
    // Locks of open file descriptions (flock, OFD, leases) were taken with the table.
    const locks = parseLocks(text, pid, env.vpid, fd, -1, env.files.locksSeen).filter((l) => l.flag === 1 /* FL_POSIX */);
    if (locks.length && !env.fileLocks) throw new CryoError(`task ${pid} holds a file lock on fd ${fd}; dump with --file-locks`);
    env.files.locks.push(...locks);
  }
  return [];
}

/**
 * Open, in cryo, the object a file entry describes; returns cryo's fd (the task
 * takes its own copy with pidfd_getfd, so the open file description is shared).
 */
export function openFileEntry(fe: FileEntry, env: RestoreFilesEnv, task?: Remote): number {
  const kind = FD_KINDS.find((k) => k.type === fe.type);
  if (!kind) throw new CryoError(`file id ${fe.id}: fd kind ${FdTypes[fe.type] ?? fe.type} is not supported yet`);
  // --inherit-fd: an fd of cryo's stands for the object the images name.
  const key = env.inherited.size ? kind.inheritKey?.(fe, env) : undefined;
  const inh = key === undefined ? undefined : env.inherited.get(key);
  if (inh) {
    inh.used = true;
    return kind.openInherited ? kind.openInherited(fe, inh.fd, env) : dupCloexec(inh.fd);
  }
  // A socket of another network namespace of the tree's than the root's is made there.
  const ns = fe.type === FdTypes.UNIXSK ? undefined : socketNsId(fe); // unix sockets are made together, each in its own (unix-restore.ts)
  const nsFd = ns === undefined ? undefined : env.netnsFd?.(ns);
  const fd = nsFd === undefined ? kind.open(fe, env, task) : netlink.inNetns(nsFd, () => kind.open(fe, env, task));
  try {
    restoreFown(fd, fe, (id) => env.files.get(id), env.hostPid);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** Before a restore creates anything: each kind checks its entries of files.img. */
/** As the dump starts: every kind puts the release of what it will hold on `cl`. */
export function dumpKindCleanup(files: FileTable, cl: Cleanup, env: DumpRunEnv): void {
  for (const k of FD_KINDS) k.dumpCleanup?.(files, cl, env);
}

/** Once the whole tree is dumped: every kind finishes what needs the whole tree (before files.img is written). */
export function finishKinds(files: FileTable, env: DumpRunEnv): void {
  for (const k of FD_KINDS) k.finish?.(files, env);
}

/** Then every kind writes its side images. */
export function writeKindImages(dir: ImageDir, files: FileTable, env: DumpRunEnv): void {
  for (const k of FD_KINDS) k.writeImages?.(dir, files, env);
}

/** Before a restore's checks: every kind reads its side images into `store`. */
export function loadKindImages(dir: ImageDir, store: KindStore, files: ReadonlyMap<number, FileEntry>): void {
  for (const k of FD_KINDS) k.loadImages?.(dir, store, files);
}

/** As a restore starts making things: every kind puts on `cl` the release of what it will hold. */
export function holdKindCleanups(store: KindStore, cl: Cleanup, env: RestoreFilesEnv): void {
  for (const k of FD_KINDS) k.holdCleanup?.(store, cl, env);
}

/**
 * Every fd and mapping of the tree is in place: the kinds' last steps on them,
 * then each object settles on cryo's own fd of it (after the ghosts and links are gone).
 */
export function filesPlaced(env: RestoreFilesEnv, opened: Map<number, number>): void {
  for (const k of FD_KINDS) k.allPlaced?.(env);
  settleFiles(opened, env.files);
}

/** The tree is about to resume. */
export function kindsBeforeResume(env: RestoreFilesEnv): void {
  for (const k of FD_KINDS) k.beforeResume?.(env);
}

export function checkFileEntries(env: CheckFilesEnv): void {
  const byType = new Map<FdTypes, FileEntry[]>();
  for (const fe of env.files.values()) {
    const l = byType.get(fe.type) ?? [];
    l.push(fe);
    byType.set(fe.type, l);
  }
  for (const k of FD_KINDS) k.check(byType.get(k.type) ?? [], env);
}

/** The name of the kind that restores fds of this type, if cryo has one. */
export function fdKindName(type: FdTypes): string | undefined {
  return FD_KINDS.find((k) => k.type === type)?.name;
}

/** Whether the file's kind has work for when every fd of its task is in place. */
export function hasAfterPlant(fe: FileEntry): boolean {
  return FD_KINDS.find((k) => k.type === fe.type)?.afterPlant !== undefined;
}

/** Work a kind leaves for when every fd of the task is in place (epoll targets); O_ASYNC. */
export function afterPlant(rem: Remote, fe: FileEntry, fd: number, files: Map<number, FileEntry>): void {
  FD_KINDS.find((k) => k.type === fe.type)?.afterPlant?.(rem, fe, fd);
  asyncOn(rem, fe, fd, (id) => files.get(id));
}

/** Every file the restore opened, once all are in place (cryo's fds, by file id). */
function settleFiles(opened: Map<number, number>, files: Map<number, FileEntry>): void {
  for (const [id, fd] of opened) {
    const fe = files.get(id);
    if (fe) FD_KINDS.find((k) => k.type === fe.type)?.settled?.(fe, fd);
  }
}

/**
 * Give the file the task holds as `fd` its dumped owner again (a lease set since
 * took it), from cryo's fd of it, as when it was opened.
 */
export function reownFile(t: { fdinfo?: FdinfoEntry[] }, fd: number, env: RestoreFilesEnv & { opened: Map<number, number> }): void {
  const id = t.fdinfo?.find((f) => f.fd === fd)?.id;
  const fe = id === undefined ? undefined : env.files.get(id);
  const cfd = id === undefined ? undefined : env.opened.get(id);
  if (fe && cfd !== undefined) restoreFown(cfd, fe, (x) => env.files.get(x), env.hostPid);
}
