// Framing of CRIU image files, pure (no Node imports): magic header, then per entry
// a u32 little-endian length, the protobuf message, and for some kinds a raw
// payload whose length comes from the message. Decoding distrusts its input: every
// length is bounded, every read is checked against the end of the buffer, and every
// failure is an ImageError naming the file and the byte offset.
import { fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import type { DescField, DescMessage, Message } from '@bufbuild/protobuf';
import { ImageError } from './errors.js';
import {
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  KINDS,
  kindOf,
  kindsByMagic,
  type AnyEntryOf,
  type PbKind,
  type PbKindKey,
} from './magic.js';

/** Default bound on one entry's message length (CRIU's largest, mm with many VMAs, is far below). */
export const DEFAULT_MAX_ENTRY_SIZE = 64 * 1024 * 1024;

/** One entry of an image: a message and, for kinds that have one, its raw payload. */
export interface Entry<M extends Message = Message> {
  msg: M;
  extra?: Uint8Array;
}

export interface DecodeOptions {
  /** Largest accepted message length; DEFAULT_MAX_ENTRY_SIZE when absent. */
  maxEntrySize?: number;
}

type AnyPbKind = PbKind<DescMessage, DescMessage>;

const LEGACY_REQUIRED = 3; // FeatureSet.FieldPresence.LEGACY_REQUIRED

function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

function u32(buf: Uint8Array, off: number): number {
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

function putU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

function pbKind(key: PbKindKey): AnyPbKind {
  const k = kindOf(key);
  if (k.raw) throw new TypeError(`image kind ${key} is raw, it has no entries`);
  return k as AnyPbKind;
}

/** The magic numbers at the head of a kind's file (one or two u32). */
export function headerBytes(key: PbKindKey): Uint8Array {
  const k = pbKind(key);
  const first = k.prefix === 'common' ? IMG_COMMON_MAGIC : k.prefix === 'service' ? IMG_SERVICE_MAGIC : undefined;
  const out = new Uint8Array(first === undefined ? 4 : 8);
  if (first !== undefined) putU32(out, 0, first);
  putU32(out, out.length - 4, k.magic);
  return out;
}

function schemaFor(k: AnyPbKind, first: boolean): DescMessage {
  return first && k.head ? k.head : k.schema;
}

/** The first proto2 required field not set in `msg` (recursively), as a dotted path. */
export function missingRequired(desc: DescMessage, msg: Message, path = ''): string | undefined {
  for (const f of desc.fields as readonly DescField[]) {
    const here = path + f.name;
    const set = isFieldSet(msg as never, f);
    if (!set) {
      if (f.fieldKind !== 'list' && f.fieldKind !== 'map' && f.presence === LEGACY_REQUIRED) return here;
      continue;
    }
    const value = (msg as unknown as Record<string, unknown>)[f.localName];
    if (f.fieldKind === 'message') {
      const miss = missingRequired(f.message, value as Message, here + '.');
      if (miss) return miss;
    } else if (f.fieldKind === 'list' && f.listKind === 'message') {
      const list = value as Message[];
      for (let i = 0; i < list.length; i++) {
        const miss = missingRequired(f.message, list[i]!, `${here}[${i}].`);
        if (miss) return miss;
      }
    }
  }
  return undefined;
}

/** Encodes one entry: length, message, payload. `first` selects the head schema. */
export function encodeEntry(
  key: PbKindKey,
  msg: Message,
  extra: Uint8Array | undefined,
  first: boolean,
  file: string = key,
): Uint8Array[] {
  const k = pbKind(key);
  const want = schemaFor(k, first);
  if (msg.$typeName !== want.typeName) {
    throw new ImageError('IMG_ENCODE', file, undefined, `entry is ${msg.$typeName}, expected ${want.typeName}`);
  }
  let body: Uint8Array;
  try {
    body = toBinary(want, msg as never);
  } catch (e) {
    throw new ImageError('IMG_ENCODE', file, undefined, `cannot encode ${want.typeName}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const head = new Uint8Array(4);
  putU32(head, 0, body.length);
  const extraLen = extra?.length ?? 0;
  if (k.payload) {
    const bytes = extra ?? new Uint8Array(0);
    const want = k.payload(msg as never, bytes, first);
    if (want !== extraLen) {
      throw new ImageError('IMG_ENCODE', file, undefined, `${msg.$typeName} announces ${want} payload bytes, got ${extraLen}`);
    }
  } else if (extraLen > 0) {
    throw new ImageError('IMG_ENCODE', file, undefined, `entries of ${key} carry no payload`);
  }
  return extraLen > 0 ? [head, body, extra!] : [head, body];
}

function isEntry(x: Message | Entry): x is Entry {
  return !('$typeName' in x);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Encodes a whole image file. `entries` are messages or `{msg, extra}` pairs;
 * for kinds with a head (pagemap, ghost-file) the first one is the head.
 */
export function encodeImage<K extends PbKindKey>(
  key: K,
  entries: readonly (AnyEntryOf<K> | Entry<AnyEntryOf<K>>)[],
  file: string = key,
): Uint8Array {
  const parts: Uint8Array[] = [headerBytes(key)];
  entries.forEach((e, i) => {
    const { msg, extra } = isEntry(e) ? e : { msg: e, extra: undefined };
    parts.push(...encodeEntry(key, msg, extra, i === 0, file));
  });
  return concat(parts);
}

/** Checks the magic(s) of `buf` against the kind; returns the offset of the first entry. */
export function checkHeader(key: PbKindKey, buf: Uint8Array, file: string): number {
  const want = headerBytes(key);
  for (let off = 0; off < want.length; off += 4) {
    if (buf.length < off + 4) {
      throw new ImageError('IMG_BAD_MAGIC', file, off, `magic at offset ${off}: file ends after ${buf.length} bytes`);
    }
    const got = u32(buf, off);
    const expected = u32(want, off);
    if (got !== expected) {
      throw new ImageError('IMG_BAD_MAGIC', file, off, `magic at offset ${off} is ${hex(got)}, expected ${hex(expected)}`);
    }
  }
  return want.length;
}

/**
 * Decodes a whole image file of a known kind into its entries, in file order.
 * Throws ImageError on any malformation, including bytes after the last entry.
 */
export function decodeImage<K extends PbKindKey>(
  key: K,
  buf: Uint8Array,
  file: string = key,
  opts: DecodeOptions = {},
): Entry<AnyEntryOf<K>>[] {
  const k = pbKind(key);
  const max = opts.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE;
  let off = checkHeader(key, buf, file);
  const out: Entry<AnyEntryOf<K>>[] = [];
  while (off < buf.length) {
    const at = off;
    const first = out.length === 0;
    if (buf.length - off < 4) {
      throw new ImageError('IMG_TRUNCATED', file, at, `entry at offset ${at}: ${buf.length - off} trailing bytes, too short for a length`);
    }
    const len = u32(buf, off);
    if (len > max) {
      throw new ImageError('IMG_TOO_BIG', file, at, `entry at offset ${at}: length ${len} exceeds limit ${max}`);
    }
    off += 4;
    if (buf.length - off < len) {
      throw new ImageError('IMG_TRUNCATED', file, at, `entry at offset ${at}: length ${len} but only ${buf.length - off} bytes left`);
    }
    const desc = schemaFor(k, first);
    let msg: Message;
    try {
      msg = fromBinary(desc, buf.subarray(off, off + len));
    } catch (e) {
      throw new ImageError('IMG_DECODE', file, at, `entry at offset ${at}: bad ${desc.typeName}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const miss = missingRequired(desc, msg);
    if (miss) {
      throw new ImageError('IMG_REQUIRED', file, at, `entry at offset ${at}: ${desc.typeName} lacks required field ${miss}`);
    }
    off += len;
    const entry: Entry<AnyEntryOf<K>> = { msg: msg as AnyEntryOf<K> };
    if (k.payload) {
      const rest = buf.subarray(off);
      const n = k.payload(msg as never, rest, first);
      if (!Number.isSafeInteger(n) || n < 0 || n > rest.length) {
        throw new ImageError('IMG_TRUNCATED', file, off, `payload at offset ${off} of entry at offset ${at}: needs ${n} bytes, ${rest.length} left`);
      }
      entry.extra = rest.subarray(0, n);
      off += n;
    }
    out.push(entry);
  }
  return out;
}

/**
 * Identifies an image by its magic, as crit does: the kind keys that match (several
 * when kinds share a magic, canonical first), or [] when the magic is unknown.
 */
export function identify(buf: Uint8Array): PbKindKey[] {
  if (buf.length < 4) return [];
  let magic = u32(buf, 0);
  if (magic === IMG_COMMON_MAGIC || magic === IMG_SERVICE_MAGIC) {
    if (buf.length < 8) return [];
    const prefix = magic === IMG_COMMON_MAGIC ? 'common' : 'service';
    magic = u32(buf, 4);
    return kindsByMagic(magic).filter((key) => KINDS[key].prefix === prefix);
  }
  return kindsByMagic(magic).filter((key) => KINDS[key].prefix === 'none');
}
