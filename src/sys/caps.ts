// Capabilities of this process: capget/capset of the calling thread (node's
// main thread, where cryo runs), securebits, the ambient set.
import { syscall } from './libc.js';
import { NR, PR, PR_CAP_AMBIENT_OP } from './nr.js';

/** Capability numbers cryo reasons about (linux/capability.h). */
export const CAP = {
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, SETGID: 6, SETUID: 7, SETPCAP: 8,
  NET_ADMIN: 12, SYS_PTRACE: 19, SYS_ADMIN: 21, SYS_RESOURCE: 24, CHECKPOINT_RESTORE: 40,
} as const;

const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** A thread's three capability sets, as 64-bit masks. */
export interface CapSets {
  eff: bigint;
  prm: bigint;
  inh: bigint;
}

export const capBit = (cap: number): bigint => 1n << BigInt(cap);

/** The calling thread's capability sets. */
export function capGet(): CapSets {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const data = Buffer.alloc(24);
  syscall('capget', NR.capget, hdr, data);
  const word = (off: number) => BigInt(data.readUInt32LE(off)) | (BigInt(data.readUInt32LE(off + 12)) << 32n);
  return { eff: word(0), prm: word(4), inh: word(8) };
}

/** Set the calling thread's capability sets (each may only shrink, but inh within the bounding set). */
export function capSet(c: CapSets): void {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const data = Buffer.alloc(24);
  for (let i = 0; i < 2; i++) {
    const shift = BigInt(32 * i);
    data.writeUInt32LE(Number((c.eff >> shift) & 0xffffffffn), i * 12);
    data.writeUInt32LE(Number((c.prm >> shift) & 0xffffffffn), i * 12 + 4);
    data.writeUInt32LE(Number((c.inh >> shift) & 0xffffffffn), i * 12 + 8);
  }
  syscall('capset', NR.capset, hdr, data);
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
