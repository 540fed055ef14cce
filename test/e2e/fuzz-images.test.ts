// Damaged images: fdmix (a regular file, a pipe, a unix socketpair, an epoll, a
// memfd, memory) is dumped once, then every image kind is damaged in every way
// we can think of (missing, empty, truncated, wrong magic, bit flips in the
// framing, huge lengths, dangling ids, values out of bounds) and each variant
// restored. Each must be refused cleanly (exit 1, one line, no stack trace,
// nothing left behind, images unchanged) or come back whole (the task passes
// its own check); never a hang, a crash, a leftover process or a wrong restore.
// Fixed seed and count; CRYO_FUZZ_SEED / CRYO_FUZZ_ROUNDS try others, CRYO_FUZZ_ONLY
// (a regexp on "file variant") picks some, CRYO_FUZZ_VERBOSE=1 shows each outcome.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Message } from '@bufbuild/protobuf';
import {
  KINDS, DEFAULT_MAX_ENTRY_SIZE, FdTypes, RemapType, create, decodeImage, encodeEntry, encodeImage, headerBytes,
  FdinfoEntrySchema, RlimitEntrySchema, SaEntrySchema,
  type CoreEntry, type Entry, type FdinfoEntry, type FileEntry, type FsEntry, type InventoryEntry, type MemfdInodeEntry,
  type GhostFileEntry, type RemapFilePathEntry, type SeccompEntry,
  type MmEntry, type PagemapEntry, type PbKindKey, type PipeDataEntry, type PstreeEntry, type SkPacketEntry, type TaskKobjIdsEntry,
} from '../../src/images/index.js';
import { Rng } from '../unit/crit-helpers.js';
import { Session, exists, imagePids, ourChildren, readOr, reapUntilGone, runningFree, waitFor, type Target, signalPid } from './harness.js';

const SEED = Number(process.env.CRYO_FUZZ_SEED ?? 20251201);
const ROUNDS = Number(process.env.CRYO_FUZZ_ROUNDS ?? 1);
const PAGE = 4096;

/** The kind of an image file, from its name (pages-N.img: 'raw'). */
function kindOfName(name: string): PbKindKey | 'raw' | undefined {
  if (/^pages-\d+\.img$/.test(name)) return 'raw';
  for (const [key, k] of Object.entries(KINDS)) {
    if (k.raw) continue;
    const re = new RegExp('^' + k.file.replace(/[.]/g, '\\.').replace(/%(u|lu|d|ld)/, '\\d+').replace('%x', '[0-9a-f]+').replace('%s', '.+') + '$');
    if (re.test(name)) return key as PbKindKey;
  }
  return undefined;
}

/** Where each entry of an image starts and ends: [offset of its length, end of its payload]. */
function entryOffsets(key: PbKindKey, buf: Buffer): Array<[number, number]> {
  let off = headerBytes(key).length;
  return decodeImage(key, buf).map((e, i) => {
    const n = encodeEntry(key, e.msg, e.extra, i === 0).reduce((s, p) => s + p.length, 0);
    const r: [number, number] = [off, off + n];
    off += n;
    return r;
  });
}

/**
 * Kinds where an entry fewer is another valid image, which no check can tell from
 * a damaged one (CRIU's neither): a task with an fd less (fdinfo), a pipe or a
 * socket with nothing queued; these kinds may even be missing, as CRIU writes
 * them only when they have entries. A tree with its last task gone (pstree) is
 * one whose last child exited; the images of the task are then stale files of an
 * earlier dump into the same directory, as runc leaves them, which restore ignores,
 * as CRIU does. A file remap fewer (remap-fpath) is a file that was not deleted: it
 * is opened by its name, and the restore fails as it should when the name is gone.
 * stats-dump is not read by restore at all.
 */
