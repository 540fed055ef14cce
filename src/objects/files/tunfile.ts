// tun/tap files (/dev/net/tun), as CRIU's tunfile: an fd of a task of a tree
// in its own network namespace, attached to one of its devices (a queue of it,
// maybe detached) or not attached yet. Written as CRIU does, a REG entry of
// /dev/net/tun and a TUNF entry of the same id; the device itself is dumped
// with the namespace's links (netdev.ts, which reads its settings on a file of
// the tree's when the device is not persistent). At restore the device was made
// persistent with the namespace; each file is opened in the tree's network
// namespace and attached with the device's flags, and the first one drops the
// persistence the device did not have.
import { closeSync, fstatSync } from 'node:fs';
import { fdLinks } from '../../proc/fds.js';
import { create, FdTypes, FileEntrySchema, TunfileEntrySchema, type FileEntry, type ImageDir, type TunLinkEntry } from '../../images/index.js';
import { O, netlink, pidfdGetfd, pidfdOpen, sock, tun } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, partOf, type FdKind, type KindStore } from './kind.js';
import { dumpRegFile, openFlags, openTreePath } from './reg.js';

const TUN_MAJOR = 10;
const TUN_MINOR = 200;
const major = (rdev: number) => (rdev >> 8) & 0xfff;
const minor = (rdev: number) => (rdev & 0xff) | ((rdev >> 12) & 0xfff00);

/** The network namespace (its inode) a tun file serves: the one it was opened in. */
function netnsOf(fd: number, what: string): number {
  const ns = netlink.socketNetns(fd);
  if (ns === undefined) throw new CryoError(`${what}: cannot tell its network namespace (SIOCGSKNS)`);
  try {
    return fstatSync(ns).ino;
  } finally {
    closeSync(ns);
  }
}

/** The tun/tap devices of the restored namespaces, by namespace id and name (from their netdev images). */
const LINKS = 'tunfile.links';
const linkKey = (nsId: number, name: string) => `${nsId}/${name}`;

export const tunfile: FdKind = {
  name: 'tun file',
  type: FdTypes.TUNF,
  match: (p) => p.st.isCharacterDevice() && major(p.st.rdev) === TUN_MAJOR && minor(p.st.rdev) === TUN_MINOR,
  dump(p, env) {
    const what = `task ${p.pid}: fd ${p.fd} (a tun file)`;
    const fd = p.copy();
    const ns = netnsOf(fd, what);
    // As CRIU: a tun file is carried only with the network namespace its device is in.
    if (!env.files.ownNetns) throw new CryoError(`${what} is of cryo's own network namespace: tun files are dumped only in a tree's own network namespace (as CRIU)`);
    if (ns !== env.files.sockNetns && !env.files.subNetns.has(ns)) throw new CryoError(`${what} is of network namespace ${ns}, not one of the tree's`);
    const at = tun.attachedTo(fd);
    // Packets the device sent to the task and it has not read yet: CRIU drops them; cryo refuses.
    if (at && !(at.flags & tun.IFF_DETACH_QUEUE) && sock.pollEvents(fd) & 0x1 /* POLLIN */) {
      throw new CryoError(`${what}: packets of ${at.name} wait to be read, which cryo cannot carry`);
    }
    const id = dumpRegFile(
      { pid: p.pid, proc: `/proc/${p.pid}/fd/${p.fd}`, link: p.link, st: p.st, what: `fd ${p.fd}` },
      { flags: p.info.flags & ~O.CLOEXEC, pos: p.info.pos },
      env,
    );
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.TUNF, id,
      tunf: create(TunfileEntrySchema, {
        id, nsId: env.nsId('net', `net:[${ns}]`),
        ...(at ? { netdev: at.name, ...(at.flags & tun.IFF_DETACH_QUEUE ? { detached: true } : {}) } : {}),
      }),
    }));
    return id;
  },
  loadImages(dir: ImageDir, store: KindStore, files) {
    const links = store.get(LINKS, () => new Map<string, TunLinkEntry>());
    const ns = new Set([...files.values()].flatMap((fe) => (fe.tunf?.netdev ? [fe.tunf.nsId] : [])));
    for (const id of ns) {
      for (const l of dir.tryRead('netdev', id) ?? []) if (l.tun) links.set(linkKey(id, l.name), l.tun);
    }
  },
  check(entries, env) {
    const links = env.kinds.get(LINKS, () => new Map<string, TunLinkEntry>());
    for (const fe of entries) {
      const t = partOf(fe, 'tunf');
      if (!fe.reg) throw badFile(fe, 'tun file without the regular file entry of its id (/dev/net/tun)');
      if (t.netdev && !links.has(linkKey(t.nsId, t.netdev))) throw badFile(fe, `tun file attached to ${t.netdev}, which is no tun device of netdev-${t.nsId}.img`);
    }
  },
  open(fe: FileEntry, env) {
    const t = fe.tunf!;
    const r = fe.reg!;
    // Opened in its network namespace (the root's, or another of the tree's): the file serves the one it was opened in.
    const nsFd = env.netnsFd?.(t.nsId);
    const openIt = () => openTreePath(r.name, openFlags(r.flags) | O.CLOEXEC, env.nsRoot, 'a tun file');
    const fd = nsFd === undefined ? openIt() : netlink.inNetns(nsFd, openIt);
    try {
      if (t.netdev) {
        const link = env.kinds.get(LINKS, () => new Map<string, TunLinkEntry>()).get(linkKey(t.nsId, t.netdev))!;
        tun.attach(fd, t.netdev, link.flags & ~tun.IFF_PERSIST);
        // A queue attached now would have the default send buffer: the one dumped, as the device's.
        tun.setSndbuf(fd, link.sndbuf);
        if (t.detached) tun.detachQueue(fd);
        if (!(link.flags & tun.IFF_PERSIST)) tun.setPersist(fd, false);
      }
      return fd;
    } catch (e) {
      closeSync(fd);
      throw new CryoError(`cannot open the tun file ${fe.id}${t.netdev ? ` of ${t.netdev}` : ''} again: ${(e as Error).message}`);
    }
  },
};

/**
 * A tun file of the tree's attached to device `name` (a copy of cryo's, closed by
 * the caller), found among the fds of `pids`: what the dump of a device some task
 * holds reads its settings on.
 */
export function treeTunFile(pids: readonly number[], name: string): number | undefined {
  for (const pid of pids) {
    let pidfd: number | undefined;
    try {
      for (const { fd: n, link } of fdLinks(pid)) {
        if (link !== '/dev/net/tun') continue;
        pidfd ??= pidfdOpen(pid);
        const fd = pidfdGetfd(pidfd, n);
        if (tun.attachedTo(fd)?.name === name) return fd;
        closeSync(fd);
      }
    } finally {
      if (pidfd !== undefined) closeSync(pidfd);
    }
  }
  return undefined;
}

/** The names of the devices the tun files of the images are attached to, in network namespace `nsId`. */
export function attachedTunDevices(files: Iterable<FileEntry>, nsId: number): Set<string> {
  return new Set([...files].flatMap((fe) => (fe.type === FdTypes.TUNF && fe.tunf?.netdev && fe.tunf.nsId === nsId ? [fe.tunf.netdev] : [])));
}
