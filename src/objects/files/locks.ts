// File locks (--file-locks): flock, POSIX and OFD locks, from the "lock:" lines of
// /proc/PID/fdinfo, in filelocks.img as CRIU keeps them; taken again by the task
// itself on restore (a POSIX lock belongs to the process that takes it).
import { create, FileLockEntrySchema, type FileLockEntry } from '../../images/index.js';
import { NR } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Remote } from '../../tracer/remote.js';

const FL_POSIX = 1;
const FL_FLOCK = 2;
const FL_OFD = 4;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_SETLK = 6;
const F_OFD_SETLK = 37;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LINE = /^lock:\s*\d+:\s*(FLOCK|POSIX|OFDLCK)\s+(ADVISORY|MANDATORY)\s+(READ|WRITE)\s+(-?\d+)\s+(\S+)\s+(\d+)\s+(EOF|\d+)/gm;

/** Locks this fd's fdinfo shows; `seen` drops the ones already taken from another fd. */
export function parseLocks(fdinfo: string, pid: number, vpid: number, fd: number, seen: Set<string>): FileLockEntry[] {
  const out: FileLockEntry[] = [];
  for (const m of fdinfo.matchAll(LINE)) {
    const kind = m[1] === 'FLOCK' ? FL_FLOCK : m[1] === 'POSIX' ? FL_POSIX : FL_OFD;
    if (kind === FL_POSIX && Number(m[4]) !== pid) continue; // another process's
    const start = BigInt(m[6]!);
    const key = `${kind}:${m[5]}:${start}:${m[7]}:${kind === FL_POSIX ? pid : ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(create(FileLockEntrySchema, {
      flag: kind, type: m[3] === 'READ' ? F_RDLCK : F_WRLCK, pid: vpid, fd, start,
      len: m[7] === 'EOF' ? 0n : BigInt(m[7]!) + 1n - start,
    }));
  }
  return out;
}

/** Take the task's locks again; a lock someone else holds now is an error. */
export function restoreLocks(rem: Remote, locks: FileLockEntry[]): void {
  for (const l of locks) {
    let r: bigint;
    if (l.flag & FL_FLOCK) {
      r = rem.callRaw(NR.flock, l.fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | 4 /* LOCK_NB */);
    } else {
      const f = Buffer.alloc(32); // struct flock
      f.writeInt16LE(l.type, 0);
      f.writeInt16LE(0, 2); // SEEK_SET
      f.writeBigInt64LE(l.start, 8);
      f.writeBigInt64LE(l.len, 16);
      r = rem.callRaw(NR.fcntl, l.fd, l.flag & FL_OFD ? F_OFD_SETLK : F_SETLK, rem.put(f, 4000));
    }
    if (r < 0n) throw new CryoError(`task ${rem.pid}: cannot take its lock on fd ${l.fd} again (errno ${-r}): held by someone else?`);
  }
}
