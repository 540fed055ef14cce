// Checks of a whole images directory, run after every image is read and before
// the restore creates anything: every id an entry names exists, the pages files
// hold exactly what the pagemaps promise, and counts and sizes are within what
// the kernel (and CRIU) allow. A problem is one ImageError naming the image and
// what is wrong in it. The fd kinds check their own files.img entries (check()
// in src/objects/files/); this file checks what ties the images together.
import { RLIM_NLIMITS } from '../objects/rlimits.js';
import { imagePersonality } from '../objects/prctl.js';
import { readFileSync, statSync } from 'node:fs';
import {
  CoreEntry_March, FdTypes, RegFileEntrySchema, ImageError, PagemapEntrySchema, PE_PARENT, PE_PRESENT, isFieldSet, isZombieState,
  VMA_AREA_MEMFD, VMA_AREA_VDSO, VMA_AREA_VSYSCALL, VMA_AREA_VVAR, VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_AREA_GUARD, VMA_AREA_AIORING, VMA_AREA_SOCKET,
  type FileEntry, type ImageDir, type InventoryEntry, type MemfdInodeEntry, type PagemapEntry, type TaskKobjIdsEntry,
  type PstreeEntry, type SeccompFilter, SeccompFilterSchema, SeccompMode,
} from '../images/index.js';
import { hexId, type CheckFilesEnv, type KindStore } from '../objects/files/kind.js';
import { checkFileEntries, fdKindName } from '../objects/files/fds.js';
import { carriersOf, homeOf, queuedRights } from '../objects/files/inflight.js';
import { skQueuesOf } from '../objects/files/unix-restore.js';
import { hasPrivatePages } from '../objects/mm.js';
import type { TaskImages } from './task.js';

/** The kernel's hard limit on pids (PID_MAX_LIMIT on 64-bit). */
const PID_MAX_LIMIT = 4 * 1024 * 1024;
/** CRIU's AT_VECTOR_SIZE on x86_64: the most auxv words it restores. */
const AT_VECTOR_SIZE = 44;
/** The most requests one AIO ring may be set up with (fs.aio-max-nr is 65536 by default). */
const MAX_AIO_REQS = 1 << 24;
const NSIG = 64;
/** The top of a task's address space (x86_64 TASK_SIZE with 4-level page tables, 5-level: below 2^56). */
const TASK_SIZE = 1n << 56n;
const PAGE = 4096n;
const FD_CLOEXEC = 1;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** What the checks see: everything loadImages() read. */
export interface ImagesToCheck {
  tasks: TaskImages[];
  files: Map<number, FileEntry>;
  kinds: KindStore;
  memfdInodes: MemfdInodeEntry[];
  memfdContents: Map<number, { pagesId: number; runs: PagemapEntry[] }>;
  seccomp: SeccompFilter[];
}

export interface CheckOptions {
  /** --inherit-fd keys, without a leading slash. */
  inherited: ReadonlySet<string>;
  extUnixSk: boolean;
}

function bad(file: string, what: string): ImageError {
  return new ImageError('IMG_INVALID', file, undefined, what);
}

/** Index entries by id; two entries with one id are a damaged image. */
export function byId<T extends { id: number }>(entries: readonly T[], file: string, what = 'id'): Map<number, T> {
  const m = new Map<number, T>();
  for (const e of entries) {
    if (m.has(e.id)) throw bad(file, `two entries with ${what} ${hexId(e.id)}`);
    m.set(e.id, e);
  }
  return m;
}

/** inventory.img as CRIU's check_img_inventory() wants it. */
export function checkInventory(inv: InventoryEntry): void {
  // Version 1 images have no common magic, which cryo cannot read anyway.
  if (inv.imgVersion !== 2) throw bad('inventory.img', `images version ${inv.imgVersion} is not supported (want 2)`);
  if (!inv.fdinfoPerId) throw bad('inventory.img', 'too old images (no fdinfo_per_id), no longer supported');
}

