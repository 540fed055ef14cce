// Rebuilding one task inside a stopped copy of the seed: address space, memory
// contents, files, and per-task state. Registers and detach come last (restore.ts).
import { closeSync, fstatSync, readFileSync, statSync } from 'node:fs';
import { NR, O, F, AT_FDCWD, FD_CLOEXEC, MAP, PROT } from '../sys/index.js';
import { MemIO } from '../tracer/memio.js';
import { RemoteError } from '../tracer/remote.js';
import {
  PE_PARENT, PE_PRESENT, VMA_AREA_VDSO, VMA_AREA_VVAR, VMA_AREA_VSYSCALL, VMA_AREA_AIORING, VMA_FILE_SHARED, isFieldSet, VmaEntrySchema,
  type VmaEntry,
} from '../images/index.js';
import { parseMaps, type Vma } from '../proc/maps.js';
import { hasPrivatePages } from '../objects/mm.js';
import {
  findFree, imageRanges, moveVdso, mapVmas, fixProtections, setMmMap, inheritedVmas, isMapped, runPages, type Range,
} from '../objects/mm-restore.js';
import { shareInherited } from '../objects/cow.js';
import { holdThp } from '../objects/prctl.js';
import { restorePages, type FdBridge, type PageRun } from '../objects/pages.js';
import { afterPlant, hasAfterPlant } from '../objects/files/fds.js';
import { checkRegSize, openFlags, openTreePath } from '../objects/files/reg.js';
import type { Remote } from '../tracer/remote.js';
import type { TaskImages, RestoreShared, Handles } from '../objects/task-state.js';

export type { TaskImages, RestoreShared, Handles } from '../objects/task-state.js';

const SCRATCH = 256 * 1024;


function bridgeFor(rem: Remote, h: Handles): FdBridge {
  return {
    taskFd: (cryoFd) => rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, cryoFd, 0),
    closeTaskFd: (fd) => void rem.call('close', NR.close, fd),
  };
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** The runs of a task's pagemap that go into its own mappings (not the vDSO's, not an AIO ring's), with offsets. */
function ownRuns(img: TaskImages): PageRun[] {
  const mm = img.mm!;
  // CRIU also saves the vdso's pages; the task keeps this kernel's vdso instead. AIO rings come back later.
  // A run may go on past such a VMA into the next one: only the part inside is left out.
  const skip = mm.vmas.filter((v) => v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL | VMA_AREA_AIORING))
    .map((v) => [v.start, v.end] as Range).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  let off = 0;
  const runs: PageRun[] = [];
  const keep = (from: bigint, to: bigint, at: number) => {
    if (to > from) runs.push({ vaddr: from, nrPages: Number((to - from) / 4096n), off: at });
  };
  for (const r of img.pagemap?.runs ?? []) {
    // CRIU marks pages that could be served lazily PE_LAZY; with PE_PRESENT they are in the image.
    if (r.flags & PE_PARENT || !(r.flags & PE_PRESENT)) throw new Error('pagemap entries from a parent image or lazy pages are not supported yet');
    const nrPages = runPages(r);
    const end = r.vaddr + BigInt(nrPages) * 4096n;
    let at = r.vaddr;
    for (const [s, e] of skip) {
      if (e <= at || s >= end) continue;
      keep(at, s, off + Number(at - r.vaddr));
      at = e < end ? e : end;
    }
    keep(at, end, off + Number(at - r.vaddr));
    off += nrPages * 4096;
  }
  return runs;
}

/** Unmap what the task has, but the kernel's special mappings and the ranges in `keep` (sorted). */
function unmapAllBut(rem: Remote, current: Vma[], keep: Range[]): void {
  const special = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]']);
  for (const v of current) {
    if (special.has(v.name)) continue;
    let at = v.start;
    for (const [s, e] of keep) {
      if (e <= at || s >= v.end) continue;
      if (s > at) rem.call('munmap', NR.munmap, at, s - at);
      at = e;
    }
    if (at < v.end) rem.call('munmap', NR.munmap, at, v.end - at);
  }
}

/**
 * Replace the task's address space with the dumped one. On return the task runs
 * remote calls from a scratch area placed where no dumped VMA lives. A task forked
 * from `parent` after the parent's memory was restored keeps the private VMAs it
 * has from it (their pages shared copy-on-write where the images agree).
 */
