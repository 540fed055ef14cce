// memfds, as CRIU keeps them: one memfd.img entry per inode (name, owner, mode,
// size, seals), its contents as shared memory (pagemap-shmem-INO.img + pages, by
// offset in the file, holes left out), and a file entry of type MEMFD for every
// fd and every mapping, pointing at the inode. On restore each inode is made once
// (memfd_create, contents, owner) and every fd and mapping opens that one inode;
// seals go on last, once every mapping exists.
import { openSync, closeSync, readSync, writeSync, ftruncateSync, fchownSync, fchmodSync, fstatSync, statfsSync } from 'node:fs';
import {
  create, FdTypes, FileEntrySchema, MemfdFileEntrySchema, MemfdInodeEntrySchema, PagemapHeadSchema,
  PagemapEntrySchema, PE_PRESENT, PE_PARENT, isFieldSet,
  type ImageDir, type MemfdFileEntry, type MemfdInodeEntry, type PagemapEntry,
} from '../../images/index.js';
import { noFown } from './table.js';
import { writePages, type PagesSink } from '../pages.js';
import { NR, O, F, MFD, F_SEAL, SEEK_DATA, SEEK_HOLE, PAGE_SIZE, MAP_HUGE_SHIFT, SysError, syscall, memfdCreate, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { badFile, hexId, partOf, type FdKind, type KindStore } from './kind.js';
import type { FileTable } from './table.js';
import { fillMapped, readPagemap } from '../shmem.js';

const PREFIX = '/memfd:';
const DELETED = ' (deleted)';
const TMPFS_MAGIC = 0x01021994;
const HUGETLBFS_MAGIC = 0x958458f6;
const CHUNK = 1 << 20;
/** How the kernel names the file behind MAP_SHARED|MAP_ANONYMOUS and behind MAP_HUGETLB memory. */
const ANON_SHMEM_LINK = '/dev/zero (deleted)';
const ANON_HUGE_LINK = '/anon_hugepage (deleted)';

/** Where a memfd is seen from: its /proc link and a /proc path that opens it. */
export interface MemfdSource {
  pid: number;
  /** /proc/PID/fd/N or /proc/PID/map_files/A-B. */
  proc: string;
  link: string;
  st: { dev: number; ino: number; uid: number; gid: number; mode: number; size: number };
  what: string;
}

/** Is this /proc link a memfd? */
export function isMemfdLink(link: string): boolean {
  return link.startsWith(PREFIX);
}

/** The device of the kernel's internal tmpfs, which holds memfds and shared anonymous memory. */
function shmemDev(): number {
  const fd = memfdCreate('cryo-shmem-dev', MFD.CLOEXEC);
  try {
    return fstatSync(fd).dev;
  } finally {
    closeSync(fd);
  }
}

/**
 * Is the file behind this link a shmem object of the kernel's own: a memfd, the
 * object of MAP_SHARED|MAP_ANONYMOUS memory, or of MAP_HUGETLB memory (reached
 * through /proc/PID/map_files or an fd opened there)? Such a file has no name
 * anywhere: it is kept as a memfd, as CRIU does, never as a deleted file.
 */
export function isShmemObject(link: string, path: string, st: { dev: number }): boolean {
  if (isMemfdLink(link)) return true;
  if (link === ANON_SHMEM_LINK) return st.dev === shmemDev();
  if (link === ANON_HUGE_LINK) return statfsSync(path).type === HUGETLBFS_MAGIC;
  return false;
}

/** Is this link the object of shared anonymous memory (not a memfd)? */
export function isAnonShmemLink(link: string): boolean {
  return link === ANON_SHMEM_LINK || link === ANON_HUGE_LINK;
}

/**
 * MFD_HUGETLB plus the page size bits (MFD_HUGE_*, the same as MAP_HUGE_*) of a
 * shmem object on hugetlbfs, 0 for one on tmpfs; anything else is refused.
 */
export function hugetlbFlagOf(path: string, pid: number, what: string, link: string): number {
  const sf = statfsSync(path);
  if (sf.type === TMPFS_MAGIC) return 0;
  if (sf.type === HUGETLBFS_MAGIC) return MFD.HUGETLB | (Math.log2(sf.bsize) << MAP_HUGE_SHIFT);
  throw new CryoError(`task ${pid}: ${what} (${link}) is on neither tmpfs nor hugetlbfs (filesystem 0x${sf.type.toString(16)})`);
}

/** The memfd.img entry of the memfd's inode (made on first sight); returns its inode id. */
function inodeOf(src: MemfdSource, files: FileTable): number {
  const key = `${src.st.dev}:${src.st.ino}`;
  const have = files.memfdInodes.get(key);
  if (have) return Number(have.entry.inodeId);
  const hugetlbFlag = hugetlbFlagOf(src.proc, src.pid, src.what, src.link);
  // A memfd's own name; shared anonymous memory is named as the kernel does ("/dev/zero"), as CRIU.
  let name = isMemfdLink(src.link) ? src.link.slice(PREFIX.length) : src.link;
  if (name.endsWith(DELETED)) name = name.slice(0, -DELETED.length);
  // Kept open until the contents are written at the end of the dump (an fd in flight
  // in a socket queue has no /proc path that lasts).
  const fd = openSync(src.proc, O.RDONLY | O.CLOEXEC);
  let seals: number;
  try {
    seals = syscall('fcntl(F_GET_SEALS)', NR.fcntl, fd, F.GET_SEALS);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const entry = create(MemfdInodeEntrySchema, {
    // shmid: the inode number, as for shared anonymous memory (pagemap-shmem-INO.img).
    name, uid: src.st.uid, gid: src.st.gid, size: BigInt(src.st.size), shmid: src.st.ino, seals,
    inodeId: BigInt(files.memfdInodes.size + 1), mode: src.st.mode, ...(hugetlbFlag ? { hugetlbFlag } : {}),
  });
  files.memfdInodes.set(key, { entry, fd });
  return Number(entry.inodeId);
}

function addEntry(files: FileTable, flags: number, pos: bigint, inodeId: number, key?: string): number {
  const id = files.newId();
  const fown = noFown();
  return files.add(create(FileEntrySchema, {
    type: FdTypes.MEMFD, id, memfd: create(MemfdFileEntrySchema, { id, flags, pos, fown, inodeId }),
  }), key);
}

/** The file entry a mapping of a memfd points at (vma_entry.shmid); one per inode and access mode. */
export function dumpMemfdMapping(src: MemfdSource, fdflags: number, files: FileTable): number {
  const key = `memfd-map:${src.st.dev}:${src.st.ino}:${fdflags}`;
  return files.lookup(key) ?? addEntry(files, fdflags, 0n, inodeOf(src, files), key);
}

/** pagemap-shmem-ID.img names an object by its id alone: a SysV segment and a memfd or shared memory of the same number cannot both be kept. */
function sameShmid(id: bigint): CryoError {
  return new CryoError(`SysV shared memory ${id} has the id of another shared memory object of the tree (inode ${id}), which the images cannot tell apart`);
}

/** memfd.img, and the contents of each memfd as shared memory (pagemap-shmem images, by shmid). */
export const memfdImagesOf = (s: KindStore) =>
  s.get<{ inodes: MemfdInodeEntry[]; contents: Map<number, ShmemContents> }>('memfd:images', () => ({ inodes: [], contents: new Map() }));

export const memfd: FdKind = {
  name: 'memfd',
  type: FdTypes.MEMFD,
  dumpCleanup: (files, cl) => cl.always('memfds held', () => closeMemfds(files)),
  writeImages(dir, files, env) {
    for (const { entry } of files.memfdInodes.values()) if (env.isSysvShm(BigInt(entry.shmid))) throw sameShmid(BigInt(entry.shmid));
    const n = writeMemfds(dir, files, env.newPagesId, env.shmemDone);
    env.stats.shpagesScanned += BigInt(n.scanned);
    env.stats.shpagesWritten += BigInt(n.written);
  },
  holdCleanup: (_store, cl, env) => cl.always('memfds made', () => env.memfds.close()),
  // The seals last: F_SEAL_FUTURE_WRITE would forbid the writable mappings.
  allPlaced: (env) => env.memfds.applySeals(),
  loadImages(dir, store) {
    const m = memfdImagesOf(store);
    m.inodes.push(...(dir.tryRead('memfdInode') ?? []));
    for (const e of m.inodes) {
      // As CRIU, a dump writes no contents of an empty memfd; of any other it does.
      if (e.size === 0n && !dir.exists('shmemPagemap', e.shmid)) continue;
      m.contents.set(e.shmid, readPagemap(dir, 'shmemPagemap', e.shmid));
    }
  },
  match: (p) => p.st.isFile() && isShmemObject(p.link, `/proc/${p.pid}/fd/${p.fd}`, p.st),
  dump(p, env) {
    const src = { pid: p.pid, proc: `/proc/${p.pid}/fd/${p.fd}`, link: p.link, st: p.st, what: `fd ${p.fd}` };
    return addEntry(env.files, p.info.flags & ~O.CLOEXEC, p.info.pos, inodeOf(src, env.files));
  },
  open(fe, env) {
    const m = fe.memfd;
    if (!m) throw new CryoError(`file id ${fe.id}: memfd entry without its memfd field`);
    const fd = env.memfds.open(m, false);
    if (m.pos) syscall('lseek', NR.lseek, fd, m.pos, 0);
    return fd;
  },
  check(entries, env) {
    for (const fe of entries) {
      const m = partOf(fe, 'memfd');
      if (!env.memfdInodes.has(Number(m.inodeId))) throw badFile(fe, `memfd inode ${hexId(m.inodeId)} names no entry of memfd.img`);
    }
  },
};

/**
 * Runs of pages [first page, count) of the file that hold data (holes left out, as CRIU).
 * hugetlbfs has no SEEK_DATA: every page of it reads as data, and those never
 * faulted read as zeros. Its all-zero huge pages are left out as holes, which read
 * the same; restoring them would take huge pages the task never had (and fail
 * where the pool is empty).
 */
function dataRuns(fd: number, size: number): Array<[number, number]> {
  const sf = statfsSync(`/proc/self/fd/${fd}`);
  if (sf.type === HUGETLBFS_MAGIC) return nonZeroRuns(fd, size, sf.bsize);
  const pages = Math.ceil(size / PAGE_SIZE);
  const runs: Array<[number, number]> = [];
  for (let pfn = 0; pfn < pages; ) {
    let data: number;
    try {
      data = syscall('lseek(SEEK_DATA)', NR.lseek, fd, pfn * PAGE_SIZE, SEEK_DATA);
    } catch (e) {
      if (SysError.is(e, 'ENXIO')) break; // nothing but holes from here on
      throw e;
    }
    const hole = syscall('lseek(SEEK_HOLE)', NR.lseek, fd, data, SEEK_HOLE);
    const s = Math.floor(data / PAGE_SIZE);
    const e = Math.min(pages, Math.ceil(hole / PAGE_SIZE));
    if (e > s) runs.push([s, e - s]);
    pfn = Math.max(e, s + 1);
  }
  return runs;
}

/** Runs of the huge pages of `hpage` bytes that are not all zeros, in PAGE_SIZE units. */
function nonZeroRuns(fd: number, size: number, hpage: number): Array<[number, number]> {
  const buf = Buffer.alloc(hpage);
  const zero = Buffer.alloc(hpage);
  const per = hpage / PAGE_SIZE;
  const runs: Array<[number, number]> = [];
  for (let off = 0; off < size; off += hpage) {
    const got = readSync(fd, buf, 0, hpage, off);
    if (buf.subarray(0, got).equals(zero.subarray(0, got))) continue;
    const first = off / PAGE_SIZE;
    const n = Math.min(per, Math.ceil((size - off) / PAGE_SIZE));
    const last = runs.at(-1);
    if (last && last[0] + last[1] === first) last[1] += n;
    else runs.push([first, n]);
  }
  return runs;
}

/**
 * Write memfd.img and every memfd's contents (through cryo's fd of each, taken when
 * it was first seen), but for the shared anonymous memory objects in `written` whose
 * contents are saved already (a private mapping or an fd of one is a memfd entry of
 * the same shmid). Returns the pages they span and the pages written.
 */
export function writeMemfds(dir: ImageDir, files: FileTable, newPagesId: () => number, done: ReadonlySet<bigint>): { scanned: number; written: number } {
  if (files.memfdInodes.size === 0) return { scanned: 0, written: 0 };
  let written = 0;
  let scanned = 0;
  for (const { entry, fd } of files.memfdInodes.values()) {
    if (done.has(BigInt(entry.shmid))) continue;
    scanned += Math.ceil(Number(entry.size) / 4096);
    written += writeShmemObject(dir, fd, Number(entry.size), BigInt(entry.shmid), newPagesId);
  }
  dir.write('memfdInode', [...files.memfdInodes.values()].map((m) => m.entry));
  return { scanned, written };
}

/**
 * The contents of a shmem object (a memfd, or shared anonymous memory through
 * /proc/PID/map_files) read through an fd of it, whichever process faulted its
 * pages: pages-N.img plus pagemap-shmem-SHMID.img by offset, holes left out.
 * Returns the pages written.
 */
export function writeShmemObject(dir: ImageDir, fd: number, size: number, shmid: bigint, newPagesId: () => number): number {
  if (size === 0) return 0; // CRIU writes no pagemap for an empty one
  const runs = dataRuns(fd, size);
  const pagesId = newPagesId();
  const out = dir.openPages(pagesId, 'w');
  const buf = Buffer.alloc(CHUNK);
  const sink: PagesSink = {
    file: dir.fileName('pages', pagesId), owner: `shared memory ${shmid}`, need: runs.reduce((s, [, n]) => s + n * PAGE_SIZE, 0), done: 0,
  };
  let written = 0;
  try {
    for (const [first, n] of runs) {
      for (let off = first * PAGE_SIZE, left = n * PAGE_SIZE; left > 0; ) {
        const len = Math.min(left, CHUNK);
        const got = readSync(fd, buf, 0, len, off);
        buf.fill(0, got, len); // the tail of the last page, past the end of the file
        writePages(sink, out, buf, len);
        off += len;
        left -= len;
      }
      written += n;
    }
  } finally {
    closeSync(out);
  }
  dir.write('shmemPagemap', [
    create(PagemapHeadSchema, { pagesId }),
    ...runs.map(([first, n]) => create(PagemapEntrySchema, {
      vaddr: BigInt(first * PAGE_SIZE), compatNrPages: 0, nrPages: BigInt(n), flags: PE_PRESENT,
    })),
  ], shmid);
  return written;
}

/** Close cryo's fds of the memfds seen (after writeMemfds, or when the dump failed). */
export function closeMemfds(files: FileTable): void {
  for (const m of files.memfdInodes.values()) closeSync(m.fd);
  files.memfdInodes.clear();
}

// ---- restore side ----

export interface ShmemContents {
  pagesId: number;
  runs: PagemapEntry[];
}

/** The memfd inodes of a restore, each made once and shared by every fd and mapping. */
export class MemfdInodes {
  private readonly inodes = new Map<number, MemfdInodeEntry>();
  /** cryo's fd of each inode made so far (the memfd_create fd), by inode id. */
  private readonly fds = new Map<number, number>();
  /** Inodes whose own open file description an O_RDWR fd already took. */
  private readonly rwTaken = new Set<number>();

  /**
   * @param contents pagemap-shmem images, by shmid
   * @param pagesFd cryo's fd of pages-N.img
   */
  constructor(
    entries: MemfdInodeEntry[], private readonly contents: Map<number, ShmemContents>, private readonly pagesFd: (id: number) => number,
    /** cryo's fd of the shared anonymous memory object of this shmid, if the images have one (not to be closed). */
    private readonly anonObject: (shmid: bigint) => number | undefined = () => undefined,
  ) {
    for (const e of entries) this.inodes.set(Number(e.inodeId), e);
  }

  /**
   * Open, in cryo, what a memfd file entry stands for. A mapping (`forMap`) or the
   * first O_RDWR fd shares the memfd's own open file description (only that one can
   * be run with execveat); the others reopen it with their own flags.
   */
  open(m: MemfdFileEntry, forMap: boolean): number {
    const ino = this.inode(Number(m.inodeId));
    const acc = m.flags & 3;
    if (acc === O.RDWR && (forMap || !this.rwTaken.has(Number(m.inodeId)))) {
      const fd = dupCloexec(ino);
      if (!forMap) {
        syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, m.flags & ~O.CLOEXEC);
        this.rwTaken.add(Number(m.inodeId));
      }
      return fd;
    }
    try {
      return openSync(`/proc/self/fd/${ino}`, (m.flags & ~(O.CREAT | O.TRUNC | O.EXCL)) | O.CLOEXEC);
    } catch (e) {
      throw new CryoError(`cannot reopen memfd inode ${m.inodeId}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  /** cryo's fd of the inode, made with its contents, owner and mode on first use. */
  private inode(id: number): number {
    const have = this.fds.get(id);
    if (have !== undefined) return have;
    const e = this.inodes.get(id);
    if (!e) throw new CryoError(`memfd inode ${id} is missing from memfd.img`);
    // Shared anonymous memory mapped privately too (or open): the one object of its shared mappings.
    const anon = this.anonObject(BigInt(e.shmid));
    if (anon !== undefined) {
      const fd = dupCloexec(anon);
      this.fds.set(id, fd);
      return fd;
    }
    // Seals go on at the very end (F_SEAL_WRITE and co. would stop us here); a memfd
    // sealed with F_SEAL_SEAL alone is one made without MFD_ALLOW_SEALING.
    const flags = MFD.CLOEXEC | (e.seals === F_SEAL.SEAL ? 0 : MFD.ALLOW_SEALING) | (e.hugetlbFlag ?? 0);
    let fd: number;
    try {
      fd = memfdCreate(e.name, flags);
    } catch (err) {
      throw new CryoError(`cannot create memfd:${e.name}: ${SysError.is(err) ? err.code : (err as Error).message}`);
    }
    this.fds.set(id, fd);
    this.fill(fd, e);
    fchownSync(fd, e.uid, e.gid);
    if (e.mode !== undefined) fchmodSync(fd, e.mode & 0o7777);
    return fd;
  }

  private fill(fd: number, e: MemfdInodeEntry): void {
    const size = Number(e.size);
    ftruncateSync(fd, size);
    const c = this.contents.get(e.shmid);
    // hugetlbfs cannot be written to: its pages go in through a mapping.
    if (c && size && e.hugetlbFlag) fillMapped(fd, size, c, this.pagesFd, `memfd:${e.name}`);
    else if (c && size) fillShmem(fd, size, c, this.pagesFd);
  }

  /** Once every mapping is in place: the seals (F_SEAL_FUTURE_WRITE would forbid writable mappings). */
  applySeals(): void {
    for (const [id, fd] of this.fds) {
      const seals = this.inodes.get(id)!.seals;
      if (seals === 0 || seals === F_SEAL.SEAL) continue;
      try {
        syscall('fcntl(F_ADD_SEALS)', NR.fcntl, fd, F.ADD_SEALS, seals);
      } catch (e) {
        throw new CryoError(`cannot seal memfd:${this.inodes.get(id)!.name} with 0x${seals.toString(16)}: ${SysError.is(e) ? e.code : (e as Error).message}`);
      }
    }
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * Write a shmem object's saved contents (pagemap-shmem runs by offset, their pages
 * in order in pages-N.img) into it through `fd`, up to `size` bytes.
 */
export function fillShmem(fd: number, size: number, c: { pagesId: number; runs: PagemapEntry[] }, pagesFd: (id: number) => number): void {
  const pages = pagesFd(c.pagesId);
  const buf = Buffer.alloc(CHUNK);
  let from = 0;
  for (const r of c.runs) {
    if (r.flags & PE_PARENT || !(r.flags & PE_PRESENT)) throw new CryoError(`pagemap-shmem: pages from a parent image or lazy pages are not supported yet`);
    const n = Number(isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages));
    for (let at = Number(r.vaddr), left = n * PAGE_SIZE; left > 0; ) {
      const len = Math.min(left, CHUNK);
      if (readSync(pages, buf, 0, len, from) !== len) throw new CryoError(`pages-${c.pagesId}.img is shorter than its pagemap says`);
      const keep = Math.min(len, size - at); // not past the end of the file
      if (keep > 0) writeSync(fd, buf, 0, keep, at);
      at += len;
      from += len;
      left -= len;
    }
  }
}
