// The owner of a file's signals (F_SETOWN_EX, F_SETSIG, O_ASYNC): who gets SIGIO (or
// the F_SETSIG signal) when the file is ready, kept in each kind's fown field as
// CRIU keeps it (a FIFO's in the reg-file entry of its path). Read and set through
// cryo's fd of the open file description, which the task shares.
import { readFileSync } from 'node:fs';
import { create, FownEntrySchema, type FileEntry, type FownEntry } from '../../images/index.js';
import { NR, O, F, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';
import { fOwnerEx } from '../../abi/index.js';

const F_GETSIG = 11;
const F_SETSIG = 10;
const F_SETOWN_EX = 15;
const F_GETOWN_EX = 16;
const F_GETOWNER_UIDS = 17;
const O_ASYNC = 0o20000;

/** The part of a file entry that carries its owner: the one message with a fown field. */
function ownerPart(fe: FileEntry, files: (id: number) => FileEntry | undefined): { fown: FownEntry; flags?: number } | undefined {
  if (fe.fifo) {
    const reg = files(fe.fifo.regfId)?.reg;
    return reg?.fown ? (reg as { fown: FownEntry; flags: number }) : undefined;
  }
  for (const v of Object.values(fe)) {
    if (v && typeof v === 'object' && 'fown' in v) return v as { fown: FownEntry; flags?: number };
  }
  return undefined;
}

/**
 * The owner of the file `fd` (cryo's copy of a task's fd): the pid as the task sees
 * it (`vpidOf`), the uid and euid it was set with, the signal; none for O_PATH fds.
 */
export function readFown(fd: number, flags: number, vpidOf: (hostPid: number) => number): FownEntry | undefined {
  if (flags & O.PATH) return undefined;
  const signum = syscall('fcntl(F_GETSIG)', NR.fcntl, fd, F_GETSIG);
  const ex = Buffer.alloc(fOwnerEx.size);
  syscall('fcntl(F_GETOWN_EX)', NR.fcntl, fd, F_GETOWN_EX, ex);
  const { type, pid } = fOwnerEx.decode(ex);
  if (pid === 0 && signum === 0) return undefined;
  if (pid === 0) return create(FownEntrySchema, { uid: 0, euid: 0, signum, pidType: 0, pid: 0 });
  const uids = Buffer.alloc(8);
  syscall('fcntl(F_GETOWNER_UIDS)', NR.fcntl, fd, F_GETOWNER_UIDS, uids);
  return create(FownEntrySchema, { uid: uids.readUInt32LE(0), euid: uids.readUInt32LE(4), signum, pidType: type, pid: vpidOf(pid) });
}

/** Put the owner read on dump into the entry of file `id` (the entry its kind just made). */
export function setFown(entries: FileEntry[], id: number, fown: FownEntry): void {
  const byId = (x: number) => {
    for (let i = entries.length - 1; i >= 0; i--) if (entries[i]!.id === x) return entries[i];
    return undefined;
  };
  const part = ownerPart(byId(id)!, byId);
  if (part) part.fown = fown;
}

/**
 * The pid of a process (or the leader of a group) as the tree sees it, in the
 * pid namespace `depth` levels below cryo's: that NSpid of /proc/PID/status.
 */
export function nsPidOf(hostPid: number, depth: number, what: string): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${hostPid}/status`, 'utf8');
  } catch {
    throw new CryoError(`${what}: its owner ${hostPid} cannot be told in the task's pid namespace`);
  }
  const v = /^NSpid:\s*(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/)[depth];
  if (v === undefined) throw new CryoError(`${what}: its owner ${hostPid} is outside the tree's pid namespace`);
  return Number(v);
}

/**
 * Give cryo's fd of file `fe` its owner again (F_SETSIG, F_SETOWN_EX with the uid
 * and euid it was set with, for the kernel's check of who may be signalled).
 * O_ASYNC comes later, from the task (asyncOn).
 */
export function restoreFown(fd: number, fe: FileEntry, files: (id: number) => FileEntry | undefined, hostPid: (vpid: number) => number): void {
  const part = ownerPart(fe, files);
  if (!part) return;
  const f = part.fown;
  if (f?.signum) syscall('fcntl(F_SETSIG)', NR.fcntl, fd, F_SETSIG, f.signum);
  if (f?.pid) {
    const ex = fOwnerEx.encode({ type: f.pidType, pid: hostPid(f.pid) });
    asUids(f.uid, f.euid, () => syscall('fcntl(F_SETOWN_EX)', NR.fcntl, fd, F_SETOWN_EX, ex));
  }
}

/**
 * O_ASYNC, which only fcntl turns on, set by the task on its own fd: the kernel
 * keeps the fd of the call to name it in the signal's si_fd.
 */
export function asyncOn(rem: Remote, fe: FileEntry, fd: number, files: (id: number) => FileEntry | undefined): void {
  const part = ownerPart(fe, files);
  if (!((part?.flags ?? 0) & O_ASYNC)) return;
  const fl = rem.call('fcntl(F_GETFL)', NR.fcntl, fd, F.GETFL);
  rem.call('fcntl(F_SETFL, O_ASYNC)', NR.fcntl, fd, F.SETFL, fl | BigInt(O_ASYNC));
}

/** Run `fn` with real and effective uid `uid`/`euid` on this thread only (raw setresuid), as CRIU's restore_fown. */
function asUids(uid: number, euid: number, fn: () => void): void {
  const cur = Buffer.alloc(12);
  syscall('getresuid', NR.getresuid, cur.subarray(0, 4), cur.subarray(4, 8), cur.subarray(8, 12));
  const [r, e, s] = [cur.readUInt32LE(0), cur.readUInt32LE(4), cur.readUInt32LE(8)];
  if (r === uid && e === euid) return fn();
  try {
    syscall('setresuid', NR.setresuid, uid, euid, -1);
  } catch (err) {
    throw new CryoError(`cannot set a file's owner as uid ${uid}/${euid}: ${(err as Error).message}`);
  }
  try {
    fn();
  } finally {
    syscall('setresuid', NR.setresuid, r, e, s);
  }
}
