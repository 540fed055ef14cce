// crit x DIR ps|fds|mems|rss on a hand-made images directory (a tree of four
// tasks; files of several kinds; every kind of VMA; pagemaps that span VMAs),
// against CRIU's own crit. Debian's crit reads two things of old images (the
// fd table id from ids-PID.img, the page count from pagemap field 2): the
// directory has both, and a second one without ids-*.img shows that ours reads
// core's ids, as images of CRIU 3.x and later need.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import { ImageDir } from '../../src/images/imgdir.js';
import {
  CoreEntrySchema,
  FdinfoEntrySchema,
  FdTypes,
  FileEntrySchema,
  FsEntrySchema,
  MmEntrySchema,
  PagemapEntrySchema,
  PagemapHeadSchema,
  PstreeEntrySchema,
  TaskCoreEntrySchema,
  TaskKobjIdsEntrySchema,
  VmaEntrySchema,
  PipeEntrySchema,
  RegFileEntrySchema,
  UnixSkEntrySchema,
  EventfdFileEntrySchema,
} from '../../src/images/index.js';
import { runCrit, type CritIO } from '../../src/crit/cli.js';
import { CRIT, fill, haveCrit, PYTHON, Rng } from './crit-helpers.js';
import { tmpDir } from './images-helpers.js';

const rng = new Rng(7);
/** A random message with these fields (by property name) set. */
function msg<T extends Message>(desc: DescMessage, fields: Record<string, unknown>): T {
  const m = fill(desc, rng) as unknown as Record<string, unknown>;
  Object.assign(m, fields);
  return m as unknown as T;
}

const VMA = { regular: 1, stack: 2, vsyscall: 4, vdso: 8, heap: 32, filePrivate: 64, fileShared: 128, anonShared: 256, anonPrivate: 512, sysvipc: 1024, socket: 2048 };
const PAGE = 0x1000n;

function vma(start: bigint, pages: bigint, status: number, more: Record<string, unknown> = {}) {
  return msg(VmaEntrySchema, { start, end: start + pages * PAGE, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status, ...more });
}

function makeDir(dir: string, withIds: boolean): void {
  const d = ImageDir.open(dir, { write: true });
  const tasks = [
    { pid: 100, ppid: 0, comm: 'init', files: 1 },
    { pid: 101, ppid: 100, comm: 'worker', files: 1 },
    { pid: 102, ppid: 101, comm: 'grandchild', files: 2 },
    { pid: 103, ppid: 100, comm: 'second', files: 2 },
  ];
  d.write('pstree', tasks.map((t) => msg(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: 100, sid: t.pid === 103 ? 103 : 100, threads: [t.pid] })) as never);
  d.write('files', [
    msg(FileEntrySchema, { type: FdTypes.REG, id: 1, reg: msg(RegFileEntrySchema, { id: 1, name: '/usr/bin/thing' }) }),
    msg(FileEntrySchema, { type: FdTypes.PIPE, id: 2, pipe: msg(PipeEntrySchema, { id: 2, pipeId: 77 }) }),
    msg(FileEntrySchema, { type: FdTypes.UNIXSK, id: 3, usk: msg(UnixSkEntrySchema, { id: 3, ino: 9, peer: 10, name: Uint8Array.from([0, 0x61, 0x3d]) }) }),
    msg(FileEntrySchema, { type: FdTypes.UNIXSK, id: 4, usk: msg(UnixSkEntrySchema, { id: 4, ino: 11, peer: 0, name: new Uint8Array(0) }) }),
    msg(FileEntrySchema, { type: FdTypes.EVENTFD, id: 5, efd: msg(EventfdFileEntrySchema, { id: 5 }) }),
    msg(FileEntrySchema, { type: FdTypes.REG, id: 6, reg: msg(RegFileEntrySchema, { id: 6, name: '/' }) }),
    msg(FileEntrySchema, { type: FdTypes.REG, id: 7, reg: msg(RegFileEntrySchema, { id: 7, name: '/tmp/work dir' }) }),
    msg(FileEntrySchema, { type: FdTypes.REG, id: 8, reg: msg(RegFileEntrySchema, { id: 8, name: '/usr/lib/libc.so.6' }) }),
  ] as never);
  const fdinfo = (fds: Array<[number, FdTypes, number]>) => fds.map(([fd, type, id]) => msg(FdinfoEntrySchema, { fd, type, id }));
  d.write('fdinfo', fdinfo([[0, FdTypes.REG, 1], [1, FdTypes.PIPE, 2], [2, FdTypes.PIPE, 2], [3, FdTypes.UNIXSK, 3], [5, FdTypes.EVENTFD, 5], [7, FdTypes.UNIXSK, 4]]) as never, 1);
  d.write('fdinfo', fdinfo([[0, FdTypes.REG, 8], [9, FdTypes.UNIXSK, 3]]) as never, 2);
  for (const t of tasks) {
    const ids = msg(TaskKobjIdsEntrySchema, { filesId: t.files });
    d.write('core', [msg(CoreEntrySchema, { tc: msg(TaskCoreEntrySchema, { comm: t.comm }), ids })] as never, t.pid);
    if (withIds) d.write('ids', [ids] as never, t.pid);
    d.write('fs', [msg(FsEntrySchema, { cwdId: 7, rootId: 6 })] as never, t.pid);
    const base = BigInt(t.pid) << 24n;
    const vmas = [
      vma(base, 3n, VMA.regular | VMA.filePrivate, { shmid: 1n }),
      vma(base + 3n * PAGE, 2n, VMA.regular | VMA.filePrivate, { shmid: 1n, pgoff: 0x3000n, prot: 5 }),
      vma(base + 5n * PAGE, 1n, VMA.regular | VMA.fileShared, { shmid: 8n, pgoff: 0x1000n, prot: 1 }),
      vma(base + 8n * PAGE, 4n, VMA.regular | VMA.heap | VMA.anonPrivate),
      vma(base + 12n * PAGE, 1n, VMA.regular | VMA.anonShared, { shmid: 0x4242n }),
      vma(base + 13n * PAGE, 1n, VMA.regular | VMA.sysvipc, { shmid: 0x4343n }),
      vma(base + 14n * PAGE, 1n, VMA.regular | VMA.socket, { shmid: 0x4444n }),
      vma(base + 15n * PAGE, 1n, VMA.regular | VMA.anonShared, { shmid: 0x4242n, prot: 0 }),
      vma(base + 16n * PAGE, 2n, VMA.regular | VMA.anonPrivate, { flags: 0x122 }),
      vma(base + 20n * PAGE, 2n, VMA.regular | VMA.vdso, { prot: 5 }),
      vma(base + 22n * PAGE, 1n, VMA.vsyscall, { prot: 4 }),
      vma(base + 30n * PAGE, 8n, VMA.regular | VMA.stack | VMA.anonPrivate),
      vma(base + 40n * PAGE, 1n, VMA.anonPrivate),
    ];
    d.write('mm', [msg(MmEntrySchema, { exeFileId: 1, vmas })] as never, t.pid);
    // Runs inside a VMA, across several, on a boundary; without ids-*.img (the
    // directory Debian's crit does not read) also one after the last VMA, on
    // which Debian's crit (3.17) fails and CRIU 4.x's stops.
    const runs: Array<[bigint, bigint]> = [[base, 2n], [base + 2n * PAGE, 4n], [base + 8n * PAGE, 9n], [base + 20n * PAGE, 1n], [base + 31n * PAGE, 7n]];
    if (!withIds) runs.push([base + 40n * PAGE, 1n], [base + 41n * PAGE, 2n]);
    const entries = runs.map(([vaddr, n]) => {
      const e = msg(PagemapEntrySchema, { vaddr, compatNrPages: Number(n), flags: 4 }) as unknown as Record<string, unknown>;
      delete e['nrPages'];
      return e as unknown as Message;
    });
    d.write('pagemap', [msg(PagemapHeadSchema, { pagesId: t.pid }), ...entries] as never, t.pid);
  }
  d.close();
}

