// Memory contents: which pages to save (PAGEMAP_SCAN), and moving them between a
// task and pages-N.img. The task itself does the bulk I/O: a remote pwritev of its
// own memory into the image on dump, a remote preadv from it on restore, so the
// bytes are copied once by the kernel and never pass through cryo.
import { openSync, closeSync, readSync, writeSync } from 'node:fs';
import {
  pagemapScan, PAGE_IS, NR, PAGE_SIZE, PROT, MAP, IOV_MAX, O, pidfdOpen, pidfdGetfd,
  uffdApi, uffdRegister, uffdUnregister, uffdCopy, mapFileWindow, unmap, errnoText, UFFD_USER_MODE_ONLY,
} from '../sys/index.js';
import type { VmaEntry } from '../images/index.js';
import { VMA_FILE_PRIVATE, VMA_ANON_PRIVATE } from '../images/index.js';
import { RemoteError, type Remote } from '../tracer/remote.js';
import { CryoError } from '../context.js';
import { MemIO } from '../tracer/memio.js';

export interface PageRun {
  vaddr: bigint;
  nrPages: number;
  /** Where the run's pages are in the pages file; default: right after the previous run. */
  off?: number;
}

const PAGE = BigInt(PAGE_SIZE);
const PM_PRESENT = 1n << 63n;
const PM_SWAP = 1n << 62n;
const PM_FILE = 1n << 61n;

/** Pages of private VMAs worth saving: present or swapped, not the zero page, and for
 * private file mappings only the copied-on-write ones. */
export function scanPages(pid: number, vmas: VmaEntry[]): PageRun[] {
  const runs: PageRun[] = [];
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  // Guard regions (MADV_GUARD_INSTALL) look swapped out; a kernel that has none does not know the category.
  let guard = PAGE_IS.GUARD;
  try {
    for (const v of vmas) {
      const filePriv = (v.status & VMA_FILE_PRIVATE) !== 0;
      const query = () => {
        const excl = PAGE_IS.PFNZERO | guard | (filePriv ? PAGE_IS.FILE : 0n);
        return pagemapScan(fd, v.start, v.end, {
          inverted: excl, mask: excl, anyof: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
          ret: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
        });
      };
      let regions = query();
      if (!regions && guard) {
        guard = 0n;
        regions = query();
      }
      if (regions) {
        for (const r of regions) push(runs, r.start, Number((r.end - r.start) / PAGE));
      } else {
        scanByPagemap(fd, v, filePriv, runs);
      }
    }
  } finally {
    closeSync(fd);
  }
  return runs;
}

function push(runs: PageRun[], vaddr: bigint, n: number): void {
  const last = runs[runs.length - 1];
  if (last && last.vaddr + BigInt(last.nrPages) * PAGE === vaddr) last.nrPages += n;
  else runs.push({ vaddr, nrPages: n });
}

/** Fallback for kernels without PAGEMAP_SCAN: 8 bytes of /proc/PID/pagemap a page. */
function scanByPagemap(fd: number, v: VmaEntry, filePriv: boolean, runs: PageRun[]): void {
  const chunk = 65536;
  const buf = Buffer.alloc(chunk * 8);
  for (let a = v.start; a < v.end; ) {
    const n = Math.min(chunk, Number((v.end - a) / PAGE));
    readSync(fd, buf, 0, n * 8, Number((a / PAGE) * 8n));
    for (let i = 0; i < n; i++) {
      const e = buf.readBigUInt64LE(i * 8);
      if (!(e & (PM_PRESENT | PM_SWAP))) continue;
      if (filePriv && e & PM_FILE) continue;
      push(runs, a + BigInt(i) * PAGE, 1);
    }
    a += BigInt(n) * PAGE;
  }
}

