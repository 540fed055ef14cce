// Messages to crit's JSON and back, driven by the schemas: every field is
// found by reflection on its descriptor, and its (criu).* options (opts.proto)
// choose how it prints, as CRIU's pycriu does (pb2dict.py):
//   - fields in field-number order, only the ones set (proto2 presence);
//   - enums by name, bytes as base64 lines, (criu).conv = "unix_name" as quopri;
//   - with `pretty`: (criu).hex as "0x..", inherited by everything inside a hex
//     message; (criu).dev as "major:minor"; (criu).flags as "A | B"; (criu).dict
//     by name; (criu).ipadd lists as one address string.
// Reading JSON accepts both forms (hex and names too), as crit encode does.
import { create, getOption, hasOption, ScalarType } from '@bufbuild/protobuf';
import type { DescField, DescMessage, Message } from '@bufbuild/protobuf';
import { reflect, type ReflectList, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { criu } from '../images/gen/opts_pb.js';
import { isObject, setKey, type JsonDoc, type JsonObject, type JsonValue } from './json.js';
import { DICT_MAPS, FLAG_MAPS, formatFlags, parseFlags } from './maps.js';
import {
  base64Decode,
  base64Lines,
  formatDev,
  formatIp,
  parseDev,
  parseIp,
  pyHex,
  pyInt,
  quopriDecode,
  unixNameEncode,
} from './pyfmt.js';

/** A field's (criu).* printing options, all defaults when it has none. */
export interface FieldOpts {
  hex: boolean;
  ipadd: boolean;
  flags: string;
  dev: boolean;
  odev: boolean;
  dict: string;
  conv: string;
}

const NO_OPTS: FieldOpts = { hex: false, ipadd: false, flags: '', dev: false, odev: false, dict: '', conv: '' };

/** Integer range of each integer scalar type; 64-bit types are bigints in messages. */
const INT_RANGE: Partial<Record<ScalarType, [bigint, bigint, boolean]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n, false],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n, false],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n, false],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n, false],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n, false],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n, true],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n, true],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n, true],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n, true],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n, true],
};

/**
 * Converts between messages and crit's JSON. Holds the per-descriptor lookups
 * (options, field order) of one run, so that a large image reads each option once.
 */
export class Converter {
  private readonly opts = new Map<DescField, FieldOpts>();
  private readonly order = new Map<DescMessage, DescField[]>();

  /** The (criu).* options of a field. */
  fieldOpts(f: DescField): FieldOpts {
    let o = this.opts.get(f);
    if (o === undefined) {
      o = hasOption(f, criu) ? { ...NO_OPTS, ...pick(getOption(f, criu)) } : NO_OPTS;
      this.opts.set(f, o);
    }
    return o;
  }

  /** The fields of a message in field-number order (the order crit prints). */
  fields(desc: DescMessage): DescField[] {
    let fs = this.order.get(desc);
    if (fs === undefined) {
      fs = [...desc.fields].sort((a, b) => a.number - b.number);
      this.order.set(desc, fs);
    }
    return fs;
  }

  /** pb2dict(): the set fields of `msg` as crit prints them. */
  toJson(desc: DescMessage, msg: Message, pretty: boolean, inHex = false): JsonObject {
    const r = reflect(desc, msg as never, false);
    const out: JsonObject = {};
    for (const f of this.fields(desc)) {
      if (!r.isSet(f)) continue;
      const o = this.fieldOpts(f);
      const hex = inHex || o.hex;
      let v: JsonValue;
      if (f.fieldKind === 'list') {
        const items = [...(r.get(f) as ReflectList)];
        if (pretty && o.ipadd && (items.length === 1 || items.length >= 4)) v = [formatIp(items as number[])];
        else v = items.map((x) => this.valueToJson(f, x, pretty, hex));
      } else if (f.fieldKind === 'map') {
        throw new Error(`map field ${f.toString()} is not supported`);
      } else v = this.valueToJson(f, r.get(f), pretty, hex);
      setKey(out, f.name, v);
    }
    return out;
  }

  private valueToJson(f: DescField, v: unknown, pretty: boolean, hex: boolean): JsonValue {
    if (f.message) {
      const m = v as ReflectMessage;
      return this.toJson(m.desc, m.message, pretty, hex);
    }
    if (f.enum) {
      const n = v as number;
      return f.enum.values.find((e) => e.number === n)?.name ?? n;
    }
    const scalar = f.scalar!;
    if (scalar === ScalarType.BYTES) {
      const bytes = v as Uint8Array;
      return this.fieldOpts(f).conv === 'unix_name' ? unixNameEncode(bytes) : base64Lines(bytes);
    }
    if (INT_RANGE[scalar] === undefined) return v as boolean | string | number;
    const n = v as number | bigint;
    if (!pretty) return n;
    const o = this.fieldOpts(f);
    const big = BigInt(n);
    if (hex) return pyHex(big);
    if (o.dev) return formatDev(big, o.odev);
    if (o.flags !== '') {
      const map = FLAG_MAPS[o.flags];
      return map ? formatFlags(big, map) : pyHex(big);
    }
    if (o.dict !== '') return DICT_MAPS[o.dict]?.[f.name]?.get(Number(n)) ?? n;
    return n;
  }

