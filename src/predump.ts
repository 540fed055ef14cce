// `cryo pre-dump`: the memory of a tree saved while it runs on, so that the dump
// after it writes only what changed since (pagemap entries in_parent). Only
// memory is saved (pagemap-PID.img, pages-N.img, inventory.img, stats-dump), only
// the tracked kind (anonymous private); the tree is frozen while it is read and
// write-protected, then thawed. See objects/track.ts.
import type { Context } from './context.js';
import { CryoError } from './context.js';
import { ImageDir, create, InventoryEntrySchema, Lsmtype, PagemapHeadSchema, StatsEntrySchema, DumpStatsEntrySchema } from './images/index.js';
import { freezeTree, thawTree, takeRemote, type FrozenTask } from './dump/freeze.js';
import { makeBridge, overlapsScratch } from './dump/task.js';
import { checkImagesDir, displayDumpStats } from './dump.js';
import { readVmas } from './objects/mm.js';
import { scanPages, dumpPages } from './objects/pages.js';
import { DumpTracking, anonEntries, pagemapEntries } from './objects/track.js';
import { writeStats } from './stats.js';
import { dumpRseq } from './objects/thread-state.js';
import { closeSync, existsSync } from 'node:fs';

const CRTOOLS_IMAGES_V1_1 = 2;
/** inventory.pre_dump_mode, as CRIU numbers it. */
const PRE_DUMP_SPLICE = 1;
const PRE_DUMP_READ = 2;

/** `cryo pre-dump`: returns the process exit code. */
export async function runPreDump(ctx: Context): Promise<number> {
  const { opts, log } = ctx;
  const root = opts.tree;
  if (!root) throw new CryoError('pre-dump needs the pid of the tree root: -t PID');
  if (!existsSync(`/proc/${root}`)) throw new CryoError(`process ${root} does not exist`);
  checkImagesDir(opts.imagesDir);
  const probe = ctx.kdat.memTrack();
  if (!probe.ok) throw new CryoError(`cannot pre-dump: this kernel cannot track memory changes (${probe.why})`);
  const dir = ImageDir.open(opts.imagesDir, { write: true });
  const cl = ctx.cleanup;
  cl.always('the images directory', () => dir.close());
  const tStart = performance.now();
  let tasks: FrozenTask[];
  try {
    tasks = freezeTree(root, log, undefined, opts.timeout);
  } catch (e) {
    cl.unwind(log);
    throw e;
  }
  // Thawed either way: a pre-dump never ends the tree.
  cl.push('the frozen tree', { undo: () => thawTree(tasks, log), done: () => thawTree(tasks, log) });
  const tFrozen = performance.now();
  let track: DumpTracking | undefined;
  const stats = { scanned: 0n, written: 0n, dumpUs: 0, writeUs: 0 };
  try {
    track = DumpTracking.open(ctx, dir, true);
    let pagesId = 1;
    for (const t of tasks) {
      if (t.stat.state === 'Z') continue;
      // Before the first remote call, which the Remote makes at once (its return clears
      // the thread's rseq_cs): a leader stopped inside a critical section resumes at its
      // abort handler, as after a dump.
      const rs = dumpRseq(t.pid);
      const rem = takeRemote(t);
      if (rs.abortIp !== undefined) rem.saved.set('ip', rs.abortIp);
      const t0 = performance.now();
      const vmas = readVmas(t.pid).filter((v) => !overlapsScratch(rem, v));
      const priv = anonEntries(vmas);
      const saved = scanPages(t.pid, priv);
      const { write, parent } = track.split(t.pid, t.ns.pid, saved, vmas, priv);
      const t1 = performance.now();
      const id = pagesId++;
      const bridge = makeBridge(rem);
      let written = 0;
      try {
        const fd = dir.openPages(id, 'w');
        try {
          written = dumpPages(rem, bridge, fd, dir.fileName('pages', id), write, priv);
        } finally {
          ctxClose(fd);
        }
        track.start(rem, priv, saved);
      } finally {
        bridge.done();
      }
      dir.write('pagemap', [create(PagemapHeadSchema, { pagesId: id }), ...pagemapEntries(write, parent)], t.ns.pid);
      stats.scanned += BigInt(priv.reduce((s, v) => s + Number((v.end - v.start) / 4096n), 0));
      stats.written += BigInt(written);
      stats.dumpUs += Math.round((t1 - t0) * 1000);
      stats.writeUs += Math.round((performance.now() - t1) * 1000);
      log.info(`task ${t.pid}: ${written} pages written, ${parent.reduce((s, r) => s + r.nrPages, 0)} in the parent`);
    }
    dir.write('inventory', [create(InventoryEntrySchema, {
      imgVersion: CRTOOLS_IMAGES_V1_1, fdinfoPerId: true, nsPerId: true, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: BigInt(Math.round(performance.timeOrigin + performance.now())) * 1000n,
      preDumpMode: opts.preDumpMode === 'read' ? PRE_DUMP_READ : PRE_DUMP_SPLICE,
    })]);
    const dumpStats = create(DumpStatsEntrySchema, {
      freezingTime: Math.round((tFrozen - tStart) * 1000), frozenTime: Math.round((performance.now() - tFrozen) * 1000),
      memdumpTime: stats.dumpUs, memwriteTime: stats.writeUs,
      pagesScanned: stats.scanned, pagesSkippedParent: track.skipped, pagesWritten: stats.written, pagesLazy: 0n,
      shpagesScanned: 0n, shpagesSkippedParent: 0n, shpagesWritten: 0n,
    });
    writeStats(opts.workDir ?? opts.imagesDir, create(StatsEntrySchema, { dump: dumpStats }), 'dump');
    track.finish(root);
    if (opts.displayStats) displayDumpStats(log, dumpStats);
  } catch (e) {
    track?.abandon();
    cl.unwind(log);
    throw e;
  }
  cl.release(log);
  log.info(`pre-dumped tree of ${tasks.length} task(s) rooted at ${root} in ${(performance.now() - tStart).toFixed(1)} ms`);
  return 0;
}

function ctxClose(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}
