// The address space: VMAs from /proc/PID/smaps and the mm fields, as CRIU's
// mm-PID.img (mm_entry with vma_entry list).
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { parseMaps, type Vma } from '../proc/maps.js';
import { MAP, PROT, MADV, MREMAP, O, NR, PR, PR_SET_MM_MAP } from '../sys/index.js';
import type { Remote } from '../tracer/remote.js';
import {
  create, VmaEntrySchema, type VmaEntry, type MmEntry,
  VMA_AREA_REGULAR, VMA_AREA_STACK, VMA_AREA_VSYSCALL, VMA_AREA_VDSO, VMA_AREA_VVAR,
  VMA_AREA_HEAP, VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_ANON_PRIVATE, VMA_AREA_MEMFD,
} from '../images/index.js';
import type { RegDumpEnv } from './files/kind.js';
import { dumpRegFile } from './files/reg.js';
import { dumpMemfdMapping, isMemfdLink } from './files/memfd.js';
import { CryoError } from '../context.js';

const VMFLAG_MAP: Record<string, number> = { gd: MAP.GROWSDOWN, lo: MAP.LOCKED, nr: MAP.NORESERVE };
const VMFLAG_MADV: Record<string, number> = {
  sr: MADV.SEQUENTIAL, rr: MADV.RANDOM, dc: MADV.DONTFORK, dd: MADV.DONTDUMP,
  mg: MADV.MERGEABLE, hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE, wf: MADV.WIPEONFORK,
};

