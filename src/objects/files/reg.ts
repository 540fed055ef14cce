// Regular files, directories and the memory character devices (/dev/null, zero...).
import { openSync, closeSync, statSync, readFileSync, writeSync, fchownSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { create, FdTypes, GhostFileEntrySchema, type FileEntry } from '../../images/index.js';
import { O, NR, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { major, type DumpFilesEnv, type FdKind, type FdProbe, type Ghost } from './kind.js';

const MEM_MAJOR = 1;

export const regular: FdKind = {
  name: 'regular file',
  type: FdTypes.REG,
  // Not memfds: they look like deleted files but have a name, seals and no directory.
  match: (p) =>
    ((p.st.isFile() && !p.link.startsWith('/memfd:')) || p.st.isDirectory() || (p.st.isCharacterDevice() && major(p.st.rdev) === MEM_MAJOR)),
  dump(p, env) {
    if (p.link.endsWith(' (deleted)')) return dumpGhost(p, env);
    return env.files.addReg({
      flags: p.info.flags & ~O.CLOEXEC,
      pos: p.info.pos,
      name: p.link,
      size: BigInt(p.st.size),
      mode: p.st.mode,
      mntId: p.info.mntId,
    });
  },
  open(fe: FileEntry, env) {
    const r = fe.reg;
    if (!r) throw new CryoError(`file id ${fe.id}: regular file entry without its reg field`);
    const ghost = env.ghosts.get(fe.id);
    if (ghost) return openGhost(fe.id, r.name, r.flags, r.pos, ghost);
    const flags = r.flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.CLOEXEC);
    let fd: number;
    try {
      fd = openSync(r.name, flags | O.CLOEXEC);
    } catch (e) {
      throw new CryoError(`cannot open ${r.name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (r.size !== undefined && !(r.flags & O.APPEND)) {
      // A file shorter than the saved position has changed under us: refuse it.
      const st = statSync(`/proc/self/fd/${fd}`);
      if (st.isFile() && BigInt(st.size) < r.pos) {
        closeSync(fd);
        throw new CryoError(`file ${r.name} is shorter than the saved position ${r.pos}`);
      }
    }
    if (r.pos) syscall('lseek', NR.lseek, fd, r.pos, 0);
    return fd;
  },
  // CRIU names a file by its path without the leading slash.
  inheritKey: (fe) => fe.reg?.name.replace(/^\//, ''),
};

/**
 * A file deleted while open ("ghost"): its contents go into the images (up to
 * --ghost-limit, as CRIU), and a remap entry ties the fd's entry to them.
 */
function dumpGhost(p: FdProbe, env: DumpFilesEnv): number {
  if (!p.st.isFile()) throw new CryoError(`task ${p.pid}: fd ${p.fd} is the deleted ${p.link}, which cryo does not support yet`);
  if (p.st.size > env.ghostLimit) {
    throw new CryoError(`task ${p.pid}: fd ${p.fd} is a deleted file of ${p.st.size} bytes, more than --ghost-limit ${env.ghostLimit}`);
  }
  // The /proc link still opens the file, deleted or not.
  const data = readFileSync(`/proc/${p.pid}/fd/${p.fd}`);
  const name = p.link.slice(0, -' (deleted)'.length);
  const origId = env.files.addReg({
    flags: p.info.flags & ~O.CLOEXEC, pos: p.info.pos, name, size: BigInt(p.st.size), mode: p.st.mode, mntId: p.info.mntId,
  });
  const head = create(GhostFileEntrySchema, {
    uid: p.st.uid, gid: p.st.gid, mode: p.st.mode, dev: Number(p.st.dev), ino: BigInt(p.st.ino), size: BigInt(data.length),
  });
  env.files.ghosts.push({ origId, remapId: env.files.newId(), head, data });
  return origId;
}

/** Recreate a deleted file next to where it was, open it as dumped, unlink it. */
function openGhost(id: number, name: string, flags: number, pos: bigint, g: Ghost): number {
  const tmp = path.join(path.dirname(name), `.cryo-ghost-${id}-${process.pid}`);
  let fd: number;
  try {
    const w = openSync(tmp, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, g.mode & 0o7777);
    try {
      writeSync(w, g.data);
      fchownSync(w, g.uid, g.gid);
    } finally {
      closeSync(w);
    }
    fd = openSync(tmp, (flags & ~(O.CREAT | O.TRUNC | O.EXCL)) | O.CLOEXEC);
  } catch (e) {
    throw new CryoError(`cannot recreate the deleted file ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
  }
  if (pos) syscall('lseek', NR.lseek, fd, pos, 0);
  return fd;
}
