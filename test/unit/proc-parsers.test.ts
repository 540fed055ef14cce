// Pure parsers of /proc text and of fdinfo lines, on captured text.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMaps } from '../../src/proc/maps.js';
import { parseStat, parseStatus, parseIds } from '../../src/proc/stat.js';
import { fdinfoMntId, parseFdinfo } from '../../src/proc/fdinfo.js';
import { parseProcTimers } from '../../src/objects/timers.js';
import { parseLocks } from '../../src/objects/files/locks.js';
import { xstateToEntry, entryToXstate, xsaveLayout } from '../../src/objects/regs.js';
import { cpuid } from '../../src/sys/index.js';

const SMAPS = `55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 2147308                    /usr/bin/sleep
Size:                  8 kB
Rss:                   8 kB
VmFlags: rd mr mw me dw sd
7ffd7a930000-7ffd7a951000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
VmFlags: rd wr mr mw me gd ac
7f3978ba8000-7f3978bac000 r--p 00000000 00:00 0                          [vvar]
7f00000000-7f00001000 rw-s 00001000 00:01 1036                           /memfd:x (deleted)
`;

test('parseMaps: ranges, perms, offsets, names with spaces, VmFlags and Rss', () => {
  const v = parseMaps(SMAPS);
  assert.equal(v.length, 4);
  assert.equal(v[0]!.start, 0x55d0c0a00000n);
  assert.equal(v[0]!.perms, 'r--p');
  assert.equal(v[0]!.inode, 2147308);
  assert.equal(v[0]!.name, '/usr/bin/sleep');
  assert.deepEqual(v[1]!.vmFlags, ['rd', 'wr', 'mr', 'mw', 'me', 'gd', 'ac']);
  assert.equal(v[1]!.rssKb, 12);
  assert.equal(v[2]!.name, '[vvar]');
  assert.equal(v[3]!.pgoff, 0x1000n);
  assert.equal(v[3]!.name, '/memfd:x (deleted)');
});

test('parseStat: a comm with spaces and parentheses; fields counted after it', () => {
  const line = '1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 5 3 0 999 1000 10 18446744073709551615 ' +
    '94000 95000 140000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 96000 97000 98000 140001 140002 140003 140004 256\n';
  const s = parseStat(line);
  assert.equal(s.pid, 1234);
  assert.equal(s.comm, 'a (b) c');
  assert.equal(s.state, 'S');
  assert.equal(s.ppid, 1);
  assert.equal(s.pgid, 1234);
  assert.equal(s.nice, 5);
  assert.equal(s.numThreads, 3);
  assert.equal(s.startCode, 94000n);
  assert.equal(s.startStack, 140000n);
  assert.equal(s.startBrk, 98000n);
  assert.equal(s.envEnd, 140004n);
  assert.equal(s.exitCode, 256);
});

test('parseStatus and parseIds', () => {
  const m = parseStatus('Name:\tcat\nUid:\t1000\t1001\t1002\t1003\nGroups:\t10 20 \n');
  assert.equal(m.get('Name'), 'cat');
  assert.deepEqual(parseIds(m.get('Uid')), [1000, 1001, 1002, 1003]);
  assert.equal(m.get('Groups'), '10 20');
});

test('parseFdinfo: octal flags, pos, mnt_id, ino, the rest kept', () => {
  const f = parseFdinfo('pos:\t1234\nflags:\t02004002\nmnt_id:\t17\nino:\t12\neventfd-count:                5\n');
  assert.equal(f.pos, 1234n);
  assert.equal(f.flags, 0o2004002);
  assert.equal(f.mntId, 17);
  assert.equal(f.ino, 12n);
  assert.equal(f.extra.get('eventfd-count'), '5');
});

test('parseProcTimers: signal, value, notify kinds, clock', () => {
  const t = parseProcTimers('ID: 1\nsignal: 36/0000000000001234\nnotify: none/pid.6211\nClockID: 0\n' +
    'ID: 0\nsignal: 34/00000000000000ff\nnotify: thread/tid.77\nClockID: 1\n');
  assert.deepEqual(t, [
    { id: 1, signo: 36, sival: 0x1234n, notify: 1, notifyTid: 0, clock: 0 },
    { id: 0, signo: 34, sival: 0xffn, notify: 4, notifyTid: 77, clock: 1 },
  ]);
});

