// fanotify: the group (fanotify_init()'s flags and event flags) and every mark:
// inode marks by file handle (a path found for it as for inotify, fsnotify.ts),
// mount marks by mount id and mount point; each with its mask, ignored mask and
// mark flags. As CRIU, the group and its marks go into files.img; fanotify.img
// and fanotify-mark.img are the older layout, still read on restore.
import { closeSync, readFileSync } from 'node:fs';
import {
  clone, create, FdTypes, FileEntrySchema, FanotifyFileEntrySchema, FanotifyMarkEntrySchema,
  FanotifyInodeMarkEntrySchema, FanotifyMountMarkEntrySchema, MarkType, type FanotifyMarkEntry, type FileEntry, type ImageDir,
} from '../../images/index.js';
import { noFown } from './table.js';
import { parseFanotifyFdinfo } from '../../proc/fsnotify.js';
import { parseMountinfo, type MountInfo } from '../../proc/mountinfo.js';
import { AT_FDCWD, F, FAN_MARK, FD_CLOEXEC, NR, O, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { fhEntry, openAt, openWatched, resolveWatch, restoreRoot, watchRoot, type WatchRoot } from './fsnotify.js';
import type { Remaps } from './remap.js';
import { partOf, type FdKind } from './kind.js';

export const fanotify: FdKind = {
  name: 'fanotify',
  type: FdTypes.FANOTIFY,
  match: (p) => p.link === 'anon_inode:[fanotify]',
  dump(p, env) {
    const where = `task ${p.pid} fd ${p.fd}`;
    const info = parseFanotifyFdinfo(p.fdinfoText);
    if (info.unsupported.length) {
      throw new CryoError(`${where}: a fanotify mark CRIU's images have no place for (filesystem marks, say): ${info.unsupported[0]}`);
    }
    const id = env.files.newId();
    let mounts: MountInfo[] | undefined;
    const mark = info.marks.map((m) => {
      const common = { id, mflags: m.mflags, mask: m.mask, ignoredMask: m.ignoredMask };
      if (m.kind === 'inode') {
        const fh = fhEntry(m.fh);
        resolveWatch(`${where}: fanotify mark on inode ${m.ino}`, m.sdev, m.ino, fh, env);
        return create(FanotifyMarkEntrySchema, {
          ...common, type: MarkType.INODE, sDev: m.sdev, ie: create(FanotifyInodeMarkEntrySchema, { iIno: m.ino, fHandle: fh }),
        });
      }
      mounts ??= parseMountinfo(readFileSync(`/proc/${p.pid}/mountinfo`, 'utf8'));
      const mnt = mounts.find((x) => x.mntId === m.mntId);
      if (!mnt) throw new CryoError(`${where}: fanotify mark on mount ${m.mntId}, which the task's mountinfo does not list`);
      return create(FanotifyMarkEntrySchema, {
        ...common, type: MarkType.MOUNT, sDev: mnt.sdev, me: create(FanotifyMountMarkEntrySchema, { mntId: m.mntId, path: mnt.mountpoint }),
      });
    });
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.FANOTIFY, id,
      ffy: create(FanotifyFileEntrySchema, {
        id, flags: p.info.flags & ~O.CLOEXEC, fown, faflags: info.flags, evflags: info.eventFlags, mark,
      }),
    }));
    return id;
  },
  open(fe, env) {
    const e = fe.ffy;
    if (!e) throw new CryoError(`file id ${fe.id}: fanotify entry without its ffy field`);
    // The dumped flags as they are, so that the group reads back the same in
    // fdinfo; cryo's own fd gets FD_CLOEXEC at once (nothing runs in between).
    const fd = syscall('fanotify_init', NR.fanotify_init, e.faflags, e.evflags);
    try {
      syscall('fcntl(F_SETFD)', NR.fcntl, fd, F.SETFD, FD_CLOEXEC);
      // O_NONBLOCK may have been changed with fcntl since fanotify_init().
      const fl = syscall('fcntl(F_GETFL)', NR.fcntl, fd, F.GETFL);
      if ((fl ^ e.flags) & O.NONBLOCK) syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, (fl & ~O.NONBLOCK) | (e.flags & O.NONBLOCK));
      const tree = restoreRoot(env);
      // An inode mark whose handle names a mount of another namespace of the tree is put there.
      for (const m of e.mark) addMark(fd, m, env.remaps, m.type === MarkType.INODE ? watchRoot(env, m.ie?.fHandle, tree) : tree);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  },  check(entries) {
    for (const fe of entries) partOf(fe, 'ffy');
  },
};

