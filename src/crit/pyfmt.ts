// Python's formats that crit's JSON is made of, so that our text is crit's:
// base64.encodebytes (lines of 76 characters), quopri (unix socket names),
// ipaddress's compressed forms, int(s, 0), "%d:%d" device numbers and the
// sizes `crit show --nopl` prints. Pure: no Node imports.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/** base64.encodebytes(data).decode(): a "\n" after every 76 characters and at the end. */
export function base64Lines(data: Uint8Array): string {
  let out = '';
  for (let off = 0; off < data.length; off += 57) {
    const chunk = data.subarray(off, Math.min(off + 57, data.length));
    for (let i = 0; i < chunk.length; i += 3) {
      const a = chunk[i]!;
      const b = chunk[i + 1];
      const c = chunk[i + 2];
      out += B64[a >> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >> 4)]!;
      out += b === undefined ? '=' : B64[((b & 15) << 2) | ((c ?? 0) >> 6)]!;
      out += c === undefined ? '=' : B64[c & 63]!;
    }
    out += '\n';
  }
  return out;
}

/** Decodes base64 with any whitespace (line breaks) in it; undefined when it is not base64. */
export function base64Decode(text: string): Uint8Array | undefined {
  const s = text.replace(/[ \t\r\n]/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const v = [0, 1, 2, 3].map((k) => B64_INDEX.get(s[i + k]!) ?? 0);
    const n = (v[0]! << 18) | (v[1]! << 12) | (v[2]! << 6) | v[3]!;
    for (const byte of [n >> 16, (n >> 8) & 0xff, n & 0xff]) if (o < out.length) out[o++] = byte;
  }
  return out;
}

const HEX = '0123456789ABCDEF';
const MAXLINESIZE = 76;

/**
 * quopri.encodestring(data) (binascii.b2a_qp, tabs kept), as a string. Text
 * mode (crit's) writes every line end as the first one in the data is written,
 * so "\r\n" and "\n" mixed do not come back; `binary` quotes CR and LF instead.
 */
export function quopriEncode(data: Uint8Array, binary = false): string {
  const nl = data.indexOf(0x0a);
  const crlf = nl > 0 && data[nl - 1] === 0x0d;
  const eol = crlf ? '\r\n' : '\n';
  const out: string[] = [];
  let linelen = 0;
  let i = 0;
  const n = data.length;
  while (i < n) {
    const c = data[i]!;
    const next = data[i + 1];
    const encode =
      c > 126 ||
      c === 0x3d ||
      (c === 0x2e && linelen === 0 && (i + 1 === n || next === 0x0a || next === 0x0d || next === 0)) ||
      (binary && (c === 0x0d || c === 0x0a)) ||
      ((c === 0x09 || c === 0x20) && i + 1 === n) ||
      (c < 33 && c !== 0x0d && c !== 0x0a && c !== 0x09 && c !== 0x20);
    if (encode) {
      if (linelen + 3 >= MAXLINESIZE) {
        out.push('=' + eol);
        linelen = 0;
      }
      out.push('=' + HEX[c >> 4]! + HEX[c & 15]!);
      i++;
      linelen += 3;
    } else if (!binary && (c === 0x0a || (c === 0x0d && i + 1 < n && next === 0x0a))) {
      linelen = 0;
      // Whitespace at the end of a line is encoded.
      const last = out.length > 0 ? out[out.length - 1]! : '';
      if (last === ' ' || last === '\t') out[out.length - 1] = '=' + HEX[last.charCodeAt(0) >> 4]! + HEX[last.charCodeAt(0) & 15]!;
      out.push(eol);
      i += c === 0x0d ? 2 : 1;
    } else {
      if (i + 1 !== n && next !== 0x0a && linelen + 1 >= MAXLINESIZE) {
        out.push('=' + eol);
        linelen = 0;
      }
      linelen++;
      out.push(String.fromCharCode(c));
      i++;
    }
  }
  return out.join('');
}

/**
 * A unix socket name as crit prints it: quopriEncode(), or, for the rare name
 * whose line ends that would not survive (mixed CRLF and LF), its binary form,
 * which crit's decoder reads back exactly as well.
 */
export function unixNameEncode(data: Uint8Array): string {
  const text = quopriEncode(data);
  const back = quopriDecode(text)!;
  const same = back.length === data.length && back.every((b, i) => b === data[i]);
  return same ? text : quopriEncode(data, true);
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** quopri.decodestring(text) (binascii.a2b_qp); undefined when text is not ASCII. */
export function quopriDecode(text: string): Uint8Array | undefined {
  const d: number[] = [];
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c > 0x7f) return undefined;
    d.push(c);
  }
  const out: number[] = [];
  let i = 0;
  while (i < d.length) {
    if (d[i] !== 0x3d) {
      out.push(d[i++]!);
      continue;
    }
    i++;
    if (i >= d.length) break;
    if (d[i] === 0x0a || d[i] === 0x0d) {
      // A soft line break.
      if (d[i] !== 0x0a) while (i < d.length && d[i] !== 0x0a) i++;
      if (i < d.length) i++;
    } else if (d[i] === 0x3d) {
      out.push(0x3d);
      i++;
    } else if (i + 1 < d.length && hexDigit(d[i]!) >= 0 && hexDigit(d[i + 1]!) >= 0) {
      out.push((hexDigit(d[i]!) << 4) | hexDigit(d[i + 1]!));
      i += 2;
    } else out.push(0x3d);
  }
  return Uint8Array.from(out);
}

