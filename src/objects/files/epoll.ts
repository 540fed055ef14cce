// epoll: every registered fd with its events and data, from the "tfd:" lines of
// /proc/PID/fdinfo. The registrations are made again by the epoll's home task
// (inflight.ts), once all its fds are in place: epoll keys them by (file, fd
// number). A watch outlives the fd it was made through when the file stays open
// elsewhere (dup, then close), so once the tree is dumped each target is found
// among the home task's fds with kcmp(KCMP_EPOLL_TFD) and the watch is written
// under an fd that holds that file now, as CRIU does.
import { readdirSync, statSync } from 'node:fs';
import { create, FdTypes, FileEntrySchema, EventpollFileEntrySchema, EventpollTfdEntrySchema, type FileEntry, type EventpollTfdEntry } from '../../images/index.js';
import { noFown, type FileTable } from './table.js';
import { EINVAL, ENOSYS, F, NR, O, kcmpEpollTfd, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';
import { badFile, partOf, type FdKind } from './kind.js';
import { carriersOf, homeOf } from './inflight.js';

const EPOLL_CTL_ADD = 1;
const KCMP_FILE = 0;

/** The task's other fds that hold the open file at `fd` (kcmp KCMP_FILE), lowest first. */
function sameFile(pid: number, fd: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).filter((n) => n !== fd).sort((a, b) => a - b)
    .filter((n) => trySyscall(NR.kcmp, pid, pid, KCMP_FILE, fd, n) === 0);
}
const TFD = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*([0-9a-f]+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/gm;

export const epoll: FdKind = {
  name: 'epoll',
  type: FdTypes.EVENTPOLL,
  match: (p) => p.link === 'anon_inode:[eventpoll]',
  finish: (files) => finishEpolls(files),
  dump(p, env) {
    const id = env.files.newId();
    const tfd = [...p.fdinfoText.matchAll(TFD)].map((m) => create(EventpollTfdEntrySchema, {
      id, tfd: Number(m[1]), events: parseInt(m[2]!, 16), data: BigInt('0x' + m[3]),
      pos: BigInt('0x' + m[4]), inode: BigInt('0x' + m[5]), dev: parseInt(m[6]!, 16),
    }));
    const fown = noFown();
    const entry = create(EventpollFileEntrySchema, { id, flags: p.info.flags & ~O.CLOEXEC, fown, tfd });
    env.files.add(create(FileEntrySchema, { type: FdTypes.EVENTPOLL, id, epfd: entry }));
    // The task's own fd (tasks stay frozen), or cryo's copy of one in flight (kept until the dump ends).
    const where = p.pid === process.pid ? 'an epoll in flight (in a unix socket\'s queue)' : `task ${p.pid} fd ${p.fd} (epoll)`;
    env.files.epolls.push({ entry, owner: p.pid, efd: p.fd, where });
    return id;
  },
  open(fe) {
    if (!fe.epfd) throw new CryoError(`file id ${fe.id}: epoll entry without its epfd field`);
    const fd = syscall('epoll_create1', NR.epoll_create1, O.CLOEXEC);
    if (fe.epfd.flags & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, O.NONBLOCK);
    return fd;
  },
  afterPlant(rem: Remote, fe: FileEntry, fd: number) {
    const watched = new Set<number>();
    for (const t of fe.epfd?.tfd ?? []) {
      const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64
      ev.writeUInt32LE(t.events, 0);
      ev.writeBigUInt64LE(t.data, 4);
      const add = (tfd: number) => rem.callRaw(NR.epoll_ctl, fd, EPOLL_CTL_ADD, tfd, rem.put(ev, 3072));
      let at = t.tfd;
      let r = add(at);
      // Two watches of one file under one fd number: CRIU's image of watches made
      // through fds since closed (its dump writes the first fd holding the file
      // for each). Each goes under another fd of the task holding that file, as
      // cryo's own dump writes them.
      if (r === -17n /* EEXIST */) {
        for (const other of sameFile(rem.pid, at)) {
          if (watched.has(other)) continue;
          r = add(other);
          if (r !== -17n) {
            at = other;
            break;
          }
        }
      }
      if (r < 0n) throw new CryoError(`task ${rem.pid}: epoll fd ${fd}: cannot watch fd ${t.tfd} again (errno ${-r})`);
      watched.add(at);
    }
  },
  check(entries, env) {
    for (const fe of entries) {
      const e = partOf(fe, 'epfd');
      // The home task watches the targets again: they must be its fds.
      const fds = env.fdsOf(fe.id);
      if (!fds) {
        if (e.tfd.length) throw badFile(fe, 'an epoll with watches that no task holds or reaches through a socket queue');
        continue;
      }
      const t = e.tfd.find((x) => !fds.has(x.tfd));
      if (t) throw badFile(fe, `epoll target fd ${t.tfd} is not an fd of the task that holds the epoll`);
    }
  },
};

/** Each watch's index among the watches registered at the same fd number (KCMP_EPOLL_TFD's toff). */
function offsets(tfds: readonly EventpollTfdEntry[]): number[] {
  const n = new Map<number, number>();
  return tfds.map((t) => {
    const k = n.get(t.tfd) ?? 0;
    n.set(t.tfd, k + 1);
    return k;
  });
}

/**
 * Once every task is dumped: each epoll's targets are fds of its home task that
 * hold the watched files now. A target held by no fd of that task (closed, or
 * only in another task) cannot be watched again and fails the dump.
 */
export function finishEpolls(files: FileTable): void {
  const holders = new Map<number, number>();
  for (const [pid, fds] of files.taskFds) for (const f of fds) if (!holders.has(f.id)) holders.set(f.id, pid);
  const packets = (files.unix?.queues ?? []).map(({ msg }) => ({ idFor: msg.idFor, rights: msg.scm[0]?.rights ?? [] }));
  const facts = { holder: (id: number) => holders.get(id), carriers: carriersOf(packets) };
  for (const { entry, owner, efd, where } of files.epolls) {
    if (!entry.tfd.length) continue;
    const home = homeOf(entry.id, facts);
    if (home === undefined) throw new CryoError(`${where}: no task of the tree holds it or a socket it waits in, so its watches cannot be made again`);
    const fds = (files.taskFds.get(home) ?? []).map((f) => f.fd);
    let inodes: Map<number, number[]> | undefined; // the home's fds by inode, read once if a target moved
    const byInode = () => {
      if (!inodes) {
        inodes = new Map();
        for (const fd of fds) {
          try {
            const ino = Number(statSync(`/proc/${home}/fd/${fd}`).ino);
            inodes.set(ino, [...(inodes.get(ino) ?? []), fd]);
          } catch {
            /* not stat-able (an fd being closed): not a candidate */
          }
        }
      }
      return inodes;
    };
    const used = new Set<number>();
    const toff = offsets(entry.tfd);
    entry.tfd.forEach((t, i) => {
      const same = (fd: number) => {
        const r = kcmpEpollTfd(home, fd, owner, efd, t.tfd, toff[i]!);
        if (r === -EINVAL || r === -ENOSYS) return 'no-kcmp' as const;
        return r === 0;
      };
      const first = fds.includes(t.tfd) && !used.has(t.tfd) ? same(t.tfd) : false;
      if (first === 'no-kcmp') {
        // A kernel without KCMP_EPOLL_TFD: the registered fd must still hold a file of that inode.
        if (!(byInode().get(Number(t.inode)) ?? []).includes(t.tfd)) {
          throw new CryoError(`${where}: watches fd ${t.tfd}, which task ${home} no longer holds, and this kernel has no kcmp(KCMP_EPOLL_TFD) to find the file`);
        }
        used.add(t.tfd);
        return;
      }
      const holding = first ? [t.tfd] : (byInode().get(Number(t.inode)) ?? []).filter((c) => same(c) === true);
      const fd = holding.find((c) => !used.has(c));
      if (fd === undefined) {
        const why = holding.length ? `every fd of it in task ${home} stands for another watch of it already` : `task ${home} holds it in no fd`;
        throw new CryoError(`${where}: watches a file (inode ${t.inode}, registered as fd ${t.tfd}) and ${why}; the watch cannot be made again`);
      }
      used.add(fd);
      t.tfd = fd;
    });
  }
}
