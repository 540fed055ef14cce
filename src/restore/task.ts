// Rebuilding one task inside a stopped copy of the seed: address space, memory
// contents, files, and per-task state. Registers and detach come last (restore.ts).
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { NR, PR, O, F, AT_FDCWD, FD_CLOEXEC, MAP, PROT } from '../sys/index.js';
import {
  PE_PARENT, PE_PRESENT, TaskCoreEntrySchema, VMA_AREA_VDSO, VMA_AREA_VVAR, VMA_AREA_VSYSCALL, VMA_FILE_SHARED, isFieldSet, PagemapEntrySchema, VmaEntrySchema,
  type CoreEntry, type MmEntry, type VmaEntry, type FdinfoEntry, type FileEntry, type FsEntry, type PagemapEntry, type PstreeEntry,
} from '../images/index.js';
import { parseMaps } from '../proc/maps.js';
import { findFree, imageRanges, moveVdso, mapVmas, fixProtections, setMmMap, hasPrivatePages, type Range } from '../objects/mm.js';
import { restorePages, type FdBridge, type PageRun } from '../objects/pages.js';
import { restoreSigactions } from '../objects/sigactions.js';
import { restoreCreds, restoreLoginuid } from '../objects/creds.js';
import { restorePending } from '../objects/signals.js';
import { afterPlant } from '../objects/files/fds.js';
import { fillShmem } from '../objects/files/memfd.js';
import { checkRegSize } from '../objects/files/reg.js';
import type { RestoreFilesEnv } from '../objects/files/kind.js';
import type { Remote } from '../tracer/remote.js';
import type { Logger } from '../context.js';

export interface TaskImages {
  pstree: PstreeEntry;
  core: CoreEntry;
  /** Cores of the other threads, by tid. */
  threadCores: Map<number, CoreEntry>;
  mm?: MmEntry;
  pagemap?: { pagesId: number; runs: PagemapEntry[] };
  /** Contents of shared anonymous memory, by shmid (offsets into the object). */
  shmem?: Map<bigint, { pagesId: number; runs: PagemapEntry[] }>;
  fdinfo?: FdinfoEntry[];
  fs?: FsEntry;
}

export interface RestoreShared extends RestoreFilesEnv {
  files: Map<number, FileEntry>;
  /** cryo's fd of each file entry opened so far: one open file description per id. */
  opened: Map<number, number>;
  /** pages-N.img fds opened by cryo, by pages id. */
  pagesFd(id: number): number;
  /** File ids whose afterPlant work (epoll watches) is done. */
  afterPlanted: Set<number>;
  /** Shared anonymous memory objects made so far (cryo's fd of each), by shmid. */
  sharedAnon: Map<bigint, number>;
  log: Logger;
}

const SCRATCH = 256 * 1024;

/** Pages in a pagemap entry: nr_pages (CRIU 3.16+), else the old 32-bit field. */
function runPages(r: PagemapEntry): number {
  return Number(isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages));
}

/** Where the inherited cryo pidfd lives in every restored task while we build it. */
export interface Handles {
  cryoPidfd: bigint;
}

function bridgeFor(rem: Remote, h: Handles): FdBridge {
  return {
    taskFd: (cryoFd) => rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, cryoFd, 0),
    closeTaskFd: (fd) => void rem.call('close', NR.close, fd),
  };
}

/**
 * Replace the task's address space with the dumped one. On return the task runs
 * remote calls from a scratch area placed where no dumped VMA lives.
 */