export function restoreMemory(rem: Remote, img: TaskImages, sh: RestoreShared, h: Handles, parent?: TaskImages): number {
  const mm = img.mm!;
  const current = parseMaps(readFileSync(`/proc/${rem.pid}/maps`, 'utf8'));
  const inherited = parent?.mm ? inheritedVmas(mm, parent.mm) : new Map<VmaEntry, VmaEntry>();
  const avoid: Range[] = [...imageRanges(mm), ...current.map((v) => [v.start, v.end] as Range)];
  const scratchAt = findFree(BigInt(SCRATCH + 8192), avoid);
  rem.placeScratch(scratchAt, SCRATCH);
  unmapAllBut(rem, current, [...inherited.keys()].map((v) => [v.start, v.end] as Range).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  const tmp = findFree(0x100000n, [...avoid, rem.scratchRange()!]);
  const delta = moveVdso(rem, current, mm, tmp);
  rem.syscallIp += delta;

  holdThp(rem);
  const t0 = performance.now();
  const needFix = mapVmas(rem, mm, (v) => taskFileFd(rem, Number(v.shmid), vmaOpenFlags(v), sh, h, (v.flags & MAP.SHARED) === 0),
    (v) => sharedAnonFd(rem, v, sh, h), inherited);
  const t1 = performance.now();
  let filled = 0;
  let runs = ownRuns(img);
  if (runs.length || inherited.size) {
    const fd = sh.pagesFd(img.pagemap!.pagesId);
    if (inherited.size) {
      const mem = new MemIO(rem.pid);
      try {
        const cow = shareInherited(rem, [...inherited.keys()], runs, ownRuns(parent!), fd, (a, b) => mem.readInto(a, b));
        runs = cow.runs;
        sh.log.debug(`task ${rem.pid}: ${inherited.size} vmas from its parent, ${cow.shared} pages shared with it, ${cow.dropped} of its pages dropped`);
      } finally {
        mem.close();
      }
    }
    const vmas = mm.vmas.filter((v) => hasPrivatePages(v) && isMapped(v));
    const { pages, byUffd } = restorePages(rem, bridgeFor(rem, h), fd, runs, vmas, 'features' in sh.kdat.uffdFeatures());
    sh.log.debug(`task ${rem.pid}: ${pages} private pages, ${byUffd} of them by userfaultfd`);
    filled = pages;
  }
  sh.log.debug(`task ${rem.pid}: mapped ${mm.vmas.length} vmas in ${(t1 - t0).toFixed(1)} ms, private pages in ${(performance.now() - t1).toFixed(1)} ms`);
  fixProtections(rem, needFix);

  const exeFd = taskFileFd(rem, mm.exeFileId, O.RDONLY, sh, h);
  try {
    // A task forked from its parent may have the right exe link already; the kernel
    // refuses to change it (EBUSY) while the old file is mapped, as it is then.
    const same = sameFile(`/proc/${rem.pid}/exe`, `/proc/${rem.pid}/fd/${exeFd}`);
    setMmMap(rem, mm, same ? -1n : exeFd);
  } finally {
    rem.call('close', NR.close, exeFd);
  }
  return filled;
}

/**
 * Open file `id` of files.img in the task for a mapping or the exe link; the caller
 * closes it. A plain file the task opens by its name; memfds and deleted files
 * (ghost files, link remaps) are opened by cryo and handed over, so that every
 * mapping and fd of them reaches the one file.
 */
/** How a mapped file is opened: as dumped, else (CRIU images without fdflags) as CRIU's open_filemap does. */
function vmaOpenFlags(v: VmaEntry): number {
  if (isFieldSet(v, VmaEntrySchema.field.fdflags)) return v.fdflags;
  return v.prot & PROT.WRITE && v.status & VMA_FILE_SHARED ? O.RDWR : O.RDONLY;
}

/**
 * Shared anonymous memory is one object for every task that maps it (a parent
 * and the children it forked, its private mappings and fds): made once by cryo
 * (sh.shmem), and every VMA maps it at its own offset, as CRIU does.
 */
function sharedAnonFd(rem: Remote, v: VmaEntry, sh: RestoreShared, h: Handles): bigint {
  return rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, sh.shmem.fd(v.shmid), 0);
}

/** Is the task in another mount namespace than `ns` (one of the tree's, by cryo's fd of it)? */
function elsewhere(rem: Remote, ns: { ns: number } | undefined): boolean {
  if (!ns) return false;
  try {
    return fstatSync(ns.ns).ino !== statSync(`/proc/${rem.pid}/ns/mnt`).ino;
  } catch {
    return false;
  }
}

/**
 * The file of a mapping or the exe link, opened in the task with `flags`. A private
 * mapping needs no more than read access (writes do not reach the file): if the
 * file cannot be opened as the task had it, it is opened read-only.
 */
