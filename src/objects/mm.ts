// The address space: VMAs from /proc/PID/smaps and the mm fields, as CRIU's
// mm-PID.img (mm_entry with vma_entry list).
import { closeSync, lstatSync, openSync, readFileSync, readlinkSync, statSync, statfsSync } from 'node:fs';
import { parseMaps, type Vma } from '../proc/maps.js';
import { MAP, MAP_HUGE_SHIFT, PROT, MADV, MREMAP, O, NR, PR, PR_SET_MM_MAP, PAGE_IS, pagemapScan } from '../sys/index.js';
import type { Remote } from '../tracer/remote.js';
import {
  create, VmaEntrySchema, type VmaEntry, type MmEntry, type AioRingEntry,
  VMA_AREA_REGULAR, VMA_AREA_STACK, VMA_AREA_VSYSCALL, VMA_AREA_VDSO, VMA_AREA_VVAR, VMA_AREA_AIORING, VMA_AREA_GUARD, VMA_AREA_SOCKET,
  VMA_AREA_HEAP, VMA_AREA_SYSVIPC, VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_ANON_PRIVATE, VMA_AREA_MEMFD,
} from '../images/index.js';
import type { RegDumpEnv } from './files/kind.js';
import { dumpRegFile } from './files/reg.js';
import { dumpMemfdMapping, isAnonShmemLink, isMemfdLink, isShmemObject } from './files/memfd.js';
import { aioRingEntry } from './aio.js';
import { CryoError } from '../context.js';
import { fdLinks } from '../proc/fds.js';

const VMFLAG_MAP: Record<string, number> = { gd: MAP.GROWSDOWN, lo: MAP.LOCKED, nr: MAP.NORESERVE, ht: MAP.HUGETLB };
const VMFLAG_MADV: Record<string, number> = {
  sr: MADV.SEQUENTIAL, rr: MADV.RANDOM, dc: MADV.DONTFORK, dd: MADV.DONTDUMP,
  mg: MADV.MERGEABLE, hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE, wf: MADV.WIPEONFORK,
};
/** Where an AIO ring lives (statfs type of its map_files link). */
const AIO_RING_MAGIC = 0xa10a10a1;

