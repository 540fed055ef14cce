// Registers: general purpose (user_regs_struct) and FPU/SSE/AVX (the XSAVE area),
// converted to and from CRIU's thread_info_x86 message.
import { ptrace, Regs, NT_X86_XSTATE, REG_NAMES } from '../sys/index.js';
import {
  create, ThreadInfoX86Schema, UserX86RegsEntrySchema, UserX86FpregsEntrySchema,
  UserX86XsaveEntrySchema, UserDescTSchema, UserX86RegsMode,
  type ThreadInfoX86, type UserX86RegsEntry, type UserX86FpregsEntry, type UserDescT,
} from '../images/index.js';

/** Standard-format XSAVE offsets (CPUID leaf 0xD) of the components CRIU keeps. */
const XFEATURE = {
  YMM: { bit: 2, off: 576, size: 256 },
  BNDREGS: { bit: 3, off: 960, size: 64 },
  BNDCSR: { bit: 4, off: 1024, size: 16 },
  OPMASK: { bit: 5, off: 1088, size: 64 },
  ZMM_HI256: { bit: 6, off: 1152, size: 512 },
  HI16_ZMM: { bit: 7, off: 1664, size: 1024 },
  PKRU: { bit: 9, off: 2688, size: 8 },
} as const;
const XSTATE_BV_OFF = 512;
const SW_XFEATURES_OFF = 464; // ptrace puts XCR0 here (gdb's I386_LINUX_XSAVE_XCR0_OFFSET)
const XSTATE_BUF_MAX = 64 * 1024;

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

export function xstateToEntry(x: Buffer): UserX86FpregsEntry {
  const mask = x.length >= 472 ? x.readBigUInt64LE(SW_XFEATURES_OFF) : 3n;
  const has = (bit: number) => x.length > 512 && ((mask >> BigInt(bit)) & 1n) === 1n;
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
  if (x.length > 512) {
    const xs = create(UserX86XsaveEntrySchema, { xstateBv: x.readBigUInt64LE(XSTATE_BV_OFF) });
    if (has(XFEATURE.YMM.bit)) xs.ymmhSpace = u32s(x, XFEATURE.YMM.off, 64);
    if (has(XFEATURE.BNDREGS.bit)) xs.bndregState = u64s(x, XFEATURE.BNDREGS.off, 8);
    if (has(XFEATURE.BNDCSR.bit)) xs.bndcsrState = u64s(x, XFEATURE.BNDCSR.off, 2);
    if (has(XFEATURE.OPMASK.bit)) xs.opmaskReg = u64s(x, XFEATURE.OPMASK.off, 8);
    if (has(XFEATURE.ZMM_HI256.bit)) xs.zmmUpper = u64s(x, XFEATURE.ZMM_HI256.off, 64);
    if (has(XFEATURE.HI16_ZMM.bit)) xs.hi16Zmm = u64s(x, XFEATURE.HI16_ZMM.off, 128);
    if (has(XFEATURE.PKRU.bit)) xs.pkru = u32s(x, XFEATURE.PKRU.off, 2);
    fp.xsave = xs;
  }
  return fp;
}

/**
 * Lay the image's FPU state over `template` (the target thread's own XSAVE area,
 * which has the exact size the kernel wants back).
 */
export function entryToXstate(fp: UserX86FpregsEntry, template: Buffer): Buffer {
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
  if (xs && x.length > 512) {
    const mask = x.readBigUInt64LE(SW_XFEATURES_OFF);
    x.writeBigUInt64LE(xs.xstateBv & mask, XSTATE_BV_OFF);
    x.writeBigUInt64LE(0n, XSTATE_BV_OFF + 8); // xcomp_bv: standard format
    const put32 = (a: number[], off: number) => a.forEach((v, i) => x.writeUInt32LE(v, off + 4 * i));
    const put64 = (a: bigint[], off: number) => a.forEach((v, i) => x.writeBigUInt64LE(v, off + 8 * i));
    const fits = (f: { off: number; size: number }) => x.length >= f.off + f.size;
    if (fits(XFEATURE.YMM)) put32(xs.ymmhSpace, XFEATURE.YMM.off);
    if (fits(XFEATURE.BNDREGS)) put64(xs.bndregState, XFEATURE.BNDREGS.off);
    if (fits(XFEATURE.BNDCSR)) put64(xs.bndcsrState, XFEATURE.BNDCSR.off);
    if (fits(XFEATURE.OPMASK)) put64(xs.opmaskReg, XFEATURE.OPMASK.off);
    if (fits(XFEATURE.ZMM_HI256)) put64(xs.zmmUpper, XFEATURE.ZMM_HI256.off);
    if (fits(XFEATURE.HI16_ZMM)) put64(xs.hi16Zmm, XFEATURE.HI16_ZMM.off);
    if (fits(XFEATURE.PKRU)) put32(xs.pkru, XFEATURE.PKRU.off);
  }
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

export function threadInfo(regs: Regs, xstate: Buffer, clearTidAddr: bigint, tls: UserDescT[]): ThreadInfoX86 {
  return create(ThreadInfoX86Schema, { clearTidAddr, gpregs: gpregsToEntry(regs), fpregs: xstateToEntry(xstate), tls });
}
