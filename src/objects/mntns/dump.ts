// The mount namespace of a tree that has one of its own: every mount of it from
// /proc/ROOT/mountinfo into mountpoints-N.img (MntEntry, as CRIU's
// dump_one_mountpoint), tmpfs contents into tmpfs-dev-N.tar.gz.img (tar, as
// CRIU). What cryo cannot make again fails the dump in one line.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { create, Fstype, MntEntrySchema, type ImageDir, type MntEntry } from '../../images/index.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import { AT_EMPTY_PATH, CLONE, MS, NR, O, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, pidfdGetfd, pidfdOpen } from '../../sys/index.js';
import { withHelper } from '../../tracer/seed.js';
import { CryoError, type Logger } from '../../context.js';
import { major, minor } from '../files/kind.js';
import { fsByName, mntFlags, sbFlags } from './fstypes.js';
import { IdView } from '../userns.js';

/** What the rest of the dump needs of the tree's mount namespace. */
export interface MntNsDump {
  nsId: number;
  /** The ids of its mounts: an open file's mnt_id must be one of them. */
  ids: Set<number>;
  /** Where cryo reaches a path of the namespace ("/proc/ROOT/root"). */
  root: string;
}

/** How a mount comes back: the root (--root), external (--external mnt[KEY]:PATH), anew, or bound from another. */
export type MountRole =
  | { role: 'root' }
  | { role: 'external'; key: string }
  | { role: 'new' }
  | { role: 'bind'; from: number };

/** The propagation fields of mountinfo. */
export function propagation(m: MountInfo): { shared: number; master: number; unbindable: boolean } {
  let shared = 0;
  let master = 0;
  for (const f of m.optional) {
    if (f.startsWith('shared:')) shared = Number(f.slice(7));
    else if (f.startsWith('master:')) master = Number(f.slice(7));
  }
  return { shared, master, unbindable: m.optional.includes('unbindable') };
}

/** --external mnt[KEY]:VAL (and --ext-mount-map KEY:VAL): KEY to VAL. */
export function extMounts(external: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of external) {
    const r = /^mnt\[(.+?)\]:(.*)$/s.exec(e);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

const under = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(dir + '/');

/**
 * The role of every mount, CRIU's rules: the namespace's root comes from
 * --root; a mount named external from its path at restore; a file system cryo
 * knows, mounted at its own root, anew; any other mount must show part of a
 * mount of the namespace (a bind), else it is refused.
 */
export function classify(mounts: MountInfo[], ext: Map<string, string>, who: string): Map<number, MountRole> {
  const ids = new Set(mounts.map((m) => m.mntId));
  const roots = mounts.filter((m) => !ids.has(m.parentId));
  if (roots.length !== 1) throw new CryoError(`${who}: its mount namespace has ${roots.length} root mounts, which cryo cannot tell apart`);
  const root = roots[0]!;
  const roles = new Map<number, MountRole>();
  roles.set(root.mntId, { role: 'root' });
  const where = (m: MountInfo) => `mount ${m.mntId} at ${m.mountpoint} (${m.fstype})`;
  for (const m of mounts) {
    if (m === root) continue;
    if (m.root.endsWith('//deleted')) throw new CryoError(`${who}: ${where(m)} shows a deleted file or directory, which cryo does not restore`);
    const key = ext.get(m.mountpoint);
    if (key !== undefined) roles.set(m.mntId, { role: 'external', key });
  }
  for (const m of mounts) {
    if (roles.has(m.mntId)) continue;
    const fs = fsByName(m.fstype);
    // The first mount of a known file system at its own root makes it; the others are bound from it.
    const owner = fs && mounts.find((o) => o.sdev === m.sdev && o.root === '/' && (roles.get(o.mntId) ?? { role: 'new' }).role === 'new');
    if (owner === m) {
      roles.set(m.mntId, { role: 'new' });
      continue;
    }
    if (owner && under(m.root, owner.root)) {
      roles.set(m.mntId, { role: 'bind', from: owner.mntId });
      continue;
    }
    // Part of the root's file system or of an external mount, below what they show.
    const src = mounts.find((o) => o !== m && o.sdev === m.sdev && ['root', 'external'].includes(roles.get(o.mntId)?.role ?? '') && under(m.root, o.root));
    if (src) {
      roles.set(m.mntId, { role: 'bind', from: src.mntId });
      continue;
    }
    if (!fs && !mounts.some((o) => o !== m && o.sdev === m.sdev)) {
      throw new CryoError(`${who}: ${where(m)} is a file system cryo does not dump; declare it with --external mnt[${m.mountpoint}]:KEY`);
    }
    throw new CryoError(`${who}: ${where(m)} is a bind mount of ${m.root} of a file system mounted outside its mount namespace; declare it with --external mnt[${m.mountpoint}]:KEY`);
  }
  return roles;
}

/** Propagation cryo puts back: peer groups and masters inside the namespace, none shared with cryo's. */
function checkPropagation(mounts: MountInfo[], who: string): void {
  const groups = new Set(mounts.map((m) => propagation(m).shared).filter((g) => g));
  const outside = new Set(parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => propagation(m).shared).filter((g) => g));
  for (const m of mounts) {
    const p = propagation(m);
    const where = `mount ${m.mntId} at ${m.mountpoint} (${m.fstype})`;
    if (p.shared && outside.has(p.shared)) throw new CryoError(`${who}: ${where} is a peer of mounts outside its namespace (shared:${p.shared}); --enable-external-sharing is not supported yet`);
    if (p.master && !groups.has(p.master)) throw new CryoError(`${who}: ${where} is a slave of mounts outside its namespace (master:${p.master}); --enable-external-masters is not supported yet`);
  }
}