export function readVmas(pid: number): Vma[] {
  return parseMaps(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}

function protOf(perms: string): number {
  return (perms[0] === 'r' ? PROT.READ : 0) | (perms[1] === 'w' ? PROT.WRITE : 0) | (perms[2] === 'x' ? PROT.EXEC : 0);
}

/** The mmap flags and madvise bits a VMA's VmFlags stand for (MAP_HUGETLB with its page size). */
function flagsOf(v: Vma): { flags: number; madv: bigint } {
  let flags: number = v.perms[3] === 's' ? MAP.SHARED : MAP.PRIVATE;
  let madv = 0n;
  for (const f of v.vmFlags) {
    if (VMFLAG_MAP[f]) flags |= VMFLAG_MAP[f]!;
    if (VMFLAG_MADV[f] !== undefined) madv |= 1n << BigInt(VMFLAG_MADV[f]!);
    // A mapping type of its own, as MAP_PRIVATE is (CRIU keeps it so).
    if (f === 'dp') flags = (flags & ~MAP.PRIVATE) | MAP.DROPPABLE;
  }
  if (flags & MAP.HUGETLB && v.kernelPageKb > 0) flags |= Math.log2(v.kernelPageKb * 1024) << MAP_HUGE_SHIFT;
  return { flags, madv };
}

/** The access mode of the file behind a mapping: its map_files link shows it (CRIU's fdflags). */
function fdflagsOf(mapPath: string): number {
  const m = lstatSync(mapPath).mode & 0o600;
  return m === 0o600 ? O.RDWR : m === 0o200 ? O.WRONLY : O.RDONLY;
}

/**
 * Turn the parsed VMAs of a task into CRIU vma_entry messages. File-backed VMAs get
 * a reg-file (or memfd) entry in `env.files` (shmid is its id); deleted files get
 * their remap (ghost file or link). [vvar] and [vvar_vclock] are
 * merged into one VMA_AREA_VVAR entry, as CRIU does. Shared anonymous memory (also
 * MAP_HUGETLB) is VMA_ANON_SHARED by inode, but an object in `shmemAsMemfd` (see
 * shmemUsedAsFiles) is a memfd, every mapping of it a memfd mapping. AIO rings
 * are VMA_AREA_AIORING and go into `aios`.
 */
export function vmaEntries(
  pid: number, vmas: Vma[], env: RegDumpEnv, heap: { start: bigint; end: bigint }, aios: AioRingEntry[] = [],
  shmemAsMemfd: ReadonlySet<number> = new Set(),
): VmaEntry[] {
  const out: VmaEntry[] = [];
  for (const v of vmas) {
    const prot = protOf(v.perms);
    const shared = v.perms[3] === 's';
    const { flags, madv } = flagsOf(v);
    const e = create(VmaEntrySchema, {
      start: v.start, end: v.end, pgoff: v.pgoff, shmid: 0n, prot, flags, status: 0, fd: -1n,
    });
    if (madv) e.madv = madv;
    const at = `0x${v.start.toString(16)}`;
    // The kernel's uprobe slots: CRIU takes them only with --allow-uprobes, cryo not yet.
    if (v.name === '[uprobes]') {
      throw new CryoError(`task ${pid}: a uprobe is attached (the [uprobes] mapping at ${at}), which cryo does not support yet`);
    }
    if (v.vmFlags.includes('io') || v.vmFlags.includes('pf')) {
      // Device memory (VM_IO/VM_PFNMAP) cannot be read back: CRIU refuses it too.
      if (v.name !== '[vvar]' && v.name !== '[vvar_vclock]' && !shared) throw new CryoError(`task ${pid}: the mapping ${v.name || '(anonymous)'} at ${at} is device memory (VM_IO/VM_PFNMAP), which cannot be dumped`);
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
    } else if (v.inode !== 0 || v.name.startsWith('/')) {
      const mapPath = `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`;
      if (v.name.startsWith('/[aio]') && statfsSync(mapPath).type === AIO_RING_MAGIC) {
        // Only its pages and size are kept; restore makes a new ring (io_setup) and moves it here.
        e.status = VMA_AREA_AIORING;
        e.fdflags = fdflagsOf(mapPath);
        aios.push(aioRingEntry(pid, v.start, v.end));
        out.push(e);
        continue;
      }
      let st;
      try {
        st = statSync(mapPath);
      } catch {
        throw new CryoError(`task ${pid}: cannot stat mapping ${v.name} at ${at}`);
      }
      const link = readlinkSync(mapPath);
      const isDevZero = st.isCharacterDevice() && v.name.startsWith('/dev/zero');
      // The object of MAP_SHARED|MAP_ANONYMOUS (or MAP_HUGETLB) memory, or a SysV segment.
      const anonObject = st.isFile() && isAnonShmemLink(link) && isShmemObject(link, mapPath, st);
      if (st.isFile() && link.startsWith('/SYSV')) {
        // A SysV segment (shmat): its inode number is its id; the contents are the
        // namespace's (ipcns-shm), the restore attaches it again.
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_SHARED | VMA_AREA_SYSVIPC;
        e.shmid = BigInt(st.ino);
        e.fdflags = fdflagsOf(mapPath);
      } else if (anonObject && shared && !shmemAsMemfd.has(st.ino)) {
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
        e.shmid = BigInt(st.ino);
      } else if (anonObject && !shared && link === '/anon_hugepage (deleted)' && !shmemAsMemfd.has(st.ino)) {
        // MAP_PRIVATE|MAP_HUGETLB anonymous memory: private pages like any other.
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
      } else if (isDevZero) {
        e.flags |= MAP.ANONYMOUS;
        e.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
      } else {
        if (st.isSocket()) {
          // A packet socket's ring, as CRIU keeps it: no pages (they are the
          // socket's), the socket's file id; mapped again from its fd.
          const id = env.files.lookup(`packet:${st.ino}`);
          if (id === undefined) throw new CryoError(`task ${pid}: the ring of ${link} is mapped at ${at}, but no fd of the tree holds the socket`);
          e.status = VMA_AREA_REGULAR | VMA_AREA_SOCKET;
          e.shmid = BigInt(id);
          out.push(e);
          continue;
        }
        if (!st.isFile()) throw new CryoError(`task ${pid}: mapping of ${v.name} is not a regular file`);
        // Opened as the task had it: a later mprotect(PROT_WRITE) of a shared mapping needs O_RDWR.
        const fdflags = fdflagsOf(mapPath);
        e.fdflags = fdflags;
        e.status = VMA_AREA_REGULAR | (shared ? VMA_FILE_SHARED : VMA_FILE_PRIVATE);
        const src = { pid, proc: mapPath, link, st, what: `the mapping at ${at}` };
        if (isMemfdLink(link) || anonObject) {
          // A memfd, or a private mapping of shared anonymous memory (one object with its shared mappings).
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

/**
 * Shared anonymous memory objects (by inode) that some task of the tree maps
 * privately or has open (an fd of /proc/PID/map_files): these are kept as memfds,
 * every mapping of them a memfd mapping, as CRIU 4 keeps all of them, so that
 * either restores them as one object. The others stay VMA_ANON_SHARED.
 */
export function shmemUsedAsFiles(pids: number[]): Set<number> {
  const out = new Set<number>();
  const named = (link: string) => isAnonShmemLink(link);
  for (const pid of pids) {
    try {
      for (const v of parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'))) {
        if (v.perms[3] === 'p' && v.inode && named(v.name)) out.add(v.inode);
      }
      for (const { fd, link } of fdLinks(pid)) {
        if (named(link)) out.add(statSync(`/proc/${pid}/fd/${fd}`).ino);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // a task gone is reported where it is dumped
    }
  }
  return out;
}

/**
 * madvise(MADV_GUARD_INSTALL) regions, as CRIU keeps them: VMA_AREA_GUARD entries
 * after the VMAs (PAGEMAP_SCAN finds them; a kernel without guard regions has none).
 */
export function guardEntries(pid: number): VmaEntry[] {
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const regions = pagemapScan(fd, 0n, TASK_SIZE, { inverted: 0n, mask: PAGE_IS.GUARD, anyof: 0n, ret: PAGE_IS.GUARD });
    return (regions ?? []).map((r) => create(VmaEntrySchema, {
      start: r.start, end: r.end, pgoff: 0n, shmid: 0n, prot: 0, flags: 0, status: VMA_AREA_GUARD, fd: -1n,
    }));
  } finally {
    closeSync(fd);
  }
}

/** membarrier() commands, and what a task registered for (MEMBARRIER_CMD_REGISTER_* bits). */
const MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;
const MEMBARRIER_REGISTER_CMDS = [1 << 2, 1 << 4, 1 << 6, 1 << 8];

/**
 * The membarrier() registrations of the task's mm, as CRIU keeps them: asked of the
 * kernel, or where it cannot tell (before 6.3) found by issuing each barrier, which
 * only a registered task may.
 */
export function membarrierMask(rem: Remote): number {
  const r = rem.callRaw(NR.membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
  if (r >= 0n) return Number(r);
  let mask = 0;
  for (const reg of MEMBARRIER_REGISTER_CMDS) if (rem.callRaw(NR.membarrier, reg >> 1, 0, 0) === 0n) mask |= reg;
  return mask;
}

/** The user address space of x86_64 (4-level paging). */
const TASK_SIZE = 0x7ffffffff000n;

/** VMAs whose contents go to the task's own pagemap (private memory, AIO rings). A
 * MAP_DROPPABLE mapping's contents are not kept: the kernel may drop them any time. */
export function hasPrivatePages(e: VmaEntry): boolean {
  if (e.flags & MAP.DROPPABLE && !(e.flags & MAP.SHARED)) return false;
  if (e.status & VMA_AREA_AIORING) return true;
  return (e.status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)) !== 0 && (e.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)) === 0;
}
