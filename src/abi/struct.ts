// A C struct as a codec: fields laid out by the x86_64 ABI (each at its natural
// alignment, the whole padded to the largest), read from and written to Buffers.
// 64-bit fields are bigints, the rest numbers. Nothing here knows a syscall.

export type Prim = 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64';
export type FieldType = Prim | Struct<object>;
export type Layout = Readonly<Record<string, FieldType>>;

type ValueOf<F> = F extends 'i64' | 'u64' ? bigint : F extends Struct<infer T> ? T : number;
export type Value<L extends Layout> = { -readonly [K in keyof L]: ValueOf<L[K]> };
/** What encode takes: any field left out is zero. */
export type Init<T> = { [K in keyof T]?: T[K] extends object ? Init<T[K]> : T[K] };

const PRIM_SIZE: Record<Prim, number> = { u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8 };

export class Struct<T extends object> {
  /** sizeof */
  readonly size: number;
  /** alignof */
  readonly align: number;
  /** offsetof and sizeof, by field name */
  readonly offsets: Readonly<Record<keyof T & string, number>>;
  readonly sizes: Readonly<Record<keyof T & string, number>>;
  private readonly fields: ReadonlyArray<{ name: string; type: FieldType; off: number }>;

  constructor(readonly name: string, layout: Layout, opts: { size?: number } = {}) {
    let off = 0;
    let align = 1;
    const fields: Array<{ name: string; type: FieldType; off: number }> = [];
    const offsets: Record<string, number> = {};
    const sizes: Record<string, number> = {};
    for (const [fname, type] of Object.entries(layout)) {
      const [size, a] = typeof type === 'string' ? [PRIM_SIZE[type], PRIM_SIZE[type]] : [type.size, type.align];
      off = Math.ceil(off / a) * a;
      fields.push({ name: fname, type, off });
      offsets[fname] = off;
      sizes[fname] = size;
      off += size;
      align = Math.max(align, a);
    }
    const natural = Math.ceil(off / align) * align;
    // A union or reserved tail (sigevent) makes the struct larger than its fields.
    if (opts.size !== undefined && opts.size < natural) throw new Error(`struct ${name}: size ${opts.size} below its fields' ${natural}`);
    this.size = opts.size ?? natural;
    this.align = align;
    this.fields = fields;
    this.offsets = offsets as Record<keyof T & string, number>;
    this.sizes = sizes as Record<keyof T & string, number>;
  }

  decode(b: Buffer, at = 0): T {
    if (b.length < at + this.size) throw new RangeError(`struct ${this.name}: ${b.length - at} bytes, needs ${this.size}`);
    const out: Record<string, unknown> = {};
    for (const f of this.fields) out[f.name] = readField(b, at + f.off, f.type);
    return out as T;
  }

  /** Into `into` at `at` (a new zeroed Buffer of `size` by default); returns the buffer. */
  encode(v: Init<T>, into?: Buffer, at = 0): Buffer {
    const b = into ?? Buffer.alloc(this.size);
    if (b.length < at + this.size) throw new RangeError(`struct ${this.name}: ${b.length - at} bytes, needs ${this.size}`);
    if (into) b.fill(0, at, at + this.size);
    const vals = v as Record<string, unknown>;
    for (const f of this.fields) {
      const x = vals[f.name];
      if (x !== undefined) writeField(b, at + f.off, f.type, x);
    }
    return b;
  }
}

function readField(b: Buffer, off: number, t: FieldType): unknown {
  switch (t) {
    case 'u8': return b.readUInt8(off);
    case 'i16': return b.readInt16LE(off);
    case 'u16': return b.readUInt16LE(off);
    case 'i32': return b.readInt32LE(off);
    case 'u32': return b.readUInt32LE(off);
    case 'i64': return b.readBigInt64LE(off);
    case 'u64': return b.readBigUInt64LE(off);
    default: return t.decode(b, off);
  }
}

function writeField(b: Buffer, off: number, t: FieldType, x: unknown): void {
  switch (t) {
    case 'u8': b.writeUInt8(x as number, off); return;
    case 'i16': b.writeInt16LE(x as number, off); return;
    case 'u16': b.writeUInt16LE(x as number, off); return;
    case 'i32': b.writeInt32LE(x as number, off); return;
    case 'u32': b.writeUInt32LE(x as number, off); return;
    // Either sign fits: a u64 field may carry -1 as 2^64-1, an i64 a large bigint.
    case 'i64': b.writeBigUInt64LE(BigInt.asUintN(64, x as bigint), off); return;
    case 'u64': b.writeBigUInt64LE(BigInt.asUintN(64, x as bigint), off); return;
    default: t.encode(x as object, b, off);
  }
}

export function struct<L extends Layout>(name: string, layout: L, opts?: { size?: number }): Struct<Value<L>> {
  return new Struct<Value<L>>(name, layout, opts);
}
