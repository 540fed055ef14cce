// Whole images to crit's JSON document {"magic": NAME, "entries": [...]} and
// back. The framing is the image codec's (images/codec.ts): the kind comes
// from the magic, the entries and their payloads from decodeImage(); the
// encoded file from encodeImage(). Pure: no Node imports.
import type { DescMessage, Message } from '@bufbuild/protobuf';
import { decodeImage, encodeEntry, headerBytes, identify, missingRequired } from '../images/codec.js';
import { ImageError } from '../images/errors.js';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, KINDS, type KindKey, type PbKind, type PbKindKey } from '../images/magic.js';
import { Converter, typeName } from './convert.js';
import { CritError } from './errors.js';
import { EXTRA_HANDLERS } from './extra.js';
import { isObject, setKey, type JsonDoc, type JsonObject, type JsonValue } from './json.js';

type AnyPbKind = PbKind<DescMessage, DescMessage>;

export interface CritImage extends JsonObject {
  magic: string;
  entries: JsonObject[];
}

export interface DecodeOptions {
  /** crit's --pretty: hex, flags, device numbers, names (the JSON layout is the caller's). */
  pretty: boolean;
  /** crit show --nopl: payloads replaced by their size. */
  nopl?: boolean;
  /** Largest accepted entry; the codec's default when absent. */
  maxEntrySize?: number;
}

function u32(buf: Uint8Array, off: number): number {
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

/** The kind of an image from its magic, as crit finds it; a CritError when unknown. */
export function imageKind(buf: Uint8Array, file: string): PbKindKey {
  const keys = identify(buf);
  if (keys.length > 0) return keys[0]!;
  if (buf.length < 4) throw new CritError(file, 0, `at offset 0: ${buf.length} bytes, too short for a magic`);
  const first = u32(buf, 0);
  const prefixed = first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC;
  if (prefixed && buf.length < 8) throw new CritError(file, 4, `at offset 4: file ends after the first magic`);
  const off = prefixed ? 4 : 0;
  const magic = u32(buf, off);
  const json = buf[0] === 0x7b || buf[0] === 0x5b;
  const hint = prefixed ? '' : json ? ' (this looks like JSON: encode reads JSON)' : ' (maybe raw data, e.g. pages-*.img, which has no magic)';
  return fail(file, off, `unknown magic 0x${magic.toString(16).padStart(8, '0')}${hint}`);
}

function fail(file: string, off: number, detail: string): never {
  throw new CritError(file, off, `at offset ${off}: ${detail}`);
}

function pbKind(key: PbKindKey): AnyPbKind {
  return KINDS[key] as AnyPbKind;
}

/** The schemas of a kind's entries: [head, entry] for kinds with a head, else [entry]. */
export function kindSchemas(key: PbKindKey): DescMessage[] {
  const k = pbKind(key);
  return k.head ? [k.head, k.schema] : [k.schema];
}

/** Whether entries of the kind carry an "extra". */
export function hasExtra(key: PbKindKey): boolean {
  return EXTRA_HANDLERS[pbKind(key).crit] !== undefined;
}

/** Decodes an image into crit's document. Throws ImageError or CritError on damage. */
export function decodeToJson(buf: Uint8Array, file: string, opts: DecodeOptions, conv = new Converter()): CritImage {
  const key = imageKind(buf, file);
  const kind = pbKind(key);
  const entries = decodeImage(key, buf, file, opts.maxEntrySize === undefined ? {} : { maxEntrySize: opts.maxEntrySize });
  const extra = EXTRA_HANDLERS[kind.crit];
  const out: JsonObject[] = entries.map((e, i) => {
    const desc = i === 0 && kind.head ? kind.head : kind.schema;
    const json = conv.toJson(desc, e.msg, opts.pretty);
    if (extra) {
      const payload = e.extra ?? new Uint8Array(0);
      let v: JsonValue | undefined;
      try {
        v = opts.nopl ? extra.skipped(e.msg, payload) : extra.toJson(e.msg, payload, conv);
      } catch (err) {
        throw new ImageError('IMG_DECODE', file, undefined, `payload of entry ${i}: ${(err as Error).message}`);
      }
      if (v !== undefined) setKey(json, 'extra', v);
    }
    return json;
  });
  return { magic: kind.crit, entries: out };
}

/** crit info: the magic name and the number of entries (pagemap: without its head, as crit). */
export function imageInfo(buf: Uint8Array, file: string, maxEntrySize?: number): { magic: string; count: number } {
  const key = imageKind(buf, file);
  const kind = pbKind(key);
  const entries = decodeImage(key, buf, file, maxEntrySize === undefined ? {} : { maxEntrySize });
  const count = kind.crit === 'PAGEMAP' ? Math.max(0, entries.length - 1) : entries.length;
  return { magic: kind.crit, count };
}

/** The kind crit writes for a magic name (the first of kinds that share it). */
export function kindByCritName(name: string): PbKindKey | undefined {
  for (const key of Object.keys(KINDS) as KindKey[]) {
    const k = KINDS[key];
    if (!k.raw && k.crit === name) return key as PbKindKey;
  }
  return undefined;
}

/** Encodes crit's document (a parsed JSON text) into image bytes. */
export function encodeFromJson(doc: JsonDoc, conv = new Converter()): Uint8Array {
  const root = doc.root;
  if (!isObject(root)) throw doc.error(`expected {"magic": ..., "entries": [...]}, got ${typeName(root)}`);
  const magic = root['magic'];
  if (typeof magic !== 'string') throw doc.error(`"magic": expected the name of an image kind, got ${typeName(magic)}`, root, 'magic');
  const key = kindByCritName(magic);
  if (key === undefined) {
    const names = [...new Set(Object.values(KINDS).filter((k) => !k.raw).map((k) => k.crit))].sort().join(', ');
    throw doc.error(`"magic": unknown image kind ${JSON.stringify(magic)} (known: ${names})`, root, 'magic');
  }
  const kind = pbKind(key);
  const list = root['entries'];
  if (!Array.isArray(list)) throw doc.error(`"entries": expected a list, got ${typeName(list)}`, root, 'entries');
  for (const k of Object.keys(root)) {
    if (k !== 'magic' && k !== 'entries') throw doc.error(`unexpected key ${JSON.stringify(k)} (an image has "magic" and "entries")`, root, k);
  }
  const extra = EXTRA_HANDLERS[kind.crit];
  const parts: Uint8Array[] = [headerBytes(key)];
  list.forEach((item, i) => {
    const where = `entries[${i}]`;
    if (!isObject(item)) throw doc.error(`${where}: expected an object, got ${typeName(item)}`, list, i);
    if ('extra' in item && !extra) throw doc.error(`${where}: ${magic} entries carry no "extra"`, item, 'extra');
    const desc = i === 0 && kind.head ? kind.head : kind.schema;
    const msg: Message = conv.fromJson(desc, doc, list, i, where, 'extra');
    const miss = missingRequired(desc, msg);
    if (miss) throw doc.error(`${where}: ${desc.name} lacks required field ${miss}`, list, i);
    const at = 'extra' in item ? { doc, container: item, key: 'extra', where: `${where}.extra` } : { doc, container: list, key: i, where };
    const payload = extra?.fromJson(msg, item['extra'], at, conv);
    try {
      parts.push(...encodeEntry(key, msg, payload, i === 0, doc.file));
    } catch (e) {
      if (!ImageError.is(e)) throw e;
      throw doc.error(`${where}: ${e.message.startsWith(doc.file + ': ') ? e.message.slice(doc.file.length + 2) : e.message}`, list, i);
    }
  });
  return Buffer.concat(parts);
}

