// Ghost files: a file deleted while open or mapped, with no link left, travels in
// ghost-file-N.img as CRIU's files-reg.c keeps it: a head with the inode's type,
// owner, mode and times, then the contents of a regular file (whole when small,
// else as ghost_chunk_entry runs of data found with SEEK_DATA/SEEK_HOLE or FIEMAP,
// holes left out), the device number of a device node, the target of a symlink.
// Directories and FIFOs carry only their head. On restore the ghost is made again
// (holes and all) and removed once every task holds what it needs of it.
import {
  closeSync, openSync, readSync, writeSync, fchownSync, fchmodSync, futimesSync, ftruncateSync,
  mkdirSync, symlinkSync, chownSync, chmodSync, utimesSync, lchownSync, lutimesSync, unlinkSync, rmdirSync,
} from 'node:fs';
import {
  create, GhostFileEntrySchema, GhostChunkEntrySchema, RemapFilePathEntrySchema, RemapType, TimevalSchema, isFieldSet,
  type ImageDir, type GhostFileEntry, type GhostChunkEntry, type Timeval,
} from '../../images/index.js';
import { O, NR, AT_FDCWD, FS_IOC_FIEMAP, SEEK_DATA, SEEK_HOLE, SysError, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { FileTable } from './table.js';
import { kdev, type Ghost, type RegDumpEnv } from './kind.js';
import type { RegSource } from './reg.js';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
/** As CRIU: files this small go whole after the head, bigger ones in chunks. */
const GHOST_CHUNKS_THRESH = 3 * 4096;
/** st_blocks counts 512-byte units: --ghost-limit applies to what is on disk (CRIU's ST_UNIT). */
const ST_UNIT = 512;
/** As CRIU's EXTENT_MAX_COUNT: extents asked of FIEMAP at a time. */
const EXTENT_MAX_COUNT = 512;
const FIEMAP_FLAG_SYNC = 1;
const FIEMAP_EXTENT_LAST = 1;
const FIEMAP_MAX_OFFSET = 0xffffffffffffffffn;
const PATH_MAX = 4096;

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export function typeName(mode: number): string {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'regular file';
    case S_IFDIR: return 'directory';
    case S_IFLNK: return 'symlink';
    case S_IFIFO: return 'FIFO';
    case S_IFCHR: return 'character device';
    case S_IFBLK: return 'block device';
    default: return `file of type 0${(mode & S_IFMT).toString(8)}`;
  }
}

/**
 * No link left: the file goes into ghost-file-N.img (once per inode, all its fds and
 * mappings share it), limited by --ghost-limit on the space it takes on disk.
 */
export function dumpGhost(src: RegSource, origId: number, env: RegDumpEnv): void {
  const { st } = src;
  const key = `${st.dev}:${st.ino}`;
  let g = env.files.ghostFiles.get(key);
  if (!g) {
    const onDisk = st.blocks * ST_UNIT;
    if (onDisk > env.ghostLimit) {
      throw new CryoError(`task ${src.pid}: ${src.what} is a deleted ${typeName(st.mode)} of ${onDisk} bytes on disk, more than --ghost-limit ${env.ghostLimit}`);
    }
    const type = st.mode & S_IFMT;
    const head = create(GhostFileEntrySchema, {
      // dev as the kernel numbers it (CRIU's MKKDEV): fdinfo names a watched inode so.
      uid: st.uid, gid: st.gid, mode: st.mode, dev: kdev(Number(st.dev)), ino: BigInt(st.ino),
      atim: timeval(st.atimeMs), mtim: timeval(st.mtimeMs),
    });
    if (type === S_IFCHR || type === S_IFBLK) head.rdev = Number(st.rdev);
    if (type === S_IFREG && st.size >= GHOST_CHUNKS_THRESH) {
      head.chunks = true;
      head.size = BigInt(st.size);
    }
    let fd: number | undefined;
    if (type === S_IFLNK) {
      head.symlnkTarget = symlinkTarget(src);
    } else if (type === S_IFREG) {
      // Reopened for reading: the task may hold it write-only. Read when the images are written.
      try {
        fd = openSync(src.proc, O.RDONLY | O.CLOEXEC);
      } catch (e) {
        throw new CryoError(`task ${src.pid}: cannot read ${src.what}, a deleted file: ${errCode(e)}`);
      }
    }
    g = { remapId: env.files.newId(), head, size: st.size, ...(fd !== undefined ? { fd } : {}) };
    env.files.ghostFiles.set(key, g);
  }
  env.files.remaps.push(create(RemapFilePathEntrySchema, { origId, remapId: g.remapId, remapType: RemapType.GHOST }));
}

