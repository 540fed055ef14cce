// inotify: every watch with its mask and wd. The watched inode is named by a file
// handle in fdinfo; dump finds a path for it (fsnotify.ts, as CRIU's irmap does,
// kept in f_handle.path), and restore adds the watches again, in wd order,
// re-adding until the kernel hands out the dumped wd.
import { closeSync, readSync } from 'node:fs';
import {
  create, FdTypes, FileEntrySchema, InotifyFileEntrySchema, InotifyWdEntrySchema,
} from '../../images/index.js';
import { noFown } from './table.js';
import { parseInotifyFdinfo } from '../../proc/fsnotify.js';
import { NR, O, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { fhEntry, openWatched, resolveWatch, restoreRoot, watchRoot } from './fsnotify.js';
import { partOf, type FdKind } from './kind.js';

const FIONREAD = 0x541b;

export const inotify: FdKind = {
  name: 'inotify',
  type: FdTypes.INOTIFY,
  match: (p) => p.link === 'anon_inode:inotify',
  dump(p, env) {
    const id = env.files.newId();
    const wd = parseInotifyFdinfo(p.fdinfoText).map((w) => {
      const fh = fhEntry(w.fh);
      resolveWatch(`task ${p.pid} fd ${p.fd}: inotify watch ${w.wd}`, w.sdev, w.ino, fh, env);
      return create(InotifyWdEntrySchema, {
        id, iIno: w.ino, mask: w.mask, ignoredMask: w.ignoredMask, sDev: w.sdev, wd: w.wd, fHandle: fh,
      });
    });
    const fown = noFown();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.INOTIFY, id, ify: create(InotifyFileEntrySchema, { id, flags: p.info.flags & ~O.CLOEXEC, fown, wd }),
    }));
    return id;
  },
  open(fe, env) {
    const e = fe.ify;
    if (!e) throw new CryoError(`file id ${fe.id}: inotify entry without its ify field`);
    const fd = syscall('inotify_init1', NR.inotify_init1, (e.flags & O.NONBLOCK) | O.CLOEXEC);
    const tree = restoreRoot(env);
    try {
      for (const w of [...e.wd].sort((a, b) => a.wd - b.wd)) {
        const what = `inotify watch ${w.wd}`;
        const target = openWatched(what, w.sDev, w.iIno, w.fHandle, env.remaps, watchRoot(env, w.fHandle, tree));
        try {
          const p = Buffer.from(`/proc/self/fd/${target}\0`);
          // wds come in order (cyclically): drop and re-add until ours comes up.
          for (let tries = 0; ; tries++) {
            const got = trySyscall(NR.inotify_add_watch, fd, p, w.mask);
            if (got < 0) throw new CryoError(`${what}: cannot watch ${w.fHandle?.path ?? 'the inode'} again (errno ${-got})`);
            if (got === w.wd) break;
            if (got > w.wd || tries > 1 << 16) throw new CryoError(`${what}: got wd ${got} for ${w.fHandle?.path ?? 'the inode'}`);
            syscall('inotify_rm_watch', NR.inotify_rm_watch, fd, got);
          }
        } finally {
          closeSync(target);
        }
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return fd;
  },
  // Restoring its files linked, opened and unlinked names under its watches:
  // those events never happened to the task (CRIU drops them too).
  settled(_fe, fd) {
    const n = Buffer.alloc(4);
    for (;;) {
      syscall('ioctl(FIONREAD)', NR.ioctl, fd, FIONREAD, n);
      const queued = n.readInt32LE(0);
      if (queued <= 0) return;
      readSync(fd, Buffer.alloc(queued));
    }
  },
  check(entries) {
    for (const fe of entries) partOf(fe, 'ify');
  },
};