const ENTRIES_MAY_GO = new Set<string>(['fdinfo', 'pipesData', 'fifoData', 'skQueues', 'fileLocks', 'stats', 'pstree', 'remapFpath']);
const MAY_BE_MISSING = new Set<string>(['pipesData', 'fifoData', 'skQueues', 'fileLocks', 'stats', 'remapFpath']);
/**
 * Kinds whose first entry's payload is the rest of the file (a ghost file's head
 * without chunks, as CRIU writes small ones): a head length that shrinks to a field
 * boundary leaves another valid image, with a few more bytes of contents.
 */
const HEAD_TAKES_REST = new Set<string>(['ghostFile']);

interface Variant {
  name: string;
  /** The image damaged (the refusal should name it). */
  file: string;
  apply(dir: string): void;
}

type Edit<M extends Message> = (entries: Entry<M>[]) => void;

/** Decode, change, encode again (for damage that still decodes). */
function edit<M extends Message>(file: string, name: string, fn: Edit<M>): Variant {
  const key = kindOfName(file) as PbKindKey;
  return {
    name, file,
    apply(dir) {
      const p = path.join(dir, file);
      const entries = decodeImage(key, fs.readFileSync(p)) as unknown as Entry<M>[];
      fn(entries);
      fs.writeFileSync(p, encodeImage(key, entries as never));
    },
  };
}

function bytesOp(file: string, name: string, fn: (b: Buffer) => Buffer): Variant {
  return { name, file, apply: (dir) => fs.writeFileSync(path.join(dir, file), fn(fs.readFileSync(path.join(dir, file)))) };
}

/** Every variant of the images in `good` whose name `pick` accepts (framing, sizes, missing files). */
function variants(good: string, pick: (file: string) => boolean, rng: Rng): Variant[] {
  const out: Variant[] = [];
  const names = fs.readdirSync(good).filter((n) => kindOfName(n) !== undefined && pick(n)).sort();
  const magics = fs.readdirSync(good).filter((n) => kindOfName(n) !== undefined).flatMap((n) => (kindOfName(n) === 'raw' || n === 'inventory.img' ? [] : [fs.readFileSync(path.join(good, n)).readUInt32LE(4)]));
  for (const file of names) {
    const key = kindOfName(file)!;
    const buf = fs.readFileSync(path.join(good, file));
    if (!MAY_BE_MISSING.has(key)) out.push({ name: 'missing', file, apply: (d) => fs.rmSync(path.join(d, file)) });
    out.push(bytesOp(file, 'empty', () => Buffer.alloc(0)));
    if (key === 'raw') {
      out.push(bytesOp(file, 'short by part of a page', (b) => b.subarray(0, b.length - 1 - rng.int(PAGE - 1))));
      out.push(bytesOp(file, 'short by a page', (b) => b.subarray(0, b.length - PAGE)));
      out.push(bytesOp(file, 'a page too long', (b) => Buffer.concat([b, Buffer.alloc(PAGE, 0x5a)])));
      out.push(bytesOp(file, 'one byte too long', (b) => Buffer.concat([b, Buffer.from([1])])));
      continue;
    }
    const header = headerBytes(key).length;
    const offs = entryOffsets(key, buf);
    const bounds = new Set([header, ...offs.map((o) => o[1])]);
    const mayGo = ENTRIES_MAY_GO.has(key);
    for (let round = 0; round < ROUNDS; round++) {
      // Truncated inside the header or an entry (at an entry boundary only where that is detectable).
      let cut: number;
      do cut = rng.int(buf.length); while (mayGo && bounds.has(cut));
      out.push(bytesOp(file, `truncated at ${cut} of ${buf.length}`, (b) => b.subarray(0, cut)));
      // A bit flipped in the framing: a magic or an entry's length.
      const lengths = HEAD_TAKES_REST.has(key) ? offs.slice(1) : offs;
      const spots = [...Array(header).keys(), ...lengths.flatMap(([at]) => [at, at + 1, at + 2, at + 3])];
      const bit = rng.pick(spots) * 8 + rng.int(8);
      out.push(bytesOp(file, `bit ${bit} flipped (framing)`, (b) => {
        const c = Buffer.from(b);
        c[bit >> 3]! ^= 1 << (bit & 7);
        return c;
      }));
      if (offs.length) {
        const [at] = rng.pick(offs);
        const len = rng.pick([0xffffffff, 0x7fffffff, DEFAULT_MAX_ENTRY_SIZE + 1, buf.length - at - 4 + 1]);
        out.push(bytesOp(file, `entry at ${at}: length ${len}`, (b) => {
          const c = Buffer.from(b);
          c.writeUInt32LE(len >>> 0, at);
          return c;
        }));
      }
    }
    if (key !== 'stats' && key !== 'inventory') {
      const other = rng.pick(magics.filter((m) => m !== buf.readUInt32LE(4)));
      out.push(bytesOp(file, `magic of another kind (0x${other.toString(16)})`, (b) => {
        const c = Buffer.from(b);
        c.writeUInt32LE(other, 4);
        return c;
      }));
    } else {
      out.push(bytesOp(file, 'magic zeroed', (b) => Buffer.concat([Buffer.alloc(4), b.subarray(4)])));
    }
    out.push(bytesOp(file, 'trailing garbage', (b) => Buffer.concat([b, Buffer.from([0x07, 0, 0, 0, 1, 2])])));
    if (!mayGo && offs.length) {
      out.push(bytesOp(file, 'no entries (magic only)', (b) => b.subarray(0, header)));
      out.push(bytesOp(file, 'last entry dropped', (b) => b.subarray(0, offs[offs.length - 1]![0])));
    }
  }
  return out;
}

