// Restore of deleted files on its own: ghost-file images (whole and chunked) and
// the link-open-unlink of remapped files, with what must be left afterwards.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  create, FdTypes, FileEntrySchema, GhostChunkEntrySchema, GhostFileEntrySchema, ImageDir, RegFileEntrySchema,
  RemapFilePathEntrySchema, RemapType, TimevalSchema, REMAP_GHOST, type FileEntry,
} from '../../src/images/index.js';
import { Remaps, remapOf } from '../../src/objects/files/remap.js';
import { readGhostImage } from '../../src/objects/files/ghost.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-remap-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const regEntry = (id: number, name: string): FileEntry =>
  create(FileEntrySchema, { type: FdTypes.REG, id, reg: create(RegFileEntrySchema, { id, flags: 0, pos: 0n, name }) });

/** No test here opens a dead process's /proc files. */
const noStandIn = (pid: number): number => {
  throw new Error(`no stand-in for pid ${pid} in unit tests`);
};

describe('ghost-file images', () => {
  it('reads a chunked ghost file (as CRIU writes big ones), holes as zeros, with its times', () => {
    const dir = ImageDir.open(fs.mkdtempSync(path.join(tmp, 'img-')), { write: true });
    dir.write('ghostFile', [
      { msg: create(GhostFileEntrySchema, { uid: 1, gid: 2, mode: 0o100640, chunks: true, size: 20000n, mtim: create(TimevalSchema, { tvSec: 1000n, tvUsec: 500000n }) }) },
      { msg: create(GhostChunkEntrySchema, { len: 5n, off: 0n }), extra: Buffer.from('hello') },
      { msg: create(GhostChunkEntrySchema, { len: 3n, off: 19997n }), extra: Buffer.from('end') },
    ], 7);
    const g = readGhostImage(dir, 7);
    assert.equal(g.size, 20000);
    assert.deepEqual(g.runs.map((r) => [r.off, Buffer.from(r.data).toString()]), [[0, 'hello'], [19997, 'end']]);
    assert.deepEqual([g.uid, g.gid, g.mode, g.mtime, g.atime], [1, 2, 0o100640, 1000.5, 1000.5]);
    dir.close();
  });

  it('makes a chunked ghost again with its holes', () => {
    const dir = ImageDir.open(fs.mkdtempSync(path.join(tmp, 'img-')), { write: true });
    dir.write('ghostFile', [
      { msg: create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o100600, chunks: true, size: 3n << 20n }) },
      { msg: create(GhostChunkEntrySchema, { len: 4096n, off: 1n << 20n }), extra: Buffer.alloc(4096, 7) },
    ], 3);
    const d = fs.mkdtempSync(path.join(tmp, 'files-'));
    const name = path.join(d, 'sparse');
    const files = new Map<number, FileEntry>([[1, regEntry(1, name)]]);
    const remaps = new Remaps([create(RemapFilePathEntrySchema, { origId: 1, remapId: 3, remapType: RemapType.GHOST })], new Map([[3, readGhostImage(dir, 3)]]), files, noStandIn);
    const fd = remaps.open(1, name, fs.constants.O_RDONLY);
    const st = fs.fstatSync(fd);
    assert.equal(st.size, 3 << 20);
    assert.ok(st.blocks * 512 < 1 << 20, `${st.blocks} blocks: the holes were filled`);
    const b = Buffer.alloc(4096);
    fs.readSync(fd, b, 0, 4096, 1 << 20);
    assert.ok(b.every((x) => x === 7));
    fs.closeSync(fd);
    remaps.cleanup(true);
    dir.close();
  });

  it('refuses a chunk outside the file and a ghost that is no regular file', () => {
    const dir = ImageDir.open(fs.mkdtempSync(path.join(tmp, 'img-')), { write: true });
    dir.write('ghostFile', [
      { msg: create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o100600, chunks: true, size: 4n }) },
      { msg: create(GhostChunkEntrySchema, { len: 5n, off: 0n }), extra: Buffer.from('hello') },
    ], 1);
    assert.throws(() => readGhostImage(dir, 1), /ghost-file-1.img: a chunk lies outside the file/);
    dir.write('ghostFile', [{ msg: create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o40755 }), extra: Buffer.from('x') }], 2);
    assert.throws(() => readGhostImage(dir, 2), /a directory with contents/);
    dir.write('ghostFile', [{ msg: create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o20600 }) }], 3);
    assert.throws(() => readGhostImage(dir, 3), /a character device without its rdev/);
    dir.close();
  });
});

