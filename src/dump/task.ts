// Dumping one task: everything per process (core, mm, pagemap, pages, fds, fs).
import type { MntNsDump } from '../objects/mntns/dump.js';
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { NR, PR, kcmp, KCMP, O } from '../sys/index.js';
import {
  create, type ImageDir, CoreEntrySchema, CoreEntry_March, TaskCoreEntrySchema, ThreadCoreEntrySchema,
  TaskKobjIdsEntrySchema,
  MmEntrySchema, PagemapHeadSchema, PagemapEntrySchema,
  VMA_ANON_SHARED, VMA_AREA_SYSVIPC, VMA_AREA_VDSO, type AioRingEntry, TASK_ALIVE, TASK_STOPPED, PE_PRESENT, type TaskKobjIdsEntry, type CoreEntry, type ThreadInfoX86,
} from '../images/index.js';
import { parseStatus } from '../proc/stat.js';
import type { Context } from '../context.js';
import { CryoError } from '../context.js';
import { readVmas, vmaEntries, hasPrivatePages, guardEntries, membarrierMask } from '../objects/mm.js';
import { scanPages, dumpPages, type FdBridge, type PageRun } from '../objects/pages.js';
import { pagemapEntries, type DumpTracking } from '../objects/track.js';
import { threadInfo, readXstate, readTls, type XsaveLayout } from '../objects/regs.js';
import { restartAdjusted, RemoteError, type Remote } from '../tracer/remote.js';
import { dumpFds, dumpLocks } from '../objects/files/fds.js';
import type { FileTable } from '../objects/files/table.js';
import type { Irmap } from '../objects/files/irmap.js';
import type { DumpFilesEnv } from '../objects/files/kind.js';
import { dumpRegFile } from '../objects/files/reg.js';
import { isMemfdLink, writeShmemObject } from '../objects/files/memfd.js';
import { checkAttachments } from '../objects/ipcns.js';
import type { CgroupDump } from '../objects/cgroup.js';
import { takeRemote, takeThreadRemote, type FrozenTask } from './freeze.js';
import { FI, injectFailure } from '../fault.js';
import type { SeccompTable } from '../objects/seccomp.js';
import { dumpRseq, type RseqState } from '../objects/thread-state.js';
import { TASK_STATE, type TaskDump, type ThreadDump } from '../objects/task-state.js';
import { IdView, type UserNs } from '../objects/userns.js';

/** State shared by all tasks of one dump. */
/** The page counters of stats-dump, as CRIU keeps them: private pages, then shared memory (shmem, memfds). */
export interface DumpCounters {
  pagesScanned: bigint;
  pagesWritten: bigint;
  shpagesScanned: bigint;
  shpagesWritten: bigint;
  memdumpUs: number;
  memwriteUs: number;
}

export interface DumpState {
  dir: ImageDir;
  files: FileTable;
  /** Paths of inotify/fanotify watches found by scanning. */
  irmap: Irmap;
  nextPagesId: number;
  nextObjId: number;
  nsIds: Map<string, number>;
  /** seccomp.img: the filters of every thread. */
  seccomp: SeccompTable;
  /** The fd table id (files_id) of each task seen, by pid: tasks sharing one table (CLONE_FILES) share the id. */
  fdTables: Map<number, number>;
  /** Shared anonymous memory objects already saved (by shmid). */
  shmemDone: Set<bigint>;
  /** Shared anonymous memory objects kept as memfds (by inode): mapped privately or open somewhere. */
  shmemAsMemfd: Set<number>;
  /** cgroup sets of the threads (cg_set), and the groups with --manage-cgroups. */
  cgroups: CgroupDump;
  stats: DumpCounters;
  /** The tree's own ipc namespace: its mqueue file system's device and its id (its queues' descriptors). */
  mqueue?: { dev: number; nsId: number };
  /** The SysV segments of the tree's own ipc namespace (id to size); undefined when it is cryo's. */
  sysvShm?: Map<bigint, bigint>;
  /** The tree's own mount namespace, when it has one. */
  mntns?: MntNsDump;
  /** The tree's own user namespace, when it has one: its maps give the tree's view of ids. */
  userns?: UserNs;
  /** --track-mem / --prev-images-dir: which pages are in the parent, and tracking for the next dump. */
  track?: DumpTracking;
}


