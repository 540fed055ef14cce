// Registers: general purpose (user_regs_struct) and FPU/SSE/AVX (the XSAVE area),
// converted to and from CRIU's thread_info_x86 message.
import { ptrace, Regs, NT_X86_XSTATE, REG_NAMES } from '../sys/index.js';
import {
  create, ThreadInfoX86Schema, UserX86RegsEntrySchema, UserX86FpregsEntrySchema,
  UserX86XsaveEntrySchema, UserDescTSchema, UserX86RegsMode,
  type ThreadInfoX86, type UserX86RegsEntry, type UserX86FpregsEntry, type UserDescT,
} from '../images/index.js';

/**
 * The XSAVE state components CRIU's image keeps, by XCR0 bit, with their image
 * field and element width. Where each lies in the (standard-format) area that
 * ptrace hands out is the CPU's own: CPUID leaf 0xD (AMD puts PKRU at 2432,
 * Intel at 2688).
 */
const COMPONENTS = [
  { bit: 2, name: 'AVX (YMM)', field: 'ymmhSpace', width: 4, count: 64 },
  { bit: 3, name: 'MPX bound registers', field: 'bndregState', width: 8, count: 8 },
  { bit: 4, name: 'MPX BNDCSR', field: 'bndcsrState', width: 8, count: 2 },
  { bit: 5, name: 'AVX-512 opmask', field: 'opmaskReg', width: 8, count: 8 },
  { bit: 6, name: 'AVX-512 ZMM_Hi256', field: 'zmmUpper', width: 8, count: 64 },
  { bit: 7, name: 'AVX-512 Hi16_ZMM', field: 'hi16Zmm', width: 8, count: 128 },
  { bit: 9, name: 'PKRU', field: 'pkru', width: 4, count: 2 },
] as const;
/** x87 and SSE: the legacy area, always kept. */
const LEGACY_BITS = 3n;
const KEPT_BITS = COMPONENTS.reduce((m, c) => m | (1n << BigInt(c.bit)), LEGACY_BITS);
const XSTATE_BV_OFF = 512;
const SW_XFEATURES_OFF = 464; // ptrace puts XCR0 here (gdb's I386_LINUX_XSAVE_XCR0_OFFSET)
const XSTATE_BUF_MAX = 64 * 1024;

/** Offset and size of each user state component in this CPU's standard-format XSAVE area. */
export type XsaveLayout = ReadonlyMap<number, { off: number; size: number }>;

/** The layout from CPUID leaf 0xD: sub-leaf i gives component i's size (EAX) and offset (EBX). */
export function xsaveLayout(cpuid: (leaf: number, subleaf: number) => readonly number[]): XsaveLayout {
  const [lo, , , hi] = cpuid(0xd, 0);
  const supported = BigInt(lo! >>> 0) | (BigInt(hi! >>> 0) << 32n);
  const m = new Map<number, { off: number; size: number }>();
  for (let bit = 2; bit < 64; bit++) {
    if (((supported >> BigInt(bit)) & 1n) === 0n) continue;
    const [size, off] = cpuid(0xd, bit);
    if (size! > 0 && off! > 0) m.set(bit, { off: off!, size: size! });
  }
  return m;
}

const u32s = (b: Buffer, off: number, n: number) => Array.from({ length: n }, (_, i) => b.readUInt32LE(off + 4 * i));
const u64s = (b: Buffer, off: number, n: number) => Array.from({ length: n }, (_, i) => b.readBigUInt64LE(off + 8 * i));

/** Read the XSAVE area of a stopped thread (exact kernel size). */
export function readXstate(tid: number): Buffer {
  const buf = Buffer.alloc(XSTATE_BUF_MAX);
  const n = ptrace.getRegset(tid, NT_X86_XSTATE, buf);
  return buf.subarray(0, n);
}

export function gpregsToEntry(r: Regs): UserX86RegsEntry {
  const o: Record<string, bigint> = {};
  for (const n of REG_NAMES) o[n === 'orig_ax' ? 'origAx' : n === 'fs_base' ? 'fsBase' : n === 'gs_base' ? 'gsBase' : n] = r.get(n);
  return create(UserX86RegsEntrySchema, { ...o, mode: UserX86RegsMode.NATIVE });
}

