// The address space on restore: every dumped VMA mapped at its address (or kept
// from the parent the task was forked from), the vDSO moved, the mm fields set;
// and, once the task's children exist, what a fork must not see: madvise bits
// (MADV_DONTFORK, MADV_WIPEONFORK...), mlock, guard regions, AIO rings and
// membarrier registrations.
import type { Vma } from '../proc/maps.js';
import { MAP, MAP_HUGE_MASK, PROT, MADV, MREMAP, NR, O, PR, PR_SET_MM_MAP } from '../sys/index.js';
import type { BatchCall, Remote } from '../tracer/remote.js';
import { prctlMmMap } from '../abi/index.js';
import {
  type VmaEntry, type MmEntry, type PagemapEntry, PagemapEntrySchema, VmaEntrySchema, isFieldSet, VMA_AREA_SYSVIPC,
  VMA_AREA_REGULAR, VMA_AREA_VSYSCALL, VMA_AREA_VDSO, VMA_AREA_VVAR, VMA_AREA_AIORING, VMA_AREA_GUARD, VMA_AREA_SOCKET,
  VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_ANON_PRIVATE, VMA_AREA_MEMFD,
} from '../images/index.js';
import { restoreAioRing } from './aio.js';
import { attachSegment } from './ipcns.js';
import type { TaskImages, RestoreShared, TaskStateModule } from './task-state.js';
import { readSync } from 'node:fs';

export type Range = [bigint, bigint];

/** A free address range of `len` bytes avoiding every range in `avoid`. */
export function findFree(len: bigint, avoid: Range[], from = 0x10000000n): bigint {
  const sorted = [...avoid].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const guard = 0x100000n;
  let cand = from;
  for (const [s, e] of sorted) {
    if (e + guard <= cand) continue;
    if (cand + len + guard <= s) return cand;
    if (e + guard > cand) cand = ((e + guard + 0xfffffn) / 0x100000n) * 0x100000n;
  }
  if (cand + len < 0x7fff00000000n) return cand;
  throw new Error('no free address range for scratch memory');
}

/** Ranges the dumped VMAs occupy (plus the vdso/vvar destinations). */
export function imageRanges(mm: MmEntry): Range[] {
  return mm.vmas.map((v) => [v.start, v.end] as Range);
}

interface Special {
  name: string;
  start: bigint;
  end: bigint;
}

/**
 * Move the task's own [vvar]/[vvar_vclock]/[vdso] to where the dumped task had
 * them (or unmap them, where it had none). Both come from the same kernel, so only their place changes. Goes through a
 * temporary spot so that no move lands on a special mapping not yet moved.
 * Returns the distance the vDSO moved (to re-aim a syscall address inside it).
 */
export function moveVdso(rem: Remote, current: Vma[], mm: MmEntry, tmp: bigint): bigint {
  const cur: Special[] = current.filter((v) => v.name === '[vdso]' || v.name === '[vvar]' || v.name === '[vvar_vclock]')
    .map((v) => ({ name: v.name, start: v.start, end: v.end }));
  const want = mm.vmas.filter((v) => v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR));
  const curVdso = cur.find((c) => c.name === '[vdso]');
  const wantVdso = want.find((v) => v.status & VMA_AREA_VDSO);
  if (!wantVdso) {
    // The task had unmapped its vDSO (and vvar): it gets none now either.
    if (want.length) throw new Error('the dumped task had a [vvar] but no [vdso]; restoring that is not supported');
    rem.syscallsThroughStub();
    for (const c of cur) rem.call(`munmap(${c.name})`, NR.munmap, c.start, c.end - c.start);
    return 0n;
  }
  if (!curVdso) throw new Error('this kernel gives the task no vDSO, but the dumped task had one');
  if (curVdso.end - curVdso.start !== wantVdso.end - wantVdso.start) {
    throw new Error('the vDSO of this kernel differs in size from the dumped one; restoring on another kernel is not supported yet');
  }
  const curVvar = cur.filter((c) => c.name !== '[vdso]');
  const wantVvar = want.find((v) => v.status & VMA_AREA_VVAR);
  // Keep each special mapping's offset from the vDSO as the kernel laid them out,
  // relative to the dumped vvar block when there is one.
  const lo = cur.reduce((m, c) => (c.start < m ? c.start : m), curVdso.start);
  const dest = (c: Special): bigint => {
    if (c.name === '[vdso]') return wantVdso.start;
    if (!wantVvar) throw new Error('the dumped task had no [vvar]');
    const vvarLo = curVvar.reduce((m, x) => (x.start < m ? x.start : m), curVvar[0]!.start);
    return wantVvar.start + (c.start - vvarLo);
  };
  const flags = MREMAP.MAYMOVE | MREMAP.FIXED;
  // Out of the way first, then in place: one batch, in this order.
  rem.batch([
    ...cur.map((c) => ({ name: `mremap(${c.name})`, nr: NR.mremap, args: [c.start, c.end - c.start, c.end - c.start, flags, tmp + (c.start - lo)] })),
    ...cur.map((c) => ({ name: `mremap(${c.name})`, nr: NR.mremap, args: [tmp + (c.start - lo), c.end - c.start, c.end - c.start, flags, dest(c)] })),
  ]);
  return wantVdso.start - curVdso.start;
}