/**
 * The ids of a live task: ids-PID.img whenever it exists (CRIU reads only that),
 * else those of its core (older images); CRIU requires ids-PID.img of the root.
 */
export function taskIds(dir: ImageDir, pid: number, isRoot: boolean, fromCore: TaskKobjIdsEntry | undefined): TaskKobjIdsEntry {
  const file = dir.fileName('ids', pid);
  const own = dir.exists('ids', pid) ? dir.readOne('ids', pid) : undefined;
  if (!own && isRoot) throw new ImageError('IMG_MISSING', file, undefined, `no such image in ${dir.path} (the root task's ids are only there)`);
  const ids = own ?? fromCore;
  if (!ids) throw new ImageError('IMG_MISSING', file, undefined, `no such image in ${dir.path}, and ${dir.fileName('core', pid)} carries no ids either`);
  if (own && fromCore) {
    for (const k of ['vmId', 'filesId', 'fsId', 'sighandId'] as const) {
      if (own[k] !== fromCore[k]) throw bad(file, `${k} ${own[k]} differs from the ${fromCore[k]} of ${dir.fileName('core', pid)}`);
    }
  }
  return ids;
}

/** Pages in a pagemap entry: nr_pages (CRIU 3.16+), else the old 32-bit field. */
function runPages(r: PagemapEntry): bigint {
  return isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages);
}

/** The runs of one pagemap: page aligned, ascending, non-empty, in the file; returns the bytes they take. */
function checkRuns(file: string, runs: PagemapEntry[], limit: bigint, inside?: (start: bigint, end: bigint) => boolean, limitIs = `0x${limit.toString(16)}`): bigint {
  let prev = 0n;
  let bytes = 0n;
  for (const r of runs) {
    const n = runPages(r);
    const at = `entry at 0x${r.vaddr.toString(16)}`;
    if (r.flags & PE_PARENT || !(r.flags & PE_PRESENT)) throw bad(file, `${at}: pages in a parent image or lazy pages (flags 0x${r.flags.toString(16)}), which cryo does not support yet`);
    if (r.vaddr % PAGE) throw bad(file, `${at} is not page aligned`);
    if (n <= 0n) throw bad(file, `${at} has ${n} pages`);
    const end = r.vaddr + n * PAGE;
    if (end > limit) throw bad(file, `${at}: ${n} pages reach past ${limitIs}`);
    if (r.vaddr < prev) throw bad(file, `${at} overlaps or precedes the entry before it`);
    if (inside && !inside(r.vaddr, end)) throw bad(file, `${at}: ${n} pages are not inside the private memory of the task's mm`);
    prev = end;
    bytes += n * PAGE;
  }
  return bytes;
}

/** Each pages-N.img is used by one pagemap and holds exactly its pages. */
function checkPagesFiles(dir: ImageDir, users: Map<number, { file: string; bytes: bigint }>, pagemap: string, pagesId: number, bytes: bigint): void {
  const other = users.get(pagesId);
  if (other) throw bad(pagemap, `its pages_id ${pagesId} is also that of ${other.file}`);
  users.set(pagesId, { file: pagemap, bytes });
  const file = dir.fileName('pages', pagesId);
  let size: bigint;
  try {
    size = BigInt(statSync(dir.pathOf('pages', pagesId)).size);
  } catch {
    if (bytes === 0n) return;
    throw new ImageError('IMG_MISSING', file, undefined, `no such image in ${dir.path} (${pagemap} promises ${bytes / PAGE} pages in it)`);
  }
  if (size % PAGE) throw bad(file, `${size} bytes is not a whole number of pages`);
  if (size !== bytes) throw bad(file, `holds ${size / PAGE} pages, ${pagemap} promises ${bytes / PAGE}`);
}

