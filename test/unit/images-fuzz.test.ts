// The image decoder and `crit decode` on damaged input, with a fixed seed: an
// image of every kind (random messages), then truncated, bit-flipped, with huge
// or wrong lengths, wrong magics, garbage inserted or appended. Each must decode
// or fail with one ImageError (crit: exit 1, one line naming the file), never
// another exception, a stack trace or a hang. CRYO_FUZZ_SEED and CRYO_FUZZ_COUNT
// (damaged copies per kind) try others.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Message } from '@bufbuild/protobuf';
import { KINDS, ImageError, decodeImage, encodeImage, kindOf, type Entry, type PbKind, type PbKindKey } from '../../src/images/index.js';
import { runCrit, type CritIO } from '../../src/crit/cli.js';
import { fill, Rng } from './crit-helpers.js';

const SEED = Number(process.env.CRYO_FUZZ_SEED ?? 20251201);
const PER_KIND = Number(process.env.CRYO_FUZZ_COUNT ?? 24);

type AnyKind = PbKind<never, never>;

/** A valid image of the kind: a head where it has one, then two entries, payloads of the right size. */
function sample(key: PbKindKey, rng: Rng): Uint8Array | undefined {
  const k = kindOf(key) as unknown as AnyKind;
  for (let attempt = 0; attempt < 20; attempt++) {
    const entries: Entry[] = [];
    const n = k.head ? 3 : 2;
    for (let i = 0; i < n; i++) {
      const msg = fill(i === 0 && k.head ? k.head : k.schema, rng) as Message;
      const e: Entry = { msg };
      if (k.payload) {
        const want = (k.payload as (m: Message, rest: Uint8Array, first: boolean) => number)(msg, new Uint8Array(64), i === 0);
        // A payload that takes the rest of the file (a ghost file's head) ends the image.
        if (want === 64) {
          e.extra = rng.bytes(64);
          entries.push(e);
          break;
        }
        if (!Number.isSafeInteger(want) || want < 0 || want > 4096) continue;
        e.extra = rng.bytes(want);
      }
      entries.push(e);
    }
    try {
      const buf = encodeImage(key, entries as never);
      decodeImage(key, buf); // must read back
      return buf;
    } catch {
      // fill() may pick values this kind's payload rule rejects: try again
    }
  }
  return undefined;
}

/** One damaged copy of buf. */
function damage(buf: Uint8Array, rng: Rng): { how: string; bytes: Uint8Array } {
  const b = Buffer.from(buf);
  const at = rng.int(b.length);
  switch (rng.int(9)) {
    case 0:
      return { how: `truncated at ${at}`, bytes: b.subarray(0, at) };
    case 1: {
      const bit = rng.int(b.length * 8);
      b[bit >> 3]! ^= 1 << (bit & 7);
      return { how: `bit ${bit} flipped`, bytes: b };
    }
    case 2: {
      const off = Math.min(at, Math.max(0, b.length - 4));
      const v = rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 64 * 1024 * 1024 + 1, b.length, 0]);
      if (b.length >= 4) b.writeUInt32LE(v >>> 0, off);
      return { how: `u32 ${v} at ${off}`, bytes: b };
    }
    case 3:
      return { how: `garbage inserted at ${at}`, bytes: Buffer.concat([b.subarray(0, at), Buffer.from(rng.bytes(1 + rng.int(16))), b.subarray(at)]) };
    case 4:
      return { how: 'garbage appended', bytes: Buffer.concat([b, Buffer.from(rng.bytes(1 + rng.int(16)))]) };
    case 5: {
      if (b.length >= 8) b.writeUInt32LE(rng.pick(Object.values(KINDS).flatMap((k) => (k.raw ? [] : [k.magic]))), 4);
      return { how: 'another magic', bytes: b };
    }
    case 6:
      return { how: 'empty', bytes: new Uint8Array(0) };
    case 7: {
      // An entry's bytes repeated: lengths that point into the middle of entries.
      const from = rng.int(b.length);
      return { how: `bytes ${from}.. repeated at ${at}`, bytes: Buffer.concat([b.subarray(0, at), b.subarray(from), b.subarray(at)]) };
    }
    default: {
      for (let i = 0; i < 4; i++) {
        const bit = rng.int(b.length * 8);
        b[bit >> 3]! ^= 1 << (bit & 7);
      }
      return { how: 'four bits flipped', bytes: b };
    }
  }
}

