// Every image kind through crit, on random messages that fill (nearly) every
// field of every schema: our decode -> encode gives the same bytes (plain and
// --pretty JSON), and our decode prints, text for text, what CRIU's own crit
// (Debian's pycriu) prints for every field that crit knows.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toBinary, type DescMessage, type Message } from '@bufbuild/protobuf';
import { encodeImage, type Entry } from '../../src/images/codec.js';
import { fileName, KINDS, takesArg, type KindKey, type PbKind, type PbKindKey } from '../../src/images/magic.js';
import { IpcMsgSchema, type IpcMsg } from '../../src/images/gen/ipc-msg_pb.js';
import { Converter } from '../../src/crit/convert.js';
import { decodeToJson, encodeFromJson } from '../../src/crit/image.js';
import { dumps, parseJson } from '../../src/crit/json.js';
import { critDecodeMany, debianView, fill, haveCrit, pySchemas, Rng, type PySchemas } from './crit-helpers.js';
import { tmpDir } from './images-helpers.js';

type AnyKind = PbKind<DescMessage, DescMessage>;
const PB_KEYS = (Object.keys(KINDS) as KindKey[]).filter((k) => !KINDS[k].raw) as PbKindKey[];
/** Kinds CRIU's crit has no handler for (SIGNAL, BINFMT_MISC) or no magic (PIDFD, new in 4.x). */
const NOT_IN_DEBIAN_CRIT = new Set(['SIGNAL', 'BINFMT_MISC', 'PIDFD']);
const SEEDS = [1, 2, 3];

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;
const set = (m: Message, field: string, v: unknown) => ((m as unknown as Record<string, unknown>)[field] = v);

/** Random entries of a kind, with payloads that agree with their messages. */
function entriesOf(key: PbKindKey, rng: Rng, py: PySchemas | undefined): Entry[] {
  const kind = KINDS[key] as AnyKind;
  const conv = new Converter();
  const msg = (d: DescMessage) => fill(d, rng, py ? { py } : {}, conv);
  const out: Entry[] = [];
  if (kind.crit === 'GHOST_FILE') {
    const head = msg(kind.head!);
    const chunks = rng.chance(0.5);
    set(head, 'chunks', chunks);
    if (!chunks) return [{ msg: head, extra: rng.bytes(rng.int(200)) }];
    out.push({ msg: head });
    for (let i = rng.int(3); i >= 0; i--) {
      const c = msg(kind.schema);
      const data = rng.bytes(rng.int(100));
      set(c, 'len', BigInt(data.length));
      out.push({ msg: c, extra: data });
    }
    return out;
  }
  if (kind.head) out.push({ msg: msg(kind.head) });
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const m = msg(kind.schema);
    const data = rng.bytes(rng.pick([0, 1, 5, 100]));
    let extra: Uint8Array | undefined;
    switch (kind.crit) {
      case 'PIPES_DATA':
      case 'FIFO_DATA':
        set(m, 'bytes', data.length);
        extra = data;
        break;
      case 'SK_QUEUES':
        set(m, 'length', data.length);
        extra = data;
        break;
      case 'BPFMAP_DATA':
        set(m, 'keysBytes', 1);
        set(m, 'valuesBytes', data.length + 1);
        extra = rng.bytes(data.length + 2);
        break;
      case 'TCP_STREAM': {
        const outq = rng.bytes(rng.int(10));
        set(m, 'inqLen', data.length);
        set(m, 'outqLen', outq.length);
        extra = Uint8Array.from([...data, ...outq]);
        break;
      }
      case 'IPCNS_SEM': {
        const n = rng.int(6);
        set(m, 'nsems', n);
        extra = new Uint8Array(roundUp(2 * n, 8));
        extra.set(rng.bytes(2 * n));
        break;
      }
      case 'IPCNS_SHM':
        set(m, 'inPagemaps', false);
        set(m, 'size', BigInt(data.length));
        extra = new Uint8Array(roundUp(data.length, 4));
        extra.set(data);
        break;
      case 'IPCNS_MSG': {
        const parts: number[] = [];
        const q = rng.int(3);
        for (let i = 0; i < q; i++) {
          const body = rng.bytes(rng.int(20));
          const im = fill(IpcMsgSchema, rng) as IpcMsg;
          im.msize = body.length;
          const bin = toBinary(IpcMsgSchema, im);
          parts.push(bin.length & 0xff, bin.length >> 8, 0, 0, ...bin, ...body, ...new Uint8Array(roundUp(body.length, 8) - body.length));
        }
        set(m, 'qnum', q);
        extra = Uint8Array.from(parts);
        break;
      }
    }
    out.push(extra === undefined ? { msg: m } : { msg: m, extra });
  }
  return out;
}