const files = (e: Entry<FileEntry>[]) => e.map((x) => x.msg);
const ofType = (e: Entry<FileEntry>[], t: FdTypes) => files(e).find((f) => f.type === t)!;

/** fdmix's images damaged so that they still decode: ids that name nothing, values out of bounds. */
function fdmixDamage(good: string, pid: number): Variant[] {
  const shmemFile = fs.readdirSync(good).find((n) => n.startsWith('pagemap-shmem-'))!;
  const fdinfoFile = fs.readdirSync(good).find((n) => n.startsWith('fdinfo-'))!;
  const v: Variant[] = [];
  const one = <M extends Message>(file: string, name: string, fn: (m: M, all: Entry<M>[]) => void) =>
    v.push(edit<M>(file, name, (e) => fn(e[0]!.msg, e)));
  // fs
  one<FsEntry>(`fs-${pid}.img`, 'cwd_id names nothing', (m) => (m.cwdId = 0x63));
  one<FsEntry>(`fs-${pid}.img`, 'root_id names nothing', (m) => (m.rootId = 0x63));
  one<FsEntry>(`fs-${pid}.img`, 'cwd_id names a pipe', (m) => (m.cwdId = 4));
  one<FsEntry>(`fs-${pid}.img`, 'umask out of range', (m) => (m.umask = 0o7777));
  // ids, core, pstree, inventory
  one<TaskKobjIdsEntry>(`ids-${pid}.img`, 'files_id names nothing', (m) => (m.filesId = 0x63));
  one<TaskKobjIdsEntry>(`ids-${pid}.img`, 'vm_id differs from the core', (m) => (m.vmId += 1000));
  one<CoreEntry>(`core-${pid}.img`, 'no registers', (m) => (m.threadInfo = undefined));
  one<CoreEntry>(`core-${pid}.img`, 'another architecture', (m) => (m.mtype = 2));
  one<CoreEntry>(`core-${pid}.img`, '100 rlimits', (m) => m.tc!.rlimits!.rlimits.push(...Array.from({ length: 100 }, () => create(RlimitEntrySchema, { cur: 1n, max: 1n }))));
  one<CoreEntry>(`core-${pid}.img`, '100 signal actions', (m) => m.tc!.sigactions.push(...Array.from({ length: 100 }, () => create(SaEntrySchema, { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n }))));
  one<CoreEntry>(`core-${pid}.img`, 'a seccomp filter that does not exist', (m) => Object.assign(m.threadCore!, { seccompMode: 2, seccompFilter: 5 }));
  one<PstreeEntry>('pstree.img', 'a thread without a core', (m) => m.threads.push(0x63));
  one<PstreeEntry>('pstree.img', 'the task listed twice among its threads', (m) => m.threads.push(m.pid));
  one<PstreeEntry>('pstree.img', 'no threads', (m) => (m.threads = []));
  one<PstreeEntry>('pstree.img', 'pid 0', (m) => (m.pid = 0));
  one<PstreeEntry>('pstree.img', 'pid beyond PID_MAX_LIMIT', (m) => (m.pid = 5_000_000));
  one<InventoryEntry>('inventory.img', 'images version 1', (m) => (m.imgVersion = 1));
  one<InventoryEntry>('inventory.img', 'no fdinfo_per_id', (m) => (m.fdinfoPerId = false));
  // fdinfo
  const fdinfo = (name: string, fn: (e: FdinfoEntry[]) => void) => v.push(edit<FdinfoEntry>(fdinfoFile, name, (e) => fn(e.map((x) => x.msg))));
  fdinfo('an fd of a file id that names nothing', (e) => (e[3]!.id = 0x63));
  fdinfo('an fd whose type is not its file\'s', (e) => (e[3]!.type = FdTypes.PIPE));
  fdinfo('fd number 2^31-1', (e) => (e[3]!.fd = 0x7fffffff));
  fdinfo('one fd number twice', (e) => (e[4]!.fd = e[3]!.fd));
  fdinfo('unknown fd flags', (e) => (e[3]!.flags = 0x80));
  v.push(edit<FdinfoEntry>(fdinfoFile, 'an fd of an unsupported kind', (e) => {
    const files = e.map((x) => x.msg);
    files.push(create(FdinfoEntrySchema, { id: files[3]!.id, flags: 0, type: FdTypes.INETSK, fd: 200 }));
    e.push({ msg: files[files.length - 1]! });
  }));
  // files.img
  const fe = (name: string, fn: (e: Entry<FileEntry>[]) => void) => v.push(edit<FileEntry>('files.img', name, fn));
  fe('a unix peer that names nothing', (e) => (ofType(e, FdTypes.UNIXSK).usk!.peer = 0x63));
  fe('an epoll target that is no fd', (e) => (ofType(e, FdTypes.EVENTPOLL).epfd!.tfd[0]!.tfd = 99));
  fe('a memfd inode that names nothing', (e) => (ofType(e, FdTypes.MEMFD).memfd!.inodeId = 0x63));
  fe('a pipe entry without its pipe', (e) => (ofType(e, FdTypes.PIPE).pipe = undefined));
  fe('a regular file entry whose part has another id', (e) => (ofType(e, FdTypes.REG).reg!.id = 0x63));
  fe('a regular file without a name', (e) => (ofType(e, FdTypes.REG).reg!.name = ''));
  fe('two entries with one id', (e) => (e[e.length - 1]!.msg.id = e[0]!.msg.id));
  // mm
  const mm = (name: string, fn: (m: MmEntry) => void) => one<MmEntry>(`mm-${pid}.img`, name, fn);
  mm('exe_file_id names nothing', (m) => (m.exeFileId = 0x63));
  mm('a file VMA whose shmid names nothing', (m) => (m.vmas.find((x) => x.shmid && x.status & 0x40)!.shmid = 0x63n));
  mm('a memfd VMA whose shmid is a regular file', (m) => (m.vmas.find((x) => x.status & 0x4000)!.shmid = m.vmas.find((x) => x.status & 0x40 && x.shmid)!.shmid));
  mm('two VMAs out of order', (m) => ([m.vmas[0], m.vmas[1]] = [m.vmas[1]!, m.vmas[0]!]));
  mm('a VMA beyond the address space', (m) => (m.vmas[m.vmas.length - 2]!.end = 1n << 60n));
  mm('a VMA not page aligned', (m) => (m.vmas[0]!.end += 1n));
  mm('100 auxv words', (m) => m.mmSavedAuxv.push(...Array.from({ length: 100 }, () => 0n)));
  // pagemaps, memfd.img
  const pm = (file: string, name: string, fn: (head: { pagesId: number }, runs: PagemapEntry[]) => void) =>
    v.push(edit<Message>(file, name, (e) => {
      const runs = e.slice(1).map((x) => x.msg as unknown as PagemapEntry);
      fn(e[0]!.msg as unknown as { pagesId: number }, runs);
      e.splice(1, runs.length, ...runs.map((msg) => ({ msg: msg as unknown as Message })));
    }));
  pm(`pagemap-${pid}.img`, 'pages_id of a missing pages file', (h) => (h.pagesId = 0x63));
  pm(`pagemap-${pid}.img`, 'pages_id of the memfd\'s pages', (h) => (h.pagesId = 2));
  pm(`pagemap-${pid}.img`, 'nr_pages 2^40', (_h, r) => (r[1]!.nrPages = 1n << 40n));
  pm(`pagemap-${pid}.img`, 'a run not page aligned', (_h, r) => (r[1]!.vaddr += 8n));
  pm(`pagemap-${pid}.img`, 'a run outside every VMA', (_h, r) => (r[0]!.vaddr = 0x1000n));
  pm(`pagemap-${pid}.img`, 'lazy pages', (_h, r) => (r[0]!.flags = 2));
  pm(`pagemap-${pid}.img`, 'two runs swapped', (_h, r) => ([r[0], r[1]] = [r[1]!, r[0]!]));
  pm(shmemFile, 'nr_pages one too many', (_h, r) => (r[0]!.nrPages += 1n));
  pm(shmemFile, 'a run past the memfd\'s size', (_h, r) => (r[0]!.vaddr = 1n << 20n));
  one<MemfdInodeEntry>('memfd.img', 'inode_id names nothing', (m) => (m.inodeId = 0x63n));
  one<MemfdInodeEntry>('memfd.img', 'size 0 with contents', (m) => (m.size = 0n));
  // pipes-data, sk-queues
  one<PipeDataEntry>('pipes-data.img', 'data of a pipe that names nothing', (m) => (m.pipeId = 0x63));
  one<PipeDataEntry>('pipes-data.img', 'more data than the pipe holds', (m) => (m.size = 1024));
  one<SkPacketEntry>('sk-queues.img', 'a queue of a file id that names nothing', (m) => (m.idFor = 0x63));
  one<SkPacketEntry>('sk-queues.img', 'a queue of a pipe', (m) => (m.idFor = 4));
  one<SkPacketEntry>('sk-queues.img', 'a packet carrying a file id that names nothing', (m) => m.scm.push({ $typeName: 'criu.ScmEntry', type: 1, rights: [0x63] } as never));
  return v;
}

