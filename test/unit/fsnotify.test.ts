// inotify/fanotify fdinfo and mountinfo parsers on captured text; the irmap scan
// and its cache on a temp tree; file handles as CRIU writes them.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseFanotifyFdinfo, parseInotifyFdinfo } from '../../src/proc/fsnotify.js';
import { parseMountinfo } from '../../src/proc/mountinfo.js';
import { Irmap } from '../../src/objects/files/irmap.js';
import { fhEntry } from '../../src/objects/files/fsnotify.js';
import { major, minor } from '../../src/objects/files/kind.js';
import { create, IrmapCacheEntrySchema } from '../../src/images/index.js';
import { makeLogger, LOG_DEBUG } from '../../src/context.js';

// Captured on kernel 6.18 (the second watch on a filesystem whose handle the kernel cannot encode).
const INOTIFY = `pos:	0
flags:	04000
mnt_id:	17
ino:	12
inotify wd:a ino:216202 sdev:fe00000 mask:8000002 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0262210005cf4def
inotify wd:1 ino:1f sdev:16 mask:2 ignored_mask:0 
`;

const FANOTIFY = `pos:	0
flags:	04002
mnt_id:	17
ino:	12
fanotify flags:e12 event-flags:8000
fanotify mnt_id:1b mflags:0 mask:10 ignored_mask:0
fanotify ino:216291 sdev:fe00000 mflags:440 mask:300 ignored_mask:100 fhandle-bytes:8 fhandle-type:1 f_handle:91622100675077e9
fanotify sdev:fe00000 mflags:0 mask:8000100 ignored_mask:0
`;

test('parseInotifyFdinfo: wd in hex, inode, device, mask; the handle when there is one', () => {
  const w = parseInotifyFdinfo(INOTIFY);
  assert.equal(w.length, 2);
  assert.deepEqual({ ...w[0]!, fh: undefined }, { wd: 10, ino: 0x216202n, sdev: 0xfe00000, mask: 0x8000002, ignoredMask: 0, fh: undefined });
  assert.deepEqual(w[0]!.fh, { bytes: 8, type: 1, handle: Buffer.from('0262210005cf4def', 'hex') });
  assert.equal(w[1]!.wd, 1);
  assert.equal(w[1]!.fh, undefined);
});

test('parseFanotifyFdinfo: group flags, mount and inode marks; a filesystem mark is set apart', () => {
  const f = parseFanotifyFdinfo(FANOTIFY);
  assert.equal(f.flags, 0xe12);
  assert.equal(f.eventFlags, 0x8000);
  assert.deepEqual(f.marks[0], { kind: 'mount', mntId: 0x1b, mflags: 0, mask: 0x10, ignoredMask: 0 });
  const m = f.marks[1]!;
  assert.ok(m.kind === 'inode');
  assert.equal(m.ino, 0x216291n);
  assert.equal(m.sdev, 0xfe00000);
  assert.deepEqual([m.mflags, m.mask, m.ignoredMask], [0x440, 0x300, 0x100]);
  assert.equal(m.fh?.handle.toString('hex'), '91622100675077e9');
  assert.deepEqual(f.unsupported, ['fanotify sdev:fe00000 mflags:0 mask:8000100 ignored_mask:0']);
  assert.deepEqual(parseFanotifyFdinfo('pos:\t0\n').unsupported, ['(no "fanotify flags:" line)']);
});

test('parseMountinfo: ids, kernel device, root, escaped mount point, type and source', () => {
  const m = parseMountinfo(`27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
44 27 0:39 /sub /tmp/a\\040b rw,relatime shared:5 master:1 - overlay overlay rw,lowerdir=/l
`);
  assert.equal(m.length, 2);
  assert.deepEqual(m[0], { mntId: 27, parentId: 1, sdev: 0xfe00000, root: '/', mountpoint: '/', fstype: 'ext4', source: '/dev/vda', mntOpts: 'rw,relatime', optional: [], sbOpts: 'rw' });
  assert.deepEqual([m[1]!.optional, m[1]!.sbOpts], [['shared:5', 'master:1'], 'rw,lowerdir=/l']);
  assert.equal(m[1]!.sdev, 0x27);
  assert.equal(m[1]!.mountpoint, '/tmp/a b');
  assert.equal(m[1]!.root, '/sub');
  assert.equal(m[1]!.fstype, 'overlay');
});

test('fhEntry: 16 words, as CRIU writes them, whatever the handle size', () => {
  const fh = fhEntry({ bytes: 8, type: 1, handle: Buffer.from('0262210005cf4def', 'hex') });
  assert.equal(fh.handle.length, 16);
  assert.equal(fh.handle[0], 0xef4dcf0500216202n);
  assert.ok(fh.handle.slice(1).every((w) => w === 0n));
  assert.equal(fhEntry(undefined).bytes, 0);
});

function kdev(p: string): number {
  const d = fs.lstatSync(p).dev;
  return (major(d) << 20 | minor(d)) >>> 0;
}

test('Irmap: finds an inode under a scan path, keeps what it stat\'ed, rechecks cached paths', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-irmap-'));
  try {
    fs.mkdirSync(path.join(root, 'a/b/c'), { recursive: true });
    fs.writeFileSync(path.join(root, 'a/b/c/deep'), '');
    fs.writeFileSync(path.join(root, 'a/other'), '');
    fs.symlinkSync('..', path.join(root, 'a/b/up')); // never followed
    const lines: string[] = [];
    const log = makeLogger(LOG_DEBUG, (l) => lines.push(l));
    const deep = path.join(root, 'a/b/c/deep');
    const dev = kdev(deep);
    const ino = fs.lstatSync(deep, { bigint: true }).ino;
    const other = fs.lstatSync(path.join(root, 'a/other'), { bigint: true }).ino;
    // A stale entry for `deep` (another path) and a good one for `other`.
    const cache = [
      create(IrmapCacheEntrySchema, { dev, inode: ino, path: path.join(root, 'a/other') }),
      create(IrmapCacheEntrySchema, { dev, inode: other, path: path.join(root, 'a/other') }),
    ];
    const ir = new Irmap(log, [path.join(root, 'a')], cache);
    assert.equal(ir.lookup(dev, ino), deep);
    assert.ok(lines.some((l) => l.includes('is no longer')), lines.join('\n'));
    assert.ok(lines.some((l) => l === `irmap: scanned ${deep}`), lines.join('\n'));
    assert.equal(ir.lookup(dev, other), path.join(root, 'a/other'));
    // Now known: no second scan.
    lines.length = 0;
    assert.equal(ir.lookup(dev, ino), deep);
    assert.ok(!lines.some((l) => l.startsWith('irmap: scanning')), lines.join('\n'));
    assert.equal(ir.lookup(dev, 1n << 40n), undefined);
    ir.note(dev, ino, deep);
    assert.deepEqual(ir.cacheEntries().map((e) => [e.dev, e.inode, e.path]), [[dev, ino, deep]]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