/** Split runs at VMA boundaries where readability differs; tag each piece. */
function tagReadable(runs: PageRun[], vmas: VmaEntry[]): Array<PageRun & { readable: boolean; off: number }> {
  const out: Array<PageRun & { readable: boolean; off: number }> = [];
  let off = 0;
  let vi = 0;
  for (const r of runs) {
    let a = r.vaddr;
    if (r.off !== undefined) off = r.off;
    const end = r.vaddr + BigInt(r.nrPages) * PAGE;
    while (a < end) {
      while (vi < vmas.length && vmas[vi]!.end <= a) vi++;
      const v = vmas[vi];
      const stop = v && v.start <= a ? (v.end < end ? v.end : end) : end;
      const n = Number((stop - a) / PAGE);
      const readable = !!v && v.start <= a && (v.prot & PROT.READ) !== 0;
      out.push({ vaddr: a, nrPages: n, readable, off });
      off += n * PAGE_SIZE;
      a = stop;
    }
  }
  return out;
}

const MAX_IO = 1 << 30; // bytes per remote call, below the kernel's MAX_RW_COUNT

/** Where pages go on dump, for a message that says what failed: the file and whose pages. */
export interface PagesSink {
  /** The image file's name, e.g. "pages-1.img". */
  file: string;
  /** Whose pages, e.g. "task 997". */
  owner: string;
  /** Bytes to write in all. */
  need: number;
  /** Bytes written so far. */
  done: number;
}

/** 1000 KiB, 64.1 MiB: sizes in messages. */
export function sizeText(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const [v, u] = n < 1 << 20 ? [n / 1024, 'KiB'] : n < 1 << 30 ? [n / (1 << 20), 'MiB'] : [n / (1 << 30), 'GiB'];
  return `${Number(v.toFixed(1))} ${u}`;
}

/**
 * A write of pages that failed: "pages-1.img: No space left on device (ENOSPC)
 * writing 64 MiB of pages of task 997; 1000 KiB written".
 */
export function pagesWriteError(sink: PagesSink, errno: number): CryoError {
  return new CryoError(`${sink.file}: ${errnoText(errno)} writing ${sizeText(sink.need)} of pages of ${sink.owner}; ${sizeText(sink.done)} written`);
}

/** pwrite(2) or a Node fs write into a pages image, with a failure that says what it was writing. */
export function writePages(sink: PagesSink, fd: number, buf: Uint8Array, len: number, pos?: number): void {
  let off = 0;
  while (off < len) {
    let n: number;
    try {
      n = writeSync(fd, buf, off, len - off, pos === undefined ? null : pos + off);
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno === 'number') throw pagesWriteError(sink, Math.abs(errno));
      throw e;
    }
    off += n;
    sink.done += n;
  }
}

/**
 * Have the task run preadv/pwritev over many of its own ranges against `taskFd`,
 * `pieces` being contiguous in the file from `fileOff`. A write that stops short
 * (the file system filled up) is carried on from where it stopped, so that the
 * next call tells why.
 */
function remoteVectorIo(rem: Remote, write: boolean, taskFd: bigint, pieces: Array<{ vaddr: bigint; len: number; off: number }>, sink?: PagesSink): void {
  let i = 0;
  let skip = 0; // bytes of pieces[i] already done
  while (i < pieces.length) {
    const iov = Buffer.alloc(Math.min(IOV_MAX, pieces.length - i) * 16);
    const first = pieces[i]!.off + skip;
    let n = 0;
    let total = 0;
    for (let j = i; j < pieces.length && n < IOV_MAX; j++) {
      const p = pieces[j]!;
      const from = j === i ? skip : 0;
      if (p.off + from !== first + total) break; // must be contiguous in the file
      if (n > 0 && total + p.len - from > MAX_IO) break;
      iov.writeBigUInt64LE(p.vaddr + BigInt(from), n * 16);
      iov.writeBigUInt64LE(BigInt(p.len - from), n * 16 + 8);
      total += p.len - from;
      n++;
    }
    const addr = rem.put(iov.subarray(0, n * 16));
    const name = write ? 'pwritev' : 'preadv';
    let done: number;
    try {
      done = Number(rem.call(name, write ? NR.pwritev : NR.preadv, taskFd, addr, n, first, 0));
    } catch (e) {
      if (write && sink && e instanceof RemoteError) throw pagesWriteError(sink, e.errno);
      throw e;
    }
    if (!write || !sink ? done !== total : done === 0) throw new Error(`${name} in task ${rem.pid}: ${done} of ${total} bytes`);
    if (sink) sink.done += done;
    for (; done > 0; ) {
      const left = pieces[i]!.len - skip;
      if (done < left) {
        skip += done;
        break;
      }
      done -= left;
      i++;
      skip = 0;
    }
  }
}