/** Children of one mount on one mount point: which is on top cannot be told (CRIU refuses them too). */
function checkCollisions(mounts: MountInfo[], who: string): void {
  const seen = new Set<string>();
  for (const m of mounts) {
    const k = `${m.parentId} ${m.mountpoint}`;
    if (seen.has(k)) throw new CryoError(`${who}: mount ${m.parentId} has two mounts on ${m.mountpoint}, which cryo cannot restore`);
    seen.add(k);
  }
}

const CODES: Record<string, Fstype> = { overlay: Fstype.OVERLAYFS, binfmt_misc: Fstype.BINFMT_MISC, securityfs: Fstype.SECURITYFS, debugfs: Fstype.DEBUGFS, tracefs: Fstype.TRACEFS, fusectl: Fstype.FUSECTL, pstore: Fstype.PSTORE, autofs: Fstype.AUTOFS, fuse: Fstype.FUSE };

/**
 * uid= and gid= of superblock options as the tree sees them (CRIU's sb_opt_cb):
 * mountinfo shows them in the host's view; the tree's root mounts with them.
 */
function nsIdOptions(options: string, ids: IdView, what: string): string {
  return options.split(',').map((o) => {
    const m = /^(uid|gid)=(\d+)$/.exec(o);
    if (!m) return o;
    return `${m[1]}=${m[1] === 'uid' ? ids.nsUid(Number(m[2]), what) : ids.nsGid(Number(m[2]), what)}`;
  }).join(',');
}

function entryOf(m: MountInfo, role: MountRole, ids: IdView, who: string): MntEntry {
  const p = propagation(m);
  const sb = sbFlags(m.sbOpts);
  let flags = mntFlags(m.mntOpts);
  if (p.shared) flags |= MS.SHARED;
  if (p.master) flags |= MS.SLAVE;
  if (p.unbindable) flags |= MS.UNBINDABLE;
  return create(MntEntrySchema, {
    fstype: fsByName(m.fstype)?.code ?? CODES[m.fstype.split('.')[0]!] ?? Fstype.UNSUPPORTED,
    mntId: m.mntId, rootDev: m.sdev, parentMntId: m.parentId, flags: flags >>> 0, sbFlags: sb.flags,
    root: m.root, mountpoint: m.mountpoint, source: m.source, options: nsIdOptions(sb.rest, ids, `${who}: mount ${m.mntId} at ${m.mountpoint}`),
    sharedId: p.shared, masterId: p.master,
    ...(role.role === 'external' ? { extKey: role.key } : {}),
  });
}

/**
 * A detached copy of the mount at `path` alone (open_tree OPEN_TREE_CLONE, no
 * submounts) of task `pid`'s mount namespace, taken into cryo (pidfd_getfd). The
 * kernel clones only mounts of the caller's own namespace, and the tree's tasks
 * may lack CAP_SYS_ADMIN (a runc container's do): a helper of cryo's enters the
 * namespace and makes it, from the task's root.
 */
export function cloneMountOf(pid: number, path: string): number {
  return withHelper((rem) => {
    const str = (t: string) => rem.put(Buffer.from(`${t}\0`));
    const ns = rem.call('open(ns/mnt)', NR.open, str(`/proc/${pid}/ns/mnt`), O.RDONLY | O.CLOEXEC);
    // Opened before the helper moves: the task's own root, which its paths are relative to.
    const root = rem.call('open(root)', NR.open, str(`/proc/${pid}/root`), O.PATH | O.DIRECTORY | O.CLOEXEC);
    rem.call('setns(mnt)', NR.setns, ns, CLONE.NEWNS);
    const rel = path.replace(/^\/+/, '');
    const rfd = Number(rem.call(`open_tree(${path})`, NR.open_tree, root, str(rel), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rel ? 0 : AT_EMPTY_PATH)));
    const pidfd = pidfdOpen(rem.pid);
    try {
      return pidfdGetfd(pidfd, rfd);
    } finally {
      closeSync(pidfd);
    }
  });
}