/** A task's mm: VMAs in order and in range, every file they and the exe link name. */
function checkMm(dir: ImageDir, t: TaskImages, files: Map<number, FileEntry>, maxMaps: number): Array<[bigint, bigint]> {
  const mm = t.mm!;
  const file = dir.fileName('mm', t.pstree.pid);
  if (mm.vmas.length > maxMaps) throw bad(file, `${mm.vmas.length} VMAs, more than vm.max_map_count ${maxMaps}`);
  if (mm.mmSavedAuxv.length > AT_VECTOR_SIZE) throw bad(file, `${mm.mmSavedAuxv.length} auxv words, more than ${AT_VECTOR_SIZE}`);
  const fileRef = (id: number, what: string, memfd: boolean) => {
    const fe = files.get(id);
    if (!fe) throw bad(file, `${what} ${hexId(id)} names no entry of files.img`);
    if (!(fe.reg || fe.memfd) || (memfd && !fe.memfd)) throw bad(file, `${what} ${hexId(id)} is a ${FdTypes[fe.type] ?? fe.type} entry, not a ${memfd ? 'memfd' : 'file'}`);
  };
  fileRef(mm.exeFileId, 'exe_file_id', false);
  // Private memory, merged where VMAs touch: where the pagemap's runs may lie.
  const priv: Array<[bigint, bigint]> = [];
  let prevEnd = 0n;
  const guards: Array<[bigint, bigint]> = [];
  for (const v of mm.vmas) {
    const at = `VMA 0x${v.start.toString(16)}-0x${v.end.toString(16)}`;
    const special = (v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)) !== 0;
    if (v.start % PAGE || v.end % PAGE || v.start >= v.end) throw bad(file, `${at} is empty or not page aligned`);
    // Guard regions follow the VMAs (as CRIU writes them), each inside one.
    if (v.status === VMA_AREA_GUARD) {
      guards.push([v.start, v.end]);
      continue;
    }
    if (guards.length) throw bad(file, `${at} follows a guard region`);
    // A SysV attachment (VMA_AREA_SYSVIPC) is checked against the ipc namespace's segments (restore.ts).
    if (v.end > TASK_SIZE && !(v.status & VMA_AREA_VSYSCALL)) throw bad(file, `${at} is beyond the address space`);
    if (v.start < prevEnd) throw bad(file, `${at} overlaps or precedes the VMA before it`);
    prevEnd = v.end;
    if (v.pgoff % PAGE) throw bad(file, `${at}: offset 0x${v.pgoff.toString(16)} is not page aligned`);
    if (!special && v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) fileRef(Number(v.shmid), `${at}: shmid`, (v.status & VMA_AREA_MEMFD) !== 0);
    if (v.status & VMA_AREA_SOCKET && !files.get(Number(v.shmid))?.psk) throw bad(file, `${at}: a socket mapping whose shmid ${hexId(Number(v.shmid))} names no packet socket of files.img`);
    if (hasPrivatePages(v) || special) {
      const last = priv[priv.length - 1];
      if (last && last[1] === v.start) last[1] = v.end;
      else priv.push([v.start, v.end]);
    }
  }
  const all: Array<[bigint, bigint]> = [];
  for (const v of mm.vmas) {
    if (v.status === VMA_AREA_GUARD) continue;
    const last = all[all.length - 1];
    if (last && last[1] === v.start) last[1] = v.end;
    else all.push([v.start, v.end]);
  }
  for (const [s, e] of guards) {
    if (!within(all, s, e)) throw bad(file, `guard region 0x${s.toString(16)}-0x${e.toString(16)} is not inside the task's VMAs`);
  }
  for (const a of mm.aios) {
    const ring = mm.vmas.find((v) => v.start === a.id && v.status & VMA_AREA_AIORING);
    if (!ring || ring.end - ring.start !== BigInt(a.ringLen)) throw bad(file, `AIO ring 0x${a.id.toString(16)} of ${a.ringLen} bytes is no AIO ring VMA`);
    if (a.nrReq <= 0 || a.nrReq > MAX_AIO_REQS) throw bad(file, `AIO ring 0x${a.id.toString(16)} asks for ${a.nrReq} requests`);
  }
  return priv;
}