/** The images' id of the namespace whose /proc/PID/ns link is `link`. */
export function nsIdOf(link: string, st: DumpState): number {
  let v = st.nsIds.get(link);
  if (v === undefined) {
    v = st.nextObjId++;
    st.nsIds.set(link, v);
  }
  return v;
}

function nsIds(pid: number, st: DumpState): Record<string, number> {
  const id = (ns: string) => nsIdOf(readlinkSync(`/proc/${pid}/ns/${ns}`), st);
  // Where it is not the task's own: a pid namespace of the tree's (checkDumpNamespaces).
  const forChildren: Record<string, number> = readlinkSync(`/proc/${pid}/ns/pid_for_children`) !== readlinkSync(`/proc/${pid}/ns/pid`) ? { cryoPidForChildrenNsId: id('pid_for_children') } : {};
  return {
    pidNsId: id('pid'), netNsId: id('net'), ipcNsId: id('ipc'), utsNsId: id('uts'),
    mntNsId: id('mnt'), userNsId: id('user'), cgroupNsId: id('cgroup'), timeNsId: id('time'), ...forChildren,
  };
}

export function taskIds(pid: number, st: DumpState): TaskKobjIdsEntry {
  const own = st.nextObjId;
  st.nextObjId += 4;
  // Tasks sharing one fd table (CLONE_FILES) share its id, as CRIU's kcmp ids.
  let filesId = own + 1;
  for (const [other, id] of st.fdTables) {
    if (sameFdTable(pid, other)) {
      filesId = id;
      break;
    }
  }
  st.fdTables.set(pid, filesId);
  return create(TaskKobjIdsEntrySchema, { vmId: own, filesId, fsId: own + 2, sighandId: own + 3, ...nsIds(pid, st) });
}


function sameFdTable(a: number, b: number): boolean {
  try {
    return kcmp(a, b, KCMP.FILES, 0, 0) === 0;
  } catch {
    return false; // one of them has no fd table any more (a zombie)
  }
}

/** CRIU's AT_VECTOR_SIZE on x86_64: how many auxv words mm.img holds. */
const AT_VECTOR_SIZE = 44;


export function makeBridge(rem: Remote): FdBridge & { done(): void } {
  let pidfd: bigint | null = null;
  let failed = false;
  return {
    taskFd(cryoFd) {
      if (failed) return null;
      try {
        if (pidfd === null) pidfd = rem.call('pidfd_open', NR.pidfd_open, process.pid, 0);
        return rem.call('pidfd_getfd', NR.pidfd_getfd, pidfd, cryoFd, 0);
      } catch (e) {
        if (!(e instanceof RemoteError)) throw e;
        failed = true; // e.g. a task of another uid may not reach into cryo
        return null;
      }
    },
    closeTaskFd(fd) {
      rem.call('close', NR.close, fd);
    },
    done() {
      if (pidfd !== null) rem.call('close', NR.close, pidfd);
      pidfd = null;
    },
  };
}

/** One thread: the table's parts of its core entry, then its registers. */
function dumpThread(t: FrozenTask, tid: number, rseq: RseqState, d: TaskDump, layout: XsaveLayout): { ti: ThreadInfoX86; th: ThreadDump; rem: Remote } {
  const rem = takeThreadRemote(t, tid);
  if (rseq.abortIp !== undefined) rem.saved.set('ip', rseq.abortIp);
  const scratch = rem.scratch(4096);
  const readU64 = (off: number) => rem.mem.read(scratch + BigInt(off), 8).readBigUInt64LE(0);
  const status = parseStatus(readFileSync(`/proc/${t.pid}/task/${tid}/status`, 'utf8'));
  const th: ThreadDump = { rem, pid: t.pid, tid, scratch, status, rseq, tcore: {} };
  for (const m of TASK_STATE) m.dumpThread?.(d, th);
  // Registers: the image holds them as the thread must resume (syscall restart applied).
  const regs = restartAdjusted(rem.saved);
  rem.call('prctl(PR_GET_TID_ADDRESS)', NR.prctl, PR.GET_TID_ADDRESS, scratch);
  const ti = threadInfo(tid, regs, readXstate(tid), layout, readU64(0), readTls(tid));
  return { ti, th, rem };
}