/** Split into pieces no larger than MAX_IO each. */
function pieces(runs: Array<PageRun & { off: number }>): Array<{ vaddr: bigint; len: number; off: number }> {
  const out: Array<{ vaddr: bigint; len: number; off: number }> = [];
  for (const r of runs) {
    let len = r.nrPages * PAGE_SIZE;
    let a = r.vaddr;
    let off = r.off;
    while (len > 0) {
      const n = Math.min(len, MAX_IO);
      out.push({ vaddr: a, len: n, off });
      a += BigInt(n);
      off += n;
      len -= n;
    }
  }
  return out;
}

/** Copy through cryo: /proc/PID/mem ↔ the image file (for unreadable mappings). */
function copyThrough(pid: number, write: boolean, fileFd: number, runs: Array<PageRun & { off: number }>, sink?: PagesSink): void {
  const mem = new MemIO(pid);
  const buf = Buffer.alloc(Math.min(4 << 20, Math.max(PAGE_SIZE, runs.reduce((n, r) => n + r.nrPages, 0) * PAGE_SIZE)));
  try {
    for (const r of runs) {
      let done = 0;
      const len = r.nrPages * PAGE_SIZE;
      while (done < len) {
        const n = Math.min(buf.length, len - done);
        const b = buf.subarray(0, n);
        if (write) {
          mem.readInto(r.vaddr + BigInt(done), b);
          if (sink) writePages(sink, fileFd, b, n, r.off + done);
          else writeSync(fileFd, b, 0, n, r.off + done);
        } else {
          const got = readSync(fileFd, b, 0, n, r.off + done);
          if (got !== n) throw new Error(`pages image is short at offset ${r.off + done}`);
          mem.write(r.vaddr + BigInt(done), b);
        }
        done += n;
      }
    }
  } finally {
    mem.close();
  }
}

/** At most this many pages are copied through cryo (/proc/PID/mem) rather than by the task. */
const FEW_PAGES = 256;

export interface FdBridge {
  /** The file's fd number inside the task, or null if the task cannot get it. */
  taskFd(cryoFd: number): bigint | null;
  closeTaskFd(fd: bigint): void;
}

/**
 * Write the pages of `runs` from the task into `fileFd` (pages image `file`,
 * opened by cryo), in order. Returns the number of pages written.
 */
export function dumpPages(rem: Remote, bridge: FdBridge, fileFd: number, file: string, runs: PageRun[], vmas: VmaEntry[]): number {
  const tagged = tagReadable(runs, vmas);
  const sink: PagesSink = { file, owner: `task ${rem.pid}`, need: tagged.reduce((s, r) => s + r.nrPages * PAGE_SIZE, 0), done: 0 };
  // A few pages go through cryo: the task's own writev costs four calls into it first.
  const few = tagged.reduce((n, r) => n + r.nrPages, 0) <= FEW_PAGES;
  const fast = few ? [] : tagged.filter((r) => r.readable);
  const slow = few ? tagged : tagged.filter((r) => !r.readable);
  const tfd = fast.length ? bridge.taskFd(fileFd) : null;
  if (tfd === null) {
    slow.push(...fast);
  } else {
    try {
      remoteVectorIo(rem, true, tfd, pieces(fast), sink);
    } finally {
      bridge.closeTaskFd(tfd);
    }
  }
  if (slow.length) copyThrough(rem.pid, true, fileFd, slow, sink);
  return tagged.reduce((s, r) => s + r.nrPages, 0);
}

/**
 * Fill the task's memory from `fileFd` at the runs of its pagemap. Anonymous
 * private memory goes in by UFFDIO_COPY (no fault, no zeroing in the task); what
 * userfaultfd cannot take (private file mappings, or a kernel without it) by the
 * task's own preadv.
 */
