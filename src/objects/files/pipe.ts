// Pipes, with the data queued in them. On dump the data is copied with tee()
// from a read end cryo holds (pidfd_getfd of the task's fd, or the same pipe
// reopened through /proc for a write end): tee() duplicates, it never consumes.
// On restore cryo makes the pipe, writes the data back, and hands out the ends.
import { closeSync, openSync, readSync } from 'node:fs';
import { create, FdTypes, FileEntrySchema, ImageError, PipeEntrySchema, FifoEntrySchema, PipeDataEntrySchema, type ImageDir } from '../../images/index.js';
import { noFown } from './table.js';
import { NR, O, F, syscall, trySyscall, dupCloexec } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Cleanup } from '../../cleanup.js';
import { partOf, regOf, type FdKind, type FdProbe, type KindStore } from './kind.js';
import type { FileTable } from './table.js';
import { dumpRegFile, openTreePath } from './reg.js';

const SPLICE_F_NONBLOCK = 2;
const EAGAIN = 11;

function makePipe(): { r: number; w: number } {
  const fds = new Int32Array(2);
  syscall('pipe2', NR.pipe2, new Uint8Array(fds.buffer), O.CLOEXEC | O.NONBLOCK);
  return { r: fds[0]!, w: fds[1]! };
}

/** A read end of the task's pipe, in cryo: the probe's copy, or (for a write end) a new open through /proc. */
function readEnd(p: FdProbe): { fd: number; own: boolean } {
  if ((p.info.flags & 3) === O.RDONLY) return { fd: p.copy(), own: false };
  return { fd: openSync(`/proc/${p.pid}/fd/${p.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC), own: true };
}

/** The bytes queued in the pipe, left where they are. */
function peek(p: FdProbe): { data: Buffer; size: number } {
  const end = readEnd(p);
  const src = end.fd;
  const tmp = makePipe();
  try {
    const size = syscall('fcntl(F_GETPIPE_SZ)', NR.fcntl, src, F.GETPIPE_SZ);
    syscall('fcntl(F_SETPIPE_SZ)', NR.fcntl, tmp.w, F.SETPIPE_SZ, size);
    const n = trySyscall(NR.tee, src, tmp.w, size, SPLICE_F_NONBLOCK);
    if (n < 0 && n !== -EAGAIN) throw new CryoError(`task ${p.pid}: cannot read the data in pipe fd ${p.fd} (tee: errno ${-n})`);
    const data = Buffer.alloc(Math.max(0, n));
    for (let off = 0; off < data.length; ) off += readSync(tmp.r, data, off, data.length - off, null);
    return { data, size };
  } finally {
    if (end.own) closeSync(src);
    closeSync(tmp.r);
    closeSync(tmp.w);
  }
}

type DataList = Array<{ pipeId: number; data: Buffer; size: number }>;
type Data = Map<number, { data: Uint8Array; size: number }>;
type Ends = Map<number, { r: number; w: number; given?: Set<number> }>;

/** Pipes and FIFOs each have their own image of the data (pipes-data.img, fifo-data.img). */
type Image = 'pipesData' | 'fifoData';

/** At dump: the bytes queued in each pipe, once per pipe, and the pipes already seen (by inode). */
const dumped = (s: KindStore, img: Image) => s.get(`${img}:dump`, () => ({ list: [] as DataList, seen: new Set<number>() }));
/** At restore: the image's data by pipe id (inode). */
const dataOf = (s: KindStore, img: Image) => s.get<Data>(`${img}:data`, () => new Map());
/** At restore: the pipes made so far, both ends in cryo, by pipe id (`given`: the ends handed out as they are). */
const endsOf = (s: KindStore, img: Image) => s.get<Ends>(`${img}:ends`, () => new Map());

/** Record the pipe's queued bytes once per pipe (both ends share them). */
function takeData(p: FdProbe, files: FileTable, img: Image): number {
  const pipeId = Number(p.st.ino);
  const d = dumped(files.kinds, img);
  if (!d.seen.has(pipeId)) {
    d.seen.add(pipeId);
    // Also with nothing queued: the entry keeps the pipe's size (F_SETPIPE_SZ), as CRIU's.
    const { data, size } = peek(p);
    d.list.push({ pipeId, data, size });
  }
  return pipeId;
}

function writeData(dir: ImageDir, files: FileTable, img: Image): void {
  const l = dumped(files.kinds, img).list;
  if (!l.length) return;
  dir.write(img, l.map((p) => ({
    msg: create(PipeDataEntrySchema, { pipeId: p.pipeId, bytes: p.data.length, size: p.size }), extra: p.data,
  })));
}

function loadData(dir: ImageDir, store: KindStore, img: Image): void {
  const m = dataOf(store, img);
  for (const { msg, extra } of dir.exists(img) ? dir.readEntries(img) : []) {
    const e = msg as { pipeId: number; size: number };
    m.set(e.pipeId, { data: extra ?? new Uint8Array(), size: e.size });
  }
}

/** Both ends of each pipe made (a FIFO's one fd once). */
function holdEnds(store: KindStore, cl: Cleanup, img: Image): void {
  const ends = endsOf(store, img);
  cl.always(`${img === 'pipesData' ? 'pipe' : 'FIFO'} ends held`, () => {
    for (const fd of new Set([...ends.values()].flatMap((e) => [e.r, e.w]))) closeSync(fd);
  });
}

/** Put the dumped bytes back into a new pipe through its write side. */
function refill(w: number, d: { data: Uint8Array; size: number } | undefined): void {
  if (!d) return;
  if (d.size) syscall('fcntl(F_SETPIPE_SZ)', NR.fcntl, w, F.SETPIPE_SZ, Math.max(d.size, d.data.length));
  const buf = Buffer.from(d.data);
  for (let off = 0; off < buf.length; ) off += syscall('write', NR.write, w, buf.subarray(off), buf.length - off);
}

export const pipe: FdKind = {
  name: 'pipe',
  type: FdTypes.PIPE,
  match: (p) => p.st.isFIFO() && p.link.startsWith('pipe:'),
  dump(p, env) {
    const files = env.files;
    const pipeId = takeData(p, files, 'pipesData');
    const id = files.newId();
    const fown = noFown();
    files.add(create(FileEntrySchema, {
      type: FdTypes.PIPE, id,
      pipe: create(PipeEntrySchema, { id, pipeId, flags: p.info.flags & ~O.CLOEXEC, fown }),
    }));
    return id;
  },
  open(fe, env) {
    const e = fe.pipe;
    if (!e) throw new CryoError(`file id ${fe.id}: pipe entry without its pipe field`);
    const made = endsOf(env.kinds, 'pipesData');
    let ends = made.get(e.pipeId);
    if (!ends) {
      ends = makePipe();
      made.set(e.pipeId, ends);
      refill(ends.w, dataOf(env.kinds, 'pipesData').get(e.pipeId));
    }
    const write = (e.flags & 3) === O.WRONLY;
    const end = write ? ends.w : ends.r;
    // Each entry is an open file description of its own (a dup shares the entry), so
    // that O_NONBLOCK of one leaves the others be: the end pipe() made (no O_LARGEFILE),
    // or the end reopened through /proc (which adds O_LARGEFILE), as the dumped one was.
    let fd: number;
    if (!(e.flags & O.LARGEFILE) && !ends.given?.has(end)) {
      (ends.given ??= new Set()).add(end);
      fd = dupCloexec(end);
    } else {
      fd = openSync(`/proc/self/fd/${end}`, (write ? O.WRONLY : O.RDONLY) | O.NONBLOCK | O.CLOEXEC);
    }
    syscall('fcntl(F_SETFL)', NR.fcntl, fd, F.SETFL, e.flags & O.NONBLOCK);
    return fd;
  },
  inheritKey: (fe) => (fe.pipe ? `pipe:[${fe.pipe.pipeId}]` : undefined),
  check(entries, env) {
    checkData('pipes-data.img', dataOf(env.kinds, 'pipesData'), new Set(entries.map((fe) => partOf(fe, 'pipe').pipeId)));
  },
  writeImages: (dir, files) => writeData(dir, files, 'pipesData'),
  loadImages: (dir, store) => loadData(dir, store, 'pipesData'),
  holdCleanup: (store, cl) => holdEnds(store, cl, 'pipesData'),
  /**
   * A pipe given with --inherit-fd is reopened with the dumped end's access mode,
   * as CRIU does; O_NONBLOCK first, so that a write end without a reader fails
   * instead of blocking cryo. Its data stays what the caller put in it.
   */
  openInherited(fe, fd) {
    const flags = fe.pipe!.flags;
    let n: number;
    try {
      n = openSync(`/proc/self/fd/${fd}`, (flags & 3) | O.NONBLOCK | O.CLOEXEC);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CryoError(`--inherit-fd pipe:[${fe.pipe!.pipeId}]: cannot reopen cryo's fd ${fd}: ${code === 'ENXIO' ? 'the pipe has no reader' : code ?? (err as Error).message}`);
    }
    syscall('fcntl(F_SETFL)', NR.fcntl, n, F.SETFL, flags & O.NONBLOCK);
    return n;
  },
};