/**
 * tar of a tmpfs, as CRIU's tmpfs_dump, reached from cryo through the tree's
 * root; one with mounts on it through a clone of it alone (`clone`), whose
 * files under those mounts tar then sees too.
 */
function dumpTmpfs(m: MountInfo, mounts: MountInfo[], root: string, dir: ImageDir, who: string, clone?: (path: string) => number): void {
  const where = `mount ${m.mntId} at ${m.mountpoint} (tmpfs)`;
  // Something mounted on the same point hides it from every path (CRIU opens a clone; cryo cannot from outside).
  if (mounts.some((o) => o !== m && o.mountpoint === m.mountpoint && o.parentId === m.mntId)) {
    throw new CryoError(`${who}: ${where} is hidden under another mount, which cryo cannot dump yet`);
  }
  const covered = clone !== undefined && mounts.some((o) => o !== m && o.parentId === m.mntId);
  let fd: number;
  try {
    fd = covered ? clone(m.mountpoint) : openSync(`${root}${m.mountpoint}`, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new CryoError(`${who}: cannot open ${where}${covered ? ' (a clone of it without the mounts on it)' : ''}: ${why}`);
  }
  try {
    const st = fstatSync(fd);
    if (((major(st.dev) << 20 | minor(st.dev)) >>> 0) !== m.sdev) throw new CryoError(`${who}: ${where}: its path leads to another file system`);
    const out = dir.openRaw('tmpfsDev', m.sdev, 'w');
    try {
      const r = spawnSync('tar', [
        '--create', '--gzip', '--no-unquote', '--no-wildcards', '--one-file-system', '--check-links',
        '--preserve-permissions', '--sparse', '--numeric-owner', '--directory', '/proc/self/fd/3', '.',
      ], { stdio: ['ignore', out, 'pipe', fd] });
      if (r.error || r.status !== 0) {
        const why = r.error?.message ?? (r.stderr.toString().split('\n').find((l) => l) || `exit status ${r.status}`);
        throw new CryoError(`${who}: cannot save the contents of ${where} with tar: ${why}`);
      }
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(fd);
  }
}

/** Dump the mount namespace of `pid` (the tree's root) as mountpoints-`nsId`.img. */
export function dumpMntNs(pid: number, comm: string, nsId: number, dir: ImageDir, external: readonly string[], log: Logger, clone?: (path: string) => number, ids: IdView = IdView.SAME): MntNsDump {
  const who = `task ${pid} (${comm})`;
  const mounts = parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  checkCollisions(mounts, who);
  const roles = classify(mounts, extMounts(external), who);
  checkPropagation(mounts, who);
  const root = `/proc/${pid}/root`;
  for (const m of mounts) {
    if (roles.get(m.mntId)?.role === 'new' && fsByName(m.fstype)?.how === 'tmpfs') dumpTmpfs(m, mounts, root, dir, who, clone);
  }
  dir.write('mnts', mounts.map((m) => entryOf(m, roles.get(m.mntId)!, ids, `task ${pid} (${comm})`)), nsId);
  for (const m of mounts) log.debug(`mount ${m.mntId} ${m.fstype} ${m.root} @ ${m.mountpoint}: ${roles.get(m.mntId)!.role}`);
  return { nsId, ids: new Set(mounts.map((m) => m.mntId)), root };
}

/**
 * Files that cryo would reach by their paths from its own side on restore (FIFOs,
 * unix sockets bound to path names, inotify and fanotify watches, terminals,
 * which cryo opens through its own /dev/ptmx and /dev/pts): not yet through a
 * tree's own mount namespace, so refused there.
 */
export function refusePathFiles<E extends { id: number; fifo?: unknown; usk?: { name: Uint8Array; ino: number } | undefined; ify?: unknown; ffy?: unknown; tty?: unknown }>(
  entries: readonly E[], who: string, ttyOk: (fe: E) => boolean = () => false,
): void {
  for (const fe of entries) {
    let what: string | undefined;
    if (fe.fifo) what = 'a FIFO';
    else if (fe.tty && !ttyOk(fe)) what = 'a terminal';

    else if (fe.usk && fe.usk.name.length && fe.usk.name[0] !== 0) what = `unix socket ${fe.usk.ino} bound to ${Buffer.from(fe.usk.name).toString().replace(/\0+$/, '')}`;
    else if (fe.ify) what = 'an inotify watch';
    else if (fe.ffy) what = 'a fanotify group';
    if (what) throw new CryoError(`${who}: the tree has its own mount namespace and holds ${what} (file id ${fe.id}), which cryo does not restore in one yet`);
  }
}
