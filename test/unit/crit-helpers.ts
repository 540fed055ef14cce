// Helpers for the crit tests: random messages of any schema, CRIU's own crit run
// on many files at once, and "what Debian's crit shows" of our JSON (the fields
// its 3.17 schemas know, under their 3.17 names).
import { execFileSync } from 'node:child_process';
import { create, ScalarType, type DescField, type DescMessage, type Message } from '@bufbuild/protobuf';
import { reflect, type ReflectList } from '@bufbuild/protobuf/reflect';
import { Converter } from '../../src/crit/convert.js';
import { isObject, setKey, type JsonObject, type JsonValue } from '../../src/crit/json.js';
import { quopriDecode, quopriEncode } from '../../src/crit/pyfmt.js';
import { PYTHON, pycriuSchemas, type PyField } from './images-helpers.js';

export { PYTHON, CRIT, haveCrit } from './images-helpers.js';

/** A seeded PRNG (mulberry32), so that a failure can be reproduced. */
export class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
  u32(): number {
    return this.pick([0, 1, 7, 0x7f, 0x80, 0xffff, 0xffffffff, this.int(2 ** 32), this.int(1000)]);
  }
  u64(): bigint {
    return this.pick([0n, 1n, 0xffff_ffff_ffff_ffffn, 0x7fff_ffff_ffff_ffffn, 0x55d0_0000_1000n, BigInt(this.int(2 ** 32)) << BigInt(this.int(32)), 2n ** 53n + 1n]);
  }
  string(): string {
    const parts = ['abc', '/usr/lib/x86_64-linux-gnu/libc.so.6', ' ', '"', '\\', '\n', '\t', '\x01', '\x7f', 'é', '中文', '😀', '/tmp/a b', ''];
    let s = '';
    for (let n = this.int(5); n > 0; n--) s += this.pick(parts);
    return s;
  }
  /**
   * Bytes that exercise quoted-printable: NULs, "=", ".", blanks before line ends,
   * long runs; `sameLineEnds` keeps to names whose crit form reads back exactly.
   */
  unixName(sameLineEnds = false): Uint8Array {
    for (;;) {
      const name = this.anyUnixName();
      if (!sameLineEnds) return name;
      const back = quopriDecode(quopriEncode(name))!;
      if (back.length === name.length && back.every((b, i) => b === name[i])) return name;
    }
  }
  private anyUnixName(): Uint8Array {
    const parts = [[0], [0x3d], [0x2e], [0x20], [0x09], [0x0a], [0x0d, 0x0a], [0x0d], [0xff], [...'/tmp/sock'].map((c) => c.charCodeAt(0)), Array(80).fill(0x61)];
    const out: number[] = [];
    for (let n = this.int(6); n > 0; n--) out.push(...this.pick(parts));
    return Uint8Array.from(out);
  }
}

/** pycriu's schemas (3.17) keyed by our message / enum names. */
export interface PySchemas {
  messages: Map<string, PyField[]>;
  enums: Map<string, Record<string, number>>;
}

const pascal = (criuName: string) =>
  criuName === 'CRIU_Opts' ? 'CriuFieldOpts' : criuName.split('_').filter(Boolean).map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');

export function pySchemas(): PySchemas {
  const raw = pycriuSchemas();
  const messages = new Map<string, PyField[]>();
  const enums = new Map<string, Record<string, number>>();
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('enum:')) enums.set(pascal(k.slice(5)), v as Record<string, number>);
    else messages.set(pascal(k), v as PyField[]);
  }
  return { messages, enums };
}

/** Bits of flags that CRIU 4.x's crit names and Debian's (3.17) does not. */
const NEWER_BITS: Record<string, number> = { 'mmap.flags': 0x08, 'mmap.status': (1 << 14) | (1 << 15) | (1 << 17) };

export interface FillOptions {
  /** Only enum values and fields Debian's crit knows, when given. */
  py?: PySchemas;
  depth?: number;
}

/**
 * A message with random values in (nearly) every field: required fields always,
 * optional ones mostly, lists of 0..3 items, addresses of 1 or 4 words.
 */