  /**
   * dict2pb(): a message from crit's JSON. `container[key]` is the JSON object
   * (for error offsets); `where` names it in messages ("entries[3]"); a key
   * named `skip` is left for the caller (an entry's "extra").
   */
  fromJson(desc: DescMessage, doc: JsonDoc, container: object, key: string | number, where: string, skip?: string): Message {
    const json = (container as Record<string | number, JsonValue>)[key];
    if (!isObject(json)) throw doc.error(`${where}: expected an object (${desc.name}), got ${typeName(json)}`, container, key);
    const msg = create(desc) as Message;
    const r = reflect(desc, msg as never);
    for (const name of Object.keys(json)) {
      if (name === skip) continue;
      const f = desc.fields.find((x) => x.name === name);
      const at = `${where}.${name}`;
      if (!f) {
        const known = this.fields(desc).map((x) => x.name).join(', ');
        throw doc.error(`${at}: ${desc.name} has no field "${name}" (it has: ${known})`, json, name);
      }
      const v = json[name]!;
      if (f.fieldKind === 'list') {
        if (!Array.isArray(v)) throw doc.error(`${at}: expected a list, got ${typeName(v)}`, json, name);
        const list = r.get(f) as ReflectList;
        if (this.fieldOpts(f).ipadd && typeof v[0] === 'string') {
          const words = parseIp(v[0]);
          if (!words) throw doc.error(`${at}: not an IP address: ${JSON.stringify(v[0])}`, v, 0);
          for (const w of words) list.add(w);
          continue;
        }
        v.forEach((_, i) => {
          const item = f.message
            ? reflect(f.message, this.fromJson(f.message, doc, v, i, `${at}[${i}]`) as never)
            : this.scalarFromJson(f, doc, v, i, `${at}[${i}]`);
          list.add(item);
        });
      } else if (f.fieldKind === 'message') {
        r.set(f, reflect(f.message, this.fromJson(f.message, doc, json, name, at) as never));
      } else if (f.fieldKind === 'map') {
        throw doc.error(`${at}: map fields are not supported`, json, name);
      } else r.set(f, this.scalarFromJson(f, doc, json, name, at));
    }
    return msg;
  }

  private scalarFromJson(f: DescField, doc: JsonDoc, container: object, key: string | number, at: string): unknown {
    const v = (container as Record<string | number, JsonValue>)[key]!;
    const bad = (what: string) => doc.error(`${at}: ${what}`, container, key);
    if (f.enum) {
      if (typeof v === 'string') {
        const e = f.enum.values.find((x) => x.name === v);
        if (!e) throw bad(`${JSON.stringify(v)} is not a value of ${f.enum.name} (${f.enum.values.map((x) => x.name).join(', ')})`);
        return e.number;
      }
      if (typeof v === 'number' && f.enum.values.some((x) => x.number === v)) return v;
      throw bad(`expected a name of ${f.enum.name}, got ${typeName(v)}`);
    }
    const scalar = f.scalar!;
    switch (scalar) {
      case ScalarType.BOOL:
        if (typeof v !== 'boolean') throw bad(`expected true or false, got ${typeName(v)}`);
        return v;
      case ScalarType.STRING:
        if (typeof v !== 'string') throw bad(`expected a string, got ${typeName(v)}`);
        return v;
      case ScalarType.BYTES: {
        if (typeof v !== 'string') throw bad(`expected a string, got ${typeName(v)}`);
        const unix = this.fieldOpts(f).conv === 'unix_name';
        const bytes = unix ? quopriDecode(v) : base64Decode(v);
        if (!bytes) throw bad(unix ? 'not quoted-printable (ASCII) text' : 'not base64');
        return bytes;
      }
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        if (typeof v !== 'number') throw bad(`expected a number, got ${typeName(v)}`);
        return v;
    }
    const [min, max, wide] = INT_RANGE[scalar]!;
    let n: bigint | undefined;
    if (typeof v === 'bigint') n = v;
    else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
    else if (typeof v === 'string') n = this.intFromString(f, v);
    else throw bad(`expected an integer, got ${typeName(v)}`);
    if (n === undefined) throw bad(`not a number: ${JSON.stringify(v)}`);
    if (n < min || n > max) throw bad(`${n} is out of range for ${ScalarType[scalar].toLowerCase()}`);
    return wide ? n : Number(n);
  }

  /** crit's _dict2pb_cast() for a string in an integer field. */
  private intFromString(f: DescField, s: string): bigint | undefined {
    const o = this.fieldOpts(f);
    if (o.dev) return parseDev(s, o.odev);
    if (o.flags !== '') {
      const map = FLAG_MAPS[o.flags];
      if (map) return parseFlags(s, map, pyInt);
    }
    if (o.dict !== '') {
      const names = DICT_MAPS[o.dict]?.[f.name];
      for (const [num, name] of names ?? []) if (name === s) return BigInt(num);
    }
    return pyInt(s);
  }
}

function pick(o: FieldOpts): FieldOpts {
  return { hex: o.hex, ipadd: o.ipadd, flags: o.flags, dev: o.dev, odev: o.odev, dict: o.dict, conv: o.conv };
}

/** A JSON value's kind for messages: "a string", "a list", "null". */
export function typeName(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)})`;
  if (typeof v === 'boolean') return String(v);
  return `a number (${String(v)})`;
}