/** VMAs mapVmas() maps: not the kernel's own (vDSO, vvar, vsyscall), guard regions, AIO rings or packet rings (mapSocketRings). */
export function isMapped(v: VmaEntry): boolean {
  return (v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL | VMA_AREA_AIORING | VMA_AREA_GUARD | VMA_AREA_SOCKET)) === 0 && v.status !== 0;
}

/**
 * Packet sockets' rings, once the task's fds are in place: mapped from the
 * task's fd of the socket (file id `shmid`), as CRIU's restorer maps them.
 */
export function mapSocketRings(rem: Remote, mm: MmEntry, fdOf: (id: number) => number | undefined): void {
  for (const v of mm.vmas) {
    if (!(v.status & VMA_AREA_SOCKET)) continue;
    const at = `0x${v.start.toString(16)}`;
    const fd = fdOf(Number(v.shmid));
    if (fd === undefined) throw new Error(`the packet ring at ${at}: the task holds no fd of socket file ${v.shmid}`);
    const flags = (v.flags & (MAP.SHARED | MAP.PRIVATE)) | MAP.FIXED;
    const got = rem.call(`mmap(${at}, packet ring)`, NR.mmap, v.start, v.end - v.start, v.prot, flags, fd, v.pgoff);
    if (got !== v.start) throw new Error(`mmap placed the packet ring at 0x${got.toString(16)}, not ${at}`);
  }
}

/** How a VMA is mapped while its contents go in: memory we fill must be readable and writable. */
export function fillProt(v: VmaEntry): number {
  if (v.status & VMA_AREA_SYSVIPC) return v.prot; // the segment has its contents already
  const privateMem = (v.status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE | VMA_ANON_SHARED)) !== 0;
  return privateMem ? v.prot | PROT.READ | PROT.WRITE : v.prot;
}

/** Flags that must be the same for a child's VMA to be the one it got from its parent by fork. */
const KIND_FLAGS = MAP.SHARED | MAP.PRIVATE | MAP.DROPPABLE | MAP.ANONYMOUS | MAP.GROWSDOWN | MAP.NORESERVE | MAP.HUGETLB | MAP_HUGE_MASK;
const KIND_STATUS = VMA_ANON_PRIVATE | VMA_FILE_PRIVATE | VMA_AREA_MEMFD | VMA_ANON_SHARED | VMA_FILE_SHARED;

/** Private memory a fork shares copy-on-write (not hugetlb: CRIU does not either). */
function forkShared(v: VmaEntry): boolean {
  return isMapped(v) && (v.status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)) !== 0 && !(v.flags & (MAP.HUGETLB | MAP.DROPPABLE));
}

/**
 * The child's VMAs that it has from its parent, as CRIU's COW restore finds them:
 * private memory at the same place, of the same kind, of the same file at the same
 * offset. The child is forked from its parent once the parent's memory is
 * restored, so these are in place already, their pages shared with the parent's.
 */
export function inheritedVmas(child: MmEntry, parent: MmEntry): Map<VmaEntry, VmaEntry> {
  const byStart = new Map<bigint, VmaEntry>();
  for (const p of parent.vmas) if (forkShared(p)) byStart.set(p.start, p);
  const out = new Map<VmaEntry, VmaEntry>();
  for (const c of child.vmas) {
    const p = byStart.get(c.start);
    if (!p || !forkShared(c) || p.end !== c.end) continue;
    if ((p.flags ^ c.flags) & KIND_FLAGS || (p.status ^ c.status) & KIND_STATUS) continue;
    if (c.status & VMA_FILE_PRIVATE && (p.shmid !== c.shmid || p.pgoff !== c.pgoff)) continue;
    out.set(c, p);
  }
  return out;
}

/**
 * Map every dumped VMA (except vdso/vvar/vsyscall, guard regions and AIO rings) at
 * its address. `fileFd` opens the file of a file mapping in the task (closed again
 * here). VMAs in `inherited` are in place already (from the parent): they only get
 * their fill protection. Returns the VMAs that are writable only to be filled, for
 * fixProtections().
 */