export function readVmas(pid: number): Vma[] {
  return parseMaps(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}

function protOf(perms: string): number {
  return (perms[0] === 'r' ? PROT.READ : 0) | (perms[1] === 'w' ? PROT.WRITE : 0) | (perms[2] === 'x' ? PROT.EXEC : 0);
}

/**
 * Turn the parsed VMAs of a task into CRIU vma_entry messages. File-backed VMAs get
 * a reg-file (or memfd) entry in `env.files` (shmid is its id); deleted files get
 * their remap (ghost file or link). [vvar] and [vvar_vclock] are
 * merged into one VMA_AREA_VVAR entry, as CRIU does.
 */
export function vmaEntries(pid: number, vmas: Vma[], env: RegDumpEnv, heap: { start: bigint; end: bigint }): VmaEntry[] {
  const out: VmaEntry[] = [];
  for (const v of vmas) {
    const prot = protOf(v.perms);
    const shared = v.perms[3] === 's';
    let flags = shared ? MAP.SHARED : MAP.PRIVATE;
    let madv = 0n;
    for (const f of v.vmFlags) {
      if (VMFLAG_MAP[f]) flags |= VMFLAG_MAP[f]!;
      if (VMFLAG_MADV[f] !== undefined) madv |= 1n << BigInt(VMFLAG_MADV[f]!);
    }
    const e = create(VmaEntrySchema, {
      start: v.start, end: v.end, pgoff: v.pgoff, shmid: 0n, prot, flags, status: 0, fd: -1n,
    });
    if (madv) e.madv = madv;
    // The kernel's uprobe slots: CRIU takes them only with --allow-uprobes, cryo not yet.
    if (v.name === '[uprobes]') {
      throw new CryoError(`task ${pid}: a uprobe is attached (the [uprobes] mapping at 0x${v.start.toString(16)}), which cryo does not support yet`);
    }
    // The special mappings carry VMA_ANON_PRIVATE too, as CRIU writes them.
    if (v.name === '[vsyscall]') {
      e.status = VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE;
    } else if (v.name === '[vdso]') {
      e.status = VMA_AREA_REGULAR | VMA_AREA_VDSO | VMA_ANON_PRIVATE;
      e.flags |= MAP.ANONYMOUS;
    } else if (v.name === '[vvar]' || v.name === '[vvar_vclock]') {
      const prev = out[out.length - 1];
      if (prev && (prev.status & VMA_AREA_VVAR) && prev.end === v.start) {
        prev.end = v.end; // merge, as CRIU does
        continue;
      }
      e.status = VMA_AREA_REGULAR | VMA_AREA_VVAR | VMA_ANON_PRIVATE;
      e.flags |= MAP.ANONYMOUS;
    } else if (v.inode !== 0 || (v.name.startsWith('/') && !v.name.startsWith('/SYSV'))) {
      const mapPath = `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`;
      let st;
      try {
        st = statSync(mapPath);
      } catch {
        throw new CryoError(`task ${pid}: cannot stat mapping ${v.name} at 0x${v.start.toString(16)}`);
      }
      const isDevZero = st.isCharacterDevice() && v.name.startsWith('/dev/zero');
      const anonShared = shared && (v.name.startsWith('/dev/zero') || v.name.startsWith('/SYSV'));
      if (anonShared) {
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
        e.shmid = BigInt(st.ino);
      } else if (isDevZero) {
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
      } else {
        if (!st.isFile()) throw new CryoError(`task ${pid}: mapping of ${v.name} is not a regular file`);
        const link = readlinkSync(mapPath);
        // The fd must allow writing only for shared writable mappings.
        const fdflags = shared && prot & PROT.WRITE ? O.RDWR : O.RDONLY;
        e.fdflags = fdflags;
        e.status = VMA_AREA_REGULAR | (shared ? VMA_FILE_SHARED : VMA_FILE_PRIVATE);
        const src = { pid, proc: mapPath, link, st, what: `the mapping at 0x${v.start.toString(16)}` };
        if (isMemfdLink(link)) {
          e.status |= VMA_AREA_MEMFD;
          e.shmid = BigInt(dumpMemfdMapping(src, fdflags, env.files));
        } else {
          e.shmid = BigInt(dumpRegFile(src, { flags: fdflags, pos: 0n }, env, `map:${st.dev}:${st.ino}:${fdflags}`));
        }
      }
    } else if (shared) {
      e.flags |= MAP.ANONYMOUS;
      e.status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
    } else {
      e.flags |= MAP.ANONYMOUS;
      e.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
      if (v.name === '[heap]' || (v.start <= heap.end && v.end >= heap.start && heap.end > heap.start && v.start >= heap.start)) e.status |= VMA_AREA_HEAP;
      if (v.name === '[stack]' || (e.flags & MAP.GROWSDOWN)) e.status |= VMA_AREA_STACK;
    }
    out.push(e);
  }
  return out;
}

/** VMAs whose contents go to the task's own pagemap (private memory). */
export function hasPrivatePages(e: VmaEntry): boolean {
  return (e.status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)) !== 0 && (e.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)) === 0;
}

// ---- restore side ----

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
 * them. Both come from the same kernel, so only their place changes. Goes through a
 * temporary spot so that no move lands on a special mapping not yet moved.
 * Returns the distance the vDSO moved (to re-aim a syscall address inside it).
 */
export function moveVdso(rem: Remote, current: Vma[], mm: MmEntry, tmp: bigint): bigint {
  const cur: Special[] = current.filter((v) => v.name === '[vdso]' || v.name === '[vvar]' || v.name === '[vvar_vclock]')
    .map((v) => ({ name: v.name, start: v.start, end: v.end }));
  const want = mm.vmas.filter((v) => v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR));
  const curVdso = cur.find((c) => c.name === '[vdso]');
  const wantVdso = want.find((v) => v.status & VMA_AREA_VDSO);
  if (!curVdso || !wantVdso) {
    if (wantVdso) throw new Error('this kernel gives the task no vDSO, but the dumped task had one');
    return 0n;
  }
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
  for (const c of cur) {
    const len = c.end - c.start;
    rem.call(`mremap(${c.name})`, NR.mremap, c.start, len, len, flags, tmp + (c.start - lo));
  }
  for (const c of cur) {
    const len = c.end - c.start;
    rem.call(`mremap(${c.name})`, NR.mremap, tmp + (c.start - lo), len, len, flags, dest(c));
  }
  return wantVdso.start - curVdso.start;
}

