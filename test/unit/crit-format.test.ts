// The Python formats crit's JSON is made of, against Python itself (the python
// Debian's crit runs with): json.dumps, base64.encodebytes, quopri, ipaddress,
// int(s, 0), crit's device numbers and payload sizes. Plus our JSON reader.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { CritError } from '../../src/crit/errors.js';
import { dumps, parseJson, type JsonValue } from '../../src/crit/json.js';
import {
  base64Decode,
  base64Lines,
  formatDev,
  formatIp,
  humanReadable,
  parseDev,
  parseIp,
  pyInt,
  quopriDecode,
  quopriEncode,
  unixNameEncode,
} from '../../src/crit/pyfmt.js';
import { haveCrit, PYTHON, Rng } from './crit-helpers.js';

/** Runs `fn(inputs)` in python; inputs and result as JSON (bytes as lists of numbers). */
function py(body: string, inputs: unknown): unknown {
  const script = `
import json, sys, base64, quopri, socket, os
from ipaddress import IPv4Address, IPv6Address, ip_address
inp = json.load(sys.stdin)
${body}
json.dump(out, sys.stdout)
`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { input: JSON.stringify(inputs), encoding: 'utf8', cwd: '/' }));
}

const rng = new Rng(42);
const randomBytes = () => rng.bytes(rng.pick([0, 1, 2, 3, 10, 57, 58, 75, 76, 77, 150]));

describe('Python formats', { skip: !haveCrit && 'python3 (Debian) is not installed' }, () => {
  it('base64 lines as base64.encodebytes, and back', () => {
    const inputs = Array.from({ length: 60 }, randomBytes);
    const want = py(`out = [base64.encodebytes(bytes(b)).decode() for b in inp]`, inputs.map((b) => [...b])) as string[];
    inputs.forEach((b, i) => {
      assert.equal(base64Lines(b), want[i]);
      assert.deepEqual(base64Decode(want[i]!), b);
    });
    assert.equal(base64Decode('not base64!'), undefined);
    assert.equal(base64Decode('abc'), undefined);
  });

  it('quoted-printable as quopri (crit\'s unix socket names), both ways', () => {
    const inputs = [
      ...Array.from({ length: 200 }, () => rng.unixName()),
      ...Array.from({ length: 50 }, randomBytes),
      Uint8Array.from([0x2e]),
      Uint8Array.from([0x2e, 0x0a, 0x2e, 0]),
      Uint8Array.from([0x20]),
      Uint8Array.from([0x61, 0x09, 0x0d, 0x0a, 0x62]),
    ];
    const texts = ['=', 'a=', '=4', '=4g', '=41=42', 'a==b', 'x=\ny', 'x=\r\ny', 'x= \r\ny', '=aB=Ab', '_x_'];
    const want = py(
      `out = [[quopri.encodestring(bytes(b)).decode() for b in inp[0]], [list(quopri.decodestring(t)) for t in inp[1]]]`,
      [inputs.map((b) => [...b]), texts],
    ) as [string[], number[][]];
    inputs.forEach((b, i) => assert.equal(quopriEncode(b), want[0][i], `encode ${JSON.stringify([...b])}`));
    texts.forEach((t, i) => assert.deepEqual([...quopriDecode(t)!], want[1][i], `decode ${JSON.stringify(t)}`));
    assert.equal(quopriDecode('é'), undefined);
  });

  it('unix names survive even with mixed line ends (where crit\'s text form would not)', () => {
    for (let i = 0; i < 300; i++) {
      const b = rng.unixName();
      assert.deepEqual(quopriDecode(unixNameEncode(b)), b);
    }
    const mixed = Uint8Array.from([0x61, 0x0d, 0x0a, 0x62, 0x0a]);
    assert.notDeepEqual(quopriDecode(quopriEncode(mixed)), mixed);
    assert.equal(unixNameEncode(mixed), 'a=0D=0Ab=0A');
  });

  it('IP addresses as ipaddress prints and reads them', () => {
    const words: number[][] = [[0], [0x0100007f], [0xffffffff], [0, 0, 0, 0], [0, 0, 0, 0x01000000], [0, 0, 0xffff0000, 0x0403020a]];
    const h = () => rng.pick([0, 0, 0, 0x0100, 0xffff, 0x1234]);
    for (let i = 0; i < 200; i++) {
      const n = rng.pick([1, 4]);
      words.push(Array.from({ length: n }, () => ((h() << 16) | h()) >>> 0));
    }
    const strings = [
      '1.2.3.4', '01.2.3.4', '1.2.3', '256.1.1.1', '::', '::1', '1::', '1::2', ':1::2', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::2::3', '::ffff:1.2.3.4', '::1.2.3.4', 'fe80::1%eth0', '12345::', 'g::', '1:2:3:4:5:6:1.2.3.4',
      '1:2:3:4:5:6:7:1.2.3.4', '', ':', ':::', 'abcd:ef01::', 'ABCD::EF',
    ];
    const want = py(
      `
def fmt(value):
    if len(value) == 1:
        return IPv4Address(socket.ntohl(value[0])).compressed
    v = 0 + (socket.ntohl(value[0]) << 96) + (socket.ntohl(value[1]) << 64) + (socket.ntohl(value[2]) << 32) + socket.ntohl(value[3])
    return IPv6Address(v).compressed
def parse(s):
    try:
        val = ip_address(s)
    except ValueError:
        return None
    if val.version == 4:
        return [socket.htonl(int(val))]
    i = int(val)
    return [socket.htonl((i >> (32 * k)) & 0xFFFFFFFF) for k in (3, 2, 1, 0)]
out = [[fmt(w) for w in inp[0]], [parse(s) for s in inp[1]]]`,
      [words, strings],
    ) as [string[], (number[] | null)[]];
    words.forEach((w, i) => {
      assert.equal(formatIp(w), want[0][i], JSON.stringify(w));
      assert.deepEqual(parseIp(want[0][i]!), w, want[0][i]);
    });
    strings.forEach((s, i) => assert.deepEqual(parseIp(s) ?? null, want[1][i], JSON.stringify(s)));
  });

  it('integers as int(s, 0), device numbers, sizes and JSON as json.dumps', () => {
    const ints = ['0', '00', '0x1f', '0X1F', '-0x5', '+7', ' 12 ', '1_000', '1__0', '_1', '012', '0o17', '0b101', '0b102', '', 'x', '0x', '18446744073709551615'];
    const devs = [0, 1, 0x800001, 0xfffff, 0x100000, 0xffffffff, 259 << 20, 0x0801, 0x12345678];
    const sizes = [0, 1, 1023, 1024, 1280, 1536, 1025, 5000, 1048576, 1310720, 123456789, 2 ** 40 + 2 ** 38];
    const values: JsonValue[] = [
      { magic: 'X', entries: [] },
      { a: [], b: {}, c: [1, [2, {}], { d: null }], e: true, f: false, g: -5, h: 'é中😀\n"\\\x01\x7f/' },
      [{ k: 18446744073709551615n }, 9007199254740993n, 'x'.repeat(100)],
    ];
    const want = py(
      `
def intz(s):
    try:
        return str(int(s, 0))
    except ValueError:
        return None
def hr(num):
    for unit in ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']:
        if num < 1024.0:
            if int(num) == num:
                return "%d%sB" % (num, unit)
            else:
                return "%.1f%sB" % (num, unit)
        num /= 1024.0
    return "%.1fYB" % num
out = [[intz(s) for s in inp[0]],
       [["%d:%d" % (v >> 20, v & ((1 << 20) - 1)), "%d:%d" % (os.major(v), os.minor(v))] for v in inp[1]],
       [hr(n) for n in inp[2]],
       [[json.dumps(v), json.dumps(v, indent=4)] for v in inp[3]]]`,
      [ints, devs, sizes, JSON.parse(dumps(values).replace(/(\d{16,})/g, '"$1"'))],
    ) as [(string | null)[], [string, string][], string[], [string, string][]];
    ints.forEach((s, i) => assert.equal(pyInt(s)?.toString() ?? null, want[0][i], JSON.stringify(s)));
    devs.forEach((d, i) => {
      assert.equal(formatDev(BigInt(d), false), want[1][i]![0]);
      assert.equal(formatDev(BigInt(d), true), want[1][i]![1]);
      assert.equal(parseDev(want[1][i]![0], false), BigInt(d));
      assert.equal(parseDev(want[1][i]![1], true), BigInt(d));
    });
    sizes.forEach((n, i) => assert.equal(humanReadable(n), want[2][i], String(n)));
    // Python got the big integers as strings; compare with the quotes taken off.
    values.forEach((v, i) => {
      const unquote = (s: string) => s.replace(/"(\d{16,})"/g, '$1');
      assert.equal(dumps(v), unquote(want[3][i]![0]));
      assert.equal(dumps(v, 4), unquote(want[3][i]![1]));
    });
  });
});

