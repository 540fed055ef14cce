// Reading the images of a restore, before anything is made: every image a live
// task needs, each fd kind's side images, and the shared memory objects they
// describe. The checks of what was read are validate.ts's.
import { CryoError } from '../context.js';
import {
  FdTypes, isFieldSet, isZombieState, PagemapEntrySchema, VMA_ANON_SHARED, VMA_AREA_SYSVIPC,
  type CoreEntry, type FileEntry, type FileLockEntry, type ImageDir, type MemfdInodeEntry, type PagemapEntry, type PstreeEntry, type SeccompFilter,
} from '../images/index.js';
import { MAP, MAP_HUGE_MASK } from '../sys/index.js';
import { loadKindImages } from '../objects/files/fds.js';
import { KindStore } from '../objects/files/kind.js';
import { legacyFanotify } from '../objects/files/fanotify.js';
import { Remaps } from '../objects/files/remap.js';
import { regImagesOf } from '../objects/files/reg.js';
import { memfdImagesOf } from '../objects/files/memfd.js';
import { gatherParentPages } from '../objects/parent-pages.js';
import { readPagemap, type ShmemContents, type ShmemShape } from '../objects/shmem.js';
import { spawnSeed } from '../tracer/seed.js';
import { byId, checkInventory, checkPstree, listedAsZombie, taskIds } from './validate.js';
import type { TaskImages } from './task.js';

export interface Loaded {
  tasks: TaskImages[];
  /** The fd kinds' side images (pipes-data, fifo-data ...), and later what they make. */
  kinds: KindStore;
  remaps: Remaps;
  memfdInodes: MemfdInodeEntry[];
  memfdContents: Map<number, ShmemContents>;
  /** Shared anonymous memory: what each object must hold, and its contents. */
  shmemShapes: Map<bigint, ShmemShape>;
  shmemContents: Map<bigint, ShmemContents>;
  locks: FileLockEntry[];
  seccomp: SeccompFilter[];
  files: Map<number, FileEntry>;
}

/** Read every image the restore needs; each one a live task needs must be there. */
export function loadImages(dir: ImageDir, deprecated: boolean): Loaded {
  checkInventory(dir.readOne('inventory'));
  const pstree = dir.read('pstree') as PstreeEntry[];
  if (pstree.length === 0) throw new CryoError('pstree.img lists no task');
  checkPstree(pstree);
  const files = byId(pairTunFiles([...(dir.tryRead('files') ?? []), ...legacyFanotify(dir, deprecated)]), 'files.img');
  const tasks: TaskImages[] = pstree.map((p, i) => {
    const core = dir.readOne('core', p.pid);
    const threadCores = new Map<number, CoreEntry>();
    if (!listedAsZombie(p)) for (const tid of p.threads) if (tid !== p.pid) threadCores.set(tid, dir.readOne('core', tid));
    if (isZombieState(core.tc?.taskState)) return { pstree: p, core, threadCores };
    core.ids = taskIds(dir, p.pid, i === 0, core.ids);
    const mm = dir.readOne('mm', p.pid);
    const shmem = new Map<bigint, { pagesId: number; runs: PagemapEntry[] }>();
    for (const v of mm.vmas) {
      // Every dump writes the contents of a shared anonymous object (SysV ones are in ipcns-shm).
      if (!(v.status & VMA_ANON_SHARED) || v.status & VMA_AREA_SYSVIPC || shmem.has(v.shmid)) continue;
      shmem.set(v.shmid, readPagemap(dir, 'shmemPagemap', v.shmid));
    }
    return {
      shmem,
      pstree: p, core, threadCores,
      mm,
      pagemap: withParentPages(dir, p.pid, readPagemap(dir, 'pagemap', p.pid)),
      // Every dump writes it, also for a task without fds: missing, the task would come back with none.
      fdinfo: dir.read('fdinfo', core.ids.filesId),
      fs: dir.readOne('fs', p.pid),
    };
  });
  const seccomp = dir.tryRead('seccomp')?.[0]?.seccompFilters ?? [];
  const kinds = new KindStore();
  loadKindImages(dir, kinds, files);
  const reg = regImagesOf(kinds);
  const remaps = new Remaps(reg.remaps, reg.ghosts, files, (pid) => spawnSeed(pid, false));
  const { inodes: memfdInodes, contents: memfdContents } = memfdImagesOf(kinds);
  const { shapes: shmemShapes, contents: shmemContents } = shmemObjects(tasks, memfdInodes);
  return {
    tasks, files, seccomp, kinds, remaps, locks: reg.locks,
    memfdInodes, memfdContents, shmemShapes, shmemContents,
  };
}

