// Memory tracking for incremental dumps (pre-dump, --track-mem, --prev-images-dir)
// on a kernel without soft-dirty bits. Each task's anonymous private memory is
// registered with a userfaultfd of its own mm in write-protect async mode and
// write-protected when its pages are saved: a later write lifts the protection
// without any fault being delivered, and PAGEMAP_SCAN reports that page as
// PAGE_IS_WRITTEN. The uffd is made by the task (a remote userfaultfd), taken into
// cryo with pidfd_getfd and closed in the task, so its fd table is unchanged.
//
// The protection lasts as long as someone holds the uffd. Between two dumps a
// holder process of cryo's does (a small node, detached, in cryo's own cgroup, that
// ends with the tree's root), named by
// cryo-track.json in the images dir; the next dump takes the uffds from it with
// pidfd_getfd, ends it, reads which pages were written and only then closes them.
//
// A page is taken from the parent images only when all of these hold: its task is
// the one tracked (same pid and start time), its VMA is anonymous private memory
// that was registered at the last dump and is still registered (VmFlags "uw":
// mremap, fork and a new mapping lose it), PAGEMAP_SCAN says it was not written,
// and the parent's pagemap has it. Anything else is dumped.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync, accessSync, constants as fsc } from 'node:fs';
import type { Vma } from '../proc/maps.js';
import {
  MAP, NR, O, PAGE_IS, UFFD_FEATURE_WP_ASYNC, UFFD_USER_MODE_ONLY, pagemapScan, pidfdGetfd, pidfdOpen, pidfdSendSignal,
  uffdApiFeatures, uffdRegisterWp, uffdWriteProtect, SIG, F, trySyscall,
} from '../sys/index.js';

const FD_CLOEXEC = 1;
import {
  ImageDir, VMA_ANON_PRIVATE, VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_AREA_VDSO, VMA_AREA_VVAR, VMA_AREA_VSYSCALL,
  VMA_AREA_AIORING, VMA_AREA_SYSVIPC, VMA_AREA_SOCKET, VMA_AREA_MEMFD, VMA_AREA_SHSTK, VMA_AREA_UPROBES, VMA_AREA_GUARD,
  type VmaEntry, type PagemapEntry, isFieldSet, PagemapEntrySchema, PE_PARENT, PE_PRESENT, create, VmaEntrySchema,
} from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import type { PageRun } from './pages.js';
import { CryoError, type Context } from '../context.js';
import { readPagemap } from './shmem.js';
import { FI, faultInjected } from '../fault.js';

/** The file that names the holder of the uffds, in the images dir of the dump that made them. */
export const TRACK_FILE = 'cryo-track.json';

type Range = [bigint, bigint];
const PAGE = 4096n;
const NOT_TRACKED = VMA_FILE_PRIVATE | VMA_FILE_SHARED | VMA_ANON_SHARED | VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL |
  VMA_AREA_AIORING | VMA_AREA_SYSVIPC | VMA_AREA_SOCKET | VMA_AREA_MEMFD | VMA_AREA_SHSTK | VMA_AREA_UPROBES | VMA_AREA_GUARD;

/**
 * Memory that is tracked: anonymous private, written by the task only through its
 * page tables. Not an AIO ring or a shadow stack (the kernel writes those by other
 * ways), not hugetlb or droppable memory.
 */
export function trackable(v: VmaEntry): boolean {
  return (v.status & VMA_ANON_PRIVATE) !== 0 && (v.status & NOT_TRACKED) === 0 && (v.flags & (MAP.SHARED | MAP.HUGETLB | MAP.DROPPABLE)) === 0;
}

const SPECIAL = new Set(['[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]', '[uprobes]']);

/** For a pre-dump, which reads no files: the tracked VMAs straight from smaps. */
export function anonEntries(vmas: Vma[]): VmaEntry[] {
  return vmas
    .filter((v) => v.inode === 0 && !v.name.startsWith('/') && !SPECIAL.has(v.name) && v.perms[3] === 'p' &&
      !v.vmFlags.some((f) => ['ht', 'dp', 'io', 'pf', 'ss'].includes(f)))
    .map((v) => create(VmaEntrySchema, {
      start: v.start, end: v.end, pgoff: 0n, shmid: 0n, fd: -1n, status: VMA_ANON_PRIVATE,
      prot: (v.perms[0] === 'r' ? 1 : 0) | (v.perms[1] === 'w' ? 2 : 0) | (v.perms[2] === 'x' ? 4 : 0), flags: MAP.PRIVATE | MAP.ANONYMOUS,
    }));
}

/** What a task's tracking was at the last dump. */
interface TrackedTask {
  pid: number;
  startTime: string;
  /** The uffd's fd number in the holder. */
  fd: number;
  /** Ranges registered and write-protected then, hex. */
  ranges: Array<[string, string]>;
}