export function fill(desc: DescMessage, rng: Rng, opts: FillOptions = {}, conv = new Converter()): Message {
  const depth = opts.depth ?? 0;
  const msg = create(desc) as Message;
  const r = reflect(desc, msg as never);
  for (const f of desc.fields as readonly DescField[]) {
    const required = f.proto.label === 2;
    if (!required && !rng.chance(depth > 3 ? 0.2 : 0.75)) continue;
    const o = conv.fieldOpts(f);
    const one = (): unknown => {
      if (f.message) return reflect(f.message, fill(f.message, rng, { ...opts, depth: depth + 1 }, conv) as never);
      if (f.enum) {
        const known = opts.py?.enums.get(f.enum.name);
        const values = f.enum.values.filter((v) => !known || v.name in known);
        return rng.pick(values).number;
      }
      switch (f.scalar!) {
        case ScalarType.BOOL:
          return rng.chance(0.5);
        case ScalarType.STRING:
          return rng.string();
        case ScalarType.BYTES:
          return o.conv === 'unix_name' ? rng.unixName(opts.py !== undefined) : rng.bytes(rng.pick([0, 1, 2, 3, 56, 57, 58, 120]));
        case ScalarType.INT32:
        case ScalarType.SINT32:
        case ScalarType.SFIXED32:
          return rng.pick([0, -1, 5, -(2 ** 31), 2 ** 31 - 1]);
        case ScalarType.INT64:
        case ScalarType.SINT64:
        case ScalarType.SFIXED64:
          return rng.pick([0n, -1n, 5n, -(2n ** 63n), 2n ** 63n - 1n]);
        case ScalarType.UINT64:
        case ScalarType.FIXED64:
          return rng.u64();
        default: {
          let v = rng.u32();
          if (o.dict === 'gen') v = rng.pick([1, 3, 6, 2, v]);
          if (o.dict === 'sk') v = rng.pick([1, 2, 5, 10, 17, 6, 136, v]);
          if (opts.py && NEWER_BITS[o.flags]) v = (v & ~NEWER_BITS[o.flags]!) >>> 0;
          return v;
        }
      }
    };
    if (f.fieldKind === 'list') {
      const list = r.get(f) as ReflectList;
      const n = o.ipadd ? rng.pick([1, 4]) : rng.int(4);
      for (let i = 0; i < n; i++) list.add(one());
    } else r.set(f, one());
  }
  return msg;
}

/**
 * Runs CRIU's crit decoder (pycriu, as /usr/bin/crit decode does) on many files in
 * one python process: file -> [decode text, decode --pretty text], or the error.
 */
export function critDecodeMany(files: string[]): Map<string, [string, string] | { error: string }> {
  const script = `
import json, sys, traceback
import pycriu
out = {}
for f in json.load(sys.stdin):
    try:
        r = []
        for pretty in (False, True):
            with open(f, 'rb') as fh:
                img = pycriu.images.load(fh, pretty)
            r.append(json.dumps(img, indent=4 if pretty else None))
        out[f] = r
    except Exception as e:
        out[f] = {'error': '%s: %s' % (type(e).__name__, e)}
json.dump(out, sys.stdout)
`;
  const text = execFileSync(PYTHON, ['-c', script], { input: JSON.stringify(files), encoding: 'utf8', maxBuffer: 1 << 30, cwd: '/' });
  return new Map(Object.entries(JSON.parse(text) as Record<string, [string, string] | { error: string }>));
}

/**
 * Our JSON as Debian's crit (3.17) shows it: fields its schemas do not know
 * dropped, fields it names differently renamed, enum values it does not know
 * dropped (protobuf keeps those as unknown fields, so crit does not print them).
 */
export function debianView(desc: DescMessage, obj: JsonObject, py: PySchemas, top = true): JsonObject {
  const pyFields = py.messages.get(desc.name) ?? [];
  const out: JsonObject = {};
  const fields = [...desc.fields].sort((a, b) => a.number - b.number);
  for (const f of fields) {
    if (!(f.name in obj)) continue;
    const pf = pyFields.find((x) => x.number === f.number);
    if (!pf) continue;
    let v: JsonValue = obj[f.name]!;
    if (f.message) {
      const m = f.message;
      v = Array.isArray(v) ? v.map((x) => debianView(m, x as JsonObject, py, false)) : debianView(m, v as JsonObject, py, false);
    } else if (f.enum) {
      const known = py.enums.get(f.enum.name) ?? {};
      if (Array.isArray(v)) v = v.filter((x) => typeof x === 'string' && x in known);
      else if (!(typeof v === 'string' && v in known)) continue;
      if (Array.isArray(v) && v.length === 0) continue;
    }
    setKey(out, pf.name, v);
  }
  if (top && 'extra' in obj) setKey(out, 'extra', obj['extra']!);
  return out;
}

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return isObject(v);
}