function crit(argv: string[], file: string, data: Uint8Array): { code: number; err: string; out: string } {
  let err = '';
  let out = '';
  const io: CritIO = {
    readFile: (p) => {
      if (p !== file) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return data;
    },
    readStdin: () => data,
    writeFile: () => assert.fail('crit wrote a file'),
    stdout: (d) => (out += typeof d === 'string' ? d : Buffer.from(d).toString()),
    stderr: (t) => (err += t),
  };
  return { code: runCrit(argv, io), err, out };
}

describe('damaged images', () => {
  const keys = (Object.keys(KINDS) as Array<keyof typeof KINDS>).filter((k) => !KINDS[k].raw) as PbKindKey[];
  const rng = new Rng(SEED);
  const samples = new Map<PbKindKey, Uint8Array>();
  for (const key of keys) {
    const s = sample(key, rng);
    if (s) samples.set(key, s);
  }

  it('a sample of (nearly) every kind to damage', () => {
    const missing = keys.filter((k) => !samples.has(k));
    assert.ok(missing.length <= 2, `no valid sample for ${missing.join(', ')}`);
  });

  it('the decoder: entries or one ImageError naming the file, nothing else, and fast', (t) => {
    let decoded = 0;
    let refused = 0;
    const t0 = performance.now();
    for (const [key, good] of samples) {
      for (let i = 0; i < PER_KIND; i++) {
        const { how, bytes } = damage(good, rng);
        const file = `fuzz-${key}.img`;
        const t = performance.now();
        try {
          decodeImage(key, bytes, file);
          decoded++;
        } catch (e) {
          assert.ok(ImageError.is(e), `${key} ${how}: not an ImageError: ${(e as Error).stack}`);
          assert.ok(e.message.startsWith(`${file}: `) && !e.message.includes('\n'), `${key} ${how}: ${JSON.stringify(e.message)}`);
          refused++;
        }
        assert.ok(performance.now() - t < 1000, `${key} ${how}: decoding took ${performance.now() - t} ms`);
      }
    }
    assert.ok(refused > decoded, `${refused} refused, ${decoded} decoded: the damage is too gentle`);
    t.diagnostic(`decoder, seed ${SEED}: ${samples.size} kinds, ${decoded + refused} damaged images: ${refused} refused, ${decoded} decoded, in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('crit decode, show and info: output, or exit 1 with one line naming the file', (t) => {
    let ok = 0;
    let failed = 0;
    for (const [key, good] of samples) {
      for (let i = 0; i < PER_KIND / 2; i++) {
        const { how, bytes } = damage(good, rng);
        const file = `/fuzz/${KINDS[key].file.replace(/%\w+/, '1')}`;
        const argv = rng.pick([['decode', '-i', file], ['decode', '-i', file, '--pretty'], ['show', file], ['show', '--nopl', file], ['info', file]]);
        const r = crit(argv, file, bytes);
        if (r.code === 0) {
          ok++;
          assert.equal(r.err, '', `${key} ${how}: ${argv.join(' ')}: exit 0 with ${r.err}`);
          assert.ok(r.out.length > 0, `${key} ${how}: no output`);
          continue;
        }
        failed++;
        assert.equal(r.code, 1, `${key} ${how}: ${argv.join(' ')}: exit ${r.code}: ${r.err}`);
        assert.ok(r.err.startsWith(`crit: ${file}: `) && r.err.endsWith('\n') && r.err.split('\n').length === 2, `${key} ${how}: ${argv.join(' ')}: ${JSON.stringify(r.err)}`);
        assert.doesNotMatch(r.err, /^\s+at /m);
        assert.equal(r.out, '', `${key} ${how}: output and an error`);
      }
    }
    assert.ok(failed > ok, `${failed} failed, ${ok} decoded: the damage is too gentle`);
    t.diagnostic(`crit, seed ${SEED}: ${ok + failed} damaged images: ${failed} refused, ${ok} decoded`);
  });
});