describe('JSON reader', () => {
  it('keeps big integers exact, keys as own properties, and the last of duplicate keys', () => {
    const doc = parseJson('{"a": 18446744073709551615, "b": -9007199254740993, "c": 1.5, "__proto__": 1, "a2": [], "d": 1, "d": 2}', 'f');
    const root = doc.root as Record<string, JsonValue>;
    assert.equal(root['a'], 18446744073709551615n);
    assert.equal(root['b'], -9007199254740993n);
    assert.equal(root['c'], 1.5);
    assert.equal(Object.getOwnPropertyDescriptor(root, '__proto__')?.value, 1);
    assert.equal(Object.getPrototypeOf(root), Object.prototype);
    assert.equal(root['d'], 2);
    assert.equal(dumps(parseJson(dumps(root), 'g').root), dumps(root));
  });

  it('names the byte offset of bad JSON and of values, counting UTF-8 bytes', () => {
    const bad = (text: string, offset: number, what: RegExp) =>
      assert.throws(
        () => parseJson(text, 'in.json'),
        (e: unknown) => CritError.is(e) && e.offset === offset && what.test(e.message) && e.message.startsWith('in.json: at offset'),
      );
    bad('', 0, /unexpected end/);
    bad('{"a": 1,}', 8, /expected a string key/);
    bad('{"é": [1, 2', 12, /expected "," or "]"/);
    bad('[1] x', 4, /extra data/);
    bad('"abc', 0, /unterminated string/);
    bad('"a\\q"', 2, /bad escape/);
    bad('[01]', 2, /expected "," or "]"/);
    bad('[' .repeat(600), 513, /nested too deeply/);
    const doc = parseJson('{"é": {"x": [10, "y"]}}', 'in.json');
    const inner = ((doc.root as Record<string, JsonValue>)['é'] as Record<string, JsonValue>)['x'] as JsonValue[];
    assert.equal(doc.offsetOf(inner, 1), 18);
    assert.match(doc.error('bad', inner, 1).message, /^in\.json: at offset 18: bad$/);
  });
});