/**
 * FIFOs (named pipes): a pipe plus its path. The data is kept like a pipe's, in
 * fifo-data.img. On restore cryo opens the path O_RDWR first (which never blocks,
 * and keeps the pipe alive while the data goes in), then each end from that.
 */
export const fifo: FdKind = {
  name: 'FIFO',
  type: FdTypes.FIFO,
  match: (p) => p.st.isFIFO() && !p.link.startsWith('pipe:'),
  dump(p, env) {
    const files = env.files;
    const pipeId = takeData(p, files, 'fifoData');
    // Its path as a reg-file entry; a FIFO deleted while open gets its ghost.
    const regfId = dumpRegFile({ pid: p.pid, proc: `/proc/${p.pid}/fd/${p.fd}`, link: p.link, st: p.st, what: `fd ${p.fd}` },
      { flags: p.info.flags & ~O.CLOEXEC, pos: 0n }, env);
    const id = files.newId();
    files.add(create(FileEntrySchema, { type: FdTypes.FIFO, id, fifo: create(FifoEntrySchema, { id, pipeId, regfId }) }));
    return id;
  },
  open(fe, env) {
    const e = fe.fifo;
    const reg = e && env.files.get(e.regfId)?.reg;
    if (!e || !reg) throw new CryoError(`file id ${fe.id}: FIFO entry without its path`);
    const made = endsOf(env.kinds, 'fifoData');
    let ends = made.get(e.pipeId);
    if (!ends) {
      const how = O.RDWR | O.NONBLOCK | O.CLOEXEC;
      // A deleted FIFO is made again (a ghost), opened and unlinked.
      const rw = env.remaps.has(e.regfId) ? env.remaps.open(e.regfId, reg.name, how) : openTreePath(reg.name, how, env.mntNsOf?.(reg.mntId)?.root ?? env.nsRoot, 'the FIFO');
      ends = { r: rw, w: rw };
      made.set(e.pipeId, ends);
      refill(rw, dataOf(env.kinds, 'fifoData').get(e.pipeId));
    }
    // An open file description of its own, with the dumped access mode and flags.
    return openSync(`/proc/self/fd/${ends.r}`, (reg.flags & ~(O.CREAT | O.TRUNC | O.EXCL)) | O.CLOEXEC);
  },
  // As CRIU: a FIFO is named by its path (without the leading slash).
  inheritKey: (fe, env) => (fe.fifo ? env.files.get(fe.fifo.regfId)?.reg?.name.replace(/^\//, '') : undefined),
  check(entries, env) {
    for (const fe of entries) regOf(fe, partOf(fe, 'fifo').regfId, 'its path, regf_id', env);
    checkData('fifo-data.img', dataOf(env.kinds, 'fifoData'), new Set(entries.map((fe) => fe.fifo!.pipeId)));
  },
  writeImages: (dir, files) => writeData(dir, files, 'fifoData'),
  loadImages: (dir, store) => loadData(dir, store, 'fifoData'),
  holdCleanup: (store, cl) => holdEnds(store, cl, 'fifoData'),
};

/** A pipe holds at most its size (the default 16 pages when unset); every data entry belongs to a pipe. */
function checkData(file: string, data: Data, pipes: Set<number>): void {
  const bad = (what: string) => new ImageError('IMG_INVALID', file, undefined, what);
  for (const [pipeId, d] of data) {
    if (!pipes.has(pipeId)) throw bad(`data for pipe ${pipeId}, which no pipe of files.img names`);
    if (d.size > 0x7fffffff) throw bad(`pipe ${pipeId}: size ${d.size} is out of range`);
    const room = d.size || 16 * 4096;
    if (d.data.length > room) throw bad(`pipe ${pipeId}: ${d.data.length} bytes of data, more than its size ${room}`);
  }
}
