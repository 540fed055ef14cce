// A call made in a task with its fs uid and gid set for it (a file system of a
// user namespace refuses the ids that namespace does not map: EOVERFLOW), as
// CRIU's set_file_lease and linkat_hard do in the restored task itself.
import { capUserData, capUserHeader, decodeCapData, encodeCapData, LINUX_CAPABILITY_VERSION_3 } from '../abi/index.js';
import { NR } from '../sys/index.js';
import type { Remote } from './remote.js';

/** Scratch offsets in the task's remote area for the capability header and data, and for a struct stat and its path. */
const HDR = 4096;
const DATA = 4096 + 64;
const STAT = 16384;
const PATH = 16384 + 256;

/**
 * The owner of what task `rem` reaches as `of` (an fd: fstat; a path: stat),
 * from x86_64's struct stat (st_uid at 28, st_gid at 32); or the call's -errno.
 */
export function remoteOwner(rem: Remote, of: number | string): { uid: number; gid: number } | bigint {
  const st = rem.put(Buffer.alloc(144), STAT);
  const r = typeof of === 'number' ? rem.callRaw(NR.fstat, of, st) : rem.callRaw(NR.stat, rem.put(Buffer.from(`${of}\0`, 'latin1'), PATH), st);
  if (r < 0n) return r;
  const b = rem.mem.read(st + 28n, 8);
  return { uid: b.readUInt32LE(0), gid: b.readUInt32LE(4) };
}

/**
 * `fn` in task `rem` with fs uid `uid` and, when given, fs gid `gid`; then both
 * back, and the fs capabilities a change of fs uid drops raised again. A task
 * whose capabilities cannot be read runs nothing: `onNoCaps` is returned.
 */
export function remoteAsFsIds<T>(rem: Remote, uid: number, gid: number | undefined, fn: () => T, onNoCaps: () => T): T {
  const hdr = rem.put(capUserHeader.encode({ version: LINUX_CAPABILITY_VERSION_3 }), HDR);
  const data = rem.put(Buffer.alloc(2 * capUserData.size), DATA);
  if (rem.callRaw(NR.capget, hdr, data) < 0n) return onNoCaps();
  const caps = decodeCapData(rem.mem.read(data, 2 * capUserData.size));
  // setfsuid/setfsgid return the old value, never an error.
  const oldGid = gid === undefined ? undefined : rem.callRaw(NR.setfsgid, gid);
  const oldUid = rem.callRaw(NR.setfsuid, uid);
  try {
    return fn();
  } finally {
    rem.callRaw(NR.setfsuid, oldUid);
    if (oldGid !== undefined) rem.callRaw(NR.setfsgid, oldGid);
    rem.put(encodeCapData(caps), DATA);
    rem.callRaw(NR.capset, rem.put(capUserHeader.encode({ version: LINUX_CAPABILITY_VERSION_3 }), HDR), data);
  }
}