/** The task's thread ids as it sees them itself (in a nested pid namespace, its own namespace's), by ours. */
function ownTids(t: FrozenTask): Map<number, number> {
  if (!t.ns.levels.length) return t.ns.tids;
  return new Map([...t.ns.tidLevels].map(([tid, v]) => [tid, v.at(-1) ?? tid]));
}

export function dumpTask(t: FrozenTask, ctx: Context, st: DumpState, ids: TaskKobjIdsEntry): void {
  const pid = t.pid;
  const log = ctx.log;
  // Read the address space before our own scratch mapping appears in it.
  const vmas = readVmas(pid);
  const status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  // Before any call of ours runs in the task (see dumpRseq).
  const rseqs = new Map(t.threads.map((tid) => [tid, dumpRseq(tid)]));
  const rem = takeRemote(t);
  const scratch = rem.scratch(4096);

  const d: TaskDump = { rem, pid, vpid: t.ns.pid, scratch, status, nsTids: ownTids(t), dir: st.dir, seccomp: st.seccomp, tc: {}, mm: {}, ids: st.userns?.view ?? IdView.SAME, who: `task ${pid} (${t.stat.comm})` };
  for (const m of TASK_STATE) m.dumpTask?.(d);
  const brk = rem.call('brk', NR.brk, 0);
  const membarriers = membarrierMask(rem);
  const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
  const stat = t.stat;

  const dumped = t.threads.map((tid) => dumpThread(t, tid, rseqs.get(tid)!, d, ctx.kdat.xsaveLayout()));
  // The leader first: CRIU's layout of seccomp filters is one of the whole process.
  dumped.sort((a, b) => Number(b.th.tid === pid) - Number(a.th.tid === pid));
  for (const m of TASK_STATE) m.dumpThreads?.(d, dumped.map((x) => x.th));
  for (const { ti, th, rem: trem } of dumped) {
    const tid = th.tid;
    const tcore = create(ThreadCoreEntrySchema, { ...th.tcore, blkSigset: trem.savedSigmask, ...st.cgroups.threadField(pid, tid, `task ${pid} (${t.stat.comm})`) });
    const core: CoreEntry = tid === pid
      ? create(CoreEntrySchema, {
          mtype: CoreEntry_March.X86_64,
          threadInfo: ti,
          tc: create(TaskCoreEntrySchema, {
            ...d.tc,
            // A task stopped by job control stays stopped after restore (CRIU: stop_signo).
            taskState: t.stopSig ? TASK_STOPPED : TASK_ALIVE, exitCode: 0, flags: stat.flags,
            blkSigset: trem.savedSigmask, ...(t.stopSig ? { stopSigno: t.stopSig } : {}),
            comm,
            // Also where CRIU before 3.18 looks for the set (4.x reads thread_core's).
            ...(tcore.cgSet ? { cgSet: tcore.cgSet } : {}),
            ...(membarriers ? { membarrierRegistrationMask: membarriers } : {}),
          }),
          ids,
          threadCore: tcore,
        })
      : create(CoreEntrySchema, { mtype: CoreEntry_March.X86_64, threadInfo: ti, threadCore: tcore });
    st.dir.write('core', [core], t.ns.tids.get(tid) ?? tid);
  }
  // CRIU reads a task's ids from ids-PID.img, not from the core.
  st.dir.write('ids', [ids], t.ns.pid);

  // Files first: the page transfer below briefly adds fds of ours to the task.
  const env: Omit<DumpFilesEnv, 'dumpOwn'> = {
    files: st.files, shellJob: ctx.opts.shellJob, external: ctx.opts.external, ghostLimit: ctx.opts.ghostLimit,
    linkRemap: ctx.opts.linkRemap, evasiveDevices: ctx.opts.evasiveDevices, fileLocks: ctx.opts.fileLocks, tcpEstablished: ctx.opts.tcpEstablished, tcpClose: ctx.opts.tcpClose, skipInFlight: ctx.opts.skipInFlight, vpid: t.ns.pid, pidDepth: t.ns.depth, forceIrmap: ctx.opts.forceIrmap, irmap: st.irmap, nsId: (_kind, link) => nsIdOf(link, st),
    // Its files' paths are those of its own mount namespace (or of the one their mount is in).
    ...(st.mntns ? { mntns: st.mntns.forTask(pid) } : {}),
    ...(st.mqueue ? { mqueue: st.mqueue } : {}),
  };
  // A table shared with a task dumped before (CLONE_FILES) is in its fdinfo image
  // already; only this task's own POSIX locks on it are left to take.
  const shared = [...st.fdTables].some(([p, id]) => p !== pid && id === ids.filesId);
  const fdinfos = shared ? dumpLocks(pid, env) : dumpFds(pid, env);
  if (!shared) st.dir.write('fdinfo', fdinfos, ids.filesId);
  for (const m of TASK_STATE) m.dumpFiles?.(d, env);

  // Memory.
  const heap = { start: stat.startBrk, end: brk };
  const aios: AioRingEntry[] = [];
  const vmaList = vmaEntries(pid, vmas.filter((v) => v.name !== '[vsyscall]'), env, heap, aios, st.shmemAsMemfd);
  const sysv = vmaList.find((v) => v.status & VMA_AREA_SYSVIPC);
  if (sysv && !st.sysvShm) {
    // As CRIU: the segments of cryo's own ipc namespace are not the tree's to dump or restore.
    throw new CryoError(`task ${pid} (${t.stat.comm}): SysV shared memory ${sysv.shmid} is attached at 0x${sysv.start.toString(16)}, but the task is in cryo's own ipc namespace, whose objects are not the tree's: cryo dumps SysV IPC only of a tree in an ipc namespace of its own`);
  }
  if (sysv) checkAttachments(`task ${pid} (${t.stat.comm})`, vmaList, st.sysvShm!);
  const exe = readlinkSync(`/proc/${pid}/exe`);
  if (isMemfdLink(exe)) throw new CryoError(`task ${pid}: its executable is the memfd ${exe}, which cryo does not support yet`);
  const exeSt = statSync(`/proc/${pid}/exe`);
  // Shared with the mappings of the executable (a deleted one gets its ghost file there).
  const exeId = dumpRegFile({ pid, proc: `/proc/${pid}/exe`, link: exe, st: exeSt, what: 'its executable' },
    { flags: O.RDONLY, pos: 0n }, env, `map:${exeSt.dev}:${exeSt.ino}:${O.RDONLY}`);
  const auxvRaw = readFileSync(`/proc/${pid}/auxv`);
  const auxv: bigint[] = [];
  // As CRIU: at most AT_VECTOR_SIZE (44) words; CRIU refuses to restore more. The
  // kernel terminates what PR_SET_MM_MAP gets, and programs keep their own copy.
  for (let i = 0; i + 8 <= auxvRaw.length && auxv.length < AT_VECTOR_SIZE; i += 8) auxv.push(auxvRaw.readBigUInt64LE(i));
  const mm = create(MmEntrySchema, {
    mmStartCode: stat.startCode, mmEndCode: stat.endCode, mmStartData: stat.startData, mmEndData: stat.endData,
    mmStartStack: stat.startStack, mmStartBrk: stat.startBrk, mmBrk: brk, mmArgStart: stat.argStart,
    mmArgEnd: stat.argEnd, mmEnvStart: stat.envStart, mmEnvEnd: stat.envEnd, exeFileId: exeId,
    mmSavedAuxv: auxv, vmas: [...vmaList, ...guardEntries(pid)], ...d.mm, aios,
  });
  st.dir.write('mm', [mm], t.ns.pid);

  const t0 = performance.now();
  // The vdso's pages too: CRIU's restorer reads the dumped vdso to compare it with
  // the kernel's (cryo's restore skips them: the task keeps this kernel's vdso).
  const priv = vmaList.filter((v) => hasPrivatePages(v) || v.status & VMA_AREA_VDSO);
  const saved = scanPages(pid, priv);
  let runs = saved;
  // An incremental dump: pages unchanged since the parent's are only named here.
  let inParent: PageRun[] = [];
  if (st.track) ({ write: runs, parent: inParent } = st.track.split(pid, t.ns.pid, runs, vmas, vmaList));
  const t1 = performance.now();
  const pagesId = st.nextPagesId++;
  // One bridge (the task's pidfd of cryo) serves every pages file of this task.
  const bridge = makeBridge(rem);
  let written = 0;
  try {
    const pagesFd = st.dir.openPages(pagesId, 'w');
    try {
      injectFailure(FI.DUMP_PAGES, `pages of task ${pid}`);
      written = dumpPages(rem, bridge, pagesFd, st.dir.fileName('pages', pagesId), runs, priv);
    } finally {
      closeFd(pagesFd);
    }
    // Shared anonymous memory: once per object, read through /proc/PID/map_files, so
    // pages only another task of the tree faulted are there too (pagemap-shmem-SHMID.img
    // by offset into the object, as CRIU keeps it).
    for (const v of vmaList.filter((x) => x.status & VMA_ANON_SHARED && !(x.status & VMA_AREA_SYSVIPC))) {
      if (st.shmemDone.has(v.shmid)) continue;
      if (st.sysvShm?.has(v.shmid)) throw new CryoError(`task ${pid}: SysV shared memory ${v.shmid} has the id of the shared memory at 0x${v.start.toString(16)} (inode ${v.shmid}), which the images cannot tell apart`);
      st.shmemDone.add(v.shmid);
      const fd = openSync(`/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`, O.RDONLY | O.CLOEXEC);
      try {
        const size = fstatSync(fd).size;
        st.stats.shpagesScanned += BigInt(Math.ceil(size / 4096));
        st.stats.shpagesWritten += BigInt(writeShmemObject(st.dir, fd, size, v.shmid, () => st.nextPagesId++));
      } finally {
        closeSync(fd);
      }
    }
    // Still frozen: what is saved now is what the next dump's parent will hold.
    st.track?.start(rem, vmaList.filter((v) => !overlapsScratch(rem, v)), saved);
  } finally {
    bridge.done();
  }
  const t2 = performance.now();
  st.dir.write('pagemap', [create(PagemapHeadSchema, { pagesId }), ...pagemapEntries(runs, inParent)], t.ns.pid);
  st.stats.pagesScanned += BigInt(vmaList.reduce((s, v) => s + Number((v.end - v.start) / 4096n), 0));
  st.stats.pagesWritten += BigInt(written);
  st.stats.memdumpUs += Math.round((t1 - t0) * 1000);
  st.stats.memwriteUs += Math.round((t2 - t1) * 1000);
  const kept = inParent.reduce((n, r) => n + r.nrPages, 0);
  log.info(`task ${pid}: ${vmaList.length} vmas, ${runs.length} page runs, ${written} pages${st.track ? ` (${kept} more in the parent)` : ''}, ${fdinfos.length} fds`);
}

/** Whether `v` is (part of) cryo's scratch memory in the task. */
export function overlapsScratch(rem: Remote, v: { start: bigint; end: bigint }): boolean {
  const r = rem.scratchRange();
  return !!r && v.start < r[1] && r[0] < v.end;
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* ignore */
  }
}
