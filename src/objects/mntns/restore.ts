// The tree's mount namespace made again, as CRIU's mount-v2: the root task,
// born in a new mount namespace, makes every mount of mountpoints-N.img itself
// (fresh file systems are then of its pid, ipc and net namespaces), parents
// first, pivots into the root (--root), then sets flags and propagation on the
// finished tree. tmpfs contents are unpacked by cryo into a detached mount that
// the root takes over (pidfd_getfd). The tree's other mount namespaces are made
// by the root too, each in one it unshares and leaves again; each task enters
// its own. A failure leaves it all to die with the root's namespaces.
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { isFieldSet, MntEntrySchema, type MntEntry } from '../../images/index.js';
import {
  AT_EMPTY_PATH, AT_FDCWD, CLONE, FSCONFIG, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MNT_DETACH, MOVE_MOUNT, MS, NR,
  MOUNT_ATTR, O, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, SysError, mountAttr, pidfdGetfd, pidfdOpen, syscall,
} from '../../sys/index.js';
import { withHelper } from '../../tracer/seed.js';
import { enterMntNs, joinCryoNs } from './enter.js';
import type { Remote } from '../../tracer/remote.js';
import { RemoteError } from '../../tracer/remote.js';
import { CryoError, type Logger } from '../../context.js';
import { fsByCode, mountAttrOf, codeName } from './fstypes.js';
import { registerBinfmt } from './binfmt.js';
import { openPtmxAt } from '../files/pty.js';
import { IdView } from '../userns.js';
import { rel, under, type MntNsImages } from './load.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';

export { commonMount, loadMntNs, type MntNsImages } from './load.js';

/** A new file system's superblock options, as fsconfig calls: "k=v" strings and bare flags. */
function fsOptions(e: MntEntry): Array<[string, string | undefined]> {
  const out: Array<[string, string | undefined]> = e.source ? [['source', e.source]] : [];
  if (fsByCode(e.fstype)?.noOptions) return out;
  for (const o of e.options.split(',')) {
    if (!o) continue;
    const eq = o.indexOf('=');
    out.push(eq < 0 ? [o, undefined] : [o.slice(0, eq), o.slice(eq + 1)]);
  }
  const sb = isFieldSet(e, MntEntrySchema.field.sbFlags) ? e.sbFlags : 0;
  if (sb & MS.RDONLY) out.push(['ro', undefined]);
  if (sb & MS.SYNCHRONOUS) out.push(['sync', undefined]);
  if (sb & MS.DIRSYNC) out.push(['dirsync', undefined]);
  return out;
}

/**
 * A proc of a pid namespace nested in the tree's (cryo_proc_pid_ns), mounted
 * once that namespace exists, by `rem`: a task of it in the mount's namespace,
 * at its own root (fsopen takes the pid namespace of its caller). Private, with
 * its options and flags, at its mount point.
 */