const named = (good: string, re: RegExp) => fs.readdirSync(good).filter((n) => re.test(n)).sort();

/** tree: the order and parents of pstree.img. */
function treeDamage(): Variant[] {
  const v: Variant[] = [];
  const tree = (name: string, fn: (e: PstreeEntry[]) => void) =>
    v.push(edit<PstreeEntry>('pstree.img', name, (e) => {
      const l = e.map((x) => x.msg);
      fn(l);
      e.splice(0, e.length, ...l.map((msg) => ({ msg })));
    }));
  tree('a child listed before its parent', (l) => l.splice(1, 0, l.pop()!));
  tree('a parent that is not in the tree', (l) => (l[l.length - 1]!.ppid = 0x63));
  tree('a child of the zombie', (l) => (l[l.length - 1]!.ppid = l[l.length - 2]!.pid));
  tree('a pid listed twice', (l) => (l[2]!.pid = l[1]!.pid));
  tree('a thread that is another task', (l) => l[1]!.threads.push(l[2]!.pid));
  return v;
}

/** ghost: remap-fpath.img and the ghost file. */
function ghostDamage(good: string): Variant[] {
  const ghost = named(good, /^ghost-file-/)[0]!;
  const v: Variant[] = [];
  const remap = (name: string, fn: (m: RemapFilePathEntry) => void) => v.push(edit<RemapFilePathEntry>('remap-fpath.img', name, (e) => fn(e[0]!.msg)));
  remap('orig_id names nothing', (m) => (m.origId = 0x63));
  remap('remap_id names no ghost file', (m) => (m.remapId = 0x63));
  remap('a link remap to nothing', (m) => Object.assign(m, { remapType: RemapType.LINKED, remapId: 0x63 }));
  remap('an unknown remap type', (m) => (m.remapType = 7 as RemapType));
  v.push(edit<GhostFileEntry>(ghost, 'a size the contents do not have', (e) => (e[0]!.msg.size += 1n)));
  v.push(edit<GhostFileEntry>(ghost, 'a directory', (e) => (e[0]!.msg.mode = 0o40755)));
  return v;
}