export function restorePages(rem: Remote, bridge: FdBridge, fileFd: number, runs: PageRun[], vmas: VmaEntry[], uffd: boolean): { pages: number; byUffd: number } {
  const tagged = tagReadable(runs, vmas);
  const vmaOf = (a: bigint) => vmas.find((v) => v.start <= a && a < v.end);
  // Not hugetlb memory: UFFDIO_COPY would want whole huge pages.
  const byCopy = (v: VmaEntry | undefined) => !!v && (v.status & VMA_ANON_PRIVATE) !== 0 && !(v.flags & MAP.HUGETLB);
  const anon = tagged.filter((r) => byCopy(vmaOf(r.vaddr)));
  const isAnon = new Set(anon);
  let rest = tagged.filter((r) => !isAnon.has(r));
  const byUffd = uffd && anon.length && uffdFill(rem, fileFd, anon, vmas.filter(byCopy)) ? anon.reduce((n, r) => n + r.nrPages, 0) : 0;
  if (anon.length && !byUffd) rest = tagged;
  if (rest.length) {
    const tfd = bridge.taskFd(fileFd);
    if (tfd === null) copyThrough(rem.pid, false, fileFd, rest);
    else {
      try {
        remoteVectorIo(rem, false, tfd, pieces(rest));
      } finally {
        bridge.closeTaskFd(tfd);
      }
    }
  }
  return { pages: tagged.reduce((s, r) => s + r.nrPages, 0), byUffd };
}

const UFFD_WINDOW = 16 << 20; // bytes of the image mapped into cryo at a time

/** UFFDIO_COPY the runs into the task; false (nothing done) if userfaultfd is unavailable. */
function uffdFill(rem: Remote, fileFd: number, runs: Array<PageRun & { off: number }>, vmas: VmaEntry[]): boolean {
  // Only UFFDIO_COPY is used, never a fault: user-mode-only is enough, and is what an
  // unprivileged worker may create (vm.unprivileged_userfaultfd=0).
  const tu = rem.callRaw(NR.userfaultfd, O.CLOEXEC | O.NONBLOCK | UFFD_USER_MODE_ONLY);
  if (tu < 0n) return false;
  let pidfd = -1;
  let uffd = -1;
  const registered: VmaEntry[] = [];
  try {
    pidfd = pidfdOpen(rem.pid);
    uffd = pidfdGetfd(pidfd, Number(tu));
    uffdApi(uffd);
    for (const v of vmas) {
      if (!runs.some((r) => v.start <= r.vaddr && r.vaddr < v.end)) continue;
      uffdRegister(uffd, v.start, v.end - v.start);
      registered.push(v);
    }
    for (const r of runs) {
      let done = 0;
      const len = r.nrPages * PAGE_SIZE;
      while (done < len) {
        const n = Math.min(UFFD_WINDOW, len - done);
        const src = mapFileWindow(fileFd, r.off + done, n);
        try {
          uffdCopy(uffd, r.vaddr + BigInt(done), src, BigInt(n));
        } catch (e) {
          const at = r.vaddr + BigInt(done);
          const v = vmas.find((x) => x.start <= at && at < x.end);
          throw new CryoError(`task ${rem.pid}: cannot fill 0x${at.toString(16)}-0x${(at + BigInt(n)).toString(16)} of its private memory (vma 0x${v?.start.toString(16)}-0x${v?.end.toString(16)}): ${(e as Error).message}`);
        } finally {
          unmap(src, n);
        }
        done += n;
      }
    }
    for (const v of registered.splice(0)) uffdUnregister(uffd, v.start, v.end - v.start);
  } finally {
    for (const v of registered) {
      try {
        uffdUnregister(uffd, v.start, v.end - v.start);
      } catch {
        /* closing the uffd drops it too */
      }
    }
    if (uffd >= 0) closeSync(uffd);
    if (pidfd >= 0) closeSync(pidfd);
    rem.call('close', NR.close, tu);
  }
  return true;
}

