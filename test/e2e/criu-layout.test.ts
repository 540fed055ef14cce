// Images as CRIU 4.2 writes them, where its layout is not the obvious one:
// cryo writes that layout and reads CRIU's (checked against an upstream build
// by `npm run exchange`; these tests hold the facts without one).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { ImageDir, SeccompMode, create, isFieldSet, SeccompFilterSchema, type SeccompFilter } from '../../src/images/index.js';
import { NCCS, NR, O, TERMIOS_SIZE, TIOC, syscall } from '../../src/sys/index.js';
import { Session, critDecodeAll, exists, imageChecksums, imagePids } from './harness.js';

const TASK_DEAD = 2;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const SYS = { getppid: 110, getuid: 102, getsid: 124 };
const ERR = { EPERM: 1, ENOENT: 2, ESRCH: 3 };

test('a zombie whose thread CRIU lists as any number at all (seize.c leaves it unset) is restored', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-zombie-thread');
  const target = await s.start('zombies');
  const images = s.mkdir();
  await s.dump(target, images);
  const dir = ImageDir.open(images, { write: true });
  let zombies: number[];
  try {
    const pstree = dir.read('pstree');
    zombies = pstree.filter((p) => dir.readOne('core', p.pid).tc?.taskState === TASK_DEAD).map((p) => p.pid);
    assert.equal(zombies.length, 4, s.report());
    // What CRIU's uninitialized memory held in two of its dumps, 0, and another task's pid.
    const junk = [2644126320, 702499376, 0, target.pid];
    pstree.forEach((p) => {
      const i = zombies.indexOf(p.pid);
      if (i >= 0) p.threads = [junk[i]!];
    });
    dir.write('pstree', pstree);
  } finally {
    dir.close();
  }
  assert.deepEqual(imagePids(images).filter((p) => zombies.includes(p)).sort(), [...zombies].sort(), 'a core for each zombie, none for its thread');
  await s.expectPass(await s.restore(images, target));
});

/** The syscall number and errno a test program's filter (load nr; jeq NR; ret ERRNO|E; ret ALLOW) stands for. */
function filterOf(f: SeccompFilter): { nr: number; errno: number; flags: number } {
  const b = Buffer.from(f.filter);
  assert.equal(b.length, 4 * 8, 'four instructions');
  return { nr: b.readUInt32LE(8 + 4), errno: b.readUInt32LE(16 + 4) & 0xffff, flags: f.flags ?? 0 };
}

/** A thread's chain as CRIU's restore installs it: from its seccomp_filter, following `prev`. */
function chainOf(filters: SeccompFilter[], first: number): Array<{ nr: number; errno: number; flags: number }> {
  const out = [];
  for (let i: number | undefined = first; i !== undefined; ) {
    const f: SeccompFilter = filters[i]!;
    out.push(filterOf(f));
    assert.ok(out.length <= filters.length, 'the chain loops');
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return out;
}

test('seccomp.img in CRIU\'s layout: a thread names its oldest filter, prev the next one installed; a chain all threads share is the leader\'s, marked TSYNC', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-seccomp');
  await s.cycle('seccomptsync', {
    afterDump: (images, target) => {
      assert.deepEqual(critDecodeAll(images), [], s.report());
      const dir = ImageDir.open(images, {});
      try {
        const filters = dir.readOne('seccomp').seccompFilters;
        const tree = dir.read('pstree');
        const root = tree.find((p) => p.pid === target.pid)!;
        const child = tree.find((p) => p.pid !== target.pid)!;
        const core = (tid: number) => dir.readOne('core', tid).threadCore!;
        // The root's three threads have one chain: only the root has it (CRIU's try_use_tsync).
        const rootCore = core(root.pid);
        assert.equal(rootCore.seccompMode, SeccompMode.filter);
        const tsync = SECCOMP_FILTER_FLAG_TSYNC;
        assert.deepEqual(chainOf(filters, rootCore.seccompFilter), [
          { nr: SYS.getuid, errno: ERR.ENOENT, flags: tsync },
          { nr: SYS.getuid, errno: ERR.ESRCH, flags: tsync },
          { nr: SYS.getppid, errno: ERR.EPERM, flags: tsync },
        ]);
        for (const tid of root.threads.filter((x) => x !== root.pid)) assert.equal(core(tid).seccompMode ?? 0, 0, `thread ${tid} of the root has a mode`);
        // The child's threads differ (one added a filter): each has its own chain, oldest first.
        const chains = child.threads.map((tid) => chainOf(filters, core(tid).seccompFilter).map((f) => [f.nr, f.errno, f.flags]));
        const common = [[SYS.getuid, ERR.ENOENT, 0], [SYS.getuid, ERR.ESRCH, 0], [SYS.getppid, ERR.EPERM, 0]];
        assert.deepEqual(chains.filter((c) => c.length === 3), [common, common], JSON.stringify(chains));
        assert.deepEqual(chains.filter((c) => c.length === 4), [[...common, [SYS.getsid, ERR.ENOENT, 0]]], JSON.stringify(chains));
      } finally {
        dir.close();
      }
    },
  });
});