function addMark(fd: number, m: FanotifyMarkEntry, remaps: Remaps, tree: WatchRoot | undefined): void {
  let what: string;
  let target: number;
  let flags = FAN_MARK.ADD | (m.mflags & FAN_MARK.EVICTABLE);
  if (m.type === MarkType.MOUNT) {
    what = `fanotify mark on mount ${m.me?.mntId ?? '?'}`;
    const path = m.me?.path;
    if (!path) throw new CryoError(`${what}: the image has no path of the mount`);
    try {
      target = openAt(path, O.PATH | O.DIRECTORY, tree);
    } catch (e) {
      throw new CryoError(`${what}: cannot open ${path}${tree ? " in the tree's mount namespace" : ''}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    flags |= FAN_MARK.MOUNT;
  } else if (m.type === MarkType.INODE) {
    what = `fanotify mark on inode ${m.ie?.iIno ?? '?'}`;
    target = openWatched(what, m.sDev, m.ie?.iIno ?? 0n, m.ie?.fHandle, remaps, tree);
  } else {
    throw new CryoError(`fanotify mark of unknown type ${m.type as number}`);
  }
  try {
    const path = Buffer.from(`/proc/self/fd/${target}\0`);
    const mark = (f: number, mask: number, which: string) => {
      const r = trySyscall(NR.fanotify_mark, fd, f, mask, BigInt.asUintN(64, BigInt(AT_FDCWD)), path);
      if (r < 0) throw new CryoError(`${what}: cannot add the ${which} 0x${mask.toString(16)} again (errno ${-r})`);
    };
    if (m.mask) mark(flags, m.mask, 'mask');
    if (m.ignoredMask) {
      // A mark made with FAN_MARK_IGNORE keeps that API: the old flag would get EEXIST.
      const ignore = m.mflags & FAN_MARK.IGNORE ? FAN_MARK.IGNORE : FAN_MARK.IGNORED_MASK;
      mark(flags | ignore | (m.mflags & FAN_MARK.IGNORED_SURV_MODIFY), m.ignoredMask, 'ignored mask');
    }
  } finally {
    closeSync(target);
  }
}

/**
 * Groups in the older layout (CRIU before files.img held them): fanotify.img,
 * and their marks in fanotify-mark.img, read only with --deprecated as CRIU does.
 */
export function legacyFanotify(dir: ImageDir, deprecated: boolean): FileEntry[] {
  const groups = dir.tryRead('fanotify') ?? [];
  const marks = dir.tryRead('fanotifyMark') ?? [];
  if (marks.length && !deprecated) {
    throw new CryoError('fanotify-mark.img holds marks in the deprecated separate image; restore with --deprecated');
  }
  const orphan = marks.find((m) => !groups.some((g) => g.id === m.id));
  if (orphan) throw new CryoError(`fanotify-mark.img: a mark of fanotify group ${orphan.id}, which fanotify.img does not hold`);
  return groups.map((g) => {
    const ffy = clone(FanotifyFileEntrySchema, g);
    ffy.mark.push(...marks.filter((m) => m.id === g.id));
    return create(FileEntrySchema, { type: FdTypes.FANOTIFY, id: g.id, ffy });
  });
}