export function mapVmas(
  rem: Remote, mm: MmEntry, fileFd: (v: VmaEntry) => bigint, shmemFd: (v: VmaEntry) => bigint | null,
  inherited: Map<VmaEntry, VmaEntry> = new Map(),
): VmaEntry[] {
  const needFix: VmaEntry[] = [];
  // The calls go in batches (one stop each), with the mmaps' addresses checked after.
  const pending: BatchCall[] = [];
  const placed: Array<{ at: number; v: VmaEntry }> = [];
  const flush = () => {
    const got = rem.batch(pending.splice(0));
    for (const { at, v } of placed.splice(0)) {
      if (got[at] !== v.start) throw new Error(`mmap placed 0x${v.start.toString(16)} at 0x${got[at]!.toString(16)}`);
    }
  };
  for (const [i, v] of mm.vmas.entries()) {
    if (!isMapped(v)) continue;
    const len = v.end - v.start;
    if (v.status & VMA_AREA_SYSVIPC) {
      flush();
      // One shmat per attachment, at its first VMA; each part then gets its own protection.
      if (v.pgoff === 0n) {
        const parts = [v];
        for (let j = i + 1; j < mm.vmas.length; j++) {
          const w = mm.vmas[j]!;
          if (!(w.status & VMA_AREA_SYSVIPC) || w.shmid !== v.shmid || w.pgoff === 0n) break;
          parts.push(w);
        }
        // As CRIU: writable when some part was open for writing (or the images do not say).
        attachSegment(rem, v, parts.some((w) => !isFieldSet(w, VmaEntrySchema.field.fdflags) || (w.fdflags & O.ACCMODE) === O.RDWR));
      }
      rem.call(`mprotect(0x${v.start.toString(16)})`, NR.mprotect, v.start, len, v.prot);
      continue;
    }
    const prot = fillProt(v);
    if (prot !== v.prot) needFix.push(v);
    const from = inherited.get(v);
    if (from) {
      if (from.prot !== prot) pending.push({ name: `mprotect(0x${v.start.toString(16)})`, nr: NR.mprotect, args: [v.start, len, prot] });
      continue;
    }
    // MAP_LOCKED, MAP_POPULATE etc. are not for us to redo here (mlock comes last).
    let flags = (v.flags & (MAP.SHARED | MAP.PRIVATE | MAP.DROPPABLE | MAP.ANONYMOUS | MAP.GROWSDOWN | MAP.NORESERVE | MAP.HUGETLB | MAP_HUGE_MASK)) | MAP.FIXED;
    let fd = -1n;
    let closeFd = false;
    if (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) {
      fd = fileFd(v);
      closeFd = true;
      // A file says its own page size: MAP_HUGETLB is for anonymous memory only.
      flags &= ~(MAP.ANONYMOUS | MAP.HUGETLB | MAP_HUGE_MASK);
    } else if (v.status & VMA_ANON_SHARED) {
      const sfd = shmemFd(v);
      if (sfd !== null) {
        fd = sfd;
        closeFd = true;
        flags = (flags & ~(MAP.ANONYMOUS | MAP.HUGETLB | MAP_HUGE_MASK)) | MAP.SHARED;
      }
    }
    placed.push({ at: pending.length, v });
    pending.push({ name: `mmap(0x${v.start.toString(16)})`, nr: NR.mmap, args: [v.start, len, prot, flags, fd, fd >= 0n ? v.pgoff : 0n] });
    if (closeFd) pending.push({ name: 'close', nr: NR.close, args: [fd] });
  }
  flush();
  return needFix;
}

export function fixProtections(rem: Remote, vmas: VmaEntry[]): void {
  rem.batch(vmas.map((v) => ({ name: `mprotect(0x${v.start.toString(16)})`, nr: NR.mprotect, args: [v.start, v.end - v.start, v.prot] })));
}

/**
 * What a fork must not see, so set once the task's children exist: the madvise
 * bits (MADV_DONTFORK would keep a child from its parent's memory, MADV_WIPEONFORK
 * would wipe it), mlock (locking breaks the copy-on-write sharing), AIO rings
 * (`aioContent` gives each ring's dumped pages), guard regions last (installing
 * one drops the pages under it). As CRIU's restorer does at its end.
 */