/** Is [start, end) inside one of the sorted, disjoint ranges? */
function within(ranges: Array<[bigint, bigint]>, start: bigint, end: bigint): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [s, e] = ranges[mid]!;
    if (start < s) hi = mid - 1;
    else if (start >= e) lo = mid + 1;
    else return end <= e;
  }
  return false;
}

function readLimit(path: string, fallback: number): number {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

const pidOk = (n: number) => Number.isInteger(n) && n > 0 && n <= PID_MAX_LIMIT;

/**
 * One thread that is not the task itself: only a zombie is listed so (checkTree
 * holds every live task to list itself). CRIU writes whatever its memory held
 * there (seize.c sets a zombie's thread's real pid, never its virtual one): 0,
 * or any number at all. Such a thread id means nothing and names no core.
 */
export function listedAsZombie(p: PstreeEntry): boolean {
  return p.threads.length === 1 && p.threads[0] !== p.pid;
}

/** pstree.img on its own (before any core is read): pids and tids unique and in range. */
export function checkPstree(pstree: PstreeEntry[]): void {
  const file = 'pstree.img';
  const seen = new Map<number, string>();
  const threadsMax = readLimit('/proc/sys/kernel/threads-max', PID_MAX_LIMIT);
  for (const p of pstree) {
    if (!pidOk(p.pid)) throw bad(file, `task pid ${p.pid} is out of range`);
    if (p.threads.length > threadsMax) throw bad(file, `task ${p.pid}: ${p.threads.length} threads, more than kernel.threads-max ${threadsMax}`);
    // 0: a session or group of outside the task's pid namespace.
    if (!(p.pgid === 0 || pidOk(p.pgid)) || !(p.sid === 0 || pidOk(p.sid))) throw bad(file, `task ${p.pid}: pgid ${p.pgid} or sid ${p.sid} is out of range`);
    if (seen.has(p.pid)) throw bad(file, `pid ${p.pid} is listed twice (also ${seen.get(p.pid)})`);
    seen.set(p.pid, 'a task');
    if (new Set(p.threads).size !== p.threads.length) throw bad(file, `task ${p.pid}: a thread is listed twice`);
    if (listedAsZombie(p)) continue;
    for (const tid of p.threads) {
      if (tid === p.pid) continue;
      if (!pidOk(tid)) throw bad(file, `task ${p.pid}: thread id ${tid} is out of range`);
      if (seen.has(tid)) throw bad(file, `task ${p.pid}: thread ${tid} is listed twice (also ${seen.get(tid)})`);
      seen.set(tid, `a thread of ${p.pid}`);
    }
  }
}

/** The tree with its cores: every parent a live task listed before its children, live tasks among their threads. */
function checkTree(tasks: TaskImages[]): void {
  const file = 'pstree.img';
  const live = new Set<number>();
  tasks.forEach((t, i) => {
    const p = t.pstree;
    if (i > 0 && !live.has(p.ppid)) throw bad(file, `task ${p.pid}: its parent ${p.ppid} is not a live task listed before it`);
    if (isZombieState(t.core.tc?.taskState)) return;
    live.add(p.pid);
    if (!p.threads.includes(p.pid)) throw bad(file, `task ${p.pid} is not among its own threads`);
    if (p.threads.includes(0)) throw bad(file, `task ${p.pid}: thread id 0 (only a zombie's thread is listed so)`);
  });
}

/** A core entry restore can use: x86_64, and for a live thread its registers and seccomp chain. */
function checkCore(dir: ImageDir, tid: number, core: TaskImages['core'], leader: boolean, zombie: boolean, filters: SeccompFilter[]): void {
  const file = dir.fileName('core', tid);
  if (core.mtype !== CoreEntry_March.X86_64) throw bad(file, `core of architecture ${CoreEntry_March[core.mtype] ?? core.mtype}, not X86_64`);
  if (leader && !core.tc) throw bad(file, 'no task core (tc)');
  if (zombie) return;
  const ti = core.threadInfo;
  if (!ti?.gpregs || !ti.fpregs) throw bad(file, 'no registers (thread_info with gpregs and fpregs)');
  const th = core.threadCore;
  if (th?.seccompMode === SeccompMode.filter) {
    // Each filter names the one after it (prev, when set, as CRIU): the chain ends, within seccomp.img.
    let n = 0;
    for (let i: number | undefined = th.seccompFilter; i !== undefined; n++) {
      const f: SeccompFilter | undefined = filters[i];
      if (!f) throw bad(file, `seccomp filter ${i} names no entry of seccomp.img`);
      if (n > filters.length) throw bad(file, 'its seccomp filter chain in seccomp.img loops');
      i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
    }
  }
  if (!leader) return;
  const tc = core.tc!;
  imagePersonality(tc.personality, file);
  if (tc.sigactions.length > NSIG) throw bad(file, `${tc.sigactions.length} signal actions, more than ${NSIG}`);
  if ((tc.rlimits?.rlimits.length ?? 0) > RLIM_NLIMITS) throw bad(file, `${tc.rlimits!.rlimits.length} rlimits, more than ${RLIM_NLIMITS}`);
}

/**
 * Every check across images. Throws the first problem found, as an ImageError
 * naming the image; returns when the images are fit to restore.
 */
export function validateImages(dir: ImageDir, im: ImagesToCheck, opts: CheckOptions): void {
  const { files } = im;
  checkTree(im.tasks);
  const nrOpen = readLimit('/proc/sys/fs/nr_open', 1 << 20);
  const maxMaps = readLimit('/proc/sys/vm/max_map_count', 65530);
  const pagesUsers = new Map<number, { file: string; bytes: bigint }>();
  // The fds of the first task holding each file: where the file's afterPlant runs.
  const firstHolder = new Map<number, Set<number>>();
  const fdinfoSeen = new Set<number>();
  const shmemSeen = new Set<bigint>();
  for (const t of im.tasks) {
    const pid = t.pstree.pid;
    const zombie = isZombieState(t.core.tc?.taskState);
    checkCore(dir, pid, t.core, true, zombie, im.seccomp);
    for (const [tid, core] of t.threadCores) checkCore(dir, tid, core, false, zombie, im.seccomp);
    if (zombie) continue;
    const ids = t.core.ids!;
    const priv = checkMm(dir, t, files, maxMaps);
    const pm = dir.fileName('pagemap', pid);
    const bytes = checkRuns(pm, t.pagemap!.runs, TASK_SIZE, (s, e) => within(priv, s, e));
    checkPagesFiles(dir, pagesUsers, pm, t.pagemap!.pagesId, bytes);
    for (const [shmid, sm] of t.shmem ?? []) {
      if (shmemSeen.has(shmid)) continue; // one object for every task that maps it
      shmemSeen.add(shmid);
      const f = dir.fileName('shmemPagemap', shmid);
      checkPagesFiles(dir, pagesUsers, f, sm.pagesId, checkRuns(f, sm.runs, TASK_SIZE));
    }
    const fsFile = dir.fileName('fs', pid);
    for (const [what, id] of [['cwd_id', t.fs!.cwdId], ['root_id', t.fs!.rootId]] as const) {
      const fe = files.get(id);
      if (!fe) throw bad(fsFile, `${what} ${hexId(id)} names no entry of files.img`);
      if (!fe.reg) throw bad(fsFile, `${what} ${hexId(id)} is a ${FdTypes[fe.type] ?? fe.type} entry, not a directory`);
      // The mode is there in CRIU's entries (cryo's leave it out for directories).
      if (isFieldSet(fe.reg, RegFileEntrySchema.field.mode) && (fe.reg.mode & S_IFMT) !== S_IFDIR) {
        throw bad(fsFile, `${what} ${hexId(id)} is ${fe.reg.name}, which is no directory`);
      }
    }
    if (t.fs!.umask > 0o777) throw bad(fsFile, `umask 0${t.fs!.umask.toString(8)} is out of range`);
    // Tasks sharing an fd table share one fdinfo image: check it once.
    if (fdinfoSeen.has(ids.filesId)) continue;
    fdinfoSeen.add(ids.filesId);
    const fdFile = dir.fileName('fdinfo', ids.filesId);
    const fds = new Set<number>();
    for (const f of t.fdinfo!) {
      if (!Number.isInteger(f.fd) || f.fd < 0 || f.fd >= nrOpen) throw bad(fdFile, `fd ${f.fd} is out of range (fs.nr_open ${nrOpen})`);
      if (fds.has(f.fd)) throw bad(fdFile, `fd ${f.fd} is listed twice`);
      fds.add(f.fd);
      if (f.flags & ~FD_CLOEXEC) throw bad(fdFile, `fd ${f.fd}: fd flags 0x${f.flags.toString(16)}`);
      const fe = files.get(f.id);
      if (!fe) throw bad(fdFile, `fd ${f.fd}: file id ${hexId(f.id)} names no entry of files.img`);
      if (fe.type !== f.type) throw bad(fdFile, `fd ${f.fd}: type ${FdTypes[f.type] ?? f.type}, but file id ${hexId(f.id)} is ${FdTypes[fe.type] ?? fe.type}`);
      if (!fdKindName(fe.type)) throw bad(fdFile, `fd ${f.fd}: fd kind ${FdTypes[fe.type] ?? fe.type} is not supported yet`);
      if (!firstHolder.has(f.id)) firstHolder.set(f.id, fds);
    }
  }
  // memfds: each inode once, its contents within its size.
  const memfdInodes = new Map<number, MemfdInodeEntry>();
  for (const m of im.memfdInodes) {
    const id = Number(m.inodeId);
    if (memfdInodes.has(id)) throw bad('memfd.img', `two entries with inode id ${hexId(id)}`);
    memfdInodes.set(id, m);
    const c = im.memfdContents.get(Number(m.shmid));
    // Shared anonymous memory mapped privately too: its contents were checked with its VMAs.
    if (!c || shmemSeen.has(BigInt(m.shmid))) continue;
    const f = dir.fileName('shmemPagemap', m.shmid);
    const limit = ((m.size + PAGE - 1n) / PAGE) * PAGE;
    checkPagesFiles(dir, pagesUsers, f, c.pagesId, checkRuns(f, c.runs, limit, undefined, `the memfd's size ${m.size} in memfd.img`));
  }
  const carriers = carriersOf(queuedRights(skQueuesOf(im.kinds)));
  const env: CheckFilesEnv = {
    files, memfdInodes, kinds: im.kinds,
    inherited: opts.inherited, extUnixSk: opts.extUnixSk,
    // A file in flight (an epoll in a socket's queue) is finished by its home task.
    fdsOf: (id) => homeOf(id, { holder: (x) => firstHolder.get(x), carriers }),
    mntNsOf: (mntId) => {
      // Read once, when asked: the mount namespace images the tasks name (a tree without any has none).
      if (!mntNs) {
        const m = new Map<number, number>();
        for (const id of new Set(im.tasks.flatMap((t) => (t.core.ids ? [t.core.ids.mntNsId] : [])))) {
          for (const e of dir.tryRead('mnts', id) ?? []) m.set(e.mntId, id);
        }
        mntNs = m;
      }
      return mntNs.get(mntId);
    },
  };
  let mntNs: Map<number, number> | undefined;
  checkFileEntries(env);
}
