// Our images against CRIU's own decoder: write one image of each priority kind with
// realistic values, decode it with Debian's crit, and check every field; then have
// crit encode its JSON back and check the bytes are ours (same field order, same
// encodings). Fields added to CRIU after 3.17 (the crit installed here) are left
// out of these images: that crit would drop them. images-schema.test.ts covers them.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import {
  create,
  CoreEntry_March,
  CoreEntrySchema,
  CredsEntrySchema,
  DumpStatsEntrySchema,
  EventfdFileEntrySchema,
  FdinfoEntrySchema,
  FdTypes,
  FileEntrySchema,
  FownEntrySchema,
  FsEntrySchema,
  ImageDir,
  InventoryEntrySchema,
  ItimerEntrySchema,
  KINDS,
  Lsmtype,
  MmEntrySchema,
  PagemapEntrySchema,
  PagemapHeadSchema,
  PE_PRESENT,
  PipeEntrySchema,
  PosixTimerEntrySchema,
  PstreeEntrySchema,
  RegFileEntrySchema,
  RlimitEntrySchema,
  RseqEntrySchema,
  SaEntrySchema,
  SeccompMode,
  SiginfoEntrySchema,
  SignalQueueEntrySchema,
  StatsEntrySchema,
  TaskCoreEntrySchema,
  TaskKobjIdsEntrySchema,
  TaskRlimitsEntrySchema,
  TaskTimersEntrySchema,
  ThreadCoreEntrySchema,
  ThreadInfoX86Schema,
  ThreadSasEntrySchema,
  UserDescTSchema,
  UserX86FpregsEntrySchema,
  UserX86RegsEntrySchema,
  UserX86RegsMode,
  UserX86XsaveEntrySchema,
  VmaEntrySchema,
  type ImageArg,
  type PbKindKey,
} from '../../src/images/index.js';
import { asCrit, critDecode, critRecode, haveCrit, normalise, tmpDir } from './images-helpers.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const ids = () =>
  create(TaskKobjIdsEntrySchema, {
    vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 5, netNsId: 6, ipcNsId: 7, utsNsId: 8, mntNsId: 9,
    userNsId: 10, cgroupNsId: 11, timeNsId: 12,
  });

function threadInfo(ip: bigint) {
  const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i) >>> 0);
  return create(ThreadInfoX86Schema, {
    clearTidAddr: 0x7f3c_5a1f_e9d0n,
    gpregs: create(UserX86RegsEntrySchema, {
      r15: 0n, r14: 0x7ffd_1234_5678n, r13: 1n, r12: 0x55d0_0000_1040n, bp: 0x7ffd_1234_5600n, bx: 0n,
      r11: 0x246n, r10: 0n, r9: 0n, r8: 0n, ax: 0xffff_ffff_ffff_fdfcn, cx: 0x7f3c_5a0e_37fan, dx: 0n,
      si: 0x7ffd_1234_5590n, di: 0n, origAx: 230n, ip, cs: 0x33n, flags: 0x246n, sp: 0x7ffd_1234_5588n,
      ss: 0x2bn, fsBase: 0x7f3c_5a1f_e740n, gsBase: 0n, ds: 0n, es: 0n, fs: 0n, gs: 0n,
      mode: UserX86RegsMode.NATIVE,
    }),
    fpregs: create(UserX86FpregsEntrySchema, {
      cwd: 0x37f, swd: 0, twd: 0, fop: 0, rip: 0n, rdp: 0n, mxcsr: 0x1f80, mxcsrMask: 0x2ffff,
      stSpace: seq(32, (i) => i * 0x01010101),
      xmmSpace: seq(64, (i) => 0xdead0000 + i),
      xsave: create(UserX86XsaveEntrySchema, {
        xstateBv: 0x2e7n,
        ymmhSpace: seq(64, (i) => 0xffffffff - i),
        opmaskReg: Array.from({ length: 8 }, (_, i) => BigInt(i) << 40n),
        zmmUpper: Array.from({ length: 32 }, (_, i) => U64_MAX - BigInt(i)),
        hi16Zmm: Array.from({ length: 128 }, (_, i) => BigInt(i)),
        pkru: [0x55555554, 0],
      }),
    }),
    tls: [0, 1, 2].map((i) =>
      create(UserDescTSchema, {
        entryNumber: 12 + i, baseAddr: 0, limit: 0, seg32bit: false, contentsH: false, contentsL: false,
        readExecOnly: true, limitInPages: false, segNotPresent: true, usable: false,
      }),
    ),
  });
}