test('parseLocks: flock, POSIX (only the task\'s own) and OFD, each once', () => {
  const text = 'lock:\t1: FLOCK  ADVISORY  WRITE 15405 fe:00:2147308 0 EOF\n' +
    'lock:\t2: POSIX  ADVISORY  WRITE 15405 fe:00:2147320 10 29\n' +
    'lock:\t3: POSIX  ADVISORY  READ 999 fe:00:2147320 40 49\n' +
    'lock:\t4: OFDLCK ADVISORY  READ -1 fe:00:2147390 0 EOF\n';
  const seen = new Set<string>();
  const l = parseLocks(text, 15405, 7, 5, 1, seen);
  assert.deepEqual(l.map((x) => [x.flag, x.type, x.pid, x.fd, x.start, x.len]), [
    [2, 1, 7, 5, 0n, 0n],
    [1, 1, 7, 5, 10n, 20n],
    [4, 0, 7, 5, 0n, 0n],
  ]);
  assert.equal(parseLocks(text, 15405, 7, 6, 1, seen).length, 0, 'the same locks seen from another fd of the description');
  // Another description of the same files holds flock and OFD locks of its own.
  assert.equal(parseLocks(text, 15405, 7, 8, 2, seen).length, 2);
});

test('parseLocks: leases, active and being broken (LEASE_BREAKING | the target type); unknown lock lines refused', () => {
  const text = 'lock:\t1: LEASE  ACTIVE    READ 15120 fe:00:2146794 0 EOF\n';
  const seen = new Set<string>();
  const l = [...parseLocks(text, 15120, 3, 4, 1, seen), ...parseLocks('lock:\t1: LEASE  BREAKING  UNLCK 15120 fe:00:2146794 0 EOF\n', 15120, 3, 5, 2, seen)];
  assert.deepEqual(l.map((x) => [x.flag, x.type, x.pid, x.fd, x.start, x.len]), [[8, 0, 3, 4, 0n, 0n], [8, 6, 3, 5, 0n, 0n]]);
  assert.equal(parseLocks(text, 15120, 3, 9, 1, seen).length, 0, 'a lease seen again from a dup of its fd');
  assert.throws(() => parseLocks('lock:\t1: DELEG  ACTIVE    READ 1 fe:00:1 0 EOF\n', 1, 1, 4, 1, new Set()), /fd 4 holds a lock cryo cannot dump/);
  assert.throws(() => parseLocks('lock:\t1: FLOCK  MSNFS  READ 1 fe:00:1 0 EOF\n', 1, 1, 4, 1, new Set()), /cannot dump/);
});

/** A CPU's CPUID leaf 0xD: sub-leaf 0 the supported XCR0 bits, sub-leaf i component i's [size, offset]. */
function cpuidOf(xcr0: number, comps: Record<number, [number, number]>) {
  return (leaf: number, sub: number): number[] => {
    assert.equal(leaf, 0xd);
    if (sub === 0) return [xcr0, 0, 0, 0];
    const c = comps[sub];
    return c ? [c[0], c[1], 0, 0] : [0, 0, 0, 0];
  };
}
// Intel with AVX-512 and PKRU (XCR0 0x2e7), and an AMD EPYC without AVX-512 (0x207): PKRU at 2688 and at 2432.
const INTEL = xsaveLayout(cpuidOf(0x2e7, { 2: [256, 576], 5: [64, 1088], 6: [512, 1152], 7: [1024, 1664], 9: [8, 2688] }));
const AMD = xsaveLayout(cpuidOf(0x207, { 2: [256, 576], 9: [8, 2432] }));

/** A thread's XSAVE area as ptrace gives it: the kernel's XCR0 at 464, xstate_bv at 512, patterned bytes elsewhere. */
function xarea(size: number, xcr0: bigint, bv = xcr0): Buffer {
  const x = Buffer.alloc(size);
  for (let i = 0; i < 512; i++) x[i] = (i * 7 + 3) & 0xff;
  x.fill(0, 464, 512);
  x.writeBigUInt64LE(xcr0, 464);
  x.writeBigUInt64LE(bv, 512);
  for (let i = 576; i < x.length; i++) x[i] = (i * 13 + 1) & 0xff;
  return x;
}