/** What a deleted symlink (an O_PATH|O_NOFOLLOW fd of it) points to. */
function symlinkTarget(src: RegSource): string {
  let fd: number | undefined;
  try {
    // The /proc link leads to the symlink itself (it is not followed further).
    fd = openSync(src.proc, O.PATH | O.CLOEXEC);
    const buf = Buffer.alloc(PATH_MAX);
    const n = syscall('readlinkat', NR.readlinkat, fd, Buffer.from('\0'), buf, buf.length);
    if (n >= buf.length) throw new CryoError(`task ${src.pid}: ${src.what} is a deleted symlink whose target is too long`);
    return buf.subarray(0, n).toString();
  } catch (e) {
    if (e instanceof CryoError) throw e;
    throw new CryoError(`task ${src.pid}: cannot read ${src.what}, a deleted symlink: ${SysError.is(e) ? e.code : errCode(e)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const timeval = (ms: number) => create(TimevalSchema, { tvSec: BigInt(Math.floor(ms / 1000)), tvUsec: BigInt(Math.floor((ms % 1000) * 1000)) });

/** Data runs [off, len) of the file, as CRIU's copy_file_to_chunks finds them. */
function seekRuns(fd: number, size: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let hole = 0;
  while (hole < size) {
    let data: number;
    try {
      data = syscall('lseek(SEEK_DATA)', NR.lseek, fd, hole, SEEK_DATA);
      hole = syscall('lseek(SEEK_HOLE)', NR.lseek, fd, data, SEEK_HOLE);
    } catch (e) {
      if (SysError.is(e, 'ENXIO')) break; // nothing but a hole up to the end
      if (hole !== 0) throw e;
      // No SEEK_DATA on this filesystem: the whole file is data.
      data = 0;
      hole = size;
    }
    if (hole > data) runs.push([data, hole - data]);
  }
  return runs;
}

/** The same from FIEMAP's extents (--ghost-fiemap); undefined where the filesystem has no FIEMAP. */
function fiemapRuns(fd: number, size: number): Array<[number, number]> | undefined {
  const HEAD = 32;
  const EXT = 56;
  const buf = Buffer.alloc(HEAD + EXTENT_MAX_COUNT * EXT);
  const runs: Array<[number, number]> = [];
  let pos = 0n;
  for (;;) {
    buf.fill(0);
    buf.writeBigUInt64LE(pos, 0);
    buf.writeBigUInt64LE(FIEMAP_MAX_OFFSET, 8);
    buf.writeUInt32LE(FIEMAP_FLAG_SYNC, 16);
    buf.writeUInt32LE(EXTENT_MAX_COUNT, 24);
    try {
      syscall('ioctl(FS_IOC_FIEMAP)', NR.ioctl, fd, FS_IOC_FIEMAP, buf);
    } catch (e) {
      if (SysError.is(e, 'EOPNOTSUPP') || SysError.is(e, 'ENOTTY')) return undefined;
      throw e;
    }
    const mapped = buf.readUInt32LE(20);
    if (mapped === 0) return runs;
    for (let i = 0; i < mapped; i++) {
      const at = HEAD + i * EXT;
      const logical = buf.readBigUInt64LE(at);
      let len = buf.readBigUInt64LE(at + 16);
      const flags = buf.readUInt32LE(at + 40);
      pos = logical + len;
      if (logical < BigInt(size)) {
        if (logical + len > BigInt(size)) len = BigInt(size) - logical;
        runs.push([Number(logical), Number(len)]);
      }
      if (flags & FIEMAP_EXTENT_LAST) return runs;
    }
    if (mapped < EXTENT_MAX_COUNT) return runs;
  }
}

/** Write every ghost-file image of the dump (its files read through cryo's fds). */
export function writeGhosts(dir: ImageDir, files: FileTable, fiemap: boolean): void {
  for (const g of files.ghostFiles.values()) {
    const out = dir.openWriter('ghostFile', g.remapId);
    try {
      if (g.fd === undefined) {
        out.add(g.head);
      } else if (!g.head.chunks) {
        const data = Buffer.alloc(g.size);
        for (let off = 0; off < data.length; ) {
          const n = readSync(g.fd, data, off, data.length - off, off);
          if (n === 0) throw new CryoError(`${out.file}: the deleted file shrank to ${off} bytes while it was dumped`);
          off += n;
        }
        out.add(g.head, data);
      } else {
        out.add(g.head);
        const runs = (fiemap ? fiemapRuns(g.fd, g.size) : undefined) ?? seekRuns(g.fd, g.size);
        for (const [off, len] of runs) {
          const data = Buffer.alloc(len);
          for (let done = 0; done < len; ) {
            const n = readSync(g.fd, data, done, len - done, off + done);
            if (n === 0) throw new CryoError(`${out.file}: the deleted file shrank to ${off + done} bytes while it was dumped`);
            done += n;
          }
          out.add(create(GhostChunkEntrySchema, { len: BigInt(len), off: BigInt(off) }), data);
        }
      }
    } finally {
      out.close();
    }
  }
}

/** Close cryo's fds of the ghost files (after writeGhosts, or when the dump failed). */
export function closeGhosts(files: FileTable): void {
  for (const g of files.ghostFiles.values()) {
    if (g.fd !== undefined) closeSync(g.fd);
    delete g.fd;
  }
}

// ---- restore side ----

const KNOWN = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK]);

/** A ghost-file image: its head, and a regular file's data (whole, or chunks with holes between). */
export function readGhostImage(dir: ImageDir, id: number): Ghost {
  const [head, ...chunks] = dir.readEntries('ghostFile', id);
  const bad = (why: string) => new CryoError(`${dir.fileName('ghostFile', id)}: ${why}`);
  if (!head) throw bad('no head entry');
  const h = head.msg as GhostFileEntry;
  const type = h.mode & S_IFMT;
  if (!KNOWN.has(type)) throw bad(`mode 0${h.mode.toString(8)} is no kind of file`);
  const whole = head.extra ?? new Uint8Array();
  const sized = isFieldSet(h, GhostFileEntrySchema.field.size);
  let size = whole.length;
  const runs: Array<{ off: number; data: Uint8Array }> = [];
  if (type !== S_IFREG) {
    if (h.chunks || whole.length || sized) throw bad(`a ${typeName(h.mode)} with contents`);
    if ((type === S_IFCHR || type === S_IFBLK) && !isFieldSet(h, GhostFileEntrySchema.field.rdev)) throw bad(`a ${typeName(h.mode)} without its rdev`);
    if (type === S_IFLNK && !h.symlnkTarget) throw bad('a symlink without its target');
  } else if (!h.chunks) {
    if (sized && h.size !== BigInt(whole.length)) throw bad(`the file holds ${whole.length} bytes, its head says ${h.size}`);
    if (whole.length) runs.push({ off: 0, data: whole });
  } else {
    if (!sized) throw bad('a chunked file without its size');
    if (h.size > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`a file of ${h.size} bytes is too large to recreate`);
    size = Number(h.size);
    for (const c of chunks) {
      const ce = c.msg as GhostChunkEntry;
      if (ce.off + ce.len > h.size || (c.extra?.length ?? 0) !== Number(ce.len)) throw bad('a chunk lies outside the file');
      runs.push({ off: Number(ce.off), data: c.extra! });
    }
  }
  const secs = (t: Timeval) => Number(t.tvSec) + Number(t.tvUsec) / 1e6;
  const times = h.mtim ? { mtime: secs(h.mtim), atime: secs(h.atim ?? h.mtim) } : {};
  return {
    mode: h.mode, uid: h.uid, gid: h.gid, size, runs, ...times,
    ...(isFieldSet(h, GhostFileEntrySchema.field.rdev) ? { rdev: h.rdev } : {}),
    ...(h.symlnkTarget ? { symlinkTarget: h.symlnkTarget } : {}),
    ...(isFieldSet(h, GhostFileEntrySchema.field.dev) && isFieldSet(h, GhostFileEntrySchema.field.ino) ? { dev: h.dev, ino: h.ino } : {}),
  };
}

/**
 * Make the ghost at `p` again, with its contents (holes stay holes), owner, mode and
 * times. What it made is removed again if a step fails (never what was there before).
 */
export function makeGhost(p: string, g: Ghost): void {
  const type = g.mode & S_IFMT;
  const perm = g.mode & 0o7777;
  const times = (set: (a: number, m: number) => void) => {
    if (g.mtime !== undefined) set(g.atime ?? g.mtime, g.mtime);
  };
  if (type === S_IFREG) {
    const fd = openSync(p, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, 0o600);
    try {
      if (g.size) ftruncateSync(fd, g.size);
      for (const r of g.runs) {
        for (let off = 0; off < r.data.length; ) off += writeSync(fd, r.data, off, r.data.length - off, r.off + off);
      }
      fchownSync(fd, g.uid, g.gid);
      fchmodSync(fd, perm);
      times((a, m) => futimesSync(fd, a, m));
    } catch (e) {
      unlinkSync(p);
      throw e;
    } finally {
      closeSync(fd);
    }
    return;
  }
  if (type === S_IFLNK) symlinkSync(g.symlinkTarget!, p);
  else if (type === S_IFDIR) mkdirSync(p, { mode: 0o700 });
  else syscall('mknodat', NR.mknodat, AT_FDCWD, Buffer.from(p + '\0'), type | 0o600, g.rdev ?? 0);
  try {
    if (type === S_IFLNK) {
      lchownSync(p, g.uid, g.gid);
      times((a, m) => lutimesSync(p, a, m));
    } else {
      chownSync(p, g.uid, g.gid);
      chmodSync(p, perm);
      times((a, m) => utimesSync(p, a, m));
    }
  } catch (e) {
    if (type === S_IFDIR) rmdirSync(p);
    else unlinkSync(p);
    throw e;
  }
}
