// Pages of an incremental dump that live in its parent images: pagemap entries
// flagged PE_PARENT (or in_parent, as older CRIU wrote them) are found in the
// `parent` link's images for the same pid, down the chain. Restore reads every
// page from one file, so a task whose pagemap has such entries gets its pages
// gathered into a memfd, in the order of its own entries, all of them present.
import { closeSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { create, ImageError, ImageDir, isFieldSet, PagemapEntrySchema, PE_PARENT, PE_PRESENT, type PagemapEntry } from '../images/index.js';
import { memfdCreate } from '../sys/index.js';
import { readPagemap } from './shmem.js';

const PAGE = 4096n;
/** Parent links followed at most (a loop of links ends here). */
const MAX_DEPTH = 64;

function pagesOf(r: PagemapEntry): bigint {
  return isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages);
}

/** Whether an entry says its pages are in the parent images. */
export function inParent(r: PagemapEntry): boolean {
  return (r.flags & PE_PARENT) !== 0 || (isFieldSet(r, PagemapEntrySchema.field.inParent) && r.inParent);
}

/** One level of the chain: a pagemap with each present entry's offset in its pages file. */
interface Level {
  dir: ImageDir;
  name: string;
  pagesId: number;
  runs: Array<{ start: bigint; end: bigint; parent: boolean; off: number }>;
  pagesFd?: number;
}

/** A piece of a run: `len` bytes at `off` of a level's pages file. */
interface Piece {
  level: Level;
  off: number;
  len: number;
}

class Chain {
  private readonly levels: Level[] = [];

  constructor(private readonly top: ImageDir, private readonly pid: number) {}

  /** Level `i` (1 = the top dir's parent), opened when first needed. */
  private level(i: number, what: string): Level {
    const have = this.levels[i - 1];
    if (have) return have;
    if (i > MAX_DEPTH) throw new ImageError('IMG_INVALID', what, undefined, `more than ${MAX_DEPTH} parent images dirs (a loop of parent links?)`);
    const below = i === 1 ? this.top : this.levels[i - 2]!.dir;
    const name = i === 1 ? 'parent' : `${this.levels[i - 2]!.name}/parent`;
    let dir: ImageDir;
    try {
      dir = ImageDir.open(`/proc/self/fd/${below.fd}/parent`, { write: false });
    } catch (e) {
      throw new ImageError('IMG_MISSING', what, undefined, `its pages are in the parent images, but ${name} cannot be opened: ${(e as Error).message}`);
    }
    const pm = readPagemap(dir, 'pagemap', this.pid);
    let off = 0;
    const runs: Level['runs'] = [];
    for (const r of pm.runs) {
      const n = pagesOf(r);
      const parent = inParent(r);
      if (!parent && !(r.flags & PE_PRESENT)) throw new ImageError('IMG_INVALID', `${name}/${dir.fileName('pagemap', this.pid)}`, undefined, `entry at 0x${r.vaddr.toString(16)} holds lazy pages, which cryo does not read`);
      runs.push({ start: r.vaddr, end: r.vaddr + n * PAGE, parent, off });
      if (!parent) off += Number(n * PAGE);
    }
    const lv: Level = { dir, name, pagesId: pm.pagesId, runs };
    this.levels.push(lv);
    return lv;
  }

  /** Where [start, end) is, from level `i` down. */
  find(start: bigint, end: bigint, i: number, what: string, out: Piece[]): void {
    const lv = this.level(i, what);
    let at = start;
    for (const r of lv.runs) {
      if (r.end <= at) continue;
      if (r.start > at || at >= end) break;
      const stop = r.end < end ? r.end : end;
      if (r.parent) this.find(at, stop, i + 1, what, out);
      else out.push({ level: lv, off: r.off + Number(at - r.start), len: Number(stop - at) });
      at = stop;
    }
    if (at < end) throw new ImageError('IMG_INVALID', what, undefined, `the pages at 0x${at.toString(16)} are said to be in the parent images, but ${lv.name}/${lv.dir.fileName('pagemap', this.pid)} does not have them`);
  }

  pagesFd(lv: Level): number {
    if (lv.pagesFd === undefined) lv.pagesFd = lv.dir.openPages(lv.pagesId, 'r');
    return lv.pagesFd;
  }

  close(): void {
    for (const lv of this.levels) {
      if (lv.pagesFd !== undefined) closeSync(lv.pagesFd);
      lv.dir.close();
    }
  }
}

/**
 * The pages of task `pid`'s pagemap gathered into a memfd when some are in the
 * parent images: returns the memfd and the entries, all present now, or
 * undefined when every page is in `dir` already.
 */
export function gatherParentPages(dir: ImageDir, pid: number, pm: { pagesId: number; runs: PagemapEntry[] }): { fd: number; runs: PagemapEntry[] } | undefined {
  if (!pm.runs.some(inParent)) return undefined;
  const what = dir.fileName('pagemap', pid);
  const chain = new Chain(dir, pid);
  const fd = memfdCreate(`cryo-pages-${pid}`, 1 /* MFD_CLOEXEC */);
  try {
    let ownFd = -1;
    let ownOff = 0;
    let out = 0;
    const buf = Buffer.alloc(4 << 20);
    const copy = (src: number, off: number, len: number) => {
      for (let done = 0; done < len; ) {
        const n = Math.min(buf.length, len - done);
        const got = readSync(src, buf, 0, n, off + done);
        if (got !== n) throw new ImageError('IMG_INVALID', what, undefined, `a pages image of the chain is short at offset ${off + done}`);
        writeSync(fd, buf, 0, n, out);
        out += n;
        done += n;
      }
    };
    const total = pm.runs.reduce((s, r) => s + Number(pagesOf(r) * PAGE), 0);
    ftruncateSync(fd, total);
    try {
      for (const r of pm.runs) {
        const len = Number(pagesOf(r) * PAGE);
        if (inParent(r)) {
          const pieces: Piece[] = [];
          chain.find(r.vaddr, r.vaddr + BigInt(len), 1, what, pieces);
          for (const p of pieces) copy(chain.pagesFd(p.level), p.off, p.len);
        } else {
          if (!(r.flags & PE_PRESENT)) throw new ImageError('IMG_INVALID', what, undefined, `entry at 0x${r.vaddr.toString(16)} holds lazy pages, which cryo does not read`);
          if (ownFd < 0) ownFd = dir.openPages(pm.pagesId, 'r');
          copy(ownFd, ownOff, len);
          ownOff += len;
        }
      }
    } finally {
      if (ownFd >= 0) closeSync(ownFd);
    }
    const runs = pm.runs.map((r) => create(PagemapEntrySchema, { vaddr: r.vaddr, compatNrPages: 0, nrPages: pagesOf(r), flags: PE_PRESENT }));
    return { fd, runs };
  } catch (e) {
    closeSync(fd);
    throw e;
  } finally {
    chain.close();
  }
}