/** The area a restored thread starts with: the CPU's size and XCR0, nothing in use. */
const template = (size: number, xcr0: bigint) => xarea(size, xcr0, 0n).fill(0, 576);

test('XSAVE area ↔ image fields: round trip of the legacy area and the AVX/AVX-512/PKRU components, at Intel\'s offsets and at AMD\'s', () => {
  for (const [cpu, layout, size, xcr0, ranges] of [
    ['Intel', INTEL, 2696, 0x2e7n, [[576, 832], [1088, 1152], [1152, 1664], [1664, 2688], [2688, 2696]]],
    ['AMD', AMD, 2440, 0x207n, [[576, 832], [2432, 2440]]],
  ] as const) {
    const x = xarea(size, xcr0);
    const e = xstateToEntry(x, layout, 42);
    assert.equal(e.xsave?.ymmhSpace.length, 64, cpu);
    assert.equal(e.xsave?.pkru.length, 2, cpu);
    assert.equal(e.xsave?.pkru[0], x.readUInt32LE(size - 8), `${cpu}: PKRU is read where the CPU keeps it`);
    assert.equal(e.xsave?.zmmUpper.length, cpu === 'Intel' ? 64 : 0, cpu);
    const back = entryToXstate(e, template(size, xcr0), layout);
    // The legacy area but byte 5 (reserved) and the padding from 416 on, which the image does not keep.
    assert.deepEqual(back.subarray(0, 5), x.subarray(0, 5), cpu);
    assert.deepEqual(back.subarray(6, 416), x.subarray(6, 416), cpu);
    assert.equal(back.readBigUInt64LE(512), xcr0, `${cpu}: xstate_bv`);
    for (const [a, b] of ranges) assert.deepEqual(back.subarray(a, b), x.subarray(a, b), `${cpu}: bytes ${a}..${b}`);
  }
});

test('XSAVE: AVX and PKRU cross from Intel to AMD at their own offsets; AVX-512 in use is refused on a CPU without it; a component the image cannot hold is refused at dump', () => {
  const intel = xarea(2696, 0x2e7n, 0x207n); // AVX-512 present, in its init state
  const onAmd = entryToXstate(xstateToEntry(intel, INTEL, 1), template(2440, 0x207n), AMD);
  assert.deepEqual(onAmd.subarray(2432, 2440), intel.subarray(2688, 2696), 'PKRU moved from 2688 to 2432');
  assert.deepEqual(onAmd.subarray(576, 832), intel.subarray(576, 832));
  assert.throws(() => entryToXstate(xstateToEntry(xarea(2696, 0x2e7n), INTEL, 1), template(2440, 0x207n), AMD),
    /the image has AVX-512 opmask state, which this CPU lacks \(XSAVE features 0x207\)/);
  // AMX tile data (bit 18) in use: the image has no field for it.
  const amx = xarea(2696, 0x602e7n, 0x402e7n);
  assert.throws(() => xstateToEntry(amx, INTEL, 77), /^Error: thread 77: XSAVE state components 0x40000 are in use, and CRIU's image has no place for them$/);
});

test('xsaveLayout reads this CPU: the offsets ptrace hands out are its own', () => {
  const l = xsaveLayout(cpuid);
  const [lo] = cpuid(0xd, 0);
  if ((lo! & 4) !== 0) assert.deepEqual(l.get(2), { off: 576, size: 256 }, 'AVX is at 576 on every x86_64 CPU');
  for (const [bit, c] of l) assert.ok(c.off >= 576 && c.size > 0, `component ${bit}: ${JSON.stringify(c)}`);
  if (l.has(9)) assert.ok([2432, 2688].includes(l.get(9)!.off), `PKRU at ${l.get(9)!.off}`);
});

test('fdinfoMntId: the mnt_id line, NaN without one', () => {
  assert.equal(fdinfoMntId('pos:\t0\nflags:\t02000000\nmnt_id:\t108\nino:\t5\n'), 108);
  assert.ok(Number.isNaN(fdinfoMntId('pos:\t0\nflags:\t02000000\n')));
});