export function entryToGpregs(e: UserX86RegsEntry): Regs {
  const r = new Regs();
  for (const n of REG_NAMES) {
    const k = n === 'orig_ax' ? 'origAx' : n === 'fs_base' ? 'fsBase' : n === 'gs_base' ? 'gsBase' : n;
    r.set(n, (e as unknown as Record<string, bigint>)[k]!);
  }
  return r;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * The image fields of a thread's XSAVE area. A component in use that the image
 * has no field for (AMX tiles, APX) would be lost: refused, naming the thread.
 */
export function xstateToEntry(x: Buffer, layout: XsaveLayout, tid: number): UserX86FpregsEntry {
  const fp = create(UserX86FpregsEntrySchema, {
    cwd: x.readUInt16LE(0),
    swd: x.readUInt16LE(2),
    twd: x.readUInt8(4),
    fop: x.readUInt16LE(6),
    rip: x.readBigUInt64LE(8),
    rdp: x.readBigUInt64LE(16),
    mxcsr: x.readUInt32LE(24),
    mxcsrMask: x.readUInt32LE(28),
    stSpace: u32s(x, 32, 32),
    xmmSpace: u32s(x, 160, 64),
  });
  if (x.length <= 512) return fp;
  const mask = x.readBigUInt64LE(SW_XFEATURES_OFF);
  const bv = x.readBigUInt64LE(XSTATE_BV_OFF);
  const lost = bv & mask & ~KEPT_BITS;
  if (lost !== 0n) {
    throw new Error(`thread ${tid}: XSAVE state components ${hex(lost)} are in use, and CRIU's image has no place for them`);
  }
  const xs = create(UserX86XsaveEntrySchema, { xstateBv: bv });
  for (const c of COMPONENTS) {
    const at = layout.get(c.bit);
    if (((mask >> BigInt(c.bit)) & 1n) === 0n || at === undefined) continue;
    if (x.length < at.off + c.width * c.count) {
      throw new Error(`thread ${tid}: the XSAVE area (${x.length} bytes) ends before its ${c.name} state at ${at.off}`);
    }
    (xs as unknown as Record<string, unknown>)[c.field] = c.width === 4 ? u32s(x, at.off, c.count) : u64s(x, at.off, c.count);
  }
  fp.xsave = xs;
  return fp;
}

/**
 * Lay the image's FPU state over `template` (the target thread's own XSAVE area,
 * which has the exact size the kernel wants back). State this CPU cannot hold
 * (AVX-512 dumped elsewhere, restored on a CPU without it) is refused: dropping
 * it would run the task on with registers it never had.
 */
export function entryToXstate(fp: UserX86FpregsEntry, template: Buffer, layout: XsaveLayout): Buffer {
  const x = Buffer.from(template);
  x.writeUInt16LE(fp.cwd, 0);
  x.writeUInt16LE(fp.swd, 2);
  x.writeUInt8(fp.twd & 0xff, 4);
  x.writeUInt16LE(fp.fop, 6);
  x.writeBigUInt64LE(fp.rip, 8);
  x.writeBigUInt64LE(fp.rdp, 16);
  x.writeUInt32LE(fp.mxcsr, 24);
  x.writeUInt32LE(fp.mxcsrMask, 28);
  fp.stSpace.forEach((v, i) => x.writeUInt32LE(v, 32 + 4 * i));
  fp.xmmSpace.forEach((v, i) => x.writeUInt32LE(v, 160 + 4 * i));
  const xs = fp.xsave;
  if (!xs) return x;
  if (x.length <= 512) {
    if ((xs.xstateBv & ~LEGACY_BITS) !== 0n) throw new Error(`the image has XSAVE state ${hex(xs.xstateBv)}, and this CPU has only the legacy FXSAVE area`);
    return x;
  }
  const mask = x.readBigUInt64LE(SW_XFEATURES_OFF);
  for (const c of COMPONENTS) {
    const vals = (xs as unknown as Record<string, Array<number | bigint>>)[c.field]!;
    const inUse = ((xs.xstateBv >> BigInt(c.bit)) & 1n) === 1n;
    if (vals.length === 0 && !inUse) continue;
    const at = layout.get(c.bit);
    const here = ((mask >> BigInt(c.bit)) & 1n) === 1n && at !== undefined && x.length >= at.off + c.width * c.count;
    if (!here) {
      if (inUse) throw new Error(`the image has ${c.name} state, which this CPU lacks (XSAVE features ${hex(mask)})`);
      continue;
    }
    if (vals.length !== 0 && vals.length !== c.count) throw new Error(`the image's ${c.name} state has ${vals.length} elements, not ${c.count}`);
    vals.forEach((v, i) => (c.width === 4 ? x.writeUInt32LE(Number(v), at.off + 4 * i) : x.writeBigUInt64LE(BigInt(v), at.off + 8 * i)));
  }
  x.writeBigUInt64LE(xs.xstateBv & mask, XSTATE_BV_OFF);
  x.writeBigUInt64LE(0n, XSTATE_BV_OFF + 8); // xcomp_bv: standard format
  return x;
}

/** The three GDT TLS slots (used by 32-bit code; kept as CRIU keeps them). */
export function readTls(tid: number): UserDescT[] {
  const out: UserDescT[] = [];
  for (let i = 0; i < 3; i++) {
    let b: Buffer;
    try {
      b = ptrace.getThreadArea(tid, 12 + i);
    } catch {
      b = Buffer.alloc(16);
      b.writeUInt32LE(12 + i, 0);
    }
    const f = b.readUInt32LE(12);
    out.push(create(UserDescTSchema, {
      entryNumber: b.readUInt32LE(0), baseAddr: b.readUInt32LE(4), limit: b.readUInt32LE(8),
      seg32bit: (f & 1) !== 0, contentsH: (f & 4) !== 0, contentsL: (f & 2) !== 0,
      readExecOnly: (f & 8) !== 0, limitInPages: (f & 16) !== 0, segNotPresent: (f & 32) !== 0,
      usable: (f & 64) !== 0,
    }));
  }
  return out;
}

export function threadInfo(tid: number, regs: Regs, xstate: Buffer, layout: XsaveLayout, clearTidAddr: bigint, tls: UserDescT[]): ThreadInfoX86 {
  return create(ThreadInfoX86Schema, { clearTidAddr, gpregs: gpregsToEntry(regs), fpregs: xstateToEntry(xstate, layout, tid), tls });
}
