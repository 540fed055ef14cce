// SysV IPC (shm, sem, msg) and setns, as raw x86_64 system calls with the
// kernel's 64-bit structures (ipc64_perm, shmid64_ds, semid64_ds, msqid64_ds).
import { closeSync, openSync } from 'node:fs';
import { syscall } from './libc.js';
import { SysError } from './errors.js';
import { NR } from './nr.js';


export const IPC = {
  RMID: 0, SET: 1, STAT: 2, CREAT: 0o1000, EXCL: 0o2000, NOWAIT: 0o4000, PRIVATE: 0,
  MSG_STAT: 11, MSG_INFO: 12, MSG_COPY: 0o40000,
  SHM_LOCK: 11, SHM_STAT: 13, SHM_INFO: 14, SHM_RDONLY: 0o10000, SHM_REMAP: 0o40000, SHM_HUGETLB: 0o4000,
  SHM_DEST: 0o1000, SHM_LOCKED: 0o2000,
  SEM_GETALL: 13, SEM_SETALL: 17, SEM_STAT: 18, SEM_INFO: 19,
} as const;

/** struct ipc64_perm, as the kernel reports it. */
export interface IpcPerm {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  mode: number;
}

const PERM_SIZE = 48;

function readPerm(b: Buffer): IpcPerm {
  return {
    key: b.readUInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8), cuid: b.readUInt32LE(12), cgid: b.readUInt32LE(16),
    mode: b.readUInt32LE(20) & 0xffff,
  };
}

/** IPC_SET changes uid, gid and the low 9 bits of mode (and msg_qbytes of a queue). */
function writePerm(b: Buffer, p: Pick<IpcPerm, 'uid' | 'gid' | 'mode'>): void {
  b.writeUInt32LE(p.uid, 4);
  b.writeUInt32LE(p.gid, 8);
  b.writeUInt32LE(p.mode, 20);
}

export interface ShmStat extends IpcPerm {
  id: number;
  size: bigint;
  nattch: number;
}

export interface SemStat extends IpcPerm {
  id: number;
  nsems: number;
}

export interface MsgStat extends IpcPerm {
  id: number;
  qnum: number;
  qbytes: number;
}

/** The highest index in use (SHM_INFO), or -1. */
export function shmMaxIndex(): number {
  return syscall('shmctl(SHM_INFO)', NR.shmctl, 0, IPC.SHM_INFO, Buffer.alloc(64));
}

/** SHM_STAT of index `idx`: undefined where no segment is (EINVAL). */
export function shmStatIndex(idx: number): ShmStat | undefined {
  const b = Buffer.alloc(112);
  let id: number;
  try {
    id = syscall('shmctl(SHM_STAT)', NR.shmctl, idx, IPC.SHM_STAT, b);
  } catch (e) {
    if (SysError.is(e, 'EINVAL')) return undefined;
    throw e;
  }
  return { id, ...readPerm(b), size: b.readBigUInt64LE(48), nattch: Number(b.readBigUInt64LE(88)) };
}

export function shmStat(id: number): ShmStat {
  const b = Buffer.alloc(112);
  syscall('shmctl(IPC_STAT)', NR.shmctl, id, IPC.STAT, b);
  return { id, ...readPerm(b), size: b.readBigUInt64LE(48), nattch: Number(b.readBigUInt64LE(88)) };
}

export function shmGet(key: number, size: bigint, flags: number): number {
  return syscall('shmget', NR.shmget, key, size, flags);
}

export function shmSet(id: number, p: Pick<IpcPerm, 'uid' | 'gid' | 'mode'>): void {
  const b = Buffer.alloc(112);
  syscall('shmctl(IPC_STAT)', NR.shmctl, id, IPC.STAT, b);
  writePerm(b, p);
  syscall('shmctl(IPC_SET)', NR.shmctl, id, IPC.SET, b);
}

