// Terminals of a tree with its own mount namespace. A pty belongs to one devpts
// instance, and the restore must make it again in the tree's own one: the
// master is opened through the ptmx the images name, found from the tree's
// root (openat2 RESOLVE_IN_ROOT), never through cryo's /dev/ptmx, whose
// devpts is the host's. So the dump checks, for every pty the tree holds both
// sides of (and every hung-up slave), that its devpts is mounted in the tree's
// namespace and nowhere in cryo's, and that the path of its master leads back
// to it, as the kernel finds it (ptmx on the devpts, or a ptmx node beside a
// "pts" directory where it is mounted).
import { closeSync, fstatSync, readFileSync, statfsSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { TtyType } from '../../images/index.js';
import { NR, O, RESOLVE_NO_MAGICLINKS, TIOC, openInRoot, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { parseFdinfo } from '../../proc/fdinfo.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import { major, minor } from './kind.js';
import type { IdView } from '../userns.js';
import type { FileTable } from './table.js';

const DEVPTS_SUPER_MAGIC = 0x1cd1;
const PTMX_RDEV = (5 << 8) | 2;

/** A device number as mountinfo shows it (the kernel's MKDEV), from a Stats one. */
const kdev = (dev: number) => ((major(dev) << 20) | minor(dev)) >>> 0;

/** The devpts a pty fd is of: its superblock (mountinfo's dev) and the mount the kernel reaches it through. */
export interface PtsOf {
  dev: number;
  mntId: number;
}

/**
 * The devpts of cryo's fd `lfd` of a pty side: a slave's own (`st`, `mntId`
 * of its fdinfo); a master's through its peer, opened O_PATH (TIOCGPTPEER
 * then runs no open of the terminal: nothing changes for the tree, even on a
 * locked pair). Undefined when the kernel cannot tell (its devpts unmounted).
 */
export function ptsOf(lfd: number, master: boolean, st: Stats, mntId: number): PtsOf | undefined {
  if (!master) return { dev: kdev(st.dev), mntId };
  let peer: number;
  try {
    peer = syscall('ioctl(TIOCGPTPEER, O_PATH)', NR.ioctl, lfd, TIOC.GPTPEER, O.PATH | O.CLOEXEC);
  } catch {
    return undefined;
  }
  try {
    return { dev: kdev(fstatSync(peer).dev), mntId: parseFdinfo(readFileSync(`/proc/self/fdinfo/${peer}`, 'utf8')).mntId };
  } finally {
    closeSync(peer);
  }
}

/** stat of `path` from `root` (symlinks followed inside it), or undefined if it is not there. */
function statIn(root: number, path: string): { st: Stats; devpts: boolean } | undefined {
  let fd: number;
  try {
    fd = openInRoot(root, path, O.PATH | O.CLOEXEC, 0, RESOLVE_NO_MAGICLINKS);
  } catch {
    return undefined;
  }
  try {
    return { st: fstatSync(fd), devpts: statfsSync(`/proc/self/fd/${fd}`).type === DEVPTS_SUPER_MAGIC };
  } finally {
    closeSync(fd);
  }
}

/**
 * The devpts (its dev, as mountinfo's) that opening `ptmx` from `root` gives
 * a new pty of, as the kernel's devpts_acquire finds it: the ptmx node of a
 * devpts, or a 5:2 node elsewhere whose directory has a devpts mounted on "pts".
 */
export function ptmxDevpts(root: number, ptmx: string): number | undefined {
  const at = statIn(root, ptmx);
  if (!at || !at.st.isCharacterDevice() || at.st.rdev !== PTMX_RDEV) return undefined;
  if (at.devpts) return kdev(at.st.dev);
  const pts = statIn(root, posix.join(posix.dirname(ptmx), 'pts'));
  return pts?.devpts && pts.st.ino === 1 ? kdev(pts.st.dev) : undefined;
}

/**
 * The ptmx of the devpts a slave named `slave` (/dev/pts/N) is on: "ptmx"
 * beside it, as CRIU's inverted path.
 */
export const ptmxBeside = (slave: string) => posix.join(posix.dirname(slave), 'ptmx');

/** After a master is opened from the tree's root: is its pty of the devpts `ptmx` leads to there? */
export function checkTreeDevpts(master: number, root: number, ptmx: string, index: number): void {
  const want = ptmxDevpts(root, ptmx);
  const got = ptsOf(master, true, fstatSync(master), 0)?.dev;
  if (want === undefined || got !== want) {
    throw new CryoError(`pseudo-terminal ${index}: ${ptmx} in the tree's mount namespace is not the ptmx of its devpts (the new pty is of device ${got === undefined ? 'unknown' : `${got >>> 20}:${got & 0xfffff}`})`);
  }
}

interface TreeNs {
  /** /proc/ROOT/root: the tree's root, as cryo reaches it. */
  root: string;
  mounts: readonly MountInfo[];
}

/**
 * Once every task is dumped, a tree with its own mount namespace: every
 * terminal it holds must be one the restore can make in there, else the dump
 * fails in one line naming the task and fd. Of the ptys whose master is
 * outside the tree only runc's console is carried (orphan_pts_master: a new
 * pair on the slave's devpts there); a shell job's terminal is refused.
 */
export function refuseNsTerminals(files: FileTable, ns: TreeNs, opts: { orphanPtsMaster: boolean; shellJob: boolean }): void {
  const infos = new Map(files.ttyInfos.map((i) => [i.id, i]));
  const ownedIndex = new Set(files.ttyInfos.filter((i) => i.type === TtyType.PTY && (i.id & 1)).map((i) => i.pty!.index));
  const hostDevs = new Set(parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.sdev));
  const devOfIndex = new Map<number, number>();
  const rootFd = syscall(`open(${ns.root})`, NR.openat, -100, Buffer.from(ns.root + '\0'), O.PATH | O.DIRECTORY | O.CLOEXEC, 0);
  try {
    for (const r of files.ttyFds) {
      const info = infos.get(r.infoId)!;
      const refuse = (why: string) => new CryoError(`task ${r.pid}: fd ${r.fd} is the terminal ${r.link}, which cryo cannot restore in the tree's own mount namespace: ${why}`);
      if (info.type === TtyType.EXT_TTY || info.type === TtyType.CTTY) continue; // given back by the caller; reopened by the task
      // The shell's terminal would be reconnected to cryo's, which is not of the tree's namespace.
      const shells = `it is a terminal of the shell (--shell-job), which cryo does not reconnect in a tree's own mount namespace yet`;
      if (info.type !== TtyType.PTY) {
        // The console, a virtual terminal, a serial line: reopened by its path in the tree.
        if (opts.shellJob && info.type !== TtyType.CONSOLE) throw refuse(shells);
        const at = statIn(rootFd, r.path);
        if (!at?.st.isCharacterDevice() || at.st.rdev !== info.rdev) throw refuse(`its path ${r.path} there is not that device`);
        continue;
      }
      const index = info.pty!.index;
      const master = (info.id & 1) === 1;
      const hung = !info.termios;
      if (!ownedIndex.has(index) && !hung) {
        // A slave whose master is outside the tree: runc's console is made again on its devpts there.
        if (opts.orphanPtsMaster) {
          if (!ns.mounts.some((m) => m.mntId === r.mntId)) throw refuse('its slave is not on a mount of the tree');
        } else if (opts.shellJob) {
          throw refuse(shells);
        }
        continue; // without --shell-job, finishTtys refuses it
      }
      const pts = r.pts;
      if (!pts) throw refuse('the kernel does not tell which devpts it is of (is its devpts still mounted?)');
      const mount = ns.mounts.find((m) => m.mntId === pts.mntId);
      if (!mount || mount.fstype !== 'devpts' || mount.sdev !== pts.dev) throw refuse(`it is a pty of a devpts not mounted in the tree's mount namespace (device ${pts.dev >>> 20}:${pts.dev & 0xfffff})`);
      if (hostDevs.has(pts.dev)) throw refuse(`it is a pty of a devpts that is also mounted in cryo's mount namespace (mount ${mount.mntId} at ${mount.mountpoint}), not the tree's own; give the tree a devpts of its own (mount -t devpts -o newinstance)`);
      const other = devOfIndex.get(index);
      if (other !== undefined && other !== pts.dev) throw refuse(`the tree holds two ptys numbered ${index} of two devpts instances, which CRIU's images cannot tell apart`);
      devOfIndex.set(index, pts.dev);
      // The restore opens a master through its path; a hung-up slave gets a pair made through the ptmx beside it.
      const ptmx = master ? r.path : hung ? ptmxBeside(r.path) : undefined;
      if (ptmx !== undefined && ptmxDevpts(rootFd, ptmx) !== pts.dev) {
        throw refuse(`${ptmx} in the tree does not lead to the ptmx of its devpts (mount ${mount.mntId} at ${mount.mountpoint})`);
      }
    }
  } finally {
    closeSync(rootFd);
  }
}

/** The kernel's overflow id: what a tree sees as the owner of a file whose owner it does not map. */
const OVERFLOW_ID = 65534;

/**
 * A tree in its own user namespace: the owners in tty-info.img as the tree sees
 * them, as CRIU writes them (userns_uid). A pty slave's owner is set again on
 * restore, so one the namespace does not map is refused; the others are not
 * set (the task reopens /dev/tty, the console is the system's...), and one
 * without a mapping is written as the tree sees it, the overflow id.
 */
export function ttyOwnersToNs(files: FileTable, view: IdView, who: string): void {
  for (const info of files.ttyInfos) {
    if (info.uid === undefined || info.gid === undefined) continue;
    const what = `${who}: terminal ${info.id}`;
    if (info.type === TtyType.PTY && !(info.id & 1)) {
      info.uid = view.nsUid(info.uid, what);
      info.gid = view.nsGid(info.gid, what);
      continue;
    }
    const soft = (f: () => number) => {
      try {
        return f();
      } catch {
        return OVERFLOW_ID; // unmapped (the only way conv throws)
      }
    };
    const [uid, gid] = [info.uid, info.gid];
    info.uid = soft(() => view.nsUid(uid, what));
    info.gid = soft(() => view.nsGid(gid, what));
  }
}