export function finishMemory(rem: Remote, mm: MmEntry, aioContent: (start: bigint, len: number) => Buffer): void {
  for (const a of mm.aios) restoreAioRing(rem, a, aioContent(a.id, a.ringLen));
  for (const v of mm.vmas) {
    if (!isMapped(v) || !(v.status & VMA_AREA_REGULAR)) continue;
    const len = v.end - v.start;
    for (let b = 0n; v.madv && b < 64n; b++) {
      if ((v.madv >> b) & 1n) rem.call(`madvise(0x${v.start.toString(16)}, ${b})`, NR.madvise, v.start, len, b);
    }
    if (v.flags & MAP.LOCKED) {
      // mlock() of a PROT_NONE range locks it but fails populating it (ENOMEM):
      // lock it readable, as it was when it was locked before its mprotect.
      const none = (v.prot & (PROT.READ | PROT.WRITE | PROT.EXEC)) === 0;
      if (none) rem.call('mprotect', NR.mprotect, v.start, len, PROT.READ);
      rem.call(`mlock(0x${v.start.toString(16)})`, NR.mlock, v.start, len);
      if (none) rem.call('mprotect', NR.mprotect, v.start, len, PROT.NONE);
    }
  }
  for (const v of mm.vmas) {
    if (v.status & VMA_AREA_GUARD) rem.call(`madvise(0x${v.start.toString(16)}, MADV_GUARD_INSTALL)`, NR.madvise, v.start, v.end - v.start, MADV.GUARD_INSTALL);
  }
}

/** PR_SET_MM_MAP: code/data/brk/stack/arg/env bounds, auxv and the exe link. */
export function setMmMap(rem: Remote, mm: MmEntry, exeFd: bigint): void {
  const auxv = Buffer.alloc(mm.mmSavedAuxv.length * 8);
  mm.mmSavedAuxv.forEach((v, i) => auxv.writeBigUInt64LE(v, i * 8));
  const auxvAddr = rem.put(auxv, 512);
  const m = prctlMmMap.encode({
    start_code: mm.mmStartCode, end_code: mm.mmEndCode, start_data: mm.mmStartData, end_data: mm.mmEndData,
    start_brk: mm.mmStartBrk, brk: mm.mmBrk, start_stack: mm.mmStartStack, arg_start: mm.mmArgStart, arg_end: mm.mmArgEnd,
    env_start: mm.mmEnvStart, env_end: mm.mmEnvEnd, auxv: auxvAddr, auxv_size: auxv.length, exe_fd: Number(BigInt.asUintN(32, exeFd)),
  });
  rem.call('prctl(PR_SET_MM_MAP)', NR.prctl, PR.SET_MM, PR_SET_MM_MAP, rem.put(m), prctlMmMap.size);
}

/** Pages in a pagemap entry: nr_pages (CRIU 3.16+), else the old 32-bit field. */
export function runPages(r: PagemapEntry): number {
  return Number(isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages));
}

/**
 * The rest of the address space, once the task's children exist (they are forked
 * from it): madvise bits, locks, AIO rings, guard regions; membarrier registrations.
 */
function restoreMemoryLate(rem: Remote, img: TaskImages, sh: Pick<RestoreShared, 'pagesFd'>): void {
  const mm = img.mm;
  if (!mm) return;
  mapSocketRings(rem, mm, (id) => img.fdinfo?.find((f) => f.id === id)?.fd);
  finishMemory(rem, mm, (start, len) => aioPages(img, sh, start, len));
  const mask = img.core.tc?.membarrierRegistrationMask ?? 0;
  for (let b = 0; b < 32; b++) {
    if (mask & (1 << b)) rem.call(`membarrier(0x${(1 << b).toString(16)})`, NR.membarrier, 1 << b, 0, 0);
  }
}

/** The dumped pages of [start, start + len), from the task's pages file (an AIO ring's: all present). */
function aioPages(img: TaskImages, sh: Pick<RestoreShared, 'pagesFd'>, start: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  const fd = sh.pagesFd(img.pagemap!.pagesId);
  const end = start + BigInt(len);
  let off = 0;
  let found = 0;
  for (const r of img.pagemap!.runs) {
    const n = runPages(r);
    const rEnd = r.vaddr + BigInt(n) * 4096n;
    const lo = r.vaddr > start ? r.vaddr : start;
    const hi = rEnd < end ? rEnd : end;
    if (hi > lo) {
      const got = readSync(fd, out, Number(lo - start), Number(hi - lo), off + Number(lo - r.vaddr));
      if (got !== Number(hi - lo)) throw new Error(`pages-${img.pagemap!.pagesId}.img is short at the AIO ring at 0x${start.toString(16)}`);
      found += got;
    }
    off += n * 4096;
  }
  if (found !== len) throw new Error(`task ${img.pstree.pid}: the pages of the AIO ring at 0x${start.toString(16)} are not all in the images`);
  return out;
}


/** The late part of the address space (restoreMemory itself is the pipeline's memory stage). */
export const mmLateModule: TaskStateModule = {
  name: 'mm',
  restore: {
    // Its children exist now: what a fork must not copy; before the filters, which could block it.
    task: (t) => restoreMemoryLate(t.rem, t.img, t.sh),
  },
};