interface TrackFile {
  version: 1;
  holder: { pid: number; startTime: string };
  tasks: TrackedTask[];
}

function startTimeOf(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function minus(from: Range[], cut: Range[]): Range[] {
  let out = from;
  for (const [cs, ce] of cut) {
    const next: Range[] = [];
    for (const [s, e] of out) {
      if (ce <= s || cs >= e) next.push([s, e]);
      else {
        if (s < cs) next.push([s, cs]);
        if (ce < e) next.push([ce, e]);
      }
    }
    out = next;
  }
  return out;
}

function intersect(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  for (const [as, ae] of a) {
    for (const [bs, be] of b) {
      const s = as > bs ? as : bs;
      const e = ae < be ? ae : be;
      if (s < e) out.push([s, e]);
    }
  }
  return out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

/** The ranges of a parent's pagemap for a task: pages it has itself or in its own parent. */
function parentCover(runs: PagemapEntry[]): Range[] {
  const out: Range[] = [];
  for (const r of runs) {
    if (!(r.flags & (PE_PRESENT | PE_PARENT)) && !r.inParent) continue;
    const n = isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages);
    out.push([r.vaddr, r.vaddr + n * PAGE]);
  }
  return out;
}

/** Split `runs` (sorted) into the pages inside `keep` (sorted, disjoint) and the rest. */
export function splitRuns(runs: PageRun[], keep: Range[]): { inside: PageRun[]; outside: PageRun[] } {
  const inside: PageRun[] = [];
  const outside: PageRun[] = [];
  for (const r of runs) {
    const end = r.vaddr + BigInt(r.nrPages) * PAGE;
    let at = r.vaddr;
    for (const [s, e] of keep) {
      if (e <= at || s >= end) continue;
      const from = s > at ? s : at;
      const to = e < end ? e : end;
      if (from > at) outside.push({ vaddr: at, nrPages: Number((from - at) / PAGE) });
      inside.push({ vaddr: from, nrPages: Number((to - from) / PAGE) });
      at = to;
    }
    if (at < end) outside.push({ vaddr: at, nrPages: Number((end - at) / PAGE) });
  }
  return { inside, outside };
}

/**
 * The tracking of one dump: the uffds taken from the last dump's holder (read,
 * then closed), the parent images, and the new uffds made for the next dump.
 */
export class DumpTracking {
  /** By pid: the last dump's uffd (in cryo now) and its ranges. */
  private readonly prev = new Map<number, { fd: number; startTime: string; ranges: Range[] }>();
  /** By pid: the uffds made at this dump, to hand to a new holder. */
  private readonly made = new Map<number, { fd: number; startTime: string; ranges: Range[] }>();
  private parent?: ImageDir;
  skipped = 0n;

  private constructor(private readonly ctx: Context, private readonly dir: ImageDir, readonly keep: boolean) {}

  /**
   * At the start of a (pre-)dump: link `parent` to --prev-images-dir, take the
   * uffds of its holder and end it. `keep`: this dump tracks on for a next one.
   */
  static open(ctx: Context, dir: ImageDir, keep: boolean): DumpTracking {
    const t = new DumpTracking(ctx, dir, keep);
    const prev = ctx.opts.prevImagesDir;
    if (prev) {
      const at = prev.startsWith('/') ? prev : `/proc/self/fd/${dir.fd}/${prev}`;
      try {
        accessSync(at, fsc.R_OK);
      } catch {
        throw new CryoError(`--prev-images-dir ${prev}: no such images directory (relative to the images dir ${ctx.opts.imagesDir})`);
      }
      const link = `/proc/self/fd/${dir.fd}/parent`;
      try {
        unlinkSync(link);
      } catch {
        /* none yet */
      }
      symlinkSync(prev, link);
      t.parent = ImageDir.open(at, { write: false });
      t.takeHolder(at);
    }
    return t;
  }

  /** The uffds of the holder named in `prevDir`, or none if it is gone (then every page is dumped). */
  private takeHolder(prevDir: string): void {
    const file = `${prevDir}/${TRACK_FILE}`;
    if (!existsSync(file)) {
      this.ctx.log.info(`no ${TRACK_FILE} in the previous images: memory was not tracked, every page is dumped`);
      return;
    }
    let tf: TrackFile;
    try {
      tf = JSON.parse(readFileSync(file, 'utf8')) as TrackFile;
    } catch (e) {
      this.ctx.log.warn(`${file}: ${(e as Error).message}; every page is dumped`);
      return;
    }
    // Once only: a second dump from the same parent finds no holder.
    try {
      unlinkSync(file);
    } catch {
      /* read-only: the holder is gone after this anyway */
    }
    if (tf.version !== 1 || startTimeOf(tf.holder.pid) !== tf.holder.startTime) {
      this.ctx.log.warn(`the holder of the tracked memory (pid ${tf.holder.pid}) is gone: every page is dumped`);
      return;
    }
    let pidfd: number;
    try {
      pidfd = pidfdOpen(tf.holder.pid);
    } catch {
      this.ctx.log.warn(`the holder of the tracked memory (pid ${tf.holder.pid}) is gone: every page is dumped`);
      return;
    }
    try {
      // The pidfd is of the process checked above unless the pid was reused in between: check again.
      if (startTimeOf(tf.holder.pid) !== tf.holder.startTime) return;
      for (const task of tf.tasks) {
        let fd: number;
        try {
          fd = pidfdGetfd(pidfd, task.fd);
        } catch (e) {
          this.ctx.log.warn(`task ${task.pid}: cannot take its uffd from the holder (${(e as Error).message}): its pages are dumped`);
          continue;
        }
        if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:[userfaultfd]') {
          closeSync(fd);
          continue;
        }
        this.prev.set(task.pid, { fd, startTime: task.startTime, ranges: task.ranges.map(([s, e]) => [BigInt(s), BigInt(e)] as Range) });
      }
      pidfdSendSignal(pidfd, SIG.KILL);
    } finally {
      closeSync(pidfd);
    }
    this.ctx.log.info(`took ${this.prev.size} tracked address space(s) from holder ${tf.holder.pid}`);
  }

  /**
   * Which of `runs` (a task's pages to save) are in the parent images unchanged:
   * returns those to write and those to mark in_parent. The last dump's uffd of
   * the task is closed here, once its pages are read.
   */
  split(pid: number, vpid: number, runs: PageRun[], vmasNow: Vma[], entries: VmaEntry[]): { write: PageRun[]; parent: PageRun[] } {
    const prev = this.prev.get(pid);
    if (!prev) return { write: runs, parent: [] };
    this.prev.delete(pid);
    try {
      if (faultInjected(FI.TRACK_TRUST_ALL) && this.parent?.exists('pagemap', vpid)) {
        const all = splitRuns(runs, parentCover(readPagemap(this.parent, 'pagemap', vpid).runs));
        this.skipped += BigInt(all.inside.reduce((s, r) => s + r.nrPages, 0));
        return { write: all.outside, parent: all.inside };
      }
      if (startTimeOf(pid) !== prev.startTime || !this.parent || !this.parent.exists('pagemap', vpid)) return { write: runs, parent: [] };
      const uw = new Set(vmasNow.filter((v) => v.vmFlags.includes('uw')).map((v) => v.start));
      const regions = entries.filter((v) => trackable(v) && uw.has(v.start)).map((v) => [v.start, v.end] as Range);
      const candidates = intersect(regions, prev.ranges);
      const fd = openSync(`/proc/${pid}/pagemap`, 'r');
      let clean: Range[] = [];
      try {
        for (const c of candidates) {
          const written = pagemapScan(fd, c[0], c[1], { inverted: 0n, mask: PAGE_IS.WRITTEN, anyof: 0n, ret: PAGE_IS.WRITTEN });
          if (!written) return { write: runs, parent: [] };
          clean.push(...minus([c], written.map((w) => [w.start, w.end] as Range)));
        }
      } finally {
        closeSync(fd);
      }
      clean = intersect(clean, parentCover(readPagemap(this.parent, 'pagemap', vpid).runs));
      const { inside, outside } = splitRuns(runs, clean);
      this.skipped += BigInt(inside.reduce((s, r) => s + r.nrPages, 0));
      return { write: outside, parent: inside };
    } finally {
      closeSync(prev.fd);
    }
  }

  /**
   * After the task's pages are saved (it is still frozen): a new uffd of its mm
   * over its tracked VMAs, the pages `saved` (written now or in the parent)
   * write-protected, for the next dump. A page not saved is not there: written
   * later, it is new, and seen as written.
   */
  start(rem: Remote, entries: VmaEntry[], saved: PageRun[]): void {
    if (!this.keep) return;
    const pid = rem.pid;
    const old = this.prev.get(pid);
    if (old) {
      closeSync(old.fd);
      this.prev.delete(pid);
    }
    const tu = rem.callRaw(NR.userfaultfd, O.CLOEXEC | O.NONBLOCK | UFFD_USER_MODE_ONLY);
    if (tu < 0n) throw new CryoError(`task ${pid}: cannot track its memory: userfaultfd: errno ${-tu}`);
    let fd = -1;
    try {
      const pidfd = pidfdOpen(pid);
      try {
        fd = pidfdGetfd(pidfd, Number(tu));
      } finally {
        closeSync(pidfd);
      }
    } finally {
      rem.call('close', NR.close, tu);
    }
    const ranges: Range[] = [];
    try {
      uffdApiFeatures(fd, UFFD_FEATURE_WP_ASYNC);
      for (const v of entries.filter(trackable)) {
        const errno = uffdRegisterWp(fd, v.start, v.end - v.start);
        if (errno) {
          // EBUSY: another uffd of the task's has it; its pages are dumped every time.
          this.ctx.log.info(`task ${pid}: 0x${v.start.toString(16)}-0x${v.end.toString(16)} cannot be tracked (errno ${errno}); its pages will be dumped whole`);
          continue;
        }
        // Only the pages saved: protecting a page never faulted in would leave a
        // marker that PAGEMAP_SCAN shows as swapped (async mode implies
        // UFFD_FEATURE_WP_UNPOPULATED), and the next dump would save it.
        for (const r of splitRuns(saved, [[v.start, v.end]]).inside) uffdWriteProtect(fd, r.vaddr, BigInt(r.nrPages) * PAGE);
        ranges.push([v.start, v.end]);
      }
    } catch (e) {
      closeSync(fd);
      throw new CryoError(`task ${pid}: cannot track its memory: ${(e as Error).message}`);
    }
    this.made.set(pid, { fd, startTime: startTimeOf(pid) ?? '', ranges });
  }

  /** The dump of the tree rooted at `root` is done: a holder keeps the new uffds for the next dump, named in the images dir. */
  finish(root: number): void {
    this.dropPrev();
    if (!this.keep || this.made.size === 0) return;
    const tasks = [...this.made];
    const fds = tasks.map(([, m]) => m.fd);
    // The holder gets only the uffds: not a pipe or socket a caller waits on to close.
    for (const n of readdirSync('/proc/self/fd')) {
      const fd = Number(n);
      if (fd > 2 && !fds.includes(fd)) trySyscall(NR.fcntl, fd, F.SETFD, FD_CLOEXEC);
    }
    // A node of its own, which keeps inherited fds where they are (a shell moves them
    // while redirections apply) and starts no child; it ends once the tree's root is
    // gone, the tracking being of no use then.
    const script = 'const r = Number(process.argv[1]); setInterval(() => { try { process.kill(r, 0); } catch (e) { if (e.code === "ESRCH") process.exit(0); } }, 10000);';
    const holder = spawn(process.execPath, ['--max-old-space-size=16', '-e', script, String(root)], {
      detached: true, stdio: ['ignore', 'ignore', 'ignore', ...fds], argv0: 'cryo-track-holder', env: {},
    });
    holder.unref();
    const hpid = holder.pid;
    if (hpid === undefined) throw new CryoError(`cannot start the holder of the tracked memory (${process.execPath})`);
    const tf: TrackFile = {
      version: 1,
      holder: { pid: hpid, startTime: startTimeOf(hpid) ?? '' },
      tasks: tasks.map(([pid, m], i) => ({ pid, startTime: m.startTime, fd: 3 + i, ranges: m.ranges.map(([s, e]) => [`0x${s.toString(16)}`, `0x${e.toString(16)}`] as [string, string]) })),
    };
    const path = `/proc/self/fd/${this.dir.fd}/${TRACK_FILE}`;
    writeFileSync(`${path}.tmp`, JSON.stringify(tf) + '\n');
    renameSync(`${path}.tmp`, path);
    this.closeMade();
    this.ctx.log.info(`memory of ${tasks.length} task(s) tracked; holder ${hpid}`);
  }

  /** A failed dump: the tracking is lost (the next dump saves every page). */
  abandon(): void {
    this.dropPrev();
    this.closeMade();
  }

  private closeMade(): void {
    for (const m of this.made.values()) closeSync(m.fd);
    this.made.clear();
    this.parent?.close();
    this.parent = undefined;
  }

  private dropPrev(): void {
    for (const p of this.prev.values()) closeSync(p.fd);
    this.prev.clear();
  }
}

/** Pagemap entries for pages written (present) and pages in the parent, in address order. */
export function pagemapEntries(write: PageRun[], parent: PageRun[]): PagemapEntry[] {
  const all = [...write.map((r) => ({ r, flags: PE_PRESENT })), ...parent.map((r) => ({ r, flags: PE_PARENT }))]
    .sort((a, b) => (a.r.vaddr < b.r.vaddr ? -1 : 1));
  return all.map(({ r, flags }) => create(PagemapEntrySchema, { vaddr: r.vaddr, compatNrPages: 0, nrPages: BigInt(r.nrPages), flags }));
}
