// The fd table of a task: dump every fd to files.img + fdinfo-N.img, and plant
// them back on restore. Kinds beyond regular files arrive with issue #4: each new
// kind adds an entry to FD_KINDS.
import { readdirSync, readFileSync, readlinkSync, statSync, openSync, closeSync, type Stats } from 'node:fs';
import { create, FdinfoEntrySchema, FdTypes, type FdinfoEntry, type FileEntry } from '../../images/index.js';
import { parseFdinfo, type FdInfo } from '../../proc/fdinfo.js';
import { O, FD_CLOEXEC, NR, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { FileTable } from './table.js';

const MEM_MAJOR = 1; // /dev/null, zero, full, random, urandom
const TTY_MAJORS = new Set([4, 5, 136, 137, 138, 139, 140, 141, 142, 143]);

function major(rdev: number): number {
  return ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff);
}

interface FdProbe {
  pid: number;
  fd: number;
  link: string;
  st: Stats;
  info: FdInfo;
}

/** One fd kind: recognises its fds and turns them into a file entry id. */
interface FdKind {
  name: string;
  match(p: FdProbe): boolean;
  dump(p: FdProbe, files: FileTable): { id: number; type: FdTypes };
}

const regular: FdKind = {
  name: 'regular file',
  match: (p) => p.st.isFile() || p.st.isDirectory() || (p.st.isCharacterDevice() && major(p.st.rdev) === MEM_MAJOR),
  dump(p, files) {
    if (p.link.endsWith(' (deleted)')) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is the deleted file ${p.link}, which cryo does not support yet`);
    }
    const id = files.addReg({
      flags: p.info.flags & ~O.CLOEXEC,
      pos: p.info.pos,
      name: p.link,
      size: BigInt(p.st.size),
      mode: p.st.mode,
      mntId: p.info.mntId,
    });
    return { id, type: FdTypes.REG };
  },
};

const FD_KINDS: FdKind[] = [regular];

function kindName(st: Stats, link: string): string {
  if (st.isFIFO()) return 'pipe';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return TTY_MAJORS.has(major(st.rdev)) ? 'terminal' : `character device ${link}`;
  if (st.isBlockDevice()) return 'block device';
  if (link.startsWith('anon_inode:')) return link.slice('anon_inode:'.length);
  return link;
}

/** Dump every fd of `pid`; returns the fdinfo entries (files go into `files`). */
export function dumpFds(pid: number, files: FileTable): FdinfoEntry[] {
  const out: FdinfoEntry[] = [];
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  for (const fd of fds) {
    const path = `/proc/${pid}/fd/${fd}`;
    let link: string;
    let st: Stats;
    let info: FdInfo;
    try {
      link = readlinkSync(path);
      st = statSync(path);
      info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    } catch (e) {
      throw new CryoError(`task ${pid}: cannot inspect fd ${fd}: ${(e as Error).message}`);
    }
    const p: FdProbe = { pid, fd, link, st, info };
    const kind = FD_KINDS.find((k) => k.match(p));
    if (!kind) {
      throw new CryoError(`task ${pid}: fd ${fd} is a ${kindName(st, link)} (${link}), which cryo does not support yet`);
    }
    // dup()ed and inherited fds share one open file description: one entry.
    const inodeKey = `${st.dev}:${st.ino}`;
    const shared = files.sharedWith(pid, fd, inodeKey);
    let id: number;
    let type: FdTypes;
    if (shared !== undefined) {
      id = shared;
      type = files.entries.find((e) => e.id === shared)!.type;
    } else {
      ({ id, type } = kind.dump(p, files));
      files.rememberDescription(pid, fd, inodeKey, id);
    }
    out.push(create(FdinfoEntrySchema, { id, flags: info.flags & O.CLOEXEC ? FD_CLOEXEC : 0, type, fd }));
  }
  return out;
}

/**
 * Open, in cryo, the object a file entry describes; returns cryo's fd (the task
 * takes its own copy with pidfd_getfd, so the open file description is shared).
 */
export function openFileEntry(fe: FileEntry): number {
  if (fe.type !== FdTypes.REG || !fe.reg) throw new CryoError(`file id ${fe.id}: kind ${FdTypes[fe.type]} is not supported yet`);
  const r = fe.reg;
  const flags = r.flags & ~(O.CREAT | O.TRUNC | O.EXCL | O.CLOEXEC);
  let fd: number;
  try {
    fd = openSync(r.name, flags | O.CLOEXEC);
  } catch (e) {
    throw new CryoError(`cannot open ${r.name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (r.size !== undefined && !(r.flags & O.APPEND)) {
    // CRIU checks the size so that a changed file is not silently reused.
    const st = statSync(`/proc/self/fd/${fd}`);
    if (st.isFile() && BigInt(st.size) < r.pos) {
      closeSync(fd);
      throw new CryoError(`file ${r.name} is shorter than the saved position ${r.pos}`);
    }
  }
  if (r.pos) syscall('lseek', NR.lseek, fd, r.pos, 0);
  return fd;
}