function taskFileFd(rem: Remote, id: number, flags: number, sh: RestoreShared, h: Handles, privateMap = false): bigint {
  if (privateMap && (flags & O.ACCMODE) !== O.RDONLY) {
    try {
      return taskFileFd(rem, id, flags, sh, h);
    } catch (e) {
      if (!(e instanceof RemoteError) || !['EACCES', 'EROFS', 'ETXTBSY', 'EPERM'].includes(e.code)) throw e;
      return taskFileFd(rem, id, (flags & ~O.ACCMODE) | O.RDONLY, sh, h);
    }
  }
  const fe = sh.files.get(id);
  if (!fe) throw new Error(`mapped file id ${id} is missing from files.img`);
  let cfd: number;
  if (fe.memfd) {
    // A mapping is opened as its VMA says (CRIU leaves a mapped memfd's own flags O_RDONLY).
    cfd = sh.memfds.open({ ...fe.memfd, flags }, true);
  } else if (fe.reg && sh.remaps.has(id)) {
    cfd = sh.remaps.open(id, fe.reg.name, openFlags(flags) | O.CLOEXEC);
    try {
      checkRegSize(fe.reg, `/proc/self/fd/${cfd}`);
    } catch (e) {
      closeSync(cfd);
      throw e;
    }
  } else if (fe.reg && elsewhere(rem, sh.mntNsOf?.(fe.reg.mntId))) {
    // On a mount of another of the tree's namespaces than the task's (its exe, after a pivot_root): from that one's root.
    cfd = openTreePath(fe.reg.name, openFlags(flags) | O.CLOEXEC, sh.mntNsOf!(fe.reg.mntId)!.root, 'a mapped file');
    try {
      checkRegSize(fe.reg, `/proc/self/fd/${cfd}`);
    } catch (e) {
      closeSync(cfd);
      throw e;
    }
  } else if (fe.reg) {
    const name = fe.reg.name;
    const tfd = rem.call(`open(${name})`, NR.openat, AT_FDCWD, rem.put(Buffer.from(name + '\0')), flags | O.CLOEXEC, 0);
    try {
      checkRegSize(fe.reg, `/proc/${rem.pid}/fd/${tfd}`);
    } catch (e) {
      rem.call('close', NR.close, tfd);
      throw e;
    }
    return tfd;
  } else {
    throw new Error(`mapped file id ${id} is neither a regular file nor a memfd`);
  }
  try {
    return rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, cfd, 0);
  } finally {
    closeSync(cfd);
  }
}

/**
 * Install the dumped fd table. The cryo pidfd is first moved above every fd the
 * task will own, then all other inherited fds are closed.
 */
export function restoreFiles(rem: Remote, img: TaskImages, sh: RestoreShared, h: Handles): void {
  const fds = img.fdinfo ?? [];
  const top = fds.reduce((m, f) => Math.max(m, f.fd), 2) + 1;
  // Out of the way of every fd the task will own; the old number goes below.
  h.cryoPidfd = rem.call('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, h.cryoPidfd, F.DUPFD_CLOEXEC, top);
  // Everything inherited from the seed but the pidfd goes.
  rem.call('close_range', NR.close_range, 0, h.cryoPidfd - 1n, 0);
  rem.call('close_range', NR.close_range, h.cryoPidfd + 1n, 0xffffffffn, 0);
  for (const f of fds) {
    const fe = sh.files.get(f.id);
    if (!fe) throw new Error(`fd ${f.fd}: file id ${f.id} is missing from files.img`);
    const cfd = sh.openId(f.id, rem);
    const tfd = rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, cfd, 0);
    if (tfd !== BigInt(f.fd)) {
      rem.call('dup3', NR.dup3, tfd, f.fd, f.flags & FD_CLOEXEC ? O.CLOEXEC : 0);
      rem.call('close', NR.close, tfd);
    } else {
      rem.call('fcntl(F_SETFD)', NR.fcntl, tfd, F.SETFD, f.flags & FD_CLOEXEC);
    }
  }
  // Now that every fd is there: what refers to other fds (epoll's targets).
  // Once per file: an epoll shared by fds (dup, fork) holds its watches once.
  for (const f of fds) {
    if (sh.afterPlanted.has(f.id)) continue;
    sh.afterPlanted.add(f.id);
    afterPlant(rem, sh.files.get(f.id)!, f.fd, sh.files);
  }
  // Files in flight whose home this task is (an epoll in a socket's queue): the task
  // takes a copy for the moment, to watch its own fds through it.
  for (const id of sh.inflightAt.get(img.pstree.pid) ?? []) {
    const fe = sh.files.get(id)!;
    if (sh.afterPlanted.has(id) || !hasAfterPlant(fe)) continue;
    sh.afterPlanted.add(id);
    const tfd = rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, sh.openId(id, rem), 0);
    try {
      afterPlant(rem, fe, Number(tfd), sh.files);
    } finally {
      rem.call('close', NR.close, tfd);
    }
  }
}