/** ntohl on this (little-endian) machine. */
function ntohl(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** An address held as u32 words in network byte order, as ipaddress prints it (compressed). */
export function formatIp(words: readonly number[]): string {
  if (words.length === 1) {
    const v = ntohl(words[0]!);
    return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].join('.');
  }
  const hextets: number[] = [];
  for (const w of words.slice(0, 4)) {
    const v = ntohl(w);
    hextets.push(v >>> 16, v & 0xffff);
  }
  // The longest run of zero groups (the first of equals), if longer than one, becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (bestLen > 1) {
    const left = hex.slice(0, best).join(':');
    const right = hex.slice(best + bestLen).join(':');
    return `${left}::${right}`;
  }
  return hex.join(':');
}

function parseIpv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const p of parts) {
    // ipaddress refuses leading zeros (ambiguous octal) and more than 3 digits.
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0') || Number(p) > 255) return undefined;
    bytes.push(Number(p));
  }
  return bytes;
}

/**
 * Parses an IPv4 or IPv6 address as ipaddress.ip_address does, into the u32 words
 * crit stores (network byte order): one for IPv4, four for IPv6.
 */
export function parseIp(s: string): number[] | undefined {
  const toWord = (b: number[]) => ntohl(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
  const v4 = parseIpv4(s);
  if (v4) return [toWord(v4)];
  // A scope ("fe80::1%eth0") is accepted and dropped, as ipaddress does.
  const pct = s.indexOf('%');
  if (pct >= 0) {
    const scope = s.slice(pct + 1);
    if (scope === '' || scope.includes('%')) return undefined;
    s = s.slice(0, pct);
  }
  if (!s.includes(':') || s.length > 45) return undefined;
  // As ipaddress._ip_int_from_string: at most one "::", leading/trailing ":" only in it.
  const parts = s.split(':');
  if (parts.length < 3) return undefined;
  const tail = parts[parts.length - 1]!;
  if (tail.includes('.')) {
    const b = parseIpv4(tail);
    if (!b) return undefined;
    parts.splice(parts.length - 1, 1, ((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16));
  }
  if (parts.length > 9) return undefined;
  const inner = parts.slice(1, -1).map((p, i) => (p === '' ? i + 1 : -1)).filter((i) => i >= 0);
  if (inner.length > 1) return undefined;
  let all: string[];
  if (inner.length === 1) {
    const skip = inner[0]!;
    let hi = skip;
    let lo = parts.length - skip - 1;
    if (parts[0] === '') {
      hi--;
      if (hi) return undefined;
    }
    if (parts[parts.length - 1] === '') {
      lo--;
      if (lo) return undefined;
    }
    const skipped = 8 - (hi + lo);
    if (skipped < 1) return undefined;
    all = [...parts.slice(0, hi), ...Array<string>(skipped).fill('0'), ...parts.slice(parts.length - lo)];
  } else {
    if (parts.length !== 8 || parts[0] === '' || parts[7] === '') return undefined;
    all = parts;
  }
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const h = all.map((g) => parseInt(g, 16));
  const words: number[] = [];
  for (let k = 0; k < 8; k += 2) words.push(ntohl(((h[k]! << 16) | h[k + 1]!) >>> 0));
  return words;
}

/** Python's int(s, 0): optional sign, 0x/0o/0b prefix or plain decimal, "_" between digits. */
export function pyInt(s: string): bigint | undefined {
  const m = /^\s*([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?0)*|[1-9](?:_?\d)*)\s*$/.exec(s);
  if (!m) return undefined;
  const v = BigInt(m[2]!.replace(/_/g, ''));
  return m[1] === '-' ? -v : v;
}

/** "%#x"-less hex as crit prints it: "0x1f", "-0x5". */
export function pyHex(v: bigint): string {
  return v < 0n ? '-0x' + (-v).toString(16) : '0x' + v.toString(16);
}

/** Python's "%.1f" % x: round half to even on the exact binary value. */
function fixed1(x: number): string {
  const t = x * 10;
  let r = Math.round(t);
  if (Math.abs(t - Math.trunc(t)) === 0.5 && r % 2 !== 0) r -= Math.sign(t);
  return (r / 10).toFixed(1);
}

/** crit's human_readable(): 1023 -> "1023B", 1536 -> "1.5KB". */
export function humanReadable(n: number): string {
  let num = n;
  for (const unit of ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']) {
    if (num < 1024) return Number.isInteger(num) ? `${Math.trunc(num)}${unit}B` : `${fixed1(num)}${unit}B`;
    num /= 1024;
  }
  return `${fixed1(num)}YB`;
}

const MINORBITS = 20;

/** A device number as crit prints it: the kernel's MKDEV, or glibc's makedev for "odev" fields. */
export function formatDev(v: bigint, odev: boolean): string {
  if (odev) {
    const major = ((v >> 8n) & 0xfffn) | ((v >> 32n) & ~0xfffn);
    const minor = (v & 0xffn) | ((v >> 12n) & ~0xffn);
    return `${major}:${minor}`;
  }
  return `${v >> BigInt(MINORBITS)}:${v & ((1n << BigInt(MINORBITS)) - 1n)}`;
}

/** The inverse of formatDev(); undefined when the text is not "major:minor". */
export function parseDev(text: string, odev: boolean): bigint | undefined {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  if (!m) return undefined;
  const major = BigInt(m[1]!);
  const minor = BigInt(m[2]!);
  if (odev) return ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  return (major << BigInt(MINORBITS)) | minor;
}
