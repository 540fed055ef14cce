// Copy-on-write sharing between a parent and a child, kept across restore as CRIU
// keeps it: the child is forked from its parent once the parent's memory is back,
// so its inherited private VMAs (inheritedVmas) hold the parent's pages, shared.
// Of those, a page the child's image holds with the same contents stays shared; the
// child's other pages are written; a page of the parent's that the child's image
// does not hold, or holds otherwise, is dropped first (MADV_DONTNEED: zero again,
// or the file's page in a private file mapping). So the child ends up with exactly
// its image, sharing what it shared when it was dumped.
import { readSync } from 'node:fs';
import { MADV, NR, PAGE_SIZE } from '../sys/index.js';
import type { VmaEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import type { PageRun } from './pages.js';

const PAGE = BigInt(PAGE_SIZE);
const CHUNK = 1 << 20;

/** [start, end) with, for the child's pages, where they are in its pages file. */
interface Span {
  start: bigint;
  end: bigint;
  off: number;
}

function spansOf(runs: PageRun[]): Span[] {
  let off = 0;
  return runs.map((r) => {
    if (r.off !== undefined) off = r.off;
    const s = { start: r.vaddr, end: r.vaddr + BigInt(r.nrPages) * PAGE, off };
    off += r.nrPages * PAGE_SIZE;
    return s;
  });
}

/** The parts of sorted spans `a` inside (`keep`) or outside sorted disjoint ranges `b`, offsets carried along. */
function clip(a: Span[], b: Array<[bigint, bigint]>, keep: boolean): Span[] {
  const out: Span[] = [];
  const push = (s: Span, from: bigint, to: bigint) => {
    if (to > from) out.push({ start: from, end: to, off: s.off + Number(from - s.start) });
  };
  let j = 0;
  for (const s of a) {
    while (j < b.length && b[j]![1] <= s.start) j++;
    let at = s.start;
    for (let k = j; k < b.length && b[k]![0] < s.end; k++) {
      const [bs, be] = b[k]!;
      const lo = bs > at ? bs : at;
      const hi = be < s.end ? be : s.end;
      if (!keep) push(s, at, lo);
      else push(s, lo, hi);
      at = hi;
    }
    if (!keep) push(s, at, s.end);
  }
  return out;
}

const ranges = (spans: Span[]): Array<[bigint, bigint]> => spans.map((s) => [s.start, s.end]);

/**
 * Fix up the child's inherited VMAs (see above) and return the page runs that are
 * left to write: `runs` (the child's pagemap, with offsets into its pages file
 * `pagesFd`) minus the pages that stay shared. `parentRuns` are the pages the
 * parent got from its image. The child's memory is read through `readMem`.
 */
export function shareInherited(
  rem: Remote, inherited: VmaEntry[], runs: PageRun[], parentRuns: PageRun[], pagesFd: number,
  readMem: (addr: bigint, buf: Buffer) => void,
): { runs: PageRun[]; shared: number; dropped: number } {
  const inh = inherited.map((v) => [v.start, v.end] as [bigint, bigint]).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const child = spansOf(runs);
  const childIn = clip(child, inh, true);
  const parentIn = ranges(clip(spansOf(parentRuns), inh, true));
  // Pages both have: compare the child's image with what it holds now.
  const same: Array<[bigint, bigint]> = [];
  const mine = Buffer.alloc(CHUNK);
  const want = Buffer.alloc(CHUNK);
  for (const s of clip(childIn, parentIn, true)) {
    for (let a = s.start; a < s.end; ) {
      const len = Math.min(CHUNK, Number(s.end - a));
      const off = s.off + Number(a - s.start);
      readMem(a, mine.subarray(0, len));
      if (readSync(pagesFd, want, 0, len, off) !== len) throw new Error(`pages image is short at offset ${off}`);
      for (let p = 0; p < len; p += PAGE_SIZE) {
        if (!mine.subarray(p, p + PAGE_SIZE).equals(want.subarray(p, p + PAGE_SIZE))) continue;
        const at = a + BigInt(p);
        const last = same[same.length - 1];
        if (last && last[1] === at) last[1] = at + PAGE;
        else same.push([at, at + PAGE]);
      }
      a += BigInt(len);
    }
  }
  // The parent's pages that are not the child's: gone before the child's go in.
  const drop = clip(parentIn.map(([start, end]) => ({ start, end, off: 0 })), same, false);
  rem.batch(drop.map((d) => ({ name: `madvise(0x${d.start.toString(16)}, MADV_DONTNEED)`, nr: NR.madvise, args: [d.start, d.end - d.start, MADV.DONTNEED] })));
  const write = [...clip(child, inh, false), ...clip(childIn, same, false)].sort((x, y) => (x.start < y.start ? -1 : 1));
  const pages = (l: Array<[bigint, bigint]> | Span[]) => l.reduce((n, x) => n + Number(((Array.isArray(x) ? x[1] - x[0] : x.end - x.start)) / PAGE), 0);
  return {
    runs: write.map((s) => ({ vaddr: s.start, nrPages: Number((s.end - s.start) / PAGE), off: s.off })),
    shared: pages(same),
    dropped: pages(drop),
  };
}