export function shmCtl(id: number, cmd: number): void {
  syscall('shmctl', NR.shmctl, id, cmd, 0);
}

/** shmat() in cryo; returns the address. */
export function shmAttach(id: number, flags: number): bigint {
  return BigInt(syscall('shmat', NR.shmat, id, 0, flags));
}

export function shmDetach(addr: bigint): void {
  syscall('shmdt', NR.shmdt, addr);
}

export function semMaxIndex(): number {
  return syscall('semctl(SEM_INFO)', NR.semctl, 0, 0, IPC.SEM_INFO, Buffer.alloc(64));
}

export function semStatIndex(idx: number): SemStat | undefined {
  const b = Buffer.alloc(104);
  let id: number;
  try {
    id = syscall('semctl(SEM_STAT)', NR.semctl, idx, 0, IPC.SEM_STAT, b);
  } catch (e) {
    if (SysError.is(e, 'EINVAL')) return undefined;
    throw e;
  }
  return { id, ...readPerm(b), nsems: Number(b.readBigUInt64LE(80)) };
}

export function semGet(key: number, nsems: number, flags: number): number {
  return syscall('semget', NR.semget, key, nsems, flags);
}

export function semSet(id: number, p: Pick<IpcPerm, 'uid' | 'gid' | 'mode'>): void {
  const b = Buffer.alloc(104);
  syscall('semctl(IPC_STAT)', NR.semctl, id, 0, IPC.STAT, b);
  writePerm(b, p);
  syscall('semctl(IPC_SET)', NR.semctl, id, 0, IPC.SET, b);
}

/** GETALL: the values, as u16 each. */
export function semGetAll(id: number, nsems: number): Buffer {
  const b = Buffer.alloc(Math.max(2 * nsems, 2));
  syscall('semctl(GETALL)', NR.semctl, id, 0, IPC.SEM_GETALL, b);
  return b.subarray(0, 2 * nsems);
}

export function semSetAll(id: number, values: Uint8Array): void {
  syscall('semctl(SETALL)', NR.semctl, id, 0, IPC.SEM_SETALL, Buffer.from(values));
}

export function msgMaxIndex(): number {
  return syscall('msgctl(MSG_INFO)', NR.msgctl, 0, IPC.MSG_INFO, Buffer.alloc(64));
}

function readMsqid(id: number, b: Buffer): MsgStat {
  return { id, ...readPerm(b), qnum: Number(b.readBigUInt64LE(80)), qbytes: Number(b.readBigUInt64LE(88)) };
}

export function msgStatIndex(idx: number): MsgStat | undefined {
  const b = Buffer.alloc(120);
  let id: number;
  try {
    id = syscall('msgctl(MSG_STAT)', NR.msgctl, idx, IPC.MSG_STAT, b);
  } catch (e) {
    if (SysError.is(e, 'EINVAL')) return undefined;
    throw e;
  }
  return readMsqid(id, b);
}

export function msgGet(key: number, flags: number): number {
  return syscall('msgget', NR.msgget, key, flags);
}

/** IPC_SET of owner, mode and the queue's byte limit. */
export function msgSet(id: number, p: Pick<IpcPerm, 'uid' | 'gid' | 'mode'> & { qbytes: number }): void {
  const b = Buffer.alloc(120);
  syscall('msgctl(IPC_STAT)', NR.msgctl, id, IPC.STAT, b);
  writePerm(b, p);
  b.writeBigUInt64LE(BigInt(p.qbytes), 88);
  syscall('msgctl(IPC_SET)', NR.msgctl, id, IPC.SET, b);
}

export function msgStat(id: number): MsgStat {
  const b = Buffer.alloc(120);
  syscall('msgctl(IPC_STAT)', NR.msgctl, id, IPC.STAT, b);
  return readMsqid(id, b);
}

