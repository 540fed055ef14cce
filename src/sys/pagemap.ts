// PAGEMAP_SCAN (Linux 6.7+): ranges of pages by category, from /proc/PID/pagemap.
import { addressOf, syscall, trySyscall } from './libc.js';
import { NR } from './nr.js';

export const PAGE_IS = {
  WPALLOWED: 1n << 0n, WRITTEN: 1n << 1n, FILE: 1n << 2n, PRESENT: 1n << 3n,
  SWAPPED: 1n << 4n, PFNZERO: 1n << 5n, HUGE: 1n << 6n, SOFT_DIRTY: 1n << 7n, GUARD: 1n << 8n,
} as const;

const ARG_SIZE = 96;
/** _IOWR('f', 16, struct pm_scan_arg) */
const PAGEMAP_SCAN = (3 << 30) | (ARG_SIZE << 16) | (0x66 << 8) | 16;
const REGION_SIZE = 24;

export interface PageRegion {
  start: bigint;
  end: bigint;
  categories: bigint;
}

export interface ScanQuery {
  inverted: bigint;
  mask: bigint;
  anyof: bigint;
  ret: bigint;
}

/**
 * Regions of [start, end) whose pages match `q` (kernel semantics: categories are
 * XORed with `inverted`, must include all of `mask` and any of `anyof`).
 * Returns null when the kernel lacks PAGEMAP_SCAN.
 */
export function pagemapScan(pagemapFd: number, start: bigint, end: bigint, q: ScanQuery): PageRegion[] | null {
  const out: PageRegion[] = [];
  const nvec = 512;
  const vec = Buffer.alloc(nvec * REGION_SIZE);
  const arg = Buffer.alloc(ARG_SIZE);
  let cur = start;
  while (cur < end) {
    arg.fill(0);
    arg.writeBigUInt64LE(BigInt(ARG_SIZE), 0);
    arg.writeBigUInt64LE(0n, 8);
    arg.writeBigUInt64LE(cur, 16);
    arg.writeBigUInt64LE(end, 24);
    arg.writeBigUInt64LE(addressOf(vec), 40);
    arg.writeBigUInt64LE(BigInt(nvec), 48);
    arg.writeBigUInt64LE(q.inverted, 64);
    arg.writeBigUInt64LE(q.mask, 72);
    arg.writeBigUInt64LE(q.anyof, 80);
    arg.writeBigUInt64LE(q.ret, 88);
    const n = trySyscall(NR.ioctl, pagemapFd, PAGEMAP_SCAN, arg, 0, 0, 0, vec);
    if (n === -25 /* ENOTTY */ || n === -22 /* EINVAL */) return null;
    if (n < 0) syscall('ioctl(PAGEMAP_SCAN)', NR.ioctl, pagemapFd, PAGEMAP_SCAN, arg, 0, 0, 0, vec);
    for (let i = 0; i < n; i++) {
      const o = i * REGION_SIZE;
      const r = { start: vec.readBigUInt64LE(o), end: vec.readBigUInt64LE(o + 8), categories: vec.readBigUInt64LE(o + 16) };
      const last = out[out.length - 1];
      if (last && last.end === r.start && last.categories === r.categories) last.end = r.end;
      else out.push(r);
    }
    const walkEnd = arg.readBigUInt64LE(32);
    if (walkEnd <= cur) break;
    cur = walkEnd;
  }
  return out;
}