function ours(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const io: CritIO = {
    readFile: (p) => fs.readFileSync(p),
    readStdin: () => new Uint8Array(0),
    writeFile: (p, data) => fs.writeFileSync(p, data),
    stdout: (d) => (out += typeof d === 'string' ? d : Buffer.from(d).toString('latin1')),
    stderr: (t) => (err += t),
  };
  return { code: runCrit(argv, io), out, err };
}

describe('crit x', () => {
  let dir: string;
  let noIds: string;
  before(() => {
    dir = tmpDir('crit-x');
    makeDir(dir, true);
    noIds = tmpDir('crit-x-noids');
    makeDir(noIds, false);
  });
  after(() => {
    for (const d of [dir, noIds]) fs.rmSync(d, { recursive: true, force: true });
  });

  for (const what of ['ps', 'fds', 'mems', 'rss']) {
    it(`${what}: prints what CRIU's crit prints`, { skip: !haveCrit && 'crit is not installed' }, () => {
      const want = execFileSync(PYTHON, [CRIT, 'x', dir, what], { encoding: 'utf8' });
      const got = ours(['x', dir, what]);
      assert.equal(got.err, '');
      assert.equal(got.code, 0);
      assert.equal(got.out, want);
      assert.ok(want.split('\n').length > 5, want);
    });
  }

  it('fds: reads the fd table id from core when there is no ids-PID.img (where CRIU\'s crit fails)', () => {
    const got = ours(['x', noIds, 'fds']);
    assert.equal(got.code, 0, got.err);
    assert.equal(got.out, ours(['x', dir, 'fds']).out);
    assert.match(got.out, /^100\n\t {6}0: \/usr\/bin\/thing\n\t {6}1: pipe\[77\]\n/);
    assert.match(got.out, /\t {6}3: unix\[9 \(10\) =00a=3D\]\n/);
    assert.match(got.out, /\t {6}5: EVENTFD\.5\n\t {6}7: unix\[11 \(0\)\]\n\t {4}cwd: \/tmp\/work dir\n\t {3}root: \/\n/);
    if (haveCrit) {
      const r = spawnSync(PYTHON, [CRIT, 'x', noIds, 'fds'], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, 'CRIU\'s crit reads core ids now: the note in explore.ts is stale');
    }
  });

  it('rss: a run after the last VMA prints alone (as CRIU 4.x\'s crit)', () => {
    const got = ours(['x', noIds, 'rss']);
    assert.equal(got.code, 0, got.err);
    const tail = '\t64028000 / 1            64028000 / 1       \n\t                       \n\t64029000 / 2           \n101\n';
    assert.ok(got.out.includes(tail), got.out);
  });

  it('ps: prints the tree; a missing image is one line naming it', () => {
    const got = ours(['x', dir, 'ps']);
    assert.equal(
      got.out,
      '    PID   PGID    SID   COMM\n    100    100    100   init\n    101    100    100       worker\n' +
        '    102    100    100           grandchild\n    103    100    103       second\n',
    );
    const empty = tmpDir('crit-x-empty');
    after(() => fs.rmSync(empty, { recursive: true, force: true }));
    const r = ours(['x', empty, 'ps']);
    assert.equal(r.code, 1);
    assert.equal(r.err, `crit: ${empty}: no pstree.img\n`);
    const bad = ours(['x', empty, 'pss']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /invalid choice: 'pss'/);
  });
});