describe('Remaps', () => {
  it('opens ghosts and links under the original name, beside a file that took it, and leaves nothing behind', () => {
    const d = fs.mkdtempSync(path.join(tmp, 'files-'));
    // A linked remap: link_remap.9 is the dumped file, its old name is free.
    fs.writeFileSync(path.join(d, 'link_remap.9'), 'linked');
    // A file replaced under its name: ghost contents, and the name taken.
    fs.writeFileSync(path.join(d, 'taken.dat'), 'the new one');
    const files = new Map<number, FileEntry>([
      [1, regEntry(1, path.join(d, 'gone/ghost.dat'))], [2, regEntry(2, path.join(d, 'taken.dat'))],
      [3, regEntry(3, path.join(d, 'linked.dat'))], [9, regEntry(9, path.join(d, 'link_remap.9'))],
    ]);
    const ghosts = new Map([[20, { size: 14, runs: [{ off: 0, data: Buffer.from('ghost contents') }], mode: 0o100604, uid: 0, gid: 0 }]]);
    const remaps = new Remaps([
      create(RemapFilePathEntrySchema, { origId: 1, remapId: 20, remapType: RemapType.GHOST }),
      create(RemapFilePathEntrySchema, { origId: 2, remapId: 20, remapType: RemapType.GHOST }),
      create(RemapFilePathEntrySchema, { origId: 3, remapId: 9, remapType: RemapType.LINKED }),
    ], ghosts, files, noStandIn);
    assert.ok(remaps.has(1) && remaps.has(3) && !remaps.has(9));

    const fds = [1, 2, 3].map((id) => remaps.open(id, files.get(id)!.reg!.name, fs.constants.O_RDONLY));
    // Opened again under its name: the same dentry as the first (a watch of it lives while any fd does).
    const again = remaps.open(1, files.get(1)!.reg!.name, fs.constants.O_RDONLY);
    assert.equal(fs.readlinkSync(`/proc/self/fd/${again}`), fs.readlinkSync(`/proc/self/fd/${fds[0]}`));
    fs.closeSync(again);
    assert.equal(fs.readFileSync(fds[0]!, 'utf8'), 'ghost contents');
    // One ghost file for both entries, with its mode.
    const [a, b] = [fs.fstatSync(fds[0]!), fs.fstatSync(fds[1]!)];
    assert.equal(a.ino, b.ino);
    assert.equal(a.mode, 0o100604);
    assert.equal(fs.readFileSync(fds[2]!, 'utf8'), 'linked');
    assert.equal(fs.readFileSync(path.join(d, 'taken.dat'), 'utf8'), 'the new one');

    remaps.cleanup(true);
    // The ghost's own dentry took the name before it was unlinked.
    const links = fds.map((fd) => fs.readlinkSync(`/proc/self/fd/${fd}`));
    assert.deepEqual(links.map((l) => path.relative(d, l)), ['gone/ghost.dat (deleted)', 'taken.dat.cr_link (deleted)', 'linked.dat (deleted)']);
    assert.equal(fs.fstatSync(fds[0]!).nlink, 0);
    assert.equal(fs.fstatSync(fds[2]!).nlink, 0);
    assert.deepEqual(fs.readdirSync(d), ['taken.dat']);
    for (const fd of fds) fs.closeSync(fd);
  });

  it('keeps link remaps after a failed restore (the images still need them)', () => {
    const d = fs.mkdtempSync(path.join(tmp, 'files-'));
    fs.writeFileSync(path.join(d, 'link_remap.4'), 'x');
    const files = new Map<number, FileEntry>([[2, regEntry(2, path.join(d, 'a'))], [4, regEntry(4, path.join(d, 'link_remap.4'))]]);
    const remaps = new Remaps([create(RemapFilePathEntrySchema, { origId: 2, remapId: 4, remapType: RemapType.LINKED })], new Map(), files, noStandIn);
    fs.closeSync(remaps.open(2, path.join(d, 'a'), fs.constants.O_RDONLY));
    remaps.cleanup(false);
    assert.deepEqual(fs.readdirSync(d), ['link_remap.4']);
  });

  it('refuses remaps it cannot follow', () => {
    const files = new Map<number, FileEntry>([[1, regEntry(1, '/x')]]);
    assert.throws(() => new Remaps([create(RemapFilePathEntrySchema, { origId: 1, remapId: 5, remapType: RemapType.GHOST })], new Map(), files, noStandIn), /ghost file 5, which is missing/);
    assert.throws(() => new Remaps([create(RemapFilePathEntrySchema, { origId: 1, remapId: 5, remapType: RemapType.LINKED })], new Map(), files, noStandIn), /file id 5, which is missing/);
    assert.throws(() => new Remaps([create(RemapFilePathEntrySchema, { origId: 1, remapId: 5, remapType: RemapType.PROCFS })], new Map(), files, noStandIn), /remapped to dead process 5, but it is no file of that process's \/proc directory/);
  });
});

describe('remap entries of older images', () => {
  it('reads a ghost from the REMAP_GHOST bit and anything else as linked when remap_type is absent', () => {
    const old = remapOf(create(RemapFilePathEntrySchema, { origId: 3, remapId: (REMAP_GHOST | 5) >>> 0 }));
    assert.deepEqual([old.origId, old.remapId, old.remapType], [3, 5, RemapType.GHOST]);
    const linked = remapOf(create(RemapFilePathEntrySchema, { origId: 3, remapId: 6 }));
    assert.deepEqual([linked.remapId, linked.remapType], [6, RemapType.LINKED]);
    const typed = create(RemapFilePathEntrySchema, { origId: 1, remapId: 2, remapType: RemapType.GHOST });
    assert.equal(remapOf(typed), typed);
  });
});