/** Map every dumped VMA (except vdso/vvar/vsyscall) at its address. `fileFd` opens
 * the file of a file mapping in the task (closed again here). Returns the VMAs that
 * were mapped writable only to be filled, for fixProtections(). */
export function mapVmas(rem: Remote, mm: MmEntry, fileFd: (v: VmaEntry) => bigint, shmemFd: (v: VmaEntry) => bigint | null): VmaEntry[] {
  const needFix: VmaEntry[] = [];
  for (const v of mm.vmas) {
    if (v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)) continue;
    const len = v.end - v.start;
    let prot = v.prot;
    // Memory we fill from the images must be writable (and readable) meanwhile.
    const privateMem = (v.status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE | VMA_ANON_SHARED)) !== 0;
    if (privateMem && !(prot & PROT.WRITE)) {
      prot |= PROT.WRITE | PROT.READ;
      needFix.push(v);
    } else if (privateMem && !(prot & PROT.READ)) {
      prot |= PROT.READ;
      needFix.push(v);
    }
    // MAP_LOCKED, MAP_POPULATE etc. are not for us to redo here.
    let flags = (v.flags & (MAP.SHARED | MAP.PRIVATE | MAP.ANONYMOUS | MAP.GROWSDOWN | MAP.NORESERVE)) | MAP.FIXED;
    let fd = -1n;
    let closeFd = false;
    if (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) {
      fd = fileFd(v);
      closeFd = true;
      flags &= ~MAP.ANONYMOUS;
    } else if (v.status & VMA_ANON_SHARED) {
      const sfd = shmemFd(v);
      if (sfd !== null) {
        fd = sfd;
        closeFd = true;
        flags = (flags & ~MAP.ANONYMOUS) | MAP.SHARED;
      }
    }
    try {
      const got = rem.call(`mmap(0x${v.start.toString(16)})`, NR.mmap, v.start, len, prot, flags, fd, fd >= 0n ? v.pgoff : 0n);
      if (got !== v.start) throw new Error(`mmap placed 0x${v.start.toString(16)} at 0x${got.toString(16)}`);
    } finally {
      if (closeFd) rem.call('close', NR.close, fd);
    }
    if (v.madv) {
      for (let b = 0n; b < 64n; b++) {
        if ((v.madv >> b) & 1n) rem.call(`madvise(${b})`, NR.madvise, v.start, len, b);
      }
    }
  }
  return needFix;
}

export function fixProtections(rem: Remote, vmas: VmaEntry[]): void {
  for (const v of vmas) rem.call('mprotect', NR.mprotect, v.start, v.end - v.start, v.prot);
}

/** PR_SET_MM_MAP: code/data/brk/stack/arg/env bounds, auxv and the exe link. */
export function setMmMap(rem: Remote, mm: MmEntry, exeFd: bigint): void {
  const auxv = Buffer.alloc(mm.mmSavedAuxv.length * 8);
  mm.mmSavedAuxv.forEach((v, i) => auxv.writeBigUInt64LE(v, i * 8));
  const auxvAddr = rem.put(auxv, 512);
  const m = Buffer.alloc(104);
  [mm.mmStartCode, mm.mmEndCode, mm.mmStartData, mm.mmEndData, mm.mmStartBrk, mm.mmBrk,
    mm.mmStartStack, mm.mmArgStart, mm.mmArgEnd, mm.mmEnvStart, mm.mmEnvEnd].forEach((v, i) => m.writeBigUInt64LE(v, i * 8));
  m.writeBigUInt64LE(auxvAddr, 88);
  m.writeUInt32LE(auxv.length, 96);
  m.writeUInt32LE(Number(BigInt.asUintN(32, exeFd)), 100);
  rem.call('prctl(PR_SET_MM_MAP)', NR.prctl, PR.SET_MM, PR_SET_MM_MAP, rem.put(m), 104);
}
