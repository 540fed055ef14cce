// The crit command line: verbs and their options as crit parses them, stdin and
// stdout, -F/--fields, and every kind of damaged input (a one-line error naming
// the file and the byte offset, exit 1).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Message } from '@bufbuild/protobuf';
import { encodeImage } from '../../src/images/codec.js';
import {
  CoreEntrySchema,
  GhostFileEntrySchema,
  MmEntrySchema,
  PagemapEntrySchema,
  PagemapHeadSchema,
  PipeDataEntrySchema,
  TaskCoreEntrySchema,
  ThreadInfoX86Schema,
  UserX86RegsEntrySchema,
  VmaEntrySchema,
} from '../../src/images/index.js';
import { runCrit, type CritIO } from '../../src/crit/cli.js';
import { CRIT, fill, haveCrit, PYTHON, Rng } from './crit-helpers.js';
import { tmpDir } from './images-helpers.js';

const rng = new Rng(99);
const msg = (desc: Parameters<typeof fill>[0], fields: Record<string, unknown> = {}): Message =>
  Object.assign(fill(desc, rng) as unknown as Record<string, unknown>, fields) as unknown as Message;

interface Run {
  code: number;
  out: Buffer;
  text: string;
  err: string;
}

function crit(argv: string[], stdin: Uint8Array = new Uint8Array(0)): Run {
  const out: Buffer[] = [];
  let err = '';
  const io: CritIO = {
    readFile: (p) => fs.readFileSync(p),
    readStdin: () => stdin,
    writeFile: (p, data) => fs.writeFileSync(p, data),
    stdout: (d) => out.push(Buffer.from(d)),
    stderr: (t) => (err += t),
  };
  const code = runCrit(argv, io);
  const all = Buffer.concat(out);
  return { code, out: all, text: all.toString('utf8'), err };
}

/** A failure: exit 1 and one line naming the file (and the offset when given). */
function fails(r: Run, file: string, offset: number | undefined, what: RegExp): void {
  assert.equal(r.code, 1, r.err);
  assert.equal(r.text, '');
  assert.equal(r.err.split('\n').length, 2, `one line: ${r.err}`);
  assert.ok(r.err.startsWith(`crit: ${file}: `), r.err);
  if (offset !== undefined) assert.ok(r.err.includes(`at offset ${offset}: `) || r.err.includes(`entry at offset ${offset}`) || r.err.includes(`magic at offset ${offset}`), r.err);
  assert.match(r.err, what);
  assert.doesNotMatch(r.err, /^\s+at /m);
}

let dir: string;
const img: Record<string, string> = {};