test('seccomp.img as CRIU writes it for a thread of its own: each thread\'s chain entries apart (no shared entries) still share the common filters on restore', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-seccomp-apart');
  await s.cycle('seccomptsync', {
    afterDump: (images) => {
      // Give every thread entries of its own, as CRIU's dump_seccomp_filters does.
      const dir = ImageDir.open(images, { write: true });
      try {
        const entry = dir.readOne('seccomp');
        const filters = entry.seccompFilters;
        const out: SeccompFilter[] = [];
        for (const p of dir.read('pstree')) {
          for (const tid of p.threads) {
            const cores = dir.read('core', tid);
            const th = cores[0]!.threadCore!;
            if (th.seccompMode !== SeccompMode.filter) continue;
            const chain: SeccompFilter[] = [];
            for (let i: number | undefined = th.seccompFilter; i !== undefined; ) {
              chain.push(filters[i]!);
              i = isFieldSet(filters[i]!, SeccompFilterSchema.field.prev) ? filters[i]!.prev : undefined;
            }
            const base = out.length;
            // Newest first; each older one names the next (CRIU's order of writing).
            chain.reverse().forEach((f, k) => {
              out.push(create(SeccompFilterSchema, { filter: new Uint8Array(f.filter), flags: f.flags ?? 0, ...(k > 0 ? { prev: base + k - 1 } : {}) }));
            });
            th.seccompFilter = out.length - 1;
            dir.write('core', cores, tid);
          }
        }
        entry.seccompFilters = out;
        dir.write('seccomp', [entry]);
        assert.ok(out.length > filters.length, 'entries were copied apart');
      } finally {
        dir.close();
      }
    },
  });
});

/** A pty of the test's own: master (unlocked) and an open slave. */
function openPty(): { master: number; slave: number; name: string } {
  const master = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.CLOEXEC);
  const v = Buffer.alloc(4);
  syscall('ioctl(TIOCSPTLCK)', NR.ioctl, master, TIOC.SPTLCK, v);
  syscall('ioctl(TIOCGPTN)', NR.ioctl, master, TIOC.GPTN, v);
  const name = `/dev/pts/${v.readInt32LE(0)}`;
  return { master, slave: fs.openSync(name, O.RDWR | O.NOCTTY | O.CLOEXEC), name };
}

function tcgets(fd: number): Buffer {
  const t = Buffer.alloc(TERMIOS_SIZE);
  syscall('ioctl(TCGETS)', NR.ioctl, fd, TIOC.TCGETS, t);
  return t;
}

