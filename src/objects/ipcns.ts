// The ipc namespace of a tree that has one of its own, as CRIU keeps it:
// ipcns-var-N.img (the sysctls), ipcns-shm-N.img (segments, their contents in
// pagemap-shmem-ID.img + pages, in_pagemaps), ipcns-sem-N.img (sets with their
// values), ipcns-msg-N.img (queues with their messages). cryo enters the
// namespace with one thread (setns) and reads or makes everything there; the
// tasks' attachments of segments (VMA_AREA_SYSVIPC) are mapped again by shmat.
import { closeSync, openSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import {
  create, toBinary, fromBinary, IpcVarEntrySchema, IpcShmEntrySchema, IpcSemEntrySchema, IpcMsgEntrySchema, IpcMsgSchema,
  IpcDescEntrySchema, isFieldSet, PagemapEntrySchema, VMA_AREA_SYSVIPC,
  type ImageDir, type IpcVarEntry, type IpcShmEntry, type IpcSemEntry, type IpcMsgEntry, type IpcDescEntry, type VmaEntry,
} from '../images/index.js';
import { ipc, MAP_HUGE_MASK, MAP_HUGE_SHIFT, NR, O, PR, PAGE_SIZE, SysError, syscall } from '../sys/index.js';
import { CryoError, type Logger } from '../context.js';
import { writeShmemObject } from './files/memfd.js';
import { dumpPosixQueues, queueLimits, restorePosixQueues } from './mqueue.js';
import { readContentsInto, type ShmemContents } from './shmem.js';
import type { Remote } from '../tracer/remote.js';
import type { IdView } from './userns.js';

const HUGETLBFS_MAGIC = 0x958458f6;
const roundPage = (n: bigint): bigint => ((n + BigInt(PAGE_SIZE) - 1n) / BigInt(PAGE_SIZE)) * BigInt(PAGE_SIZE);

// ---- the sysctls (CRIU's ipc_sysctl_req) ----

type VarField = 'msgCtlmax' | 'msgCtlmnb' | 'autoMsgmni' | 'msgCtlmni' | 'shmCtlmax' | 'shmCtlall' | 'shmCtlmni' | 'shmRmidForced'
  | 'mqQueuesMax' | 'mqMsgMax' | 'mqMsgsizeMax' | 'mqMsgDefault' | 'mqMsgsizeDefault';

const SCALARS: ReadonlyArray<[string, VarField, 'u32' | 'u64']> = [
  ['kernel/msgmax', 'msgCtlmax', 'u32'], ['kernel/msgmnb', 'msgCtlmnb', 'u32'], ['kernel/auto_msgmni', 'autoMsgmni', 'u32'],
  ['kernel/msgmni', 'msgCtlmni', 'u32'], ['kernel/shmmax', 'shmCtlmax', 'u64'], ['kernel/shmall', 'shmCtlall', 'u64'],
  ['kernel/shmmni', 'shmCtlmni', 'u32'], ['kernel/shm_rmid_forced', 'shmRmidForced', 'u32'],
  ['fs/mqueue/queues_max', 'mqQueuesMax', 'u32'], ['fs/mqueue/msg_max', 'mqMsgMax', 'u32'], ['fs/mqueue/msgsize_max', 'mqMsgsizeMax', 'u32'],
  ['fs/mqueue/msg_default', 'mqMsgDefault', 'u32'], ['fs/mqueue/msgsize_default', 'mqMsgsizeDefault', 'u32'],
];
const NEXT_IDS = [['kernel/msg_next_id', 'msgNextId'], ['kernel/sem_next_id', 'semNextId'], ['kernel/shm_next_id', 'shmNextId']] as const;

const sysctlPath = (name: string): string => `/proc/sys/${name}`;
const readSysctl = (name: string): string => readFileSync(sysctlPath(name), 'utf8').trim();

function writeSysctl(name: string, value: string, which: 'restored' | 'dumped' = 'restored'): void {
  try {
    writeFileSync(sysctlPath(name), value);
  } catch (e) {
    throw new CryoError(`cannot set ${name.replace(/\//g, '.')} to ${value} in the ${which} ipc namespace: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function readVar(): IpcVarEntry {
  const v = create(IpcVarEntrySchema, { semCtls: readSysctl('kernel/sem').split(/\s+/).map(Number) });
  for (const [name, field, kind] of SCALARS) {
    const text = readSysctl(name);
    (v as unknown as Record<string, number | bigint>)[field] = kind === 'u64' ? BigInt.asUintN(64, BigInt(text)) : Number(text) >>> 0;
  }
  // -1 is the value no object has asked for, which cannot be written back.
  for (const [name, field] of NEXT_IDS) {
    const n = Number(readSysctl(name));
    if (n !== -1) v[field] = n;
  }
  return v;
}

/** The sysctls of `v`, `over` in place of some (limits raised while objects are made). */
function writeVar(v: IpcVarEntry, over: Partial<Record<VarField | 'sem', string>> = {}): void {
  if (v.semCtls.length !== 4) throw new CryoError(`ipcns-var: kernel.sem has ${v.semCtls.length} values, not 4`);
  writeSysctl('kernel/sem', over.sem ?? v.semCtls.join(' '));
  for (const [name, field] of SCALARS) {
    if ((field === 'mqMsgDefault' || field === 'mqMsgsizeDefault') && !isFieldSet(v, IpcVarEntrySchema.field[field])) continue;
    writeSysctl(name, over[field] ?? String(v[field]));
  }
}

// ---- dump ----

/** The images hold the owners as the tree sees them (CRIU's userns_uid()); IPC_STAT gives cryo's view. */
function desc(id: number, p: ipc.IpcPerm, ids: IdView, who: string): IpcDescEntry {
  const what = `${who}: SysV ipc object ${id} (key 0x${(p.key >>> 0).toString(16)})`;
  return create(IpcDescEntrySchema, {
    id, key: p.key, mode: p.mode,
    uid: ids.nsUid(p.uid, what), gid: ids.nsGid(p.gid, what), cuid: ids.nsUid(p.cuid, what), cgid: ids.nsGid(p.cgid, what),
  });
}

/** Every object of a kind, by index as CRIU walks them (*_STAT from 0 to the highest index). */
function walk<T>(maxIndex: () => number, stat: (idx: number) => T | undefined): T[] {
  const out: T[] = [];
  for (let i = 0, max = maxIndex(); i <= max; i++) {
    const s = stat(i);
    if (s) out.push(s);
  }
  return out;
}

export interface IpcDumpEnv {
  dir: ImageDir;
  newPagesId: () => number;
  log: Logger;
  /** The task named in errors: the root of the tree that owns the namespace. */
  who: string;
  /** Owners as the tree sees them (its user namespace's maps). */
  ids: IdView;
}

/**
 * Dump the ipc namespace `nsPath` as images of id `nsId`. Returns its segments
 * (id to size), which the tasks' attachments must be of.
 */
export function dumpIpcNs(nsPath: string, nsId: number, env: IpcDumpEnv): { segments: Map<bigint, bigint>; pages: number; scanned: number } {
  const segments = new Map<bigint, bigint>();
  let pages = 0;
  let scanned = 0;
  ipc.inNamespace(nsPath, 'ipc', () => {
    const vars = readVar();
    vars.posixMq = dumpPosixQueues(env.ids, env.who);
    env.dir.write('ipcVar', [vars], nsId);

    const shms: IpcShmEntry[] = [];
    // cryo reads a segment through an attachment of its own: with shm_rmid_forced
    // its detach would destroy one that had no other (made, never attached). So
    // off while they are read, then as it was (which destroys nothing: a segment
    // without attachments and without its creator cannot exist with it on).
    if (vars.shmRmidForced) writeSysctl('kernel/shm_rmid_forced', '0', 'dumped');
    try {
      for (const s of walk(ipc.shmMaxIndex, ipc.shmStatIndex)) {
        const seg = dumpSegment(s, env);
        const e = create(IpcShmEntrySchema, { desc: desc(s.id, s, env.ids, env.who), size: s.size, inPagemaps: true, ...(seg.hugetlbFlag ? { hugetlbFlag: seg.hugetlbFlag } : {}) });
        pages += seg.pages;
        scanned += Number(roundPage(s.size)) / PAGE_SIZE;
        segments.set(BigInt(s.id), seg.span);
        shms.push(e);
      }
    } finally {
      if (vars.shmRmidForced) writeSysctl('kernel/shm_rmid_forced', String(vars.shmRmidForced), 'dumped');
    }
    // As CRIU: an image without entries is left out.
    if (shms.length) env.dir.write('ipcShm', shms, nsId);

    const sems = walk(ipc.semMaxIndex, ipc.semStatIndex).map((s) => {
      const values = Buffer.alloc(Math.ceil((2 * s.nsems) / 8) * 8);
      ipc.semGetAll(s.id, s.nsems).copy(values);
      return { msg: create(IpcSemEntrySchema, { desc: desc(s.id, s, env.ids, env.who), nsems: s.nsems }), extra: values };
    });
    if (sems.length) env.dir.write('ipcSem', sems, nsId);

    const msgmax = Number(readSysctl('kernel/msgmax'));
    const msgs = walk(ipc.msgMaxIndex, ipc.msgStatIndex).map((q) => {
      const parts: Buffer[] = [];
      for (let n = 0; n < q.qnum; n++) {
        let m;
        try {
          // No message is longer than the queue may hold, nor than msgmax was when it was sent.
          m = ipc.msgCopy(q.id, n, Math.max(msgmax, q.qbytes));
        } catch (e) {
          throw new CryoError(`${env.who}: cannot copy message ${n} of SysV message queue ${q.id}: ${SysError.is(e) ? e.code : (e as Error).message}`);
        }
        const head = toBinary(IpcMsgSchema, create(IpcMsgSchema, { mtype: BigInt.asUintN(64, m.mtype), msize: m.data.length }));
        const len = Buffer.alloc(4);
        len.writeUInt32LE(head.length, 0);
        const body = Buffer.alloc(Math.ceil(m.data.length / 8) * 8);
        m.data.copy(body);
        parts.push(len, Buffer.from(head), body);
      }
      return { msg: create(IpcMsgEntrySchema, { desc: desc(q.id, q, env.ids, env.who), qbytes: q.qbytes, qnum: q.qnum }), extra: Buffer.concat(parts) };
    });
    if (msgs.length) env.dir.write('ipcMsg', msgs, nsId);
  });
  return { segments, pages, scanned };
}

/**
 * A segment's contents, read through an attachment of cryo's own (CRIU's
 * dump_one_sysv_shmem): the pages written, the bytes an attachment spans (a
 * segment in huge pages spans whole ones), and for one in huge pages its
 * SHM_HUGETLB flag with the page size bits (CRIU's hugetlb_flag).
 */
function dumpSegment(s: ipc.ShmStat, env: IpcDumpEnv): { pages: number; span: bigint; hugetlbFlag: number } {
  const addr = ipc.shmAttach(s.id, ipc.IPC.SHM_RDONLY);
  try {
    const start = addr.toString(16);
    const vma = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.startsWith(`${start}-`));
    if (!vma) throw new CryoError(`${env.who}: SysV shared memory ${s.id}: cryo's attachment of it at 0x${start} is not in its maps`);
    const end = BigInt(`0x${vma.slice(start.length + 1, vma.indexOf(' '))}`);
    const path = `/proc/self/map_files/${start}-${end.toString(16)}`;
    const sf = statfsSync(path);
    const hugetlbFlag = sf.type === HUGETLBFS_MAGIC ? SHM_HUGETLB | (Math.log2(sf.bsize) << MAP_HUGE_SHIFT) : 0;
    const fd = openSync(path, O.RDONLY | O.CLOEXEC);
    try {
      return { pages: writeShmemObject(env.dir, fd, Number(s.size), BigInt(s.id), env.newPagesId), span: end - addr, hugetlbFlag };
    } finally {
      closeSync(fd);
    }
  } finally {
    ipc.shmDetach(addr);
  }
}

/** SHM_HUGETLB (shmget's flag, 04000). */
const SHM_HUGETLB = 0o4000;

/** The bytes an attachment of a segment of the images spans: its size in pages, or in whole huge pages of the size its flag names. */
export function attachSpan(e: IpcShmEntry): bigint {
  // No size bits with SHM_HUGETLB: the default huge page, 2 MiB on x86-64.
  const shift = e.hugetlbFlag ? (e.hugetlbFlag & MAP_HUGE_MASK) >>> MAP_HUGE_SHIFT || 21 : 0;
  if (!shift) return roundPage(e.size);
  const huge = 1n << BigInt(shift);
  return ((e.size + huge - 1n) / huge) * huge;
}

/**
 * The attachments of segments in a task's VMAs, as shmat makes them: each begins
 * at offset 0, its VMAs follow one another without holes (mprotect may have split
 * them), and it covers the whole segment (CRIU refuses the rest too).
 */
export function checkAttachments(who: string, vmas: readonly VmaEntry[], segments: ReadonlyMap<bigint, bigint>): void {
  let cur: { shmid: bigint; start: bigint; end: bigint } | undefined;
  const close = () => {
    if (cur && cur.end - cur.start !== segments.get(cur.shmid)!) {
      throw new CryoError(`${who}: SysV shared memory ${cur.shmid} is attached at 0x${cur.start.toString(16)} only in part (unmapped or moved pages), which cryo cannot restore`);
    }
    cur = undefined;
  };
  for (const v of vmas) {
    if (!(v.status & VMA_AREA_SYSVIPC)) {
      close();
      continue;
    }
    const at = `0x${v.start.toString(16)}`;
    if (!segments.has(v.shmid)) throw new CryoError(`${who}: the mapping at ${at} is SysV shared memory ${v.shmid}, which its ipc namespace does not have`);
    if (cur && cur.shmid === v.shmid && v.start === cur.end && v.pgoff === cur.end - cur.start) {
      cur.end = v.end;
      continue;
    }
    close();
    if (v.pgoff !== 0n) throw new CryoError(`${who}: SysV shared memory ${v.shmid} is mapped at ${at} from offset ${v.pgoff} on (part of an attachment), which cryo cannot restore`);
    cur = { shmid: v.shmid, start: v.start, end: v.end };
  }
  close();
}

// ---- restore ----

export interface IpcNsImages {
  id: number;
  vars: IpcVarEntry;
  shm: Array<{ e: IpcShmEntry; contents?: ShmemContents }>;
  sem: Array<{ e: IpcSemEntry; values: Uint8Array }>;
  msg: Array<{ e: IpcMsgEntry; msgs: Array<{ mtype: bigint; data: Uint8Array }> }>;
}

/** Read and check the images of ipc namespace `id`, before anything is made. */
export function loadIpcNs(dir: ImageDir, id: number, readPagemap: (shmid: bigint) => ShmemContents): IpcNsImages {
  const vars = dir.readOne('ipcVar', id);
  const bad = (file: string, why: string) => new CryoError(`bad image: ${dir.fileName(file as 'ipcShm', id)}: ${why}`);
  // CRIU leaves out an image without entries.
  const shm = ((dir.tryRead('ipcShm', id) ?? []) as IpcShmEntry[]).map((e) => {
    if (!e.desc) throw bad('ipcShm', 'an entry without its desc');
    if (e.hugetlbFlag && (e.hugetlbFlag & ~(SHM_HUGETLB | MAP_HUGE_MASK)) !== 0) throw bad('ipcShm', `segment ${e.desc.id} has hugetlb flag 0x${e.hugetlbFlag.toString(16)}`);
    if (!e.inPagemaps) throw bad('ipcShm', `segment ${e.desc.id} keeps its contents inline (images of CRIU before 3.x), which cryo does not restore`);
    // As CRIU, an empty segment has no pagemap.
    const contents = e.size === 0n || !dir.exists('shmemPagemap', BigInt(e.desc.id)) ? undefined : readPagemap(BigInt(e.desc.id));
    for (const r of contents?.runs ?? []) {
      const n = isFieldSet(r, PagemapEntrySchema.field.nrPages) ? r.nrPages : BigInt(r.compatNrPages);
      if (r.vaddr + n * BigInt(PAGE_SIZE) > roundPage(e.size)) throw bad('shmemPagemap', `pages of segment ${e.desc.id} lie beyond its size`);
    }
    return contents ? { e, contents } : { e };
  });
  const sem = (dir.exists('ipcSem', id) ? dir.readEntries('ipcSem', id) : []).map(({ msg, extra }) => {
    const e = msg as IpcSemEntry;
    if (!e.desc) throw bad('ipcSem', 'an entry without its desc');
    return { e, values: (extra ?? new Uint8Array()).subarray(0, 2 * e.nsems) };
  });
  const msg = (dir.exists('ipcMsg', id) ? dir.readEntries('ipcMsg', id) : []).map(({ msg: m, extra }) => {
    const e = m as IpcMsgEntry;
    if (!e.desc) throw bad('ipcMsg', 'an entry without its desc');
    const rest = extra ?? new Uint8Array();
    const msgs: Array<{ mtype: bigint; data: Uint8Array }> = [];
    let off = 0;
    for (let n = 0; n < e.qnum; n++) {
      const len = Buffer.from(rest.buffer, rest.byteOffset + off, 4).readUInt32LE(0);
      const head = fromBinary(IpcMsgSchema, rest.subarray(off + 4, off + 4 + len));
      off += 4 + len;
      msgs.push({ mtype: head.mtype, data: rest.subarray(off, off + head.msize) });
      off += Math.ceil(head.msize / 8) * 8;
    }
    return { e, msgs };
  });
  return { id, vars, shm, sem, msg };
}

/** Set `name` (a kernel/*_next_id) so that the next object made gets `id`. */
const nextId = (name: 'msg' | 'sem' | 'shm', id: number) => writeSysctl(`kernel/${name}_next_id`, String(id));

/**
 * Make semaphore sets and queues with their creators' ids (cuid, cgid): the calling thread
 * takes them as its effective ids while the object is made. A raw setresuid
 * changes only this thread, and the way back gives it its capabilities again.
 */
function asCreator<T>(d: IpcDescEntry, ids: IpcIds, fn: () => T): T {
  return asEffective(ids.view.hostUid(d.cuid, ids.what(d)), ids.view.hostGid(d.cgid, ids.what(d)), ids.base, fn);
}

/** Effective ids `uid`/`gid` (cryo's view) on this thread while `fn` runs, then `base` again. */
function asEffective<T>(uid: number, gid: number, base: { uid: number; gid: number }, fn: () => T): T {
  if (uid === base.uid && gid === base.gid) return fn();
  syscall('setresgid', NR.setresgid, -1, gid, -1);
  try {
    syscall('setresuid', NR.setresuid, -1, uid, -1);
    try {
      return fn();
    } finally {
      syscall('setresuid', NR.setresuid, -1, base.uid, -1);
    }
  } finally {
    syscall('setresgid', NR.setresgid, -1, base.gid, -1);
  }
}

const SECURE_NO_SETUID_FIXUP = 1 << 2;

/**
 * In an ipc namespace owned by the tree's user namespace, its sysctls are
 * writable only by that namespace's root (ipc_permissions compares the
 * effective uid): this thread takes its ids as effective ones, keeping its
 * capabilities (SECURE_NO_SETUID_FIXUP, this thread only), as CRIU, which
 * writes them from inside.
 */
function asNsRoot<T>(ids: IpcIds, fn: () => T): T {
  if (ids.base.uid === 0 && ids.base.gid === 0) return fn();
  const was = syscall('prctl(PR_GET_SECUREBITS)', NR.prctl, PR.GET_SECUREBITS);
  syscall('prctl(PR_SET_SECUREBITS)', NR.prctl, PR.SET_SECUREBITS, was | SECURE_NO_SETUID_FIXUP);
  try {
    return asEffective(ids.base.uid, ids.base.gid, { uid: 0, gid: 0 }, fn);
  } finally {
    syscall('prctl(PR_SET_SECUREBITS)', NR.prctl, PR.SET_SECUREBITS, was);
  }
}

/** The owners of the images (the tree's view) as this thread's calls take them. */
interface IpcIds {
  view: IdView;
  /** The ids the thread works as: the namespace's root, in cryo's view. */
  base: { uid: number; gid: number };
  what(d: IpcDescEntry): string;
}

function made(kind: string, d: IpcDescEntry, got: number): void {
  if (got !== d.id) throw new CryoError(`SysV ${kind} ${d.id} came back as ${got} (kernel.${kind === 'shared memory' ? 'shm' : kind === 'semaphore set' ? 'sem' : 'msg'}_next_id not honoured)`);
}

const permOf = (d: IpcDescEntry, ids: IpcIds) => ({ uid: ids.view.hostUid(d.uid, ids.what(d)), gid: ids.view.hostGid(d.gid, ids.what(d)), mode: d.mode & 0o777 });

/**
 * Make everything of the images in the ipc namespace `nsPath` (the restored
 * root's new one, still empty): sysctls, segments with their contents, semaphore
 * sets with their values, queues with their messages, each with its id, key,
 * mode and owners. Limits are raised while the objects are made (a queue's
 * qbytes is msgmnb when it is made, which needs no CAP_SYS_RESOURCE) and set
 * as dumped at the end.
 */
export function restoreIpcNs(
  nsPath: string, img: IpcNsImages, pagesFd: (id: number) => number, log: Logger,
  /** shmget in the restored root (the segment's creator then: see below). */
  rootShmget: (key: number, size: bigint, flags: number, d: IpcDescEntry) => number,
  view: IdView,
): void {
  const ids: IpcIds = {
    view,
    base: { uid: view.hostUid(0, 'the ipc namespace\'s root'), gid: view.hostGid(0, 'the ipc namespace\'s root') },
    what: (d) => `ipc namespace ${img.id}: SysV object ${d.id} (key 0x${(d.key >>> 0).toString(16)})`,
  };
  ipc.inNamespace(nsPath, 'ipc', () => asNsRoot(ids, () => {
    const v = img.vars;
    const max = (a: number, b: number) => String(Math.max(a, b));
    const biggestMsg = Math.max(0, ...img.msg.flatMap((q) => q.msgs.map((m) => m.data.length)));
    const sem = [...v.semCtls];
    sem[0] = Math.max(sem[0] ?? 0, ...img.sem.map((s) => s.e.nsems));
    sem[1] = Math.max(sem[1] ?? 0, img.sem.reduce((n, s) => n + s.e.nsems, 0));
    sem[3] = Math.max(sem[3] ?? 0, img.sem.length);
    const shmPages = img.shm.reduce((n, s) => n + roundPage(s.e.size) / BigInt(PAGE_SIZE), 0n);
    const shmMax = img.shm.reduce((m, s) => (s.e.size > m ? s.e.size : m), 0n);
    const mq = queueLimits(v.posixMq);
    writeVar(v, {
      // Not yet: a segment cryo detaches from would go at once.
      shmRmidForced: '0',
      sem: sem.join(' '), msgCtlmax: max(v.msgCtlmax, biggestMsg), msgCtlmni: max(v.msgCtlmni, img.msg.length),
      shmCtlmni: max(v.shmCtlmni, img.shm.length),
      shmCtlall: String(v.shmCtlall > shmPages ? v.shmCtlall : shmPages), shmCtlmax: String(v.shmCtlmax > shmMax ? v.shmCtlmax : shmMax),
      mqQueuesMax: max(v.mqQueuesMax, mq.queues), mqMsgMax: max(v.mqMsgMax, mq.maxmsg), mqMsgsizeMax: max(v.mqMsgsizeMax, mq.msgsize),
    });
    for (const { e, contents } of img.shm) {
      const d = e.desc!;
      nextId('shm', d.id);
      const flags = (d.mode & 0o777) | ipc.IPC.CREAT | ipc.IPC.EXCL | (e.hugetlbFlag ?? 0);
      // Made by the root, as in CRIU: a segment without attachments lives as long as
      // the task that made it when kernel.shm_rmid_forced is (or is later) set, so
      // that must be a task of the tree, not cryo, which exits.
      made('shared memory', d, rootShmget(d.key, e.size, flags, d));
      ipc.shmSet(d.id, permOf(d, ids));
      if (contents) {
        const addr = ipc.shmAttach(d.id, 0);
        try {
          readContentsInto(addr, Number(e.size), contents, pagesFd, `SysV shared memory ${d.id}`);
        } finally {
          ipc.shmDetach(addr);
        }
      }
      if (d.mode & ipc.IPC.SHM_LOCKED) ipc.shmCtl(d.id, ipc.IPC.SHM_LOCK);
    }
    for (const { e, values } of img.sem) {
      const d = e.desc!;
      nextId('sem', d.id);
      made('semaphore set', d, asCreator(d, ids, () => ipc.semGet(d.key, e.nsems, (d.mode & 0o777) | ipc.IPC.CREAT | ipc.IPC.EXCL)));
      ipc.semSet(d.id, permOf(d, ids));
      if (e.nsems) ipc.semSetAll(d.id, values);
    }
    for (const { e, msgs } of img.msg) {
      const d = e.desc!;
      nextId('msg', d.id);
      // A queue is made with msgmnb as its qbytes: the limit above msgmnb without CAP_SYS_RESOURCE.
      writeSysctl('kernel/msgmnb', String(e.qbytes));
      made('message queue', d, asCreator(d, ids, () => ipc.msgGet(d.key, (d.mode & 0o777) | ipc.IPC.CREAT | ipc.IPC.EXCL)));
      ipc.msgSet(d.id, { ...permOf(d, ids), qbytes: e.qbytes });
      for (const m of msgs) ipc.msgSend(d.id, m.mtype, m.data);
    }
    restorePosixQueues(v.posixMq, view, img.id);
    writeVar(v);
    // Making an object puts its next_id back to -1 (which cannot be written): only those the images set.
    for (const [name, field] of NEXT_IDS) if (isFieldSet(v, IpcVarEntrySchema.field[field])) writeSysctl(name, String(v[field]));
    log.info(`ipc namespace ${img.id}: ${img.shm.length} shared memory segments, ${img.sem.length} semaphore sets, ${img.msg.length} message queues, ${v.posixMq.length} POSIX message queues`);
  }));
}

/**
 * Once every task has its attachments again: segments that were marked for
 * destruction (IPC_RMID while attached, SHM_DEST) are marked again, so that they
 * go with their last attachment, as they would have.
 */
export function finishIpcNs(nsPath: string, img: IpcNsImages): void {
  const doomed = img.shm.filter((s) => s.e.desc!.mode & ipc.IPC.SHM_DEST);
  if (!doomed.length) return;
  ipc.inNamespace(nsPath, 'ipc', () => {
    for (const s of doomed) ipc.shmCtl(s.e.desc!.id, ipc.IPC.RMID);
  });
}

/**
 * Attach a segment in a restored task where the dumped task had it (the first
 * VMA of an attachment; the others are its parts, given their protection after).
 * Read-only unless some VMA of it was open for writing (CRIU's fdflags).
 */
export function attachSegment(rem: Remote, v: VmaEntry, writable: boolean): void {
  const flags = ipc.IPC.SHM_REMAP | (writable ? 0 : ipc.IPC.SHM_RDONLY);
  const got = rem.call(`shmat(${v.shmid}, 0x${v.start.toString(16)})`, NR.shmat, v.shmid, v.start, flags);
  if (got !== v.start) throw new CryoError(`shmat placed SysV shared memory ${v.shmid} at 0x${got.toString(16)}, not 0x${v.start.toString(16)}`);
}