interface Case {
  key: PbKindKey;
  file: string;
  bytes: Uint8Array;
}

function makeCases(dir: string, py: PySchemas | undefined): Case[] {
  const cases: Case[] = [];
  for (const key of PB_KEYS) {
    for (const seed of SEEDS) {
      const rng = new Rng(seed * 7919 + key.length);
      const bytes = encodeImage(key, entriesOf(key, rng, py) as never);
      const file = path.join(dir, `${seed}-${fileName(key, takesArg(key) ? (KINDS[key].file.includes('%s') ? 'dump' : 7) : undefined)}`);
      fs.writeFileSync(file, bytes);
      cases.push({ key, file, bytes });
    }
  }
  return cases;
}

describe('crit on every image kind', () => {
  let dir: string;
  before(() => {
    dir = tmpDir('crit-kinds');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('encode(decode(image)) is the image, byte for byte, from plain and from --pretty JSON', () => {
    const cases = makeCases(dir, undefined);
    assert.ok(cases.length >= 3 * 70, `${cases.length} images`);
    for (const c of cases) {
      for (const pretty of [false, true]) {
        const text = dumps(decodeToJson(c.bytes, c.file, { pretty }), pretty ? 4 : undefined);
        const back = encodeFromJson(parseJson(text, 'json'));
        assert.deepEqual(Buffer.from(back), Buffer.from(c.bytes), `${path.basename(c.file)} ${pretty ? 'pretty' : 'plain'}: ${text.slice(0, 400)}`);
      }
    }
  });

  it('prints what CRIU\'s crit prints, text for text, on every field it knows', { skip: !haveCrit && 'crit is not installed' }, () => {
    const py = pySchemas();
    const sub = path.join(dir, 'debian');
    fs.mkdirSync(sub);
    const cases = makeCases(sub, py);
    const theirs = critDecodeMany(cases.map((c) => c.file));
    const conv = new Converter();
    let compared = 0;
    for (const c of cases) {
      const name = path.basename(c.file);
      const kind = KINDS[c.key] as AnyKind;
      const t = theirs.get(c.file)!;
      if (NOT_IN_DEBIAN_CRIT.has(kind.crit)) {
        assert.ok('error' in t, `${name}: CRIU's crit decodes ${kind.crit} now: update the test`);
        continue;
      }
      assert.ok(!('error' in t), `${name}: CRIU's crit fails: ${'error' in t ? t.error : ''}`);
      (['plain', 'pretty'] as const).forEach((form, i) => {
        const ours = decodeToJson(c.bytes, c.file, { pretty: form === 'pretty' }, conv);
        const view = {
          magic: ours.magic,
          entries: ours.entries.map((e, n) => debianView(n === 0 && kind.head ? kind.head : kind.schema, e, py)),
        };
        assert.equal(dumps(view, form === 'pretty' ? 4 : undefined), (t as [string, string])[i], `${name} (${form})`);
        compared++;
      });
    }
    assert.ok(compared >= 2 * 3 * 65, `${compared} comparisons`);
  });
});
