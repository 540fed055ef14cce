// struct user_regs_struct (x86_64), 27 × u64, kept in a Buffer so that the hot
// remote-syscall path copies no objects.

export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'bp', 'bx', 'r11', 'r10', 'r9', 'r8', 'ax', 'cx', 'dx', 'si',
  'di', 'orig_ax', 'ip', 'cs', 'flags', 'sp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export const USER_REGS_SIZE = REG_NAMES.length * 8; // 216

const INDEX = Object.fromEntries(REG_NAMES.map((n, i) => [n, i * 8])) as Record<RegName, number>;

export class Regs {
  readonly buf: Buffer;
  constructor(buf?: Buffer) {
    this.buf = buf ?? Buffer.alloc(USER_REGS_SIZE);
  }
  get(name: RegName): bigint {
    return this.buf.readBigUInt64LE(INDEX[name]);
  }
  /** Signed view, for rax results (-errno) and orig_ax (-1). */
  getSigned(name: RegName): bigint {
    return this.buf.readBigInt64LE(INDEX[name]);
  }
  set(name: RegName, v: bigint | number): void {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), INDEX[name]);
  }
  clone(): Regs {
    return new Regs(Buffer.from(this.buf));
  }
  toObject(): Record<RegName, bigint> {
    return Object.fromEntries(REG_NAMES.map((n) => [n, this.get(n)])) as Record<RegName, bigint>;
  }
  static fromObject(o: Partial<Record<RegName, bigint | number>>): Regs {
    const r = new Regs();
    for (const n of REG_NAMES) if (o[n] !== undefined) r.set(n, o[n]!);
    return r;
  }
}
