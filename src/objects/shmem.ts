// Shared anonymous memory on restore: one object per shmid for every task, VMA,
// private mapping and fd that uses it (MAP_SHARED|MAP_ANONYMOUS memory, also with
// MAP_HUGETLB). cryo makes each object itself, as the kernel makes it for such a
// mapping, so that it is the same kind of file ("/dev/zero (deleted)",
// "/anon_hugepage (deleted)"), and fills it while it is mapped into cryo: the
// pages image is read straight into the object (hugetlbfs cannot be written).
import { closeSync, openSync } from 'node:fs';
import { ImageError, isFieldSet, PagemapEntrySchema, PE_PARENT, PE_PRESENT, type ImageDir, type PagemapEntry } from '../images/index.js';
import { MAP, MAP_HUGE_MASK, NR, O, PAGE_SIZE, PROT, SysError, syscall } from '../sys/index.js';
import { CryoError } from '../context.js';

export interface ShmemContents {
  pagesId: number;
  runs: PagemapEntry[];
}

/** What the images say of one object: the size every use of it needs, and MAP_HUGETLB with its page size. */
export interface ShmemShape {
  size: bigint;
  huge: number;
}

const CHUNK = 1 << 20;

/**
 * Read `c` (pagemap-shmem runs by offset, their pages in order in pages-N.img) into
 * the object mapped at `addr` (`size` bytes: nothing goes past its end).
 */
export function readContentsInto(addr: bigint, size: number, c: ShmemContents, pagesFd: (id: number) => number, what: string): void {
  const pages = pagesFd(c.pagesId);
  let from = 0;
  for (const r of c.runs) {
    if (r.flags & PE_PARENT || !(r.flags & PE_PRESENT)) throw new CryoError(`${what}: pages from a parent image or lazy pages are not supported yet`);
    const n = Number(isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages));
    const at = Number(r.vaddr);
    const keep = Math.max(0, Math.min(n * PAGE_SIZE, size - at));
    for (let done = 0; done < keep; ) {
      const len = Math.min(CHUNK, keep - done);
      const got = syscall('pread64', NR.pread64, pages, addr + BigInt(at + done), len, from + done);
      if (got !== len) throw new CryoError(`pages-${c.pagesId}.img is shorter than its pagemap says (${what})`);
      done += len;
    }
    from += n * PAGE_SIZE;
  }
}

/** A pagemap image: its head (pages_id) and its runs. */
export function readPagemap(dir: ImageDir, kind: 'pagemap' | 'shmemPagemap', arg: number | bigint): { pagesId: number; runs: PagemapEntry[] } {
  const [head, ...runs] = dir.read(kind, arg);
  if (!head) throw new ImageError('IMG_COUNT', dir.fileName(kind, arg), undefined, 'no head entry (pages_id)');
  return { pagesId: (head as { pagesId: number }).pagesId, runs: runs as PagemapEntry[] };
}

/** Fill a shmem file (tmpfs or hugetlbfs) of `size` bytes through a shared mapping of it in cryo. */
export function fillMapped(fd: number, size: number, c: ShmemContents, pagesFd: (id: number) => number, what: string): void {
  if (size === 0 || c.runs.length === 0) return;
  let addr: bigint;
  try {
    addr = BigInt(syscall('mmap', NR.mmap, 0, size, PROT.READ | PROT.WRITE, MAP.SHARED, fd, 0));
  } catch (e) {
    const why = SysError.is(e, 'ENOMEM') ? ' (on hugetlbfs: too few free huge pages)' : '';
    throw new CryoError(`restore failed: cannot map ${what} (${size} bytes) to fill in its pages: ${SysError.is(e) ? e.code : (e as Error).message}${why}`);
  }
  try {
    readContentsInto(addr, size, c, pagesFd, what);
  } finally {
    syscall('munmap', NR.munmap, addr, size);
  }
}

/** The shared anonymous memory objects of one restore, made on first use. */
export class ShmemObjects {
  /** cryo's fd of each object made so far, by shmid. */
  private readonly fds = new Map<bigint, number>();

  constructor(
    private readonly shapes: Map<bigint, ShmemShape>,
    private readonly contents: Map<bigint, ShmemContents>,
    private readonly pagesFd: (id: number) => number,
  ) {}

  /** Is shmid shared anonymous memory of the images (not a memfd)? */
  has(shmid: bigint): boolean {
    return this.shapes.has(shmid);
  }

  /** cryo's fd of object `shmid` (owned here), made with its contents on first use. */
  fd(shmid: bigint): number {
    const have = this.fds.get(shmid);
    if (have !== undefined) return have;
    const shape = this.shapes.get(shmid);
    if (!shape) throw new CryoError(`shared memory ${shmid} is in no mapping of the images`);
    const what = `shared memory ${shmid}`;
    const size = Number(shape.size);
    const flags = MAP.SHARED | MAP.ANONYMOUS | (shape.huge & (MAP.HUGETLB | MAP_HUGE_MASK));
    let addr: bigint;
    try {
      addr = BigInt(syscall('mmap', NR.mmap, 0, size, PROT.READ | PROT.WRITE, flags, -1, 0));
    } catch (e) {
      const why = SysError.is(e) ? e.code : (e as Error).message;
      throw new CryoError(`cannot make ${what} of ${size} bytes${shape.huge ? ' in huge pages' : ''}: ${why}`);
    }
    try {
      const fd = openSync(`/proc/self/map_files/${addr.toString(16)}-${(addr + BigInt(size)).toString(16)}`, O.RDWR | O.CLOEXEC);
      this.fds.set(shmid, fd);
      const c = this.contents.get(shmid);
      if (c) readContentsInto(addr, size, c, this.pagesFd, what);
      return fd;
    } finally {
      syscall('munmap', NR.munmap, addr, size);
    }
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