/** fdkinds: FIFOs, their data, a pidfd. */
function fdkindsDamage(): Variant[] {
  const v: Variant[] = [];
  const fe = (name: string, fn: (e: Entry<FileEntry>[]) => void) => v.push(edit<FileEntry>('files.img', name, fn));
  fe('a FIFO whose path names nothing', (e) => (ofType(e, FdTypes.FIFO).fifo!.regfId = 0x63));
  fe('a FIFO whose path is another FIFO', (e) => {
    const f = ofType(e, FdTypes.FIFO);
    f.fifo!.regfId = f.id;
  });
  fe('a pidfd of pid 0', (e) => (ofType(e, FdTypes.PIDFD).pidfd!.nspid = 0));
  fe('a signalfd without its part', (e) => (ofType(e, FdTypes.SIGNALFD).sgfd = undefined));
  v.push(edit<PipeDataEntry>('fifo-data.img', 'data of a FIFO that names nothing', (e) => (e[0]!.msg.pipeId = 0x63)));
  return v;
}

/** seccomp: the filters a thread names. */
function seccompDamage(good: string): Variant[] {
  const v: Variant[] = [];
  for (const core of named(good, /^core-/)) {
    v.push(edit<CoreEntry>(core, 'a seccomp filter that names nothing', (e) => (e[0]!.msg.threadCore!.seccompFilter = 0x63)));
  }
  v.push(edit<SeccompEntry>('seccomp.img', 'a filter chain that loops', (e) => {
    const f = e[0]!.msg.seccompFilters;
    for (const [i, x] of f.entries()) x.prev = i;
  }));
  v.push(edit<SeccompEntry>('seccomp.img', 'a filter chain that names nothing', (e) => (e[0]!.msg.seccompFilters[1]!.prev = 0x63)));
  return v;
}

