// Task state as a table of object modules (issue #13): each module dumps its part
// of a task's core entry (tc, mm) and of each thread's (thread_core), and restores
// it at the stages it names. dump/task.ts and restore/task.ts walk the table and
// name no module. The stages are CRIU's CR_STATE_* in spirit: each is a point of a
// task's restore, in this order, and within a stage the modules run in table order.
import type { CoreEntry, FdinfoEntry, FileEntry, FsEntry, MmEntry, PagemapEntry, PstreeEntry, SeccompFilter, TaskCoreEntry, ThreadCoreEntry } from '../images/index.js';
import type { ImageDir } from '../images/index.js';
import type { Logger } from '../context.js';
import type { Kerndat } from '../kerndat.js';
import type { Remote } from '../tracer/remote.js';
import type { MemIO } from '../tracer/memio.js';
import type { RegDumpEnv, RestoreFilesEnv } from './files/kind.js';
import type { SeccompTable } from './seccomp.js';
import type { ShmemObjects } from './shmem.js';
import type { RseqState } from './thread-state.js';
import type { IdView } from './userns.js';
import { fsModule } from './fs.js';
import { sigactionsModule } from './sigactions.js';
import { rlimitsModule } from './rlimits.js';
import { prctlModule } from './prctl.js';
import { credsModule } from './creds.js';
import { signalsModule } from './signals.js';
import { mmLateModule } from './mm-restore.js';
import { seccompModule } from './seccomp.js';
import { timersModule } from './timers.js';
import { threadStateModule } from './thread-state.js';

/**
 * A task's restore, stage by stage:
 * - memory: its address space is rebuilt (before it forks its children);
 * - files: its fd table is in place (the pipeline's), then what names files;
 * - task: process-wide state, while the task is one thread and still root;
 * - threads: its threads exist;
 * - seccomp: filters, before the credentials (installing one needs root);
 * - creds: each thread's credentials;
 * - after-creds: what a change of credentials resets;
 * - final: the last fixups before the registers go back (rseq).
 */
export const RESTORE_STAGES = ['memory', 'files', 'task', 'threads', 'seccomp', 'creds', 'after-creds', 'final'] as const;
export type RestoreStage = (typeof RESTORE_STAGES)[number];

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
  /** Files only in flight, by the pid of the home task that finishes them (inflight.ts). */
  inflightAt: Map<number, number[]>;
  /** Shared anonymous memory objects, each made once. */
  shmem: ShmemObjects;
  log: Logger;
  kdat: Kerndat;
  /** Ids of the images (the tree's view) as cryo's calls take them: its user namespace's maps. */
  ids: IdView;
}

/** Where the inherited cryo pidfd lives in every restored task while we build it. */
export interface Handles {
  cryoPidfd: bigint;
}

export interface RestoredThread {
  rem: Remote;
  core: CoreEntry;
  tid: number;
  /** Run on the thread's memory once it is stopped for the last time (final stage). */
  last?: (mem: MemIO) => void;
}

/** One task being restored, as the stages see it. */
export interface TaskRestore {
  /** The leader, in which process-wide calls run. */
  rem: Remote;
  img: TaskImages;
  sh: RestoreShared;
  h: Handles;
  /** Every thread, the leader last; empty before the threads stage. */
  threads: RestoredThread[];
  /** seccomp.img's filters. */
  filters: SeccompFilter[];
  /** How many filters of the leader's chain every thread shares (installed in the task stage, before the threads). */
  sharedFilters: number;
}

/** One task being dumped: its leader seized, nothing of cryo's in it but the scratch memory. */
/** Some fields of a message, to be made one with create(). */
export type Fields<T> = Partial<Omit<T, '$typeName' | '$unknown'>>;

export interface TaskDump {
  rem: Remote;
  pid: number;
  /** The task's pid in its own pid namespace (the images' name for it). */
  vpid: number;
  /** Memory of the task's for the calls' results. */
  scratch: bigint;
  /** /proc/PID/status. */
  status: Map<string, string>;
  /** The task's tids, as its own pid namespace numbers them, by ours (timers aim at them). */
  nsTids: Map<number, number>;
  dir: ImageDir;
  seccomp: SeccompTable;
  /** The task core's fields, filled in table order. */
  tc: Fields<TaskCoreEntry>;
  /** The mm entry's fields that are per-process settings (dumpable, THP). */
  mm: Fields<MmEntry>;
  /** Ids as the tree sees them (its user namespace's maps), from cryo's view. */
  ids: IdView;
  /** "task PID (comm)", for messages. */
  who: string;
}

export interface ThreadDump {
  /** The thread itself, seized. */
  rem: Remote;
  pid: number;
  tid: number;
  scratch: bigint;
  /** /proc/PID/task/TID/status. */
  status: Map<string, string>;
  rseq: RseqState;
  /** The thread core's fields, filled in table order. */
  tcore: Fields<ThreadCoreEntry>;
}

export interface TaskStateModule {
  name: string;
  /** Fill its fields of the task core (d.tc, d.mm), before the threads are dumped. */
  dumpTask?(d: TaskDump): void;
  /** Fill its fields of one thread's core entry. */
  dumpThread?(d: TaskDump, t: ThreadDump): void;
  /** Once every thread is dumped, the leader first: what is known only of them all (seccomp's layout). */
  dumpThreads?(d: TaskDump, threads: ThreadDump[]): void;
  /** With the task's files, in the same file table (its cwd and root are files). */
  dumpFiles?(d: TaskDump, env: RegDumpEnv): void;
  /** Its restore, at each stage it runs at. */
  restore?: Partial<Record<RestoreStage, (t: TaskRestore) => void>>;
}

/**
 * The modules, in the order their work is done within each stage (which the
 * restore depends on: cwd and root after the fds, loginuid while still root,
 * AIO rings and membarrier before the filters, timers after the threads).
 * Memory and the fd table are the pipeline's own (restore/task.ts).
 */
export const TASK_STATE: readonly TaskStateModule[] = [
  fsModule,
  sigactionsModule,
  rlimitsModule,
  prctlModule,
  credsModule,
  signalsModule,
  mmLateModule,
  seccompModule,
  timersModule,
  threadStateModule,
];

/** Run every module's part of `stage` for one task. */
export function restoreStage(stage: RestoreStage, t: TaskRestore, table: readonly TaskStateModule[] = TASK_STATE): void {
  for (const m of table) m.restore?.[stage]?.(t);
}

/** The (stage, module) pairs in the order a task's restore runs them. */
export function restoreOrder(table: readonly TaskStateModule[] = TASK_STATE): string[] {
  return RESTORE_STAGES.flatMap((s) => table.filter((m) => m.restore?.[s]).map((m) => `${s}:${m.name}`));
}