test('termios c_cc as CRIU keeps it: the bytes packed into the words (tty.c memcpy()s them), the words past the eighth whatever its memory held', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-termios');
  const a = openPty();
  const b = openPty();
  t.after(() => [a.master, b.master, b.slave].filter((fd) => fd >= 0).forEach((fd) => fs.closeSync(fd)));
  let target;
  try {
    target = await s.start('exttty', { fds: [a.slave] });
  } finally {
    fs.closeSync(a.slave);
  }
  // Control characters of its own beyond the first word (VSTART, VSTOP, VSUSP, VEOL2...).
  const before = tcgets(a.master);
  const C_CC = 17;
  for (let i = 8; i < NCCS; i++) before[C_CC + i] = 0x40 + i;
  syscall('ioctl(TCSETS)', NR.ioctl, a.master, TIOC.TCSETS, before);
  const st = fs.statSync(a.name);
  const key = `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
  const images = s.mkdir();
  await s.dump(target, images, { extra: ['--external', key] });
  const dir = ImageDir.open(images, { write: true });
  try {
    const infos = dir.read('ttyInfo');
    const tio = infos[0]!.termios!;
    // Packed: byte i of c_cc in bits 8*(i%4) of word i/4.
    for (let i = 0; i < NCCS; i++) assert.equal((tio.cCc[i >> 2]! >>> (8 * (i & 3))) & 0xff, before[C_CC + i], `c_cc[${i}] in ${JSON.stringify(tio.cCc)}`);
    // CRIU's words 8..18: heap garbage (from one of its dumps).
    const junk = [2028609568, 21874, 49, 0, 3432979648, 32540, 2028610960, 21874, 2028609600, 21874, 2028609600];
    for (const e of infos) for (const x of [e.termios, e.termiosLocked]) if (x) x.cCc.splice(8, 11, ...junk);
    dir.write('ttyInfo', infos);
  } finally {
    dir.close();
  }
  const r = await s.restore(images, target, { extra: ['--inherit-fd', `fd[3]:${key}`], fds: [b.slave] });
  fs.closeSync(b.slave);
  b.slave = -1;
  await s.expectPass(r);
  assert.deepEqual([...tcgets(b.master)], [...before], 'the new terminal has the dumped termios');
});

test('personality as CRIU writes it (atoi() of /proc\'s hex: ADDR_NO_RANDOMIZE 0x40000 as 40000) is read as the hex it was; one that is none is refused', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-personality');
  const target = await s.start('sched');
  const images = s.mkdir();
  await s.dump(target, images);
  const file = `core-${target.pid}.img`;
  const edit = (personality: number) => {
    const dir = ImageDir.open(images, { write: true });
    try {
      const cores = dir.read('core', target.pid);
      const was = cores[0]!.tc!.personality;
      cores[0]!.tc!.personality = personality;
      dir.write('core', cores, target.pid);
      return was;
    } finally {
      dir.close();
    }
  };
  const ADDR_NO_RANDOMIZE = 0x40000;
  assert.equal(edit(Number.parseInt(ADDR_NO_RANDOMIZE.toString(16), 10)), ADDR_NO_RANDOMIZE, 'cryo writes the personality itself');
  edit(0x12345678);
  const refused = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'refused.log']);
  assert.equal(refused.code, 1, s.report());
  assert.match(refused.stderr, new RegExp(`^Error: bad image: ${file}: personality 0x12345678 is none the kernel knows`), s.report());
  edit(40000);
  await s.expectPass(await s.restore(images, target));
});

test('files.img lists a socket connected to one that is not connected back after that one, as CRIU\'s restore needs (it looks peers up among the entries before)', { timeout: 60_000 }, async (t) => {
  for (const name of ['unixghost', 'unix2', 'unix']) {
    const s = Session.for(t, `criu-peers-${name}`);
    const target = await s.start(name);
    const images = s.mkdir();
    await s.dump(target, images);
    const dir = ImageDir.open(images, {});
    try {
      const socks = dir.read('files').flatMap((f) => (f.usk ? [f.usk] : []));
      const at = new Map(socks.map((u, i) => [u.ino, i]));
      const late = socks.filter((u, i) => {
        const p = u.peer ? at.get(u.peer) : undefined;
        return p !== undefined && p > i && socks[p]!.peer !== u.ino;
      });
      assert.deepEqual(late.map((u) => `${u.ino} before its peer ${u.peer}`), [], name);
    } finally {
      dir.close();
    }
    await s.expectPass(await s.restore(images, target));
  }
});

test('two sockets bound to one path, neither marked deleted (CRIU\'s image when the file of one was renamed away): refused, nothing made', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-twonames');
  const target = await s.start('unixghost');
  const images = s.mkdir();
  await s.dump(target, images);
  const dir = ImageDir.open(images, { write: true });
  let moved: number;
  try {
    const files = dir.read('files');
    // M: its file renamed to moved.sock, O bound to m.sock since (CRIU does not see that M's file moved).
    const m = files.find((f) => f.usk?.deleted && Buffer.from(f.usk.name).toString().replace(/\0+$/, '').endsWith('/ghost/m.sock'))!;
    assert.ok(m, 'a deleted socket named m.sock');
    m.usk!.deleted = false;
    moved = m.usk!.ino;
    dir.write('files', files);
  } finally {
    dir.close();
  }
  const before = imageChecksums(images);
  const r = await s.cryo(['restore', '-D', images, '-d', '-v4', '-o', 'restore.log']);
  assert.equal(r.code, 1, s.report());
  assert.match(r.stderr, new RegExp(`^Error: bad image: files\\.img: file id 0x[0-9a-f]+: unix socket \\d+ \\(\\S+/ghost/m\\.sock\\) and unix socket \\d+ \\(\\S+/ghost/m\\.sock\\) are both bound to that name and neither is marked deleted`), s.report());
  assert.ok(r.stderr.includes(`unix socket ${moved} `), s.report());
  assert.equal(exists(target.pid), false, 'nothing was made');
  assert.deepEqual(imageChecksums(images), before, 'the images are unchanged');
});

test('two watches of one file under one fd number (CRIU writes the first fd holding the file for each) go under fds of their own', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'criu-epoll');
  const target = await s.start('epolldup');
  const images = s.mkdir();
  await s.dump(target, images);
  const dir = ImageDir.open(images, { write: true });
  try {
    const files = dir.read('files');
    // Pipe E, watched through two fds since closed: cryo writes each under an fd of its own.
    const twice = files.flatMap((f) => (f.epfd ? [f.epfd] : [])).flatMap((e) => {
      const byInode = new Map<bigint, typeof e.tfd>();
      for (const w of e.tfd) byInode.set(w.inode, [...(byInode.get(w.inode) ?? []), w]);
      return [...byInode.values()].filter((ws) => ws.length === 2);
    });
    assert.equal(twice.length, 1, 'one file watched twice by one epoll');
    const [a, b] = twice[0]!;
    assert.notEqual(a!.tfd, b!.tfd);
    b!.tfd = a!.tfd = Math.min(a!.tfd, b!.tfd);
    dir.write('files', files);
  } finally {
    dir.close();
  }
  await s.expectPass(await s.restore(images, target));
});