export function restoreMemory(rem: Remote, img: TaskImages, sh: RestoreShared, h: Handles): void {
  const mm = img.mm!;
  const current = parseMaps(readFileSync(`/proc/${rem.pid}/maps`, 'utf8'));
  const avoid: Range[] = [...imageRanges(mm), ...current.map((v) => [v.start, v.end] as Range)];
  const scratchAt = findFree(BigInt(SCRATCH + 8192), avoid);
  rem.placeScratch(scratchAt, SCRATCH);
  const keep = new Set(['[vdso]', '[vvar]', '[vvar_vclock]']);
  for (const v of current) {
    if (keep.has(v.name) || v.name === '[vsyscall]') continue;
    rem.call('munmap', NR.munmap, v.start, v.end - v.start);
  }
  const tmp = findFree(0x100000n, [...avoid, rem.scratchRange()!]);
  const delta = moveVdso(rem, current, mm, tmp);
  rem.syscallIp += delta;

  const t0 = performance.now();
  const needFix = mapVmas(rem, mm, (v) => taskFileFd(rem, Number(v.shmid), vmaOpenFlags(v), sh, h), (v) => sharedAnonFd(rem, v, img, sh, h));
  const t1 = performance.now();
  if (img.pagemap && img.pagemap.runs.length) {
    const fd = sh.pagesFd(img.pagemap.pagesId);
    const vmas = mm.vmas.filter(hasPrivatePages);
    // CRIU also saves the vdso's pages; the task keeps this kernel's vdso instead.
    const special = mm.vmas.filter((v) => v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL));
    let off = 0;
    const runs: PageRun[] = [];
    for (const r of img.pagemap.runs) {
      // CRIU marks pages that could be served lazily PE_LAZY; with PE_PRESENT they are in the image.
      if (r.flags & PE_PARENT || !(r.flags & PE_PRESENT)) throw new Error('pagemap entries from a parent image or lazy pages are not supported yet');
      const nrPages = runPages(r);
      if (!special.some((v) => v.start <= r.vaddr && r.vaddr < v.end)) runs.push({ vaddr: r.vaddr, nrPages, off });
      off += nrPages * 4096;
    }
    const { pages, byUffd } = restorePages(rem, bridgeFor(rem, h), fd, runs, vmas);
    sh.log.debug(`task ${rem.pid}: ${pages} private pages, ${byUffd} of them by userfaultfd`);
  }
  sh.log.debug(`task ${rem.pid}: mapped ${mm.vmas.length} vmas in ${(t1 - t0).toFixed(1)} ms, private pages in ${(performance.now() - t1).toFixed(1)} ms`);
  fixProtections(rem, needFix);

  const exeFd = taskFileFd(rem, mm.exeFileId, O.RDONLY, sh, h);
  try {
    setMmMap(rem, mm, exeFd);
  } finally {
    rem.call('close', NR.close, exeFd);
  }
  if (mm.thpDisabled) rem.call('prctl(PR_SET_THP_DISABLE)', NR.prctl, PR.SET_THP_DISABLE, 1, 0, 0, 0);
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
 * and the children it forked): the first task to need it creates it (a
 * throw-away MAP_SHARED|MAP_ANONYMOUS mapping), cryo keeps it through
 * /proc/PID/map_files, and every VMA maps it at its own offset, as CRIU does.
 */
function sharedAnonFd(rem: Remote, v: VmaEntry, img: TaskImages, sh: RestoreShared, h: Handles): bigint {
  const need = v.pgoff + (v.end - v.start);
  let cfd = sh.sharedAnon.get(v.shmid);
  if (cfd === undefined) {
    const addr = rem.call('mmap(shared anon)', NR.mmap, 0, need, PROT.READ, MAP.SHARED | MAP.ANONYMOUS, -1n, 0);
    try {
      cfd = openSync(`/proc/${rem.pid}/map_files/${addr.toString(16)}-${(addr + need).toString(16)}`, O.RDWR | O.CLOEXEC);
    } finally {
      rem.call('munmap', NR.munmap, addr, need);
    }
    sh.sharedAnon.set(v.shmid, cfd);
    // Its contents go in once, here, whichever tasks and windows map it.
    const sm = img.shmem?.get(v.shmid);
    if (sm?.runs.length) {
      const end = Math.max(...sm.runs.map((r) => Number(r.vaddr) + runPages(r) * 4096));
      if (end > Number(need)) ftruncateSync(cfd, end);
      fillShmem(cfd, Math.max(end, Number(need)), sm, sh.pagesFd);
    }
  }
  if (BigInt(fstatSync(cfd).size) < need) ftruncateSync(cfd, Number(need));
  return rem.call('pidfd_getfd', NR.pidfd_getfd, h.cryoPidfd, cfd, 0);
}

function taskFileFd(rem: Remote, id: number, flags: number, sh: RestoreShared, h: Handles): bigint {
  const fe = sh.files.get(id);
  if (!fe) throw new Error(`mapped file id ${id} is missing from files.img`);
  let cfd: number;
  if (fe.memfd) {
    // A mapping is opened as its VMA says (CRIU leaves a mapped memfd's own flags O_RDONLY).
    cfd = sh.memfds.open({ ...fe.memfd, flags }, true);
  } else if (fe.reg && sh.remaps.has(id)) {
    cfd = sh.remaps.open(id, fe.reg.name, (flags & ~(O.CREAT | O.TRUNC | O.EXCL)) | O.CLOEXEC);
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
    afterPlant(rem, sh.files.get(f.id)!, f.fd);
  }
}

