// Capabilities of this process: capget/capset of the calling thread (node's
// main thread, where cryo runs), securebits, the ambient set.
import { syscall } from './libc.js';
import { NR, PR, PR_CAP_AMBIENT_OP } from './nr.js';
import { capUserData, capUserHeader, decodeCapData, encodeCapData, LINUX_CAPABILITY_VERSION_3, type CapWords } from '../abi/index.js';

/** Capability numbers cryo reasons about (linux/capability.h). */
export const CAP = {
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, SETGID: 6, SETUID: 7, SETPCAP: 8,
  NET_ADMIN: 12, SYS_PTRACE: 19, SYS_ADMIN: 21, SYS_RESOURCE: 24, AUDIT_CONTROL: 30, CHECKPOINT_RESTORE: 40,
} as const;


/** A thread's three capability sets, as 64-bit masks. */
export type CapSets = CapWords;

export const capBit = (cap: number): bigint => 1n << BigInt(cap);

/** The calling thread's capability sets. */
export function capGet(): CapSets {
  const data = Buffer.alloc(2 * capUserData.size);
  syscall('capget', NR.capget, capUserHeader.encode({ version: LINUX_CAPABILITY_VERSION_3 }), data);
  return decodeCapData(data);
}

/** Set the calling thread's capability sets (each may only shrink, but inh within the bounding set). */
export function capSet(c: CapSets): void {
  syscall('capset', NR.capset, capUserHeader.encode({ version: LINUX_CAPABILITY_VERSION_3 }), encodeCapData(c));
}

/** Whether this thread has `cap` in its effective set. */
export function hasCap(cap: number): boolean {
  return (capGet().eff & capBit(cap)) !== 0n;
}

/** Keep the permitted set across a change of uid away from 0 (this thread). */
export function setKeepCaps(on: boolean): void {
  syscall('prctl(PR_SET_KEEPCAPS)', NR.prctl, PR.SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0);
}

/** Raise `cap` in this thread's ambient set: programs it execs keep it. */
export function ambientRaise(cap: number): void {
  syscall(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, NR.prctl, PR.CAP_AMBIENT, PR_CAP_AMBIENT_OP.RAISE, cap, 0, 0);
}

/**
 * Run `fn` with this thread's fs ids set to `uid`:`gid` (setfsuid/setfsgid),
 * its effective capabilities raised again (a change of fsuid from 0 drops the
 * fs ones), then put back. The kernel makes a link on a file system of a user
 * namespace only for a caller whose fs ids that namespace maps (EOVERFLOW
 * otherwise): the file's own owner is, as CRIU's linkat_hard.
 */
export function withFsIds<T>(uid: number, gid: number, fn: () => T): T {
  const caps = capGet();
  // setfsuid returns the old value and never fails with -1: its result is not an error.
  const oldUid = Number(syscall('setfsuid', NR.setfsuid, uid));
  const oldGid = Number(syscall('setfsgid', NR.setfsgid, gid));
  try {
    capSet({ ...caps, eff: caps.prm });
    return fn();
  } finally {
    syscall('setfsgid', NR.setfsgid, oldGid);
    syscall('setfsuid', NR.setfsuid, oldUid);
    capSet(caps);
  }
}

/** Run `fn` with this thread's effective gid set to `gid` (setresgid), then put back. */
export function withEgid<T>(gid: number, fn: () => T): T {
  const [r, e, s] = [Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)];
  syscall('getresgid', NR.getresgid, r, e, s);
  const egid = e.readUInt32LE(0);
  syscall('setresgid', NR.setresgid, -1, gid, -1);
  try {
    return fn();
  } finally {
    syscall('setresgid', NR.setresgid, -1, egid, -1);
  }
}

/**
 * A link, directory or file made by `make`, again as `owner` when the kernel
 * refuses cryo's own ids (a file system of a user namespace that maps no id of
 * cryo's: EOVERFLOW), as CRIU's linkat_hard.
 */
export function asOwnerIfRefused(make: () => unknown, owner: () => { uid: number; gid: number }): void {
  try {
    make();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code !== 'EOVERFLOW' && code !== 'EPERM') throw e;
    const o = owner();
    withFsIds(o.uid, o.gid, make);
  }
}
