// inotify: every watch with its mask and wd. The watched inode is named by a file
// handle in fdinfo; cryo turns it into a path at dump time (open_by_handle_at,
// kept in f_handle.path as CRIU's irmap does), and on restore adds the watches
// again, in wd order, re-adding until the kernel hands out the dumped wd.
import { closeSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import {
  create, FdTypes, FileEntrySchema, FownEntrySchema, InotifyFileEntrySchema, InotifyWdEntrySchema, FhEntrySchema,
} from '../../images/index.js';
import { NR, O, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { FdKind } from './kind.js';

const LINE = /^inotify wd:(\d+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+) fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]+)/gm;

/** A mount point of the filesystem with kernel dev number `sdev` (MAJOR << 20 | MINOR). */
function mountOf(sdev: number): string {
  const want = `${sdev >>> 20}:${sdev & 0xfffff}`;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want) return f[4]!.replace(/\\040/g, ' ');
  }
  throw new CryoError(`inotify watch on device ${want}: no mount of it is visible to cryo`);
}

/** The path of the inode a file handle names. */
function pathOf(sdev: number, type: number, handle: Buffer): string {
  // Not O_PATH: open_by_handle_at() refuses such a mount fd (EBADF).
  const mnt = openSync(mountOf(sdev), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    const fh = Buffer.alloc(8 + handle.length);
    fh.writeUInt32LE(handle.length, 0);
    fh.writeInt32LE(type, 4);
    handle.copy(fh, 8);
    const fd = syscall('open_by_handle_at', NR.open_by_handle_at, mnt, fh, O.PATH | O.CLOEXEC);
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(mnt);
  }
}

export const inotify: FdKind = {
  name: 'inotify',
  type: FdTypes.INOTIFY,
  match: (p) => p.link === 'anon_inode:inotify',
  dump(p, env) {
    const id = env.files.newId();
    const wd = [...p.fdinfoText.matchAll(LINE)].map((m) => {
      const sdev = parseInt(m[3]!, 16);
      const handle = Buffer.from(m[8]!, 'hex');
      const words: bigint[] = [];
      for (let i = 0; i < handle.length; i += 8) words.push(Buffer.concat([handle.subarray(i, i + 8), Buffer.alloc(8)]).readBigUInt64LE(0));
      const path = pathOf(sdev, parseInt(m[7]!, 16), handle);
      return create(InotifyWdEntrySchema, {
        id, iIno: BigInt('0x' + m[2]), mask: parseInt(m[4]!, 16), ignoredMask: parseInt(m[5]!, 16), sDev: sdev,
        wd: Number(m[1]), fHandle: create(FhEntrySchema, { bytes: parseInt(m[6]!, 16), type: parseInt(m[7]!, 16), handle: words, path }),
      });
    });
    const fown = create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.INOTIFY, id, ify: create(InotifyFileEntrySchema, { id, flags: p.info.flags & ~O.CLOEXEC, fown, wd }),
    }));
    return id;
  },
  open(fe) {
    const e = fe.ify;
    if (!e) throw new CryoError(`file id ${fe.id}: inotify entry without its ify field`);
    const fd = syscall('inotify_init1', NR.inotify_init1, (e.flags & O.NONBLOCK) | O.CLOEXEC);
    for (const w of [...e.wd].sort((a, b) => a.wd - b.wd)) {
      const path = w.fHandle?.path;
      if (!path) throw new CryoError(`inotify watch ${w.wd}: the image has no path for its inode`);
      const p = Buffer.from(path + '\0');
      // wds come in order (cyclically): drop and re-add until ours comes up.
      for (let tries = 0; ; tries++) {
        const got = trySyscall(NR.inotify_add_watch, fd, p, w.mask);
        if (got < 0) throw new CryoError(`cannot watch ${path} again (errno ${-got})`);
        if (got === w.wd) break;
        if (got > w.wd || tries > 1 << 16) throw new CryoError(`inotify: watch ${path} got wd ${got}, not ${w.wd}`);
        syscall('inotify_rm_watch', NR.inotify_rm_watch, fd, got);
      }
    }
    return fd;
  },
};
