// Regular files, directories and the memory character devices (/dev/null, zero...).
import { openSync, closeSync, statSync } from 'node:fs';
import { FdTypes, type FileEntry } from '../../images/index.js';
import { O, NR, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { major, type FdKind } from './kind.js';

const MEM_MAJOR = 1;

export const regular: FdKind = {
  name: 'regular file',
  type: FdTypes.REG,
  match: (p) => p.st.isFile() || p.st.isDirectory() || (p.st.isCharacterDevice() && major(p.st.rdev) === MEM_MAJOR),
  dump(p, env) {
    if (p.link.endsWith(' (deleted)')) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is the deleted file ${p.link}, which cryo does not support yet`);
    }
    return env.files.addReg({
      flags: p.info.flags & ~O.CLOEXEC,
      pos: p.info.pos,
      name: p.link,
      size: BigInt(p.st.size),
      mode: p.st.mode,
      mntId: p.info.mntId,
    });
  },
  open(fe: FileEntry) {
    const r = fe.reg;
    if (!r) throw new CryoError(`file id ${fe.id}: regular file entry without its reg field`);
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
};