before(() => {
  dir = tmpDir('crit-cli');
  const write = (name: string, bytes: Uint8Array) => {
    img[name] = path.join(dir, name);
    fs.writeFileSync(img[name]!, bytes);
  };
  const gpregs = msg(UserX86RegsEntrySchema, { ip: 0x401000n, sp: 0x7ffd0000n });
  write('core-1.img', encodeImage('core', [
    msg(CoreEntrySchema, { tc: msg(TaskCoreEntrySchema, { comm: 'cat', taskState: 1 }), threadInfo: msg(ThreadInfoX86Schema, { gpregs }) }),
  ] as never));
  const vmas = [0x400000n, 0x401000n, 0x7ffd0000n].map((start) => msg(VmaEntrySchema, { start, end: start + 0x1000n }));
  write('mm-1.img', encodeImage('mm', [msg(MmEntrySchema, { vmas })] as never));
  write('pagemap-1.img', encodeImage('pagemap', [msg(PagemapHeadSchema, { pagesId: 1 }), msg(PagemapEntrySchema, { vaddr: 0x400000n, nrPages: 2n, flags: 4 })] as never));
  const data = Buffer.from('hello, pipe\n'.repeat(400));
  write('pipes-data.img', encodeImage('pipesData', [{ msg: msg(PipeDataEntrySchema, { pipeId: 5, bytes: data.length }), extra: data }] as never));
  write('ghost-file-1.img', encodeImage('ghostFile', [{ msg: msg(GhostFileEntrySchema, { chunks: false }), extra: Buffer.from('ghost contents') }] as never));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('verbs', () => {
  it('decode and encode through files, stdin and stdout; the image comes back byte for byte', () => {
    const bytes = fs.readFileSync(img['core-1.img']!);
    const toStdout = crit(['decode', '-i', img['core-1.img']!]);
    assert.equal(toStdout.code, 0, toStdout.err);
    assert.ok(toStdout.text.startsWith('{"magic": "CORE", "entries": [{"mtype": '), toStdout.text.slice(0, 100));
    assert.ok(toStdout.text.endsWith('}]}\n'));
    const json = path.join(dir, 'core.json');
    assert.equal(crit(['decode', `--in=${img['core-1.img']}`, '-o', json]).code, 0);
    assert.equal(fs.readFileSync(json, 'utf8') + '\n', toStdout.text, 'no newline at the end of a file');
    assert.equal(crit(['decode'], bytes).text, toStdout.text);
    assert.equal(crit(['decode', '-i', '-'], bytes).text, toStdout.text);
    const back = crit(['encode', '-i', json]);
    assert.equal(back.code, 0, back.err);
    assert.deepEqual(back.out, bytes);
    const file = path.join(dir, 'core.back');
    assert.equal(crit(['encode', `-o${file}`], Buffer.from(toStdout.text)).code, 0);
    assert.deepEqual(fs.readFileSync(file), bytes);
  });

  it('--pretty (and a prefix of it) and show print the pretty form; encode reads it back', () => {
    const pretty = crit(['decode', '--pre', '-i', img['core-1.img']!]);
    assert.equal(pretty.code, 0, pretty.err);
    assert.match(pretty.text, /^\{\n {4}"magic": "CORE",\n {4}"entries": \[\n {8}\{\n/);
    assert.match(pretty.text, /"ip": "0x401000"/);
    assert.match(pretty.text, /"task_state": "Alive"/);
    assert.equal(crit(['show', img['core-1.img']!]).text, pretty.text);
    assert.deepEqual(crit(['encode'], pretty.out).out, fs.readFileSync(img['core-1.img']!));
  });

  it('show --nopl prints payload sizes as crit does', () => {
    const r = crit(['show', '--nopl', img['pipes-data.img']!]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.text, /"extra": "\.\.\. <4\.7KB>"/);
    const g = crit(['show', '--nopl', img['ghost-file-1.img']!]);
    assert.doesNotMatch(g.text, /extra/);
    if (haveCrit) {
      for (const name of ['pipes-data.img', 'ghost-file-1.img']) {
        assert.equal(crit(['show', '--nopl', img[name]!]).text, execFileSync(PYTHON, [CRIT, 'show', '--nopl', img[name]!], { encoding: 'utf8' }));
      }
    }
  });

  it('info prints the magic and the entry count (pagemap without its head)', () => {
    assert.equal(crit(['info', img['core-1.img']!]).text, '{\n    "magic": "CORE",\n    "count": 1\n}\n');
    assert.equal(crit(['info', img['pagemap-1.img']!]).text, '{\n    "magic": "PAGEMAP",\n    "count": 1\n}\n');
    assert.equal(crit(['info', img['pipes-data.img']!]).text, '{\n    "magic": "PIPES_DATA",\n    "count": 1\n}\n');
  });

  it('usage: help, version, unknown verbs and options, missing arguments (exit 2, as argparse)', () => {
    assert.equal(crit(['--version']).text, '4.2\n');
    for (const h of [['-h'], ['decode', '--help'], ['x', '-h']]) {
      const r = crit(h);
      assert.equal(r.code, 0);
      assert.match(r.text, /^usage: crit/);
    }
    const usage = (argv: string[], what: RegExp) => {
      const r = crit(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, /^usage: crit .*\ncrit: error: .*\n$/);
      assert.match(r.err, what);
    };
    usage([], /required/);
    usage(['frob'], /invalid choice: 'frob'/);
    usage(['decode', '--bogus'], /unrecognized arguments: --bogus/);
    usage(['decode', '-i'], /-i\/--in: expected one argument/);
    usage(['decode', '--pretty=yes'], /ignored explicit argument/);
    usage(['info'], /required: in/);
    usage(['info', 'a', 'b'], /unrecognized arguments: b/);
    usage(['x', dir], /required: what/);
    usage(['decode', '-F', ',,'], /-F: no field names/);
    usage(['decode', '-F', 'tc..comm'], /-F: bad field name/);
  });
});

describe('-F / --fields', () => {
  it('selects nested fields and keeps the structure around them', () => {
    const r = crit(['decode', '-F', 'tc.comm,thread_info.gpregs.ip', '-i', img['core-1.img']!]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.text, '{"magic": "CORE", "entries": [{"thread_info": {"gpregs": {"ip": 4198400}}, "tc": {"comm": "cat"}}]}\n');
    const s = crit(['show', '--fields', 'thread_info.gpregs.ip,tc.comm', img['core-1.img']!]);
    assert.match(s.text, /"gpregs": \{\n {20}"ip": "0x401000"\n/);
  });

  it('selects through lists of messages, whole messages, and the payload', () => {
    const r = crit(['decode', '-F', 'vmas.start', '-i', img['mm-1.img']!]);
    assert.equal(r.text, '{"magic": "MM", "entries": [{"vmas": [{"start": 4194304}, {"start": 4198400}, {"start": 2147287040}]}]}\n');
    const whole = crit(['decode', '-F', 'tc,tc.comm', '-i', img['core-1.img']!]);
    const all = JSON.parse(crit(['decode', '-i', img['core-1.img']!]).text);
    assert.deepEqual(JSON.parse(whole.text).entries[0].tc, all.entries[0].tc);
    const pm = crit(['decode', '-F', 'vaddr', '-i', img['pagemap-1.img']!]);
    assert.equal(pm.text, '{"magic": "PAGEMAP", "entries": [{}, {"vaddr": 4194304}]}\n', 'the head has no vaddr');
    const p = JSON.parse(crit(['decode', '-F', 'extra,pipe_id', '-i', img['pipes-data.img']!]).text);
    assert.deepEqual(Object.keys(p.entries[0]), ['pipe_id', 'extra']);
  });

  it('an unknown name is an error that lists the fields at that level', () => {
    const r = crit(['decode', '-F', 'tc.comx', '-i', img['core-1.img']!]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^crit: -F: no field "tc\.comx": the fields of tc are task_state, exit_code, personality, flags, blk_sigset, comm, /);
    const top = crit(['decode', '-F', 'bogus', '-i', img['pipes-data.img']!]);
    assert.equal(top.err, `crit: -F: no field "bogus": the fields of the entries of ${img['pipes-data.img']} are pipe_id, bytes, size, extra\n`);
    const leaf = crit(['decode', '-F', 'tc.comm.x', '-i', img['core-1.img']!]);
    assert.match(leaf.err, /tc\.comm is not a message, it has no fields/);
    assert.equal(crit(['decode', '-F', 'extra', '-i', img['core-1.img']!]).code, 1, 'core has no payload');
  });
});

describe('damaged images', () => {
  const u32 = (...v: number[]) => Buffer.from(new Uint32Array(v).buffer);
  const damaged = (name: string, bytes: Uint8Array) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  let core: Buffer;
  before(() => {
    core = fs.readFileSync(img['core-1.img']!);
  });

  it('wrong, unknown or missing magic', () => {
    fails(crit(['decode', '-i', damaged('empty.img', new Uint8Array(0))]), path.join(dir, 'empty.img'), 0, /too short for a magic/);
    fails(crit(['decode', '-i', damaged('raw.img', Buffer.alloc(4096))]), path.join(dir, 'raw.img'), 0, /unknown magic 0x00000000 \(maybe raw data/);
    fails(crit(['decode', '-i', damaged('unk.img', u32(0x54564319, 0x12345678, 0))]), path.join(dir, 'unk.img'), 4, /unknown magic 0x12345678$/m);
    fails(crit(['decode', '-i', damaged('half.img', u32(0x54564319))]), path.join(dir, 'half.img'), 4, /ends after the first magic/);
    fails(crit(['info', damaged('svc.img', u32(0x55105940, 0x55053847))]), path.join(dir, 'svc.img'), 4, /unknown magic/);
    fails(crit(['decode'], u32(0x1)), '<stdin>', 0, /unknown magic 0x00000001/);
    fails(crit(['decode'], Buffer.from('{"magic": "CORE"}')), '<stdin>', 0, /this looks like JSON: encode reads JSON/);
  });

  it('truncated entries, lengths beyond the file or any sane size, bad messages, trailing bytes', () => {
    const f = (name: string, bytes: Uint8Array) => damaged(name, bytes);
    fails(crit(['decode', '-i', f('trunc.img', core.subarray(0, core.length - 3))]), path.join(dir, 'trunc.img'), 8, /length \d+ but only \d+ bytes left/);
    fails(crit(['decode', '-i', f('len.img', Buffer.concat([core.subarray(0, 8), u32(0x7fffffff), Buffer.alloc(16)]))]), path.join(dir, 'len.img'), 8, /exceeds limit/);
    fails(crit(['decode', '-i', f('beyond.img', Buffer.concat([core.subarray(0, 8), u32(1000), Buffer.alloc(16)]))]), path.join(dir, 'beyond.img'), 8, /length 1000 but only 16 bytes left/);
    fails(crit(['decode', '-i', f('garbage.img', Buffer.concat([core.subarray(0, 8), u32(4), Buffer.from([0xff, 0xff, 0xff, 0xff])]))]), path.join(dir, 'garbage.img'), 8, /bad criu\.CoreEntry/);
    fails(crit(['decode', '-i', f('empty-msg.img', Buffer.concat([core.subarray(0, 8), u32(0)]))]), path.join(dir, 'empty-msg.img'), 8, /lacks required field mtype/);
    fails(crit(['decode', '-i', f('tail.img', Buffer.concat([core, Buffer.from([1, 2])]))]), path.join(dir, 'tail.img'), core.length, /too short for a length/);
    const pipes = fs.readFileSync(img['pipes-data.img']!);
    fails(crit(['show', f('payload.img', pipes.subarray(0, pipes.length - 1))]), path.join(dir, 'payload.img'), undefined, /payload at offset \d+ .* needs 4800 bytes, 4799 left/);
    fails(crit(['info', f('info.img', core.subarray(0, 20))]), path.join(dir, 'info.img'), 8, /but only/);
    fails(crit(['decode', '-i', path.join(dir, 'nope.img')]), path.join(dir, 'nope.img'), undefined, /cannot read: No such file or directory/);
  });
});

describe('JSON of the wrong shape', () => {
  const enc = (json: string) => crit(['encode'], Buffer.from(json));
  /** The offset is where `needle` starts in the text (in bytes). */
  const at = (json: string, needle: string | number, what: RegExp) => {
    const i = typeof needle === 'number' ? needle : json.indexOf(needle);
    assert.ok(i >= 0, String(needle));
    fails(enc(json), '<stdin>', Buffer.byteLength(json.slice(0, i)), what);
  };

  it('is refused with the byte offset of the offending value', () => {
    fails(crit(['encode', '-i', img['core-1.img']!]), img['core-1.img']!, undefined, /not JSON \(not UTF-8 text/);
    at('{"magic": "CORE", "entries": [', 30, /bad JSON: unexpected end/);
    at('[]', '[', /expected \{"magic": \.\.\., "entries": \[\.\.\.\]\}, got a list/);
    at('{"magic": 5, "entries": []}', '5', /"magic": expected the name of an image kind/);
    at('{"magic": "NOPE", "entries": []}', '"NOPE"', /unknown image kind "NOPE" \(known: APPARMOR, AUTOFS/);
    at('{"magic": "CORE", "entries": {}}', '{}', /"entries": expected a list, got an object/);
    at('{"magic": "CORE", "entries": [], "x": 1}', '1}', /unexpected key "x"/);
    at('{"magic": "CORE", "entries": [7]}', '7', /entries\[0\]: expected an object/);
    at('{"magic": "CORE", "entries": [{"mtype": "X86_64", "tc": {"comm": 5}}]}', '5}', /entries\[0\]\.tc\.comm: expected a string, got a number \(5\)/);
    at('{"magic": "CORE", "entries": [{"mtype": "X86_65"}]}', '"X86_65"', /"X86_65" is not a value of March \(UNKNOWN, X86_64/);
    at('{"magic": "CORE", "entries": [{"mtype": "X86_64", "bogus": 1}]}', '1}', /CoreEntry has no field "bogus" \(it has: mtype, thread_info, tc, ids, thread_core/);
    at('{"magic": "CORE", "entries": [{}]}', '{}', /lacks required field mtype/);
    at('{"magic": "PSTREE", "entries": [{"pid": 4294967296, "ppid": 0, "pgid": 0, "sid": 0}]}', '4294967296', /4294967296 is out of range for uint32/);
    at('{"magic": "PSTREE", "entries": [{"pid": "0x1g", "ppid": 0, "pgid": 0, "sid": 0}]}', '"0x1g"', /not a number: "0x1g"/);
    at('{"magic": "PSTREE", "entries": [{"pid": 1.5, "ppid": 0, "pgid": 0, "sid": 0}]}', '1.5', /expected an integer/);
    at('{"magic": "PSTREE", "entries": [{"pid": 1, "ppid": 0, "pgid": 0, "sid": 0, "threads": 3}]}', '3}', /threads: expected a list/);
    at('{"magic": "PSTREE", "entries": [{"pid": 1, "ppid": 0, "pgid": 0, "sid": 0, "extra": ""}]}', '""}', /PSTREE entries carry no "extra"/);
    at('{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 3, "extra": "YWJj\\n"}, {"pipe_id": 1, "bytes": 3, "extra": "!!"}]}', '"!!"', /entries\[1\]\.extra: not base64/);
    at('{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 4, "extra": "YWJj\\n"}]}', '{"pipe_id"', /announces 4 payload bytes, got 3/);
    at('{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 4}]}', '{"pipe_id"', /expected base64 text, got nothing/);
    at('{"magic": "TCP_STREAM", "entries": [{"inq_len": 0, "inq_seq": 0, "outq_len": 0, "outq_seq": 0, "opt_mask": 0, "snd_wscale": 0, "mss_clamp": 0, "extra": {"inq": ""}}]}', '{"inq"', /extra\.outq: expected base64 text/);
    at('{"magic": "UNIXSK", "entries": [{"name": "\\u00e9"}]}', '"\\u00e9"', /name: not quoted-printable/);
    at('{"magic": "SIT", "entries": []}', '"SIT"', /unknown image kind "SIT"/);
    at('{"magic": "NETDEV", "entries": [{"type": "LOOPBACK", "ifindex": 1, "mtu": 1, "flags": 1, "name": "lo", "sit": {"local": ["1.2.3"]}}]}', '"1.2.3"', /not an IP address: "1\.2\.3"/);
  });

  it('the first of two kinds that share a magic is written (PAGEMAP, SIGNAL, BINFMT_MISC), with its prefix', () => {
    const r = enc('{"magic": "STATS", "entries": [{}]}');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual([...r.out.subarray(0, 8)], [0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57]);
    const inv = enc('{"magic": "INVENTORY", "entries": []}');
    assert.deepEqual([...inv.out], [0x16, 0x31, 0x31, 0x58]);
  });
});