/** A copy of message number `n` of the queue (MSG_COPY: it stays queued). */
export function msgCopy(id: number, n: number, maxSize: number): { mtype: bigint; data: Buffer } {
  const b = Buffer.alloc(8 + maxSize);
  const len = syscall('msgrcv(MSG_COPY)', NR.msgrcv, id, b, maxSize, n, IPC.NOWAIT | IPC.MSG_COPY);
  return { mtype: b.readBigInt64LE(0), data: Buffer.from(b.subarray(8, 8 + len)) };
}

export function msgSend(id: number, mtype: bigint, data: Uint8Array): void {
  const b = Buffer.alloc(8 + data.length);
  b.writeBigInt64LE(mtype, 0);
  b.set(data, 8);
  syscall('msgsnd', NR.msgsnd, id, b, data.length, IPC.NOWAIT);
}

// ---- POSIX message queues (struct mq_attr: four longs, then four reserved) ----

export interface MqAttr {
  flags: number;
  maxmsg: number;
  msgsize: number;
  curmsgs: number;
}

/** mq_open of `name` (without the leading slash, as the system call takes it); with `attr` for O_CREAT. */
export function mqOpen(name: string, oflag: number, mode = 0, attr?: Pick<MqAttr, 'maxmsg' | 'msgsize'>): number {
  let a: Buffer | number = 0;
  if (attr) {
    a = Buffer.alloc(64);
    a.writeBigInt64LE(BigInt(attr.maxmsg), 8);
    a.writeBigInt64LE(BigInt(attr.msgsize), 16);
  }
  return syscall(`mq_open(/${name})`, NR.mq_open, Buffer.from(`${name}\0`), oflag, mode, a);
}

export function mqGetattr(fd: number): MqAttr {
  const b = Buffer.alloc(64);
  syscall('mq_getsetattr', NR.mq_getsetattr, fd, 0, b);
  return { flags: Number(b.readBigInt64LE(0)), maxmsg: Number(b.readBigInt64LE(8)), msgsize: Number(b.readBigInt64LE(16)), curmsgs: Number(b.readBigInt64LE(24)) };
}

/** The first message (highest priority, oldest): on a queue opened O_NONBLOCK, EAGAIN when empty. */
export function mqReceive(fd: number, msgsize: number): { prio: number; data: Buffer } {
  const b = Buffer.alloc(Math.max(msgsize, 1));
  const prio = Buffer.alloc(4);
  const n = syscall('mq_timedreceive', NR.mq_timedreceive, fd, b, b.length, prio, 0);
  return { prio: prio.readUInt32LE(0), data: Buffer.from(b.subarray(0, n)) };
}

export function mqSend(fd: number, data: Uint8Array, prio: number): void {
  syscall('mq_timedsend', NR.mq_timedsend, fd, Buffer.from(data), data.length, prio, 0);
}

export function setns(fd: number, nstype: number): void {
  syscall('setns', NR.setns, fd, nstype);
}

/**
 * Runs `fn` with cryo's calling thread in the namespace `nsPath` (a uts, ipc or
 * cgroup namespace: namespaces a thread of a multi-threaded
 * process may enter alone; for a pid namespace, the one its children are born
 * in), and puts the thread back into its own after, whatever
 * happens. System calls and /proc/sys opened by this thread see that namespace.
 */
export function inNamespace<T>(nsPath: string, kind: 'uts' | 'ipc' | 'cgroup' | 'pid', fn: () => T): T {
  const nstype = { uts: 0x4000000, ipc: 0x8000000, cgroup: 0x2000000, pid: 0x20000000 }[kind];
  const back = openSync(`/proc/thread-self/ns/${kind === 'pid' ? 'pid_for_children' : kind}`, 'r');
  try {
    const target = openSync(nsPath, 'r');
    try {
      setns(target, nstype);
    } finally {
      closeSync(target);
    }
    try {
      return fn();
    } finally {
      setns(back, nstype);
    }
  } finally {
    closeSync(back);
  }
}
