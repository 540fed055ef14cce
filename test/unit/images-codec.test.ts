// The image layer on its own: file names, framing, payloads, round trips, and the
// errors a corrupt or hostile image must produce.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  create,
  decodeImage,
  encodeImage,
  fileName,
  FsEntrySchema,
  GhostChunkEntrySchema,
  GhostFileEntrySchema,
  identify,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  ImageDir,
  ImageError,
  IpcDescEntrySchema,
  IpcMsgEntrySchema,
  IpcMsgSchema,
  IpcSemEntrySchema,
  KINDS,
  PagemapEntrySchema,
  PagemapHeadSchema,
  PipeDataEntrySchema,
  PstreeEntrySchema,
  SkPacketEntrySchema,
  TcpStreamEntrySchema,
  toBinary,
  VmaEntrySchema,
  type KindKey,
} from '../../src/images/index.js';
import { tmpDir } from './images-helpers.js';

const le32 = (...v: number[]) => {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, 4 * i));
  return b;
};

function throwsImage(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(ImageError.is(e), `not an ImageError: ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

describe('file names', () => {
  it('formats each conversion', () => {
    assert.equal(fileName('core', 42), 'core-42.img');
    assert.equal(fileName('pagemap', 7n), 'pagemap-7.img');
    assert.equal(fileName('pages', 1), 'pages-1.img');
    assert.equal(fileName('ghostFile', 255), 'ghost-file-ff.img');
    assert.equal(fileName('tcpStream', 0x1a2bn), 'tcp-stream-1a2b.img');
    assert.equal(fileName('stats', 'dump'), 'stats-dump');
    assert.equal(fileName('irmapCache'), 'irmap-cache');
    assert.equal(fileName('inventory'), 'inventory.img');
    assert.equal(fileName('tmpfsDev', 3), 'tmpfs-dev-3.tar.gz.img');
  });

  it('refuses missing, superfluous and bad arguments', () => {
    assert.throws(() => fileName('core'), TypeError);
    assert.throws(() => fileName('pstree', 1), TypeError);
    assert.throws(() => fileName('core', -1), TypeError);
    assert.throws(() => fileName('core', 1.5), TypeError);
    assert.throws(() => fileName('core', 'x'), TypeError);
    assert.throws(() => fileName('stats', '../x'), TypeError);
  });

  it('has a unique file pattern per kind, and magics only on protobuf kinds', () => {
    const seen = new Set<string>();
    for (const key of Object.keys(KINDS) as KindKey[]) {
      const k = KINDS[key];
      assert.ok(!seen.has(k.file), k.file);
      seen.add(k.file);
      if (!k.raw) assert.ok(k.magic > 0 && k.magic <= 0xffffffff, key);
    }
  });
});

describe('framing', () => {
  const pst = (pid: number) => create(PstreeEntrySchema, { pid, ppid: 1, pgid: pid, sid: 1, threads: [pid] });

  it('writes common magic, kind magic, then length-prefixed messages', () => {
    const m = pst(10);
    const body = toBinary(PstreeEntrySchema, m);
    const bytes = Buffer.from(encodeImage('pstree', [m]));
    assert.deepEqual(bytes, Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.pstree.magic, body.length), body]));
  });

  it('writes inventory with its own magic only and stats with the service magic', () => {
    assert.deepEqual(Buffer.from(encodeImage('inventory', [])), le32(KINDS.inventory.magic));
    assert.deepEqual(Buffer.from(encodeImage('stats', [])), le32(IMG_SERVICE_MAGIC, KINDS.stats.magic));
  });

  it('identifies images by magic as crit does', () => {
    assert.deepEqual(identify(encodeImage('pstree', [])), ['pstree']);
    assert.deepEqual(identify(encodeImage('inventory', [])), ['inventory']);
    assert.deepEqual(identify(encodeImage('stats', [])), ['stats']);
    assert.deepEqual(identify(encodeImage('pagemap', [create(PagemapHeadSchema, { pagesId: 1 })])), ['pagemap', 'shmemPagemap']);
    assert.deepEqual(identify(le32(IMG_COMMON_MAGIC, 0x12345678)), []);
    assert.deepEqual(identify(le32(0)), []);
  });

  it('round-trips entries, including empty messages and u64 extremes', () => {
    const vma = create(VmaEntrySchema, {
      start: 0xffff_ffff_ff60_0000n, end: 0xffff_ffff_ffff_f000n, pgoff: 0n, shmid: 0n, prot: 0, flags: 0, status: 0, fd: -1n,
    });
    const out = decodeImage('vmas', encodeImage('vmas', [vma, vma]));
    assert.equal(out.length, 2);
    assert.equal(out[1]!.msg.end, 0xffff_ffff_ffff_f000n);
    assert.equal(out[1]!.msg.fd, -1n);
  });

  it('reports a wrong magic with its offset', () => {
    const good = Buffer.from(encodeImage('pstree', [pst(1)]));
    const bad = Buffer.from(good);
    bad.writeUInt32LE(KINDS.core.magic, 4);
    throwsImage(() => decodeImage('pstree', bad, 'pstree.img'), 'IMG_BAD_MAGIC', /^pstree\.img: magic at offset 4 is 0x55053847, expected 0x50273030$/);
    throwsImage(() => decodeImage('pstree', good.subarray(0, 6), 'pstree.img'), 'IMG_BAD_MAGIC', /offset 4: file ends/);
    throwsImage(() => decodeImage('pstree', Buffer.alloc(0), 'pstree.img'), 'IMG_BAD_MAGIC', /offset 0/);
  });

  it('bounds entry lengths', () => {
    const huge = Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.core.magic), le32(0xffffffff)]);
    throwsImage(
      () => decodeImage('core', huge, 'core-42.img'),
      'IMG_TOO_BIG',
      /^core-42\.img: entry at offset 8: length 4294967295 exceeds limit 67108864$/,
    );
    const mid = Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.core.magic), le32(100), Buffer.alloc(100)]);
    throwsImage(() => decodeImage('core', mid, 'core-1.img', { maxEntrySize: 64 }), 'IMG_TOO_BIG', /length 100 exceeds limit 64/);
  });

  it('reports truncated entries and trailing garbage', () => {
    const good = Buffer.from(encodeImage('pstree', [pst(1), pst(2)]));
    throwsImage(() => decodeImage('pstree', good.subarray(0, good.length - 1), 'p'), 'IMG_TRUNCATED', /entry at offset \d+: length \d+ but only \d+ bytes left/);
    throwsImage(() => decodeImage('pstree', Buffer.concat([good, Buffer.from([1, 2])]), 'p'), 'IMG_TRUNCATED', new RegExp(`offset ${good.length}: 2 trailing bytes`));
  });

  it('reports undecodable messages and missing required fields', () => {
    const junk = Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.pstree.magic, 3), Buffer.from([0x0a, 0xff, 0xff])]);
    throwsImage(() => decodeImage('pstree', junk, 'pstree.img'), 'IMG_DECODE', /entry at offset 8: bad criu\.PstreeEntry/);
    // fs_entry with only field 1 (cwd_id): root_id is required.
    const partial = Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.fs.magic, 2), Buffer.from([0x08, 0x03])]);
    throwsImage(() => decodeImage('fs', partial, 'fs-1.img'), 'IMG_REQUIRED', /lacks required field root_id/);
  });

  it('keeps fields it does not know (a newer CRIU) through a rewrite', () => {
    const known = toBinary(FsEntrySchema, create(FsEntrySchema, { cwdId: 1, rootId: 2 }));
    const extra = Buffer.from([0xf8, 0x06, 0x07]); // field 111, varint 7
    const body = Buffer.concat([known, extra]);
    const img = Buffer.concat([le32(IMG_COMMON_MAGIC, KINDS.fs.magic, body.length), body]);
    const [e] = decodeImage('fs', img);
    assert.deepEqual(Buffer.from(encodeImage('fs', [e!.msg])), img);
  });

  it('refuses entries of the wrong message type and unset required fields on write', () => {
    throwsImage(() => encodeImage('pstree', [create(FsEntrySchema, { cwdId: 1, rootId: 2 }) as never], 'pstree.img'), 'IMG_ENCODE', /is criu\.FsEntry, expected criu\.PstreeEntry/);
    throwsImage(() => encodeImage('fs', [create(FsEntrySchema, { cwdId: 1 })], 'fs-1.img'), 'IMG_ENCODE', /required field not set/);
    throwsImage(() => encodeImage('pagemap', [create(PagemapEntrySchema, { vaddr: 0n, compatNrPages: 0 }) as never], 'pm'), 'IMG_ENCODE', /expected criu\.PagemapHead/);
  });
});

describe('payloads', () => {
  it('pipes-data: bytes of data follow each entry', () => {
    const data = Buffer.from('hello, pipe');
    const e = create(PipeDataEntrySchema, { pipeId: 9, bytes: data.length, size: 65536 });
    const img = encodeImage('pipesData', [{ msg: e, extra: data }, { msg: create(PipeDataEntrySchema, { pipeId: 10, bytes: 0 }) }]);
    const out = decodeImage('pipesData', img);
    assert.deepEqual(Buffer.from(out[0]!.extra!), data);
    assert.equal(out[1]!.extra!.length, 0);
    const one = encodeImage('pipesData', [{ msg: e, extra: data }]);
    throwsImage(() => decodeImage('pipesData', one.subarray(0, one.length - 1), 'pipes-data.img'), 'IMG_TRUNCATED', /payload at offset \d+ of entry at offset 8: needs 11 bytes/);
    throwsImage(() => encodeImage('pipesData', [{ msg: e, extra: data.subarray(1) }]), 'IMG_ENCODE', /announces 11 payload bytes, got 10/);
    throwsImage(() => encodeImage('pstree', [{ msg: create(PstreeEntrySchema, { pid: 1, ppid: 0, pgid: 1, sid: 1 }), extra: data }]), 'IMG_ENCODE', /carry no payload/);
  });

  it('sk-queues and tcp-stream', () => {
    const q = create(SkPacketEntrySchema, { idFor: 4, length: 3 });
    assert.deepEqual(Buffer.from(decodeImage('skQueues', encodeImage('skQueues', [{ msg: q, extra: Buffer.from('abc') }]))[0]!.extra!), Buffer.from('abc'));
    const t = create(TcpStreamEntrySchema, { inqLen: 2, inqSeq: 1, outqLen: 3, outqSeq: 2, optMask: 0, sndWscale: 7, mssClamp: 1460 });
    const [te] = decodeImage('tcpStream', encodeImage('tcpStream', [{ msg: t, extra: Buffer.from('iiooo') }]));
    assert.equal(Buffer.from(te!.extra!).toString(), 'iiooo');
  });

  it('ghost-file: whole file after the head, or chunks', () => {
    const head = create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o100644, size: 5n });
    const whole = decodeImage('ghostFile', encodeImage('ghostFile', [{ msg: head, extra: Buffer.from('12345') }]));
    assert.equal(Buffer.from(whole[0]!.extra!).toString(), '12345');
    const chunked = create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o100644, size: 8192n, chunks: true });
    const c = create(GhostChunkEntrySchema, { len: 3n, off: 4096n });
    const out = decodeImage('ghostFile', encodeImage('ghostFile', [{ msg: chunked }, { msg: c, extra: Buffer.from('xyz') }]));
    assert.equal(out.length, 2);
    assert.equal(out[1]!.msg.$typeName, 'criu.GhostChunkEntry');
    assert.equal(Buffer.from(out[1]!.extra!).toString(), 'xyz');
  });

  it('ipcns-sem and ipcns-msg: padded and nested payloads', () => {
    const desc = create(IpcDescEntrySchema, { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 0 });
    const sem = create(IpcSemEntrySchema, { desc, nsems: 3 });
    assert.equal(decodeImage('ipcSem', encodeImage('ipcSem', [{ msg: sem, extra: new Uint8Array(8) }]))[0]!.extra!.length, 8);
    const m = toBinary(IpcMsgSchema, create(IpcMsgSchema, { mtype: 1n, msize: 5 }));
    const queue = Buffer.concat([le32(m.length), m, Buffer.from('hello\0\0\0')]);
    const q = create(IpcMsgEntrySchema, { desc, qbytes: 16384, qnum: 1 });
    const [qe] = decodeImage('ipcMsg', encodeImage('ipcMsg', [{ msg: q, extra: queue }]));
    assert.deepEqual(Buffer.from(qe!.extra!), queue);
    throwsImage(() => encodeImage('ipcMsg', [{ msg: q, extra: queue.subarray(0, 10) }]), 'IMG_ENCODE', /payload bytes/);
  });
});

describe('ImageDir', () => {
  let dir: string;
  let img: ImageDir;
  before(() => {
    dir = tmpDir('dir');
    img = ImageDir.open(dir, { write: true });
  });
  after(() => {
    img.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes, reads, and reports existence', () => {
    assert.equal(img.exists('fs', 1), false);
    img.write('fs', [create(FsEntrySchema, { cwdId: 1, rootId: 2, umask: 0o22 })], 1);
    assert.equal(img.exists('fs', 1), true);
    assert.equal(fs.statSync(path.join(dir, 'fs-1.img')).mode & 0o777, 0o644 & ~process.umask());
    assert.equal(img.readOne('fs', 1).umask, 0o22);
    assert.equal(img.tryRead('fs', 2), undefined);
    throwsImage(() => img.read('fs', 2), 'IMG_MISSING', /^fs-2\.img: no such image/);
    img.write('fs', [create(FsEntrySchema, { cwdId: 1, rootId: 2 }), create(FsEntrySchema, { cwdId: 1, rootId: 2 })], 3);
    throwsImage(() => img.readOne('fs', 3), 'IMG_COUNT', /exactly one entry, found 2/);
    img.remove('fs', 3);
    img.remove('fs', 3);
    assert.equal(img.exists('fs', 3), false);
  });

  it('reads and writes pagemap as head + entries', () => {
    img.write('pagemap', [
      create(PagemapHeadSchema, { pagesId: 7 }),
      create(PagemapEntrySchema, { vaddr: 0x7f00_0000_0000n, compatNrPages: 0, nrPages: 2n, flags: 4 }),
    ], 42);
    const [head, ...entries] = img.read('pagemap', 42);
    assert.equal(head.pagesId, 7);
    assert.equal(entries[0]!.nrPages, 2n);
  });

  it('streams a large image through a writer', () => {
    const w = img.openWriter('pagemap', 43);
    w.add(create(PagemapHeadSchema, { pagesId: 8 }));
    for (let i = 0; i < 100_000; i++) {
      w.add(create(PagemapEntrySchema, { vaddr: BigInt(i) * 0x2000n, compatNrPages: 0, nrPages: 1n, flags: 4 }));
    }
    w.close();
    w.close();
    assert.equal(w.count, 100_001);
    const all = img.read('pagemap', 43);
    assert.equal(all.length, 100_001);
    assert.equal(all[100_000]!.$typeName, 'criu.PagemapEntry');
    assert.throws(() => w.add(create(PagemapEntrySchema, { vaddr: 0n, compatNrPages: 0 })), /closed/);
  });

  it('streams payloads larger than its buffer', () => {
    const big = Buffer.alloc(3 << 20, 0x5a);
    const w = img.openWriter('pipesData');
    w.add(create(PipeDataEntrySchema, { pipeId: 1, bytes: big.length }), big);
    w.add(create(PipeDataEntrySchema, { pipeId: 2, bytes: 1 }), Buffer.from('z'));
    w.close();
    const out = img.readEntries('pipesData');
    assert.ok(Buffer.from(out[0]!.extra!).equals(big));
    assert.equal(Buffer.from(out[1]!.extra!).toString(), 'z');
  });

  it('opens raw pages images as plain fds', () => {
    const wfd = img.openPages(1, 'w');
    fs.writeSync(wfd, Buffer.alloc(4096, 1));
    fs.closeSync(wfd);
    const rfd = img.openPages(1, 'r');
    const buf = Buffer.alloc(4096);
    assert.equal(fs.readSync(rfd, buf, 0, 4096, 0), 4096);
    fs.closeSync(rfd);
    assert.equal(buf[4095], 1);
    assert.equal(fs.statSync(path.join(dir, 'pages-1.img')).size, 4096);
    throwsImage(() => img.openPages(99, 'r'), 'IMG_MISSING', /pages-99\.img/);
  });

  it('refuses writes through a read-only directory and works from a borrowed fd', () => {
    const ro = ImageDir.open(dir, { write: false });
    throwsImage(() => ro.write('fs', [create(FsEntrySchema, { cwdId: 1, rootId: 2 })], 9), 'IMG_IO', /read-only/);
    assert.equal(ro.readOne('fs', 1).rootId, 2);
    ro.close();
    const fd = fs.openSync(dir, 'r');
    const borrowed = ImageDir.fromFd(fd, { write: false });
    assert.equal(borrowed.readOne('fs', 1).cwdId, 1);
    borrowed.close();
    fs.fstatSync(fd); // still open
    fs.closeSync(fd);
  });

  it('names the file in errors from a corrupt image on disk', () => {
    fs.writeFileSync(path.join(dir, 'core-5.img'), le32(IMG_COMMON_MAGIC, KINDS.core.magic, 0xffffffff));
    throwsImage(() => img.read('core', 5), 'IMG_TOO_BIG', /^core-5\.img: entry at offset 8: length 4294967295 exceeds limit/);
  });
});