/**
 * Every shared anonymous memory object of the tree: big enough for every VMA that
 * maps it and for its contents (and for a memfd entry of the same object: a
 * private mapping or an fd of it), in huge pages if its VMAs are MAP_HUGETLB.
 */
function shmemObjects(tasks: TaskImages[], memfdInodes: MemfdInodeEntry[]): { shapes: Map<bigint, ShmemShape>; contents: Map<bigint, ShmemContents> } {
  const shapes = new Map<bigint, ShmemShape>();
  const contents = new Map<bigint, ShmemContents>();
  const grow = (shmid: bigint, size: bigint, huge: number) => {
    const s = shapes.get(shmid);
    if (!s) shapes.set(shmid, { size, huge });
    else if (size > s.size) s.size = size;
  };
  for (const t of tasks) {
    for (const v of t.mm?.vmas ?? []) {
      if (!(v.status & VMA_ANON_SHARED) || v.status & VMA_AREA_SYSVIPC) continue;
      grow(v.shmid, v.pgoff + (v.end - v.start), v.flags & (MAP.HUGETLB | MAP_HUGE_MASK));
    }
    for (const [shmid, c] of t.shmem ?? []) {
      contents.set(shmid, c);
      const end = c.runs.reduce((m, r) => {
        const n = isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages);
        return r.vaddr + n * 4096n > m ? r.vaddr + n * 4096n : m;
      }, 0n);
      if (shapes.has(shmid)) grow(shmid, end, 0);
    }
  }
  for (const m of memfdInodes) if (shapes.has(BigInt(m.shmid))) grow(BigInt(m.shmid), m.size, 0);
  return { shapes, contents };
}


/** Pages ids above any a dump makes: those of pages gathered from parent images. */
const GATHERED_PAGES_ID = 0x40000000;

/** A pagemap with entries in the parent images: its pages gathered into one file, as if all were here. */
function withParentPages(dir: ImageDir, pid: number, pm: { pagesId: number; runs: PagemapEntry[] }): { pagesId: number; runs: PagemapEntry[] } {
  const g = gatherParentPages(dir, pid, pm);
  if (!g) return pm;
  const id = GATHERED_PAGES_ID + pid;
  dir.overridePages(id, g.fd);
  return { pagesId: id, runs: g.runs };
}

/**
 * CRIU writes a tun file as two entries of one id, a REG one (/dev/net/tun, its
 * flags) and a TUNF one: the REG part goes into the TUNF entry, as its reg.
 */
function pairTunFiles(entries: FileEntry[]): FileEntry[] {
  const tunIds = new Set(entries.filter((fe) => fe.type === FdTypes.TUNF).map((fe) => fe.id));
  if (tunIds.size === 0) return entries;
  const regs = new Map(entries.filter((fe) => fe.type === FdTypes.REG && tunIds.has(fe.id)).map((fe) => [fe.id, fe]));
  return entries.flatMap((fe) => {
    if (fe.type === FdTypes.REG && tunIds.has(fe.id)) return [];
    if (fe.type === FdTypes.TUNF && regs.has(fe.id)) fe.reg = regs.get(fe.id)!.reg;
    return [fe];
  });
}
