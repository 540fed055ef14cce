// File locks (--file-locks): flock, POSIX and OFD locks and leases, from the
// "lock:" lines of /proc/PID/fdinfo, in filelocks.img as CRIU keeps them; taken
// again by the task itself on restore (a POSIX lock belongs to the process that
// takes it, a lease's owner is who set it).
import { create, FileLockEntrySchema, type FileLockEntry } from '../../images/index.js';
import { closeSync } from 'node:fs';
import { NR, O, LOCK, AT_FDCWD, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';
import { remoteAsFsIds, remoteOwner } from '../../tracer/fsids.js';
import { flock } from '../../abi/index.js';

const FL_POSIX = 1;
const FL_FLOCK = 2;
const FL_OFD = 4;
const FL_LEASE = 8;
/** CRIU's mark of a lease being broken (file-lock.h); the rest of the type is the target type. */
export const LEASE_BREAKING = 4;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const F_SETLK = 6;
const F_SETOWN = 8;
const F_GETSIG = 11;
const F_OFD_SETLK = 37;
const F_SETLEASE = 1024;
const LINE = /^lock:\s*\d+:\s*(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+(\S+)\s+(\d+)\s+(EOF|\d+)\s*$/;
const KINDS: Record<string, number> = { FLOCK: FL_FLOCK, POSIX: FL_POSIX, OFDLCK: FL_OFD, LEASE: FL_LEASE };
const TYPES: Record<string, number> = { READ: F_RDLCK, WRITE: F_WRLCK, UNLCK: F_UNLCK };

/**
 * Locks this fd's fdinfo shows, as CRIU's filelocks.img keeps them: flock, POSIX,
 * OFD locks and leases. A POSIX lock belongs to a process (only `pid`'s own are
 * taken, once per file); the others to the open file description `fileId` (taken
 * once however many fds share it). `seen` drops the ones already taken. A lock
 * line cryo cannot read (a delegation, a mandatory lock) fails the dump.
 */
export function parseLocks(fdinfo: string, pid: number, vpid: number, fd: number, fileId: number, seen: Set<string>): FileLockEntry[] {
  const out: FileLockEntry[] = [];
  for (const line of fdinfo.split('\n')) {
    if (!line.startsWith('lock:')) continue;
    // Empty when the owner is outside our pid namespace (kernels before 4.19).
    if (line.slice(5).trim() === '') continue;
    const m = LINE.exec(line);
    const kind = m ? KINDS[m[1]!] : undefined;
    const type = m ? TYPES[m[3]!] : undefined;
    const how = m?.[2];
    const known = kind === FL_LEASE ? how === 'ACTIVE' || how === 'BREAKING' : how === 'ADVISORY';
    if (!m || kind === undefined || type === undefined || !known) {
      throw new CryoError(`task ${pid}: fd ${fd} holds a lock cryo cannot dump (${line.slice(5).trim()})`);
    }
    if (kind === FL_POSIX && Number(m[4]) !== pid) continue; // another process's
    const start = BigInt(m[6]!);
    const key = kind === FL_POSIX ? `posix:${pid}:${m[5]}:${start}:${m[7]}` : `${kind}:${fileId}:${start}:${m[7]}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(create(FileLockEntrySchema, {
      // A lease being broken: the type shown is already the target one (as F_GETLEASE tells).
      flag: kind, type: kind === FL_LEASE && how === 'BREAKING' ? type | LEASE_BREAKING : type, pid: vpid, fd, start,
      len: m[7] === 'EOF' ? 0n : BigInt(m[7]!) + 1n - start,
    }));
  }
  return out;
}

/**
 * Take the task's locks again; a lock someone else holds now is an error. A lease
 * is set again by the task; one that was being broken is set as it was before
 * (a read lease on a read-only fd, else a write lease) and broken again by an
 * open of cryo's that conflicts with it (O_WRONLY breaks it to none, O_RDONLY to
 * a read lease), as CRIU does; nobody is told of that break (the file has no
 * owner while it breaks; its own comes back after).
 */
export function restoreLocks(rem: Remote, locks: FileLockEntry[], reown: (fd: number) => void): void {
  for (const l of locks) {
    let r: bigint;
    if (l.flag & FL_LEASE) {
      restoreLease(rem, l, reown);
      continue;
    }
    if (l.flag & FL_FLOCK) {
      r = rem.callRaw(NR.flock, l.fd, (l.type === F_WRLCK ? LOCK.EX : LOCK.SH) | LOCK.NB);
    } else {
      const f = flock.encode({ l_type: l.type, l_whence: 0 /* SEEK_SET */, l_start: l.start, l_len: l.len });
      r = rem.callRaw(NR.fcntl, l.fd, l.flag & FL_OFD ? F_OFD_SETLK : F_SETLK, rem.put(f, 4000));
    }
    if (r < 0n) throw new CryoError(`task ${rem.pid}: cannot take its lock on fd ${l.fd} again (errno ${-r}): held by someone else?`);
  }
}

/**
 * F_SETLEASE by the task; refused (EACCES: it is not the file's owner, and in a
 * user namespace its ids are no one's until its creds come back), again as the
 * file's owner, as CRIU's set_file_lease: its fs uid set to it for the call,
 * then back, and the fs capabilities that change dropped raised again.
 */
function setLease(rem: Remote, fd: number, type: number): bigint {
  const r = rem.callRaw(NR.fcntl, fd, F_SETLEASE, type);
  if (r !== -13n) return r;
  const o = remoteOwner(rem, fd);
  if (typeof o === 'bigint') return o;
  return remoteAsFsIds(rem, o.uid, undefined, () => rem.callRaw(NR.fcntl, fd, F_SETLEASE, type), () => r);
}

function restoreLease(rem: Remote, l: FileLockEntry, reown: (fd: number) => void): void {
  const fail = (what: string, errno: bigint | number) => new CryoError(`task ${rem.pid}: cannot ${what} on fd ${l.fd} again (errno ${errno})`);
  if (!(l.type & LEASE_BREAKING)) {
    const r = setLease(rem, l.fd, l.type);
    if (r < 0n) throw fail(`take its ${l.type === F_WRLCK ? 'write' : 'read'} lease`, -r);
    return;
  }
  const target = l.type & ~LEASE_BREAKING;
  if (target !== F_UNLCK && target !== F_RDLCK) throw new CryoError(`task ${rem.pid}: fd ${l.fd}: a lease being broken to type ${target}`);
  const fl = rem.callRaw(NR.fcntl, l.fd, 3 /* F_GETFL */);
  if (fl < 0n) throw fail('read the flags of its leased file', -fl);
  const before = (Number(fl) & O.ACCMODE) === O.RDONLY ? F_RDLCK : F_WRLCK;
  // The break signals the file's owner, who was told before the dump: no owner
  // while it breaks again (it gets its own back below).
  const cleared = rem.callRaw(NR.fcntl, l.fd, F_SETOWN, 0);
  if (cleared < 0n) throw fail('clear the owner of its leased file', -cleared);
  const r = setLease(rem, l.fd, before);
  if (r < 0n) throw fail('take its lease', -r);
  const path = `/proc/${rem.pid}/fd/${l.fd}`;
  const n = trySyscall(NR.openat, AT_FDCWD, Buffer.from(path + '\0'), (target === F_UNLCK ? O.WRONLY : O.RDONLY) | O.NONBLOCK | O.CLOEXEC, 0);
  if (n >= 0) {
    closeSync(n);
    throw new CryoError(`task ${rem.pid}: fd ${l.fd}: its lease did not break again (nothing conflicts with it)`);
  }
  if (n !== -EWOULDBLOCK) throw fail('break its lease', -n);
  // Where a lease takes the file for its setter (older kernels), the setter was told: drop that.
  const sig = Number(rem.callRaw(NR.fcntl, l.fd, F_GETSIG)) || SIG_IO;
  const set = Buffer.alloc(8);
  set.writeBigUInt64LE(1n << BigInt(sig - 1));
  const zero = Buffer.alloc(16);
  rem.callRaw(NR.rt_sigtimedwait, rem.put(set, 0), 0, rem.put(zero, 64), 8);
  reown(l.fd);
}

const EWOULDBLOCK = 11;
const SIG_IO = 29;