export function restoreFs(rem: Remote, img: TaskImages, sh: RestoreShared): void {
  const fs = img.fs;
  if (!fs) return;
  const dirName = (id: number) => sh.files.get(id)?.reg?.name;
  const root = dirName(fs.rootId);
  const cwd = dirName(fs.cwdId);
  if (root && root !== '/') rem.call(`chroot(${root})`, NR.chroot, rem.put(Buffer.from(root + '\0')));
  if (cwd) rem.call(`chdir(${cwd})`, NR.chdir, rem.put(Buffer.from(cwd + '\0')));
  if (fs.umask !== undefined) rem.call('umask', NR.umask, fs.umask);
}

/** Process-wide state other than memory and files. */
export function restoreTaskState(rem: Remote, img: TaskImages, sh: RestoreShared): void {
  const { core } = img;
  const tc = core.tc!;
  const p = img.pstree;
  restoreSigactions(rem, tc.sigactions);
  if (tc.personality) rem.call('personality', NR.personality, tc.personality);
  const rl = tc.rlimits?.rlimits ?? [];
  const b = Buffer.alloc(16);
  rl.forEach((r, i) => {
    b.writeBigUInt64LE(r.cur, 0);
    b.writeBigUInt64LE(r.max, 8);
    const ret = rem.callRaw(NR.prlimit64, 0, i, rem.put(b), 0);
    if (ret < 0n) sh.log.warn(`task ${p.pid}: cannot restore rlimit ${i} (errno ${-ret})`);
  });
  if (tc.childSubreaper) rem.call('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  // Before the threads are made (they inherit it) and while the task is still root.
  restoreLoginuid(rem, p.pid, isFieldSet(tc, TaskCoreEntrySchema.field.loginuid) ? tc.loginuid : undefined);
  restorePending(rem, p.pid, p.pid, tc.signalsS, true);
  if (tc.oomScoreAdj !== undefined) {
    try {
      writeFileSync(`/proc/${rem.pid}/oom_score_adj`, String(tc.oomScoreAdj));
    } catch (e) {
      sh.log.warn(`task ${p.pid}: cannot restore oom_score_adj: ${(e as Error).message}`);
    }
  }
}

/** Per-thread state, run in the thread itself: name, rseq, robust list, tid address... */
export function restoreThreadState(rem: Remote, tgid: number, tid: number, core: CoreEntry): void {
  const th = core.threadCore;
  const comm = th?.comm || core.tc?.comm;
  if (comm !== undefined) rem.call('prctl(PR_SET_NAME)', NR.prctl, PR.SET_NAME, rem.put(Buffer.from(comm.slice(0, 15) + '\0')));
  if (th) {
    if (th.schedPolicy !== undefined) {
      const prm = Buffer.alloc(4);
      prm.writeInt32LE(th.schedPrio ?? 0, 0);
      rem.call('sched_setscheduler', NR.sched_setscheduler, 0, th.schedPolicy, rem.put(prm, 512));
    }
    if (th.schedNice !== undefined) rem.call('setpriority', NR.setpriority, 0 /* PRIO_PROCESS */, 0, th.schedNice);
    if (th.futexRla) rem.call('set_robust_list', NR.set_robust_list, th.futexRla, th.futexRlaLen);
    const sas = th.sas;
    if (sas && !(sas.ssFlags & 2 /* SS_DISABLE */)) {
      const s = Buffer.alloc(24);
      s.writeBigUInt64LE(sas.ssSp, 0);
      s.writeInt32LE(sas.ssFlags & ~1, 8);
      s.writeBigUInt64LE(sas.ssSize, 16);
      rem.call('sigaltstack', NR.sigaltstack, rem.put(s), 0);
    }
    const rs = th.rseqEntry;
    if (rs && rs.rseqAbiPointer) rem.call('rseq', NR.rseq, rs.rseqAbiPointer, rs.rseqAbiSize, 0, rs.signature);
    restorePending(rem, tgid, tid, th.signalsP, false);
  }
  const ti = core.threadInfo;
  if (ti) rem.call('set_tid_address', NR.set_tid_address, ti.clearTidAddr);
}

/** Credentials last: after them the thread may no longer be allowed to rebuild anything. */
export function restoreThreadCreds(rem: Remote, core: CoreEntry): void {
  const c = core.threadCore?.creds;
  if (!c) return;
  restoreCreds(rem, c);
  if (c.noNewPrivs) rem.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  // Per thread, and after the credentials: changing them clears it.
  const pdeath = core.threadCore?.pdeathSig;
  if (pdeath) rem.call('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, pdeath);
}

/** Per-process settings that a change of credentials resets: set them after. */
export function restoreAfterCreds(rem: Remote, img: TaskImages): void {
  const mm = img.mm;
  if (mm?.dumpable !== undefined) rem.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, mm.dumpable);
}