function sums(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of fs.readdirSync(dir).sort()) {
    // The restore's own output (its log and stats-restore, which CRIU writes there too) is no image.
    if (n === 'restore.log' || n === 'stats-restore' || !fs.statSync(path.join(dir, n)).isFile()) continue;
    m.set(n, createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'));
  }
  return m;
}

const same = (a: Map<string, string>, b: Map<string, string>) => JSON.stringify([...a]) === JSON.stringify([...b]);

type Outcome = { outcome: 'refused'; line: string } | { outcome: 'passed' } | { bad: string };

/**
 * Dumps `program`, checks that its images restore and pass, then restores every
 * variant (the generic ones of the images `pick` accepts, and `damage`'s) and
 * reports the counts; fails if any variant misbehaved.
 */
async function fuzz(t: TestContext, program: string, pick: (file: string) => boolean, damage: (good: string, pid: number) => Variant[]): Promise<void> {
  const s = Session.for(t, `fuzz-${program}`);
  const target = await s.start(program);
  const good = s.mkdir('good');
  await s.dump(target, good);
  fs.rmSync(path.join(good, 'dump.log'));
  const pid = target.pid;
  const pids = imagePids(good);
  // The program's files (but its output), which no restore may change, add or remove.
  const ours = /^(good|variants|restore-\d+\.pid)$/;
  const out = path.basename(target.logPath);
  const progFiles = () => new Map([...sums(s.dir)].filter(([n]) => !ours.test(n) && n !== out));
  const work = path.join(s.dir, 'variants');
  fs.mkdirSync(work);

  const attempt = async (dir: string, damaged: string | undefined): Promise<Outcome> => {
    const before = ourChildren();
    const images = sums(dir);
    const files = progFiles();
    const pidfile = path.join(s.dir, 'restore-0.pid');
    fs.rmSync(pidfile, { force: true });
    const r = await s.cryo(['restore', '-D', dir, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile], { timeoutMs: 30_000 });
    const unchanged = () => {
      if (!same(sums(dir), images)) return 'the images changed';
      if (!same(progFiles(), files)) return `the files of the program's directory changed: ${[...progFiles().keys()].join(' ')}`;
      return undefined;
    };
    if (r.timedOut) return { bad: 'cryo hung (killed after 30 s)' };
    if (r.signal) return { bad: `cryo died of ${r.signal}` };
    if (r.code !== 0) {
      const lines = r.stderr.trimEnd().split('\n');
      if (lines.length !== 1 || !lines[0]!.startsWith('Error: ')) return { bad: `stderr is not one error line: ${JSON.stringify(r.stderr)}` };
      if (r.stderr.includes('    at ')) return { bad: `a stack trace: ${r.stderr}` };
      // Tasks killed by the cleanup of a failed restore may still be zombies (ours, as
      // subreaper, to reap); a task that is not dead is left behind.
      const alive: number[] = [];
      for (const p of pids.filter(exists)) {
        if (!(await reapUntilGone(p, 2_000).then(() => true, () => false))) alive.push(p);
      }
      if (alive.length) {
        for (const p of alive) {
          try {
            signalPid(p, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        for (const p of alive) await reapUntilGone(p, 5_000).catch(() => undefined);
        return { bad: `pids ${alive.join(' ')} are alive after the refusal: ${lines[0]}` };
      }
      const extra = ourChildren().filter((p) => !before.includes(p));
      if (extra.length) return { bad: `processes left behind (${extra.join(' ')}): ${lines[0]}` };
      const ch = unchanged();
      if (ch) return { bad: `${ch}: ${lines[0]}` };
      // It names the damaged image, or the missing image the damaged one points to.
      if (damaged && !lines[0]!.includes(damaged) && !/\.img: no such image in /.test(lines[0]!)) return { bad: `the refusal names no image: ${lines[0]}` };
      return { outcome: 'refused', line: lines[0]! };
    }
    const got = Number(readOr(pidfile, '').trim());
    if (got !== pid) return { bad: `exit 0 but the pid file says "${readOr(pidfile, '')}"` };
    const restored: Target = s.adopt(pid, target);
    const killAll = async () => {
      for (const p of pids) {
        try {
          signalPid(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (const p of pids) await reapUntilGone(p, 5_000).catch(() => undefined);
    };
    try {
      await waitFor(`restored pid ${pid} to run`, () => runningFree(pid), 5_000);
    } catch (e) {
      await killAll();
      return { bad: `restored, but ${(e as Error).message}` };
    }
    const from = restored.output().length;
    restored.signal('SIGUSR1');
    let status;
    try {
      status = await restored.wait(10_000);
      for (const p of pids) await reapUntilGone(p, 5_000);
    } catch (e) {
      await killAll();
      return { bad: `restored, then ${(e as Error).message}` };
    }
    const said = restored.output().slice(from);
    if (status?.exited !== 0 || !/^PASS$/m.test(said)) return { bad: `restored wrong: ${JSON.stringify(status)} ${JSON.stringify(said.trim())}` };
    const ch = unchanged();
    if (ch) return { bad: `restored, but ${ch}` };
    return { outcome: 'passed' };
  };

  // The good images restore and pass.
  assert.deepEqual(await attempt(good, undefined), { outcome: 'passed' }, s.report());

  const rng = new Rng(SEED);
  const only = process.env.CRYO_FUZZ_ONLY ? new RegExp(process.env.CRYO_FUZZ_ONLY) : undefined;
  const all = [...variants(good, pick, rng), ...damage(good, pid)].filter((v) => !only || only.test(`${v.file} ${v.name}`));
  const counts = { tried: 0, refused: 0, refusedNamingDamaged: 0, passed: 0, misbehaving: 0 };
  const problems: string[] = [];
  const notNaming: string[] = [];
  const t0 = Date.now();
  for (const [i, v] of all.entries()) {
    const dir = path.join(work, `v${i}`);
    fs.cpSync(good, dir, { recursive: true });
    v.apply(dir);
    const tv = Date.now();
    const r = await attempt(dir, v.file);
    if (process.env.CRYO_FUZZ_VERBOSE) t.diagnostic(`${Date.now() - tv} ms ${v.file} ${v.name}: ${JSON.stringify(r)}`);
    counts.tried++;
    if ('bad' in r) {
      counts.misbehaving++;
      problems.push(`${v.file} ${v.name}: ${r.bad}`);
    } else if (r.outcome === 'refused') {
      counts.refused++;
      if (r.line.includes(v.file)) counts.refusedNamingDamaged++;
      else notNaming.push(`${v.file} ${v.name}: ${r.line}`);
    } else {
      counts.passed++;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.diagnostic(`${program}, seed ${SEED}, ${ROUNDS} round(s), ${((Date.now() - t0) / 1000).toFixed(1)} s: ${counts.tried} variants tried, ${counts.refused} refused (${counts.refusedNamingDamaged} naming the damaged image, the others a missing one it points to), ${counts.passed} restored and passing, ${counts.misbehaving} misbehaving`);
  for (const n of notNaming) t.diagnostic(`refused naming a missing image: ${n}`);
  assert.equal(counts.misbehaving, 0, `misbehaving variants:\n${problems.join('\n')}`);
}

test('fdmix (regular file, pipe, unix socketpair, epoll, memfd, memory): every image damaged, every variant refused in one line or restored whole', { timeout: 240_000 }, async (t) => {
  await fuzz(t, 'fdmix', () => true, fdmixDamage);
});

// Kinds fdmix has none of: a tree with a zombie, a ghost file, FIFOs and a pidfd, seccomp filters.
test('tree, ghost, fdkinds, seccomp: their own images damaged, every variant refused in one line or restored whole', { timeout: 240_000 }, async (t) => {
  await fuzz(t, 'tree', (f) => /^(pstree\.img|fdinfo-\d+\.img)$/.test(f), () => treeDamage());
  await fuzz(t, 'ghost', (f) => /^(remap-fpath|ghost-file-[0-9a-f]+)\.img$/.test(f), ghostDamage);
  await fuzz(t, 'fdkinds', (f) => /^fifo-data\.img$/.test(f), () => fdkindsDamage());
  await fuzz(t, 'seccomp', (f) => /^seccomp\.img$/.test(f), seccompDamage);
});

test('fdmix\'s check can fail: SIGUSR2 drains a byte of the pipe first', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'fuzz-fdmix-usr2');
  const target = await s.start('fdmix');
  const images = s.mkdir();
  await s.dump(target, images);
  const { status, output } = await s.finish(await s.restore(images, target), 'SIGUSR2');
  assert.ok(status?.exited === 1 && /^FAIL: .*pipe/m.test(output), `SIGUSR2 did not make fdmix FAIL: ${JSON.stringify(status)}${s.report()}`);
});
