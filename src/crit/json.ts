// JSON as crit reads and writes it. Output is byte for byte what Python's
// json.dump prints (crit is Python): ", " and ": " separators on one line, or
// an indent with "," at line ends; every non-ASCII or control character as
// \uXXXX. Input keeps integers exact (bigint beyond 2^53) and remembers where
// each value starts, so that a value of the wrong shape can be reported with
// its byte offset. Pure: no Node imports.
import { CritError } from './errors.js';

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets a key as an own property, also "__proto__". */
export function setKey(o: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}

function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += s[i];
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else out += '\\u' + c.toString(16).padStart(4, '0');
  }
  return out + '"';
}

function scalar(v: JsonValue): string | undefined {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v.toString();
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    return String(v);
  }
  if (typeof v === 'string') return quote(v);
  return undefined;
}

/** Python's json.dumps(v, indent=indent) with ensure_ascii. */
export function dumps(v: JsonValue, indent?: number): string {
  const parts: string[] = [];
  const write = (x: JsonValue, level: number): void => {
    const s = scalar(x);
    if (s !== undefined) {
      parts.push(s);
      return;
    }
    const arr = Array.isArray(x);
    const keys = arr ? undefined : Object.keys(x as JsonObject);
    const n = arr ? (x as JsonValue[]).length : keys!.length;
    if (n === 0) {
      parts.push(arr ? '[]' : '{}');
      return;
    }
    const inner = indent === undefined ? '' : '\n' + ' '.repeat(indent * (level + 1));
    const sep = indent === undefined ? ', ' : ',' + inner;
    parts.push(arr ? '[' : '{', inner);
    for (let i = 0; i < n; i++) {
      if (i > 0) parts.push(sep);
      if (arr) write((x as JsonValue[])[i]!, level + 1);
      else {
        const k = keys![i]!;
        parts.push(quote(k), ': ');
        write((x as JsonObject)[k]!, level + 1);
      }
    }
    if (indent !== undefined) parts.push('\n' + ' '.repeat(indent * level));
    parts.push(arr ? ']' : '}');
  };
  write(v, 0);
  return parts.join('');
}

/** A parsed JSON text with the byte offset of every value. */
export class JsonDoc {
  constructor(
    readonly file: string,
    private readonly text: string,
    readonly root: JsonValue,
    private readonly members: WeakMap<object, Map<string | number, number>>,
    private readonly starts: WeakMap<object, number>,
  ) {}

  /**
   * Byte offset of `container[key]`; of the container itself when it has no such
   * key (a missing field); of the root when no container is given.
   */
  offsetOf(container?: object, key?: string | number): number {
    const at = container === undefined ? 0 : (this.members.get(container)?.get(key!) ?? this.starts.get(container) ?? 0);
    return byteLength(this.text, at);
  }

  /** An error about `container[key]` (or the whole document). */
  error(detail: string, container?: object, key?: string | number): CritError {
    const off = this.offsetOf(container, key);
    return new CritError(this.file, off, `at offset ${off}: ${detail}`);
  }
}

/** UTF-8 length of text[0, end). */
function byteLength(text: string, end: number): number {
  return new TextEncoder().encode(text.slice(0, end)).length;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const MAX_DEPTH = 512;

/** Parses JSON (RFC 8259, plus Python's NaN/Infinity); errors name the byte offset. */
export function parseJson(text: string, file: string): JsonDoc {
  const members = new WeakMap<object, Map<string | number, number>>();
  const starts = new WeakMap<object, number>();
  let i = 0;
  const fail = (what: string, at = i): never => {
    const off = byteLength(text, at);
    throw new CritError(file, off, `at offset ${off}: bad JSON: ${what}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c !== 0x5c) {
        let j = i;
        while (j < text.length && text.charCodeAt(j) !== 0x22 && text.charCodeAt(j) !== 0x5c && text.charCodeAt(j) >= 0x20) j++;
        out += text.slice(i, j);
        i = j;
        continue;
      }
      const e = text[i + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && simple[e] !== undefined) {
        out += simple[e];
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else fail('bad escape in string');
    }
  };
  const num = (): number | bigint => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('bad number');
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = Number(m[0]);
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    return Number(m[0]);
  };
  const value = (depth: number): JsonValue => {
    ws();
    if (i >= text.length) return fail('unexpected end of input');
    if (depth > MAX_DEPTH) return fail('nested too deeply');
    const c = text[i]!;
    if (c === '{') {
      const o: JsonObject = {};
      const pos = new Map<string | number, number>();
      members.set(o, pos);
      starts.set(o, i);
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const k = str();
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        ws();
        pos.set(k, i);
        setKey(o, k, value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return o;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      const a: JsonValue[] = [];
      const pos = new Map<string | number, number>();
      members.set(a, pos);
      starts.set(a, i);
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        ws();
        pos.set(a.length, i);
        a.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return a;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null], ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return num();
  };
  const root = value(0);
  ws();
  if (i < text.length) fail('extra data after the JSON value');
  return new JsonDoc(file, text, root, members, starts);
}