export function mountLateProc(rem: Remote, e: MntEntry): void {
  const str = (s: string, slot: number) => rem.put(Buffer.from(s + '\0'), slot * 4096);
  let doing = 'fsopen(proc)';
  try {
    const fsfd = rem.call('fsopen(proc)', NR.fsopen, str('proc', 0), FSOPEN_CLOEXEC);
    try {
      for (const [k, v] of fsOptions(e)) {
        doing = `option ${v === undefined ? k : `${k}=${v}`}`;
        if (v === undefined) rem.call(`fsconfig(${k})`, NR.fsconfig, fsfd, FSCONFIG.SET_FLAG, str(k, 0), 0, 0);
        else rem.call(`fsconfig(${k})`, NR.fsconfig, fsfd, FSCONFIG.SET_STRING, str(k, 0), str(v, 1), 0);
      }
      doing = 'making it';
      rem.call('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
      const mfd = rem.call('fsmount', NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
      try {
        const a = mountAttrOf(e.flags);
        doing = 'setting its flags';
        rem.call('mount_setattr', NR.mount_setattr, mfd, str('', 0), AT_EMPTY_PATH, rem.put(mountAttr(a.set, a.clr, MS.PRIVATE), 2 * 4096), 32);
        doing = 'mounting it';
        rem.call('move_mount', NR.move_mount, mfd, str('', 0), AT_FDCWD, str(e.mountpoint, 1), MOVE_MOUNT.F_EMPTY_PATH);
      } finally {
        rem.call('close', NR.close, mfd);
      }
    } finally {
      rem.call('close', NR.close, fsfd);
    }
  } catch (err) {
    if (err instanceof RemoteError) throw new CryoError(`restore failed: mount ${e.mntId} at ${e.mountpoint} (proc of pid namespace ${e.cryoProcPidNs}), ${doing}: ${err.message}`);
    throw err;
  }
}

/** File systems that are of a namespace of the mounter's: only one with power over its owner mounts them. */
const FS_NS: Record<string, string> = { proc: 'pid', sysfs: 'net', mqueue: 'ipc', cgroup: 'cgroup', cgroup2: 'cgroup' };
/** File systems a task of another user namespace than the first may mount (FS_USERNS_MOUNT). */
const USERNS_MOUNTS = new Set(['tmpfs', 'ramfs', 'devpts', 'proc', 'sysfs', 'mqueue', 'cgroup', 'cgroup2', 'fuse', 'overlay', 'binfmt_misc', 'bpf']);

/**
 * A new mount of `e`'s file system made by cryo, detached (`keep` filters its
 * options); uid= and gid= in cryo's view. Returns cryo's mount fd.
 */
function cryoFresh(e: MntEntry, ids: IdView, keep: (option: string) => boolean = () => true): number {
  const name = fsByCode(e.fstype)!.name;
  const fsfd = syscall(`fsopen(${name})`, NR.fsopen, Buffer.from(name + '\0'), FSOPEN_CLOEXEC);
  try {
    const what = `mount ${e.mntId} at ${e.mountpoint}`;
    const host = ([k, v]: [string, string | undefined]): [string, string | undefined] =>
      (k === 'uid' && v !== undefined ? [k, String(ids.hostUid(Number(v), what))] : k === 'gid' && v !== undefined ? [k, String(ids.hostGid(Number(v), what))] : [k, v]);
    for (const [k, v] of fsOptions(e).filter(([k]) => keep(k)).map(host)) {
      if (v === undefined) syscall(`fsconfig(${k})`, NR.fsconfig, fsfd, FSCONFIG.SET_FLAG, Buffer.from(k + '\0'), 0, 0);
      else syscall(`fsconfig(${k}=${v})`, NR.fsconfig, fsfd, FSCONFIG.SET_STRING, Buffer.from(k + '\0'), Buffer.from(v + '\0'), 0);
    }
    syscall('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
    return syscall(`fsmount(${name})`, NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
  } finally {
    closeSync(fsfd);
  }
}

/** A tmpfs, detached, in cryo, filled from its tar image; returns its mount fd. */
function makeTmpfs(e: MntEntry, img: string, ids: IdView): number {
  // Filled first, read-only after.
  const mfd = cryoFresh(e, ids, (k) => k !== 'ro');
  try {
    fillTmpfs(mfd, e, img);
  } catch (err) {
    closeSync(mfd);
    throw err;
  }
  return mfd;
}

/**
 * Unpack the tar image of tmpfs `e` into its new mount (cryo's fd `mfd`), then
 * make it read-only if it was. `userns`: the user namespace tar runs in, as
 * CRIU's (the owners in the archive are that namespace's).
 */
function fillTmpfs(mfd: number, e: MntEntry, img: string, userns?: string): void {
  let imgFd = -1;
  try {
    imgFd = openImg(img);
    const tar = ['tar', '--extract', '--gzip', '--no-unquote', '--no-wildcards', '--directory', '/proc/self/fd/3'];
    const argv = userns ? ['nsenter', `--user=${userns}`, ...tar] : tar;
    const r = spawnSync(argv[0]!, argv.slice(1), { stdio: [imgFd, 'ignore', 'pipe', mfd] });
    if (r.error || r.status !== 0) {
      throw new CryoError(`tmpfs mount ${e.mntId} at ${e.mountpoint}: tar cannot unpack ${img}: ${r.error?.message ?? (r.stderr.toString().split('\n').find((l) => l) || `exit status ${r.status}`)}`);
    }
    if (fsOptions(e).some(([k]) => k === 'ro')) {
      const pick = syscall('fspick', NR.fspick, mfd, Buffer.from('\0'), 0o10 /* FSPICK_EMPTY_PATH */ | 1 /* FSPICK_CLOEXEC */);
      try {
        syscall('fsconfig(ro)', NR.fsconfig, pick, FSCONFIG.SET_FLAG, Buffer.from('ro\0'), 0, 0);
        syscall('fsconfig(reconfigure)', NR.fsconfig, pick, FSCONFIG.CMD_RECONFIGURE, 0, 0, 0);
      } finally {
        closeSync(pick);
      }
    }
  } finally {
    if (imgFd >= 0) closeSync(imgFd);
  }
}

function openImg(p: string): number {
  return syscall(`open(${p})`, NR.openat, AT_FDCWD, Buffer.from(p + '\0'), 0o2000000 /* O_CLOEXEC */, 0);
}

/**
 * A bind mount of pty slave N of a devpts made anew (runc's /dev/console): as
 * CRIU's devpts_restore, the pty is made first through that devpts's ptmx,
 * reached through the root's fd of the mount; cryo keeps its master for the
 * pair of that index (an orphan whose master goes to the client).
 */
function makeBoundPty(pid: number, devpts: bigint, path: string, boundPtys: Map<number, number>): void {
  const m = /^(\d+)$/.exec(path);
  if (!m) return;
  const index = Number(m[1]);
  const dir = `/proc/${pid}/fd/${devpts}`;
  if (boundPtys.has(index) || existsSync(`${dir}/${index}`)) return;
  boundPtys.set(index, openPtmxAt(`${dir}/ptmx`, index, O.RDWR | O.NOCTTY | O.CLOEXEC));
}

/** A mount namespace made: cryo's fds of it (for setns) and of its root (paths of its files are opened from there). */
export interface MadeMntNs {
  ns: number;
  root: number;
  /** cryo's fds of its read-only mounts left writable until the files are placed (readOnlyAtLast). */
  lateRo: number[];
}

/**
 * Build the tree's mount namespaces in `rem`, the root of the tree, fresh from
 * clone3 in a new mount namespace (a copy of cryo's): its own first, in which it
 * stays; each other one in a namespace it unshares (from one whose mounts the new
 * one binds from, cloned before), pivots into and leaves again (setns). Then the
 * propagation of all, across them. `cryoPidfd` is its fd of cryo's pidfd.
 * The read-only mounts of `writable` (where ghost files and links are made and
 * removed again) stay writable until readOnlyAtLast, as CRIU remounts them
 * writable for that. Returns cryo's fds of each namespace, by id.
 */
export function restoreMntNs(rem: Remote, cryoPidfd: bigint, imgs: readonly MntNsImages[], log: Logger, boundPtys: Map<number, number>, ids: IdView = IdView.SAME,
  writable: ReadonlySet<number> = new Set()): Map<number, MadeMntNs> {
  const inUserns = ids.own;
  // A file system of one of cryo's namespaces (a tree of its own user namespace but in cryo's pid,
  // net, ipc or cgroup namespace, `unshare -Urm`): its root may not mount one (no power over that
  // namespace's owner); cryo makes it.
  const cryoNs = (kind: string) => readlinkSync(`/proc/${rem.pid}/ns/${kind}`) === readlinkSync(`/proc/self/ns/${kind}`);
  // Nor one no user namespace but the first mounts (devtmpfs, securityfs...): the tree had it from cryo's side.
  const byCryo = { has: (fs: string) => inUserns && (!USERNS_MOUNTS.has(fs) || (FS_NS[fs] !== undefined && cryoNs(FS_NS[fs]!))) };
  const held: number[] = []; // cryo's fds of the mounts it made (tmpfs, cryoMount's)
  const cryoMount = (e: MntEntry): bigint => {
    doing = `mounting ${e.mountpoint} (mount ${e.mntId}, ${fsByCode(e.fstype)?.name}, made by cryo)`;
    const mfd = cryoFresh(e, ids);
    held.push(mfd);
    return call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, mfd, 0);
  };
  const fds = new Map<number, bigint>(); // the root's fd of each mount, of every namespace
  const made = new Map<number, MadeMntNs>();
  const byId = new Map(imgs.flatMap((i) => i.order.map((e) => [e.mntId, e] as const)));
  const externalSlave = (e: MntEntry) => isExternalSlave(imgs, e);
  const nsOf = imgs[0]!.nsOf;
  let here = imgs[0]!.nsId; // the namespace the root is in now
  let doing = 'making its mounts private';
  const lateRo = new Map<number, number[]>(); // by namespace
  let rootPidfd: number | undefined;
  const str = (s: string, slot: number) => rem.put(Buffer.from(s + '\0'), slot * 4096);
  const call = (what: string, nr: number, ...a: Array<bigint | number>) => rem.call(what, nr, ...a);
  const clone = (at: bigint | number, path: string) =>
    call(`open_tree(${path || '.'})`, NR.open_tree, at, str(path, 0), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (path ? 0 : AT_EMPTY_PATH));
  // A new mount of the entry's filesystem, detached.
  const fresh = (e: MntEntry, keep: (option: string) => boolean = () => true): bigint => {
    const name = fsByCode(e.fstype)!.name;
    const fsfd = call(`fsopen(${name})`, NR.fsopen, str(name, 0), FSOPEN_CLOEXEC);
    try {
      for (const [k, v] of fsOptions(e).filter(([k]) => keep(k))) {
        doing = `mounting ${e.mountpoint} (mount ${e.mntId}, ${name}), option ${v === undefined ? k : `${k}=${v}`}`;
        if (v === undefined) call(`fsconfig(${k})`, NR.fsconfig, fsfd, FSCONFIG.SET_FLAG, str(k, 0), 0, 0);
        else call(`fsconfig(${k})`, NR.fsconfig, fsfd, FSCONFIG.SET_STRING, str(k, 0), str(v, 1), 0);
      }
      doing = `mounting ${e.mountpoint} (mount ${e.mntId}, ${name})`;
      call('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
      return call('fsmount', NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
    } finally {
      call('close', NR.close, fsfd);
    }
  };
  // A path of cryo's, cloned by cryo (the root of a tree in a user namespace may not walk it), and taken by the root.
  // A clone of a shared mount is its peer: made private at once, so that nothing the tree mounts on it
  // reaches cryo's namespace by propagation; `e`, a slave of a group outside at the dump, then becomes a
  // slave of the group the path's mount is in (as CRIU's external masters).
  const hostClone = (path: string, e?: MntEntry) => {
    const cfd = syscall(`open_tree(${path})`, NR.open_tree, AT_FDCWD, Buffer.from(path + '\0'), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    try {
      const propagate = (p: number) => syscall('mount_setattr(propagation)', NR.mount_setattr, cfd, Buffer.from('\0'), AT_EMPTY_PATH, mountAttr(0, 0, p), 32);
      propagate(MS.PRIVATE);
      if (e && externalSlave(e)) {
        const host = mountOfPath(path);
        if (!host?.optional.some((o) => o.startsWith('shared:'))) {
          throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} was a slave of a peer group outside the tree (master:${e.masterId}), but ${path} here is on ${host ? `mount ${host.mntId} at ${host.mountpoint}, in no peer group` : 'no mount cryo can find'} to be a slave of`);
        }
        doing = `making mount ${e.mntId} (${e.mountpoint}) a slave of ${host.mountpoint}'s peer group`;
        syscall('move_mount(MOVE_MOUNT_SET_GROUP)', NR.move_mount, AT_FDCWD, Buffer.from(host.mountpoint + '\0'), cfd, Buffer.from('\0'), MOVE_MOUNT.SET_GROUP | 0x40 /* T_EMPTY_PATH */);
        propagate(MS.SLAVE);
      }
      return call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, cfd, 0);
    } finally {
      closeSync(cfd);
    }
  };
  // Into a namespace made already (its mounts can be cloned only from inside it, their attributes set only there).
  const enter = (nsId: number) => {
    if (here === nsId) return;
    doing = `entering mount namespace ${nsId}`;
    const t = call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, made.get(nsId)!.ns, 0);
    try {
      call('setns(CLONE_NEWNS)', NR.setns, t, CLONE.NEWNS);
    } finally {
      call('close', NR.close, t);
    }
    here = nsId;
  };
  const record = (nsId: number) => {
    const ns = openSync(`/proc/${rem.pid}/ns/mnt`, O.RDONLY | O.CLOEXEC);
    try {
      made.set(nsId, { ns, root: openSync(`/proc/${rem.pid}/root`, O.PATH | O.DIRECTORY | O.CLOEXEC), lateRo: lateRo.get(nsId) ?? [] });
    } catch (e) {
      closeSync(ns);
      throw e;
    }
  };
  // The mount fd of `e` as its role makes it (a bind from another namespace was cloned there before: `pre`).
  const makeOne = (img: MntNsImages, e: MntEntry, pre: Map<number, bigint>): bigint => {
    const r = img.roles.get(e.mntId)!;
    const have = fds.get(e.mntId) ?? pre.get(e.mntId);
    if (have !== undefined) return have;
    if (img.tmpfs.has(e.mntId) && inUserns && !e.cryoForeignTmpfs) {
      // In a user namespace of its own, as CRIU: made by the root (its superblock that namespace's,
      // as it was) and unpacked by tar in there (the archive's owners are the namespace's). One
      // of another user namespace's (cryo_foreign_tmpfs) is cryo's, below.
      const fd = fresh(e, (k) => k !== 'ro');
      const mine = pidfdGetfd(rootPidfd ??= pidfdOpen(rem.pid), Number(fd));
      try {
        fillTmpfs(mine, e, img.tmpfs.get(e.mntId)!, `/proc/${rem.pid}/ns/user`);
      } finally {
        closeSync(mine);
      }
      return fd;
    }
    if (img.tmpfs.has(e.mntId)) {
      // Made and filled by cryo, in the order of the others (mountinfo lists mounts by age).
      const mfd = makeTmpfs(e, img.tmpfs.get(e.mntId)!, ids);
      held.push(mfd);
      return call('pidfd_getfd', NR.pidfd_getfd, cryoPidfd, mfd, 0);
    }
    if (r.role === 'bind' && e.deleted) return bindDeleted(e, r.from);
    if (r.role === 'bind') return bindOf(e, r.from);
    if (r.role === 'external') return hostClone(r.path, e);
    if (byCryo.has(fsByCode(e.fstype)?.name ?? '')) return cryoMount(e);
    const fd = fresh(e);
    // Its entries go on the instance's first mount (that of the tree's user namespace is new and empty).
    if (fsByCode(e.fstype)?.name === 'binfmt_misc' && img.binfmt.length && !binfmtDone) {
      doing = `registering ${img.binfmt.length} binfmt_misc entries on ${e.mountpoint} (mount ${e.mntId})`;
      registerBinfmt(rem, fd, img.binfmt);
      binfmtDone = true;
    }
    return fd;
  };
  let binfmtDone = false;
  const bindOf = (e: MntEntry, fromId: number): bigint => {
    const from = byId.get(fromId)!;
    if (fsByCode(from.fstype)?.name === 'devpts') makeBoundPty(rem.pid, fds.get(fromId)!, rel(e.root, from.root), boundPtys);
    return clone(fds.get(fromId)!, rel(e.root, from.root));
  };
  // Binds are cloned from their source as soon as it is attached, before anything is mounted on it:
  // a path into it then crosses no mount (one since moved over it, or propagated), and the clone,
  // detached, goes into any namespace.
  const binds = new Map<number, Array<{ img: MntNsImages; e: MntEntry }>>();
  for (const img of imgs) {
    for (const e of img.order) {
      const r = img.roles.get(e.mntId)!;
      if (r.role === 'bind') binds.set(r.from, [...(binds.get(r.from) ?? []), { img, e }]);
    }
  }
  const pre = new Map<number, bigint>();
  const cloneBindsOf = (src: MntEntry) => {
    for (const { img, e } of binds.get(src.mntId) ?? []) {
      if (e.deleted) continue; // made when its mount point is there to tell a file from a directory
      doing = `cloning mount ${src.mntId} for mount ${e.mntId} (${e.mountpoint}) of mount namespace ${img.nsId}`;
      pre.set(e.mntId, bindOf(e, src.mntId));
    }
  };
  /**
   * A bind of a file or directory deleted since, as CRIU: made again in its source
   * (a directory or a file, as its mount point is), cloned, removed again.
   */
  const bindDeleted = (e: MntEntry, fromId: number): bigint => {
    const from = byId.get(fromId)!;
    const parent = byId.get(e.parentMntId);
    const pfd = parent && fds.get(parent.mntId);
    if (!parent || pfd === undefined || !under(e.mountpoint, parent.mountpoint)) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint}: a bind of a deleted file whose mount point cannot be reached`);
    const isDir = statSync(`/proc/${rem.pid}/fd/${pfd}/${rel(e.mountpoint, parent.mountpoint)}`).isDirectory();
    const p = rel(e.root, from.root);
    if (!p) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint}: a bind of the deleted root of mount ${fromId}`);
    const src = fds.get(fromId)!;
    doing = `making the deleted ${isDir ? 'directory' : 'file'} ${e.root} again for mount ${e.mntId} (${e.mountpoint})`;
    if (isDir) call(`mkdirat(${p})`, NR.mkdirat, src, str(p, 0), 0o700);
    else call('close', NR.close, call(`openat(${p})`, NR.openat, src, str(p, 0), O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, 0o600));
    // Removed once mounted (the kernel does not mount a deleted one): as CRIU's remove_sources_of_deleted_mounts.
    gone.push({ src, p, isDir });
    return clone(src, p);
  };
  const gone: Array<{ src: bigint; p: string; isDir: boolean }> = [];
  const removeDeleted = () => {
    for (const g of gone.splice(0)) {
      doing = `removing ${g.p} again, the source of a bind of a deleted ${g.isDir ? 'directory' : 'file'}`;
      call(`unlinkat(${g.p})`, NR.unlinkat, g.src, str(g.p, 0), g.isDir ? 0x200 /* AT_REMOVEDIR */ : 0);
    }
  };
  const mountAll = (img: MntNsImages, pre: Map<number, bigint>) => {
    for (const e of img.order.slice(1)) {
      doing = `mounting ${e.mountpoint} (mount ${e.mntId}, ${codeName(e.fstype)}) in mount namespace ${img.nsId}`;
      const fd = makeOne(img, e, pre);
      fds.set(e.mntId, fd);
      // Onto its parent itself, reached from the parent's fd: a mount since put over the parent
      // (one moved there, or propagated) hides nothing then.
      const parent = byId.get(e.parentMntId);
      const at = parent && fds.get(parent.mntId);
      if (parent && at !== undefined && under(e.mountpoint, parent.mountpoint)) {
        const p = rel(e.mountpoint, parent.mountpoint);
        call('move_mount', NR.move_mount, fd, str('', 0), at, str(p, 1), MOVE_MOUNT.F_EMPTY_PATH | (p ? 0 : 0x40 /* T_EMPTY_PATH */));
      } else {
        call('move_mount', NR.move_mount, fd, str('', 0), AT_FDCWD, str(e.mountpoint, 1), MOVE_MOUNT.F_EMPTY_PATH);
      }
      if (img.roles.get(e.mntId)!.role !== 'bind') cloneBindsOf(e);
    }
    removeDeleted();
    // The finished tree: flags (mount-v2's order); propagation once every namespace is made.
    for (const e of img.order) {
      doing = `setting the flags of ${e.mountpoint} (mount ${e.mntId}) in mount namespace ${img.nsId}`;
      const a = mountAttrOf(e.flags);
      if (writable.has(e.mntId) && a.set & MOUNT_ATTR.RDONLY) {
        a.set &= ~MOUNT_ATTR.RDONLY;
        rootPidfd ??= pidfdOpen(rem.pid);
        lateRo.set(img.nsId, [...(lateRo.get(img.nsId) ?? []), pidfdGetfd(rootPidfd, Number(fds.get(e.mntId)!))]);
      }
      call('mount_setattr', NR.mount_setattr, fds.get(e.mntId)!, str('', 0), AT_EMPTY_PATH, rem.put(mountAttr(a.set, a.clr), 8 * 4096), 32);
    }
  };
  try {
    const first = imgs[0]!;
    // Nothing done here may reach cryo's namespace (or beyond) by propagation.
    call('mount(/, MS_REC|MS_PRIVATE)', NR.mount, 0, str('/', 0), 0, MS.REC | MS.PRIVATE, 0);
    // Everything taken from cryo's view, before the root changes.
    for (const e of first.order) {
      const r = first.roles.get(e.mntId)!;
      if (r.role === 'root' || r.role === 'external') {
        doing = `taking ${r.path} for mount ${e.mntId} (${e.mountpoint})`;
        fds.set(e.mntId, inUserns || externalSlave(e) ? hostClone(r.path, e) : clone(AT_FDCWD, r.path));
      }
    }
    // proc and sysfs in a user namespace: the kernel makes them only while a fully visible one
    // is in the namespace (mount_too_revealing), which cryo's old root is until the pivot.
    if (inUserns) {
      for (const e of first.order.slice(1)) {
        const name = fsByCode(e.fstype)?.name;
        if ((name === 'proc' || name === 'sysfs') && first.roles.get(e.mntId)!.role !== 'bind' && !first.tmpfs.has(e.mntId) && !fds.has(e.mntId)) {
          doing = `mounting ${e.mountpoint} (mount ${e.mntId}, ${name})`;
          fds.set(e.mntId, byCryo.has(name) ? cryoMount(e) : fresh(e));
        }
      }
    }
    const root = first.order[0]!;
    const rootFd = fds.get(root.mntId)!;
    const rootPath = (first.roles.get(root.mntId) as { path: string }).path;
    doing = `pivoting into ${rootPath}`;
    // In a user namespace of its own the root may not walk cryo's paths: its new root goes over its "/" (pivot_root(".", ".") then takes it).
    call('move_mount(root)', NR.move_mount, rootFd, str('', 0), AT_FDCWD, str(inUserns ? '/' : rootPath, 1), MOVE_MOUNT.F_EMPTY_PATH);
    call('fchdir(root)', NR.fchdir, rootFd);
    call('pivot_root(., .)', NR.pivot_root, str('.', 0), str('.', 1));
    call('umount2(., MNT_DETACH)', NR.umount2, str('.', 0), MNT_DETACH);
    call('chdir(/)', NR.chdir, str('/', 0));
    cloneBindsOf(root);
    mountAll(first, pre);
    record(first.nsId);
    for (const img of imgs.slice(1)) {
      doing = `making mount namespace ${img.nsId}`;
      call('unshare(CLONE_NEWNS)', NR.unshare, CLONE.NEWNS);
      here = img.nsId;
      call('mount(/, MS_REC|MS_PRIVATE)', NR.mount, 0, str('/', 0), 0, MS.REC | MS.PRIVATE, 0);
      const top = img.order[0]!;
      doing = `making the root of mount namespace ${img.nsId} (mount ${top.mntId})`;
      const topFd = makeOne(img, top, pre);
      fds.set(top.mntId, topFd);
      // Over the old "/", then pivot_root(".", ".") takes it, and the old tree goes.
      call('move_mount(root)', NR.move_mount, topFd, str('', 0), AT_FDCWD, str('/', 1), MOVE_MOUNT.F_EMPTY_PATH);
      call('fchdir(root)', NR.fchdir, topFd);
      call('pivot_root(., .)', NR.pivot_root, str('.', 0), str('.', 1));
      call('umount2(., MNT_DETACH)', NR.umount2, str('.', 0), MNT_DETACH);
      call('chdir(/)', NR.chdir, str('/', 0));
      if (img.roles.get(top.mntId)!.role !== 'bind') cloneBindsOf(top);
      mountAll(img, pre);
      record(img.nsId);
    }
    doing = 'setting propagation';
    restorePropagation(imgs, fds, (what, nr, ...a) => call(what, nr, ...a), (s, slot) => str(s, slot), rem, (e) => enter(nsOf.get(e.mntId)!));
    enter(first.nsId);
    for (const img of imgs) log.info(`mount namespace ${img.nsId}: ${img.order.length} mount(s) made`);
  } catch (e) {
    // The sources made again for binds of deleted files go (the rest dies with the namespaces).
    for (const g of gone) {
      try {
        call('unlinkat', NR.unlinkat, g.src, str(g.p, 0), g.isDir ? 0x200 : 0);
      } catch {
        /* the root is gone */
      }
    }
    for (const m of made.values()) closeMntNs(m);
    for (const l of lateRo.values()) for (const fd of l) closeSync(fd);
    if (e instanceof RemoteError || SysError.is(e)) throw new CryoError(`restore failed: the tree's mount namespace${imgs.length > 1 ? 's' : ''}: ${doing}: ${e.message}`);
    throw e;
  } finally {
    if (rootPidfd !== undefined) closeSync(rootPidfd);
    for (const fd of held) closeSync(fd);
    for (const [id, fd] of pre) if (fds.get(id) !== fd) fds.set(-1 - id, fd);
    for (const fd of fds.values()) {
      try {
        call('close', NR.close, fd);
      } catch {
        /* the root is gone: the restore fails anyway */
      }
    }
  }
  return made;
}

/** cryo's fds of a namespace made. */
export function closeMntNs(m: MadeMntNs): void {
  closeSync(m.ns);
  closeSync(m.root);
  for (const fd of m.lateRo.splice(0)) closeSync(fd);
}

/**
 * The ghost files and links are gone: the read-only mounts left writable for them
 * are made read-only, each by a helper of cryo's inside its namespace (only a
 * process there may set a mount's attributes).
 */
export function readOnlyAtLast(made: ReadonlyMap<number, MadeMntNs>): void {
  for (const [nsId, m] of made) {
    if (!m.lateRo.length) continue;
    withHelper((h) => {
      enterMntNs(h, m);
      const cryo = h.call('pidfd_open(cryo)', NR.pidfd_open, process.pid, 0);
      for (const fd of m.lateRo) {
        const t = h.call('pidfd_getfd', NR.pidfd_getfd, cryo, fd, 0);
        try {
          h.call('mount_setattr(MOUNT_ATTR_RDONLY)', NR.mount_setattr, t, h.put(Buffer.from('\0')), AT_EMPTY_PATH, h.put(mountAttr(MOUNT_ATTR.RDONLY, 0), 4096), 32);
        } catch (e) {
          if (e instanceof RemoteError) throw new CryoError(`restore failed: mount namespace ${nsId}: making a mount read-only again after its ghost files: ${e.message}`);
          throw e;
        } finally {
          h.call('close', NR.close, t);
        }
      }
    });
    for (const fd of m.lateRo.splice(0)) closeSync(fd);
  }
}

/**
 * Peer groups and masters, as mount-v2, across every namespace: the first mount
 * of each group is made shared (after its own master, if any); the other members
 * join it with MOVE_MOUNT_SET_GROUP (which crosses namespaces, and also gives
 * them its master); a slave joins its master's group and is then made a slave.
 * Unbindable last. A mount's attributes are set from inside its namespace (`enter`).
 */
/** An external mount whose master at the dump is no group of the images': one outside (made a slave of its source's group). */
function isExternalSlave(imgs: readonly MntNsImages[], e: MntEntry): boolean {
  if (!e.masterId || imgs.every((i) => i.roles.get(e.mntId)?.role !== 'external')) return false;
  return !imgs.some((i) => i.order.some((o) => o.sharedId === e.masterId));
}

/** The mount of cryo's namespace a path is on (the top one at the deepest mount point above it). */
function mountOfPath(path: string): MountInfo | undefined {
  const real = realpathSync(path);
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => under(real, m.mountpoint));
  const depth = Math.max(...mounts.map((m) => m.mountpoint.length));
  return mounts.filter((m) => m.mountpoint.length === depth).at(-1);
}

function restorePropagation(imgs: readonly MntNsImages[], fds: Map<number, bigint>, call: (what: string, nr: number, ...a: Array<bigint | number>) => bigint, str: (s: string, slot: number) => bigint, rem: Remote, enter: (e: MntEntry) => void): void {
  const all = imgs.flatMap((i) => i.order);
  // Each group's lead: its widest member (MOVE_MOUNT_SET_GROUP needs the source's root to hold the target's).
  const first = new Map<number, MntEntry>();
  for (const e of all) {
    const f = e.sharedId ? first.get(e.sharedId) : undefined;
    if (e.sharedId && (!f || (e.root !== f.root && under(f.root, e.root)))) first.set(e.sharedId, e);
  }
  const done = new Set<number>();
  const setGroup = (from: MntEntry, to: MntEntry) =>
    call('move_mount(MOVE_MOUNT_SET_GROUP)', NR.move_mount, fds.get(from.mntId)!, str('', 0), fds.get(to.mntId)!, str('', 1), MOVE_MOUNT.SET_GROUP | MOVE_MOUNT.F_EMPTY_PATH | 0x40 /* T_EMPTY_PATH */);
  const propagate = (e: MntEntry, p: number) => {
    enter(e);
    call('mount_setattr(propagation)', NR.mount_setattr, fds.get(e.mntId)!, str('', 0), AT_EMPTY_PATH, rem.put(mountAttr(0, 0, p), 8 * 4096), 32);
  };
  const ready = (e: MntEntry) => {
    if (e.masterId && first.has(e.masterId) && !done.has(first.get(e.masterId)!.mntId)) return false;
    if (e.sharedId && first.get(e.sharedId) !== e && !done.has(first.get(e.sharedId)!.mntId)) return false;
    return true;
  };
  // (an external slave of a group outside was made one when it was cloned)
  const todo = all.filter((e) => e.sharedId || (e.masterId && !isExternalSlave(imgs, e)));
  while (todo.length) {
    const i = todo.findIndex(ready);
    if (i < 0) throw new CryoError(`bad image: mounts whose masters form a cycle (mount ${todo[0]!.mntId})`);
    const e = todo.splice(i, 1)[0]!;
    const lead = e.sharedId ? first.get(e.sharedId)! : undefined;
    const master = e.masterId && !isExternalSlave(imgs, e) ? e.masterId : 0;
    if (lead && lead !== e) {
      setGroup(lead, e); // its group, and the group's master
    } else {
      if (master) {
        const m = first.get(master);
        if (!m) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} is a slave of peer group ${master}, which no mount of the images is in`);
        setGroup(m, e);
        propagate(e, MS.SLAVE);
      }
      if (e.sharedId) propagate(e, MS.SHARED);
    }
    done.add(e.mntId);
  }
  for (const e of all) if (e.flags & MS.UNBINDABLE) propagate(e, MS.UNBINDABLE);
}

/**
 * A task just made (by `from`'s task or a helper of it, in `from`'s mount
 * namespace) enters its own, before it maps or opens anything: setns with cryo's
 * fd of it, taken through the task's fd of cryo's pidfd. A zombie stays where it
 * was born.
 */
export function enterTaskMntNs(rem: Remote, c: { pstree: { pid: number }; core: { ids?: { mntNsId: number } | undefined } }, from: { pstree: { pid: number } },
  now: Map<number, number>, made: Map<number, MadeMntNs>, cryoPidfd: bigint): void {
  const born = now.get(from.pstree.pid)!;
  const want = c.core.ids?.mntNsId ?? born;
  now.set(c.pstree.pid, want);
  if (want === born) return;
  const ns = made.get(want);
  if (!ns) throw new CryoError(`task ${c.pstree.pid} of the images is in mount namespace ${want}, which the images do not hold`);
  joinCryoNs(rem, cryoPidfd, ns.ns, CLONE.NEWNS, 'CLONE_NEWNS');
}