function creds() {
  return create(CredsEntrySchema, {
    uid: 1000, gid: 1000, euid: 1000, egid: 1000, suid: 1000, sgid: 1000, fsuid: 1000, fsgid: 1000,
    capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: [0xffffffff, 0x1ff], secbits: 0,
    groups: [4, 24, 27, 1000], lsmProfile: 'unconfined',
  });
}

function threadCore(comm: string) {
  return create(ThreadCoreEntrySchema, {
    futexRla: 0x7f3c_5a1f_ea20n, futexRlaLen: 24, schedNice: -5, schedPolicy: 0, schedPrio: 0,
    blkSigset: 0x10000n, sas: create(ThreadSasEntrySchema, { ssSp: 0n, ssSize: 0n, ssFlags: 2 }),
    pdeathSig: 0, signalsP: create(SignalQueueEntrySchema, {}), creds: creds(),
    seccompMode: SeccompMode.disabled, comm,
    rseqEntry: create(RseqEntrySchema, { rseqAbiPointer: 0x7f3c_5a1f_efe0n, rseqAbiSize: 32, signature: 0x53053053 }),
  });
}

/** One image per priority kind, as a dump of a two-thread "sleep" would write them. */
function images(): Array<{ kind: PbKindKey; arg?: ImageArg; entries: Message[] }> {
  const siginfo = new Uint8Array(128);
  siginfo.set([10, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
  const fown = () => create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
  return [
    {
      kind: 'inventory',
      entries: [
        create(InventoryEntrySchema, {
          imgVersion: 2, fdinfoPerId: true, rootIds: ids(), nsPerId: true, rootCgSet: 1,
          lsmtype: Lsmtype.APPARMOR, dumpUptime: 123_456_789_012n, preDumpMode: 1, tcpClose: false,
          networkLockMethod: 1,
        }),
      ],
    },
    {
      kind: 'pstree',
      entries: [
        create(PstreeEntrySchema, { pid: 4242, ppid: 0, pgid: 4242, sid: 100, threads: [4242, 4243] }),
        create(PstreeEntrySchema, { pid: 4250, ppid: 4242, pgid: 4242, sid: 100, threads: [4250] }),
      ],
    },
    {
      kind: 'core',
      arg: 4242,
      entries: [
        create(CoreEntrySchema, {
          mtype: CoreEntry_March.X86_64,
          threadInfo: threadInfo(0x7f3c_5a0e_37fan),
          tc: create(TaskCoreEntrySchema, {
            taskState: 1, exitCode: 0, personality: 0, flags: 0x400100, blkSigset: 0n, comm: 'sleep',
            timers: create(TaskTimersEntrySchema, {
              real: create(ItimerEntrySchema, { isec: 0n, iusec: 0n, vsec: 5n, vusec: 250_000n }),
              virt: create(ItimerEntrySchema, { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n }),
              prof: create(ItimerEntrySchema, { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n }),
              posix: [
                create(PosixTimerEntrySchema, {
                  itId: 0, clockId: 1, siSigno: 14, itSigevNotify: 0, sivalPtr: 0x55d0_0000_2000n, overrun: 0,
                  isec: 1n, insec: 0n, vsec: 0n, vnsec: 999_999_999n, notifyThreadId: 4243,
                }),
              ],
            }),
            rlimits: create(TaskRlimitsEntrySchema, {
              rlimits: Array.from({ length: 16 }, (_, i) =>
                create(RlimitEntrySchema, { cur: i === 7 ? 1024n : U64_MAX, max: i === 7 ? 1_048_576n : U64_MAX }),
              ),
            }),
            cgSet: 1,
            signalsS: create(SignalQueueEntrySchema, { signals: [create(SiginfoEntrySchema, { siginfo })] }),
            loginuid: 0xffffffff, oomScoreAdj: -100,
            sigactions: [
              create(SaEntrySchema, { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n, compatSigaction: false }),
              create(SaEntrySchema, {
                sigaction: 0x55d0_0000_1200n, flags: 0x0400_0004n, restorer: 0x7f3c_5a04_2520n, mask: 0x2000n,
                compatSigaction: false, maskExtended: 0n,
              }),
            ],
            childSubreaper: false, blkSigsetExtended: 0n,
          }),
          ids: ids(),
          threadCore: threadCore('sleep'),
        }),
      ],
    },
    {
      kind: 'core',
      arg: 4243,
      entries: [
        create(CoreEntrySchema, {
          mtype: CoreEntry_March.X86_64, threadInfo: threadInfo(0x7f3c_5a0f_0000n), threadCore: threadCore('worker'),
        }),
      ],
    },
    {
      kind: 'mm',
      arg: 1,
      entries: [
        create(MmEntrySchema, {
          mmStartCode: 0x55d0_0000_0000n, mmEndCode: 0x55d0_0000_4000n, mmStartData: 0x55d0_0000_7000n,
          mmEndData: 0x55d0_0000_8000n, mmStartStack: 0x7ffd_1234_6000n, mmStartBrk: 0x55d0_0100_0000n,
          mmBrk: 0x55d0_0102_1000n, mmArgStart: 0x7ffd_1234_6f00n, mmArgEnd: 0x7ffd_1234_6f10n,
          mmEnvStart: 0x7ffd_1234_6f10n, mmEnvEnd: 0x7ffd_1234_7fe0n, exeFileId: 5,
          mmSavedAuxv: [33n, 0x7ffd_1239_9000n, 16n, 0x178bfbffn, 6n, 4096n, 0n, 0n],
          vmas: [
            create(VmaEntrySchema, {
              start: 0x55d0_0000_0000n, end: 0x55d0_0000_4000n, pgoff: 0n, shmid: 5n, prot: 5, flags: 2,
              status: 0x41, fd: -1n, madv: 0n, fdflags: 0o100000,
            }),
            create(VmaEntrySchema, {
              start: 0x55d0_0100_0000n, end: 0x55d0_0102_1000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22,
              status: 0x221, fd: -1n,
            }),
            create(VmaEntrySchema, {
              start: 0x7ffd_1237_9000n, end: 0x7ffd_1239_9000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x122,
              status: 0x203, fd: -1n, madv: 0x10000n,
            }),
            create(VmaEntrySchema, {
              start: 0xffff_ffff_ff60_0000n, end: 0xffff_ffff_ff60_1000n, pgoff: 0n, shmid: 0n, prot: 4, flags: 0x22,
              status: 0x5, fd: -1n,
            }),
          ],
          dumpable: 1, thpDisabled: false,
        }),
      ],
    },
    {
      kind: 'pagemap',
      arg: 4242,
      entries: [
        create(PagemapHeadSchema, { pagesId: 1 }),
        create(PagemapEntrySchema, { vaddr: 0x55d0_0000_7000n, compatNrPages: 1, flags: PE_PRESENT }),
        create(PagemapEntrySchema, { vaddr: 0x55d0_0100_0000n, compatNrPages: 33, flags: PE_PRESENT }),
        create(PagemapEntrySchema, { vaddr: 0x7ffd_1239_8000n, compatNrPages: 1, inParent: false, flags: PE_PRESENT }),
      ],
    },
    { kind: 'fs', arg: 4242, entries: [create(FsEntrySchema, { cwdId: 3, rootId: 4, umask: 0o22 })] },
    {
      kind: 'files',
      entries: [
        create(FileEntrySchema, {
          type: FdTypes.REG, id: 3,
          reg: create(RegFileEntrySchema, {
            id: 3, flags: 0o2, pos: 0n, fown: fown(), name: '/home/user', mntId: 27, size: 4096n, mode: 0o40755,
          }),
        }),
        create(FileEntrySchema, {
          type: FdTypes.REG, id: 5,
          reg: create(RegFileEntrySchema, {
            id: 5, flags: 0o100000, pos: 0n, fown: fown(), name: '/usr/bin/sleep', mntId: 27, size: 35_336n,
            mode: 0o100755, buildId: [0x3a5b1c2d, 0x11111111, 0x22222222, 0x33333333, 0x44444444],
          }),
        }),
        create(FileEntrySchema, {
          type: FdTypes.PIPE, id: 6, pipe: create(PipeEntrySchema, { id: 6, pipeId: 123_456, flags: 0o4001, fown: fown() }),
        }),
        create(FileEntrySchema, {
          type: FdTypes.EVENTFD, id: 7,
          efd: create(EventfdFileEntrySchema, { id: 7, flags: 0o2004002, fown: fown(), counter: 3n }),
        }),
      ],
    },
    {
      kind: 'fdinfo',
      arg: 2,
      entries: [
        create(FdinfoEntrySchema, { id: 6, flags: 0, type: FdTypes.PIPE, fd: 0 }),
        create(FdinfoEntrySchema, { id: 7, flags: 1, type: FdTypes.EVENTFD, fd: 1 }),
        create(FdinfoEntrySchema, { id: 3, flags: 1, type: FdTypes.REG, fd: 255 }),
      ],
    },
    {
      kind: 'stats',
      arg: 'dump',
      entries: [
        create(StatsEntrySchema, {
          dump: create(DumpStatsEntrySchema, {
            freezingTime: 120, frozenTime: 4500, memdumpTime: 800, memwriteTime: 300, pagesScanned: 70_000n,
            pagesSkippedParent: 0n, pagesWritten: 36n, irmapResolve: 0, pagesLazy: 0n, pagePipes: 1n,
            pagePipeBufs: 2n, shpagesScanned: 0n, shpagesSkippedParent: 0n, shpagesWritten: 0n,
          }),
        }),
      ],
    },
  ];
}

describe('images decoded by CRIU crit', { skip: !haveCrit && 'crit is not installed' }, () => {
  let dir: string;
  let img: ImageDir;
  const written: Array<{ kind: PbKindKey; file: string; entries: Message[] }> = [];

  before(() => {
    dir = tmpDir('crit');
    img = ImageDir.open(dir, { write: true });
    for (const { kind, arg, entries } of images()) {
      img.write(kind, entries as never, arg);
      written.push({ kind, file: path.join(dir, img.fileName(kind, arg)), entries });
    }
  });

  after(() => {
    img.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes every priority kind', () => {
    const kinds = new Set(written.map((w) => w.kind));
    for (const k of ['inventory', 'pstree', 'core', 'mm', 'pagemap', 'fs', 'files', 'fdinfo', 'stats'] as const) {
      assert.ok(kinds.has(k), k);
    }
  });

  for (const { kind, arg } of images()) {
    const label = `${kind}${arg === undefined ? '' : ` ${String(arg)}`}`;

    it(`${label}: crit decodes every field as written`, () => {
      const w = written.find((x) => x.kind === kind && x.file.endsWith(img.fileName(kind, arg)))!;
      const got = critDecode(w.file);
      assert.equal(got.magic, KINDS[kind].crit);
      const k = KINDS[kind];
      const want = w.entries.map((m, i) => {
        const desc: DescMessage = i === 0 && 'head' in k && k.head ? k.head : k.schema;
        const j = asCrit(desc, m) as Record<string, unknown>;
        // Debian's crit (CRIU 3.17) still calls pagemap_entry field 2 "nr_pages".
        if (kind === 'pagemap' && i > 0 && 'compat_nr_pages' in j) {
          j.nr_pages = j.compat_nr_pages;
          delete j.compat_nr_pages;
        }
        return j;
      });
      assert.deepEqual(normalise(got.entries), want);
    });

    it(`${label}: crit encode of crit's JSON gives our bytes`, () => {
      const w = written.find((x) => x.kind === kind && x.file.endsWith(img.fileName(kind, arg)))!;
      const ours = fs.readFileSync(w.file);
      const theirs = critRecode(w.file, dir);
      assert.equal(theirs.toString('hex'), ours.toString('hex'));
    });
  }
});
