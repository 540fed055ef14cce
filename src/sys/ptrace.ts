// ptrace(2) requests used by the tracer. Each throws SysError naming the request.
import { addressOf, syscall, trySyscall, type Arg } from './libc.js';
import { SysError } from './errors.js';
import { NR, PTRACE, NT_PRSTATUS } from './nr.js';
import { Regs, USER_REGS_SIZE } from './regs.js';

/** ptrace(2); `keep`: buffers an iovec argument points at, held alive meanwhile. */
function pt(what: string, req: number, pid: number, addr: Arg = 0, data: Arg = 0, ...keep: Uint8Array[]): number {
  return syscall(`ptrace(${what}, ${pid})`, NR.ptrace, req, pid, addr, data, 0, 0, ...keep);
}

export function seize(pid: number, options: number): void {
  pt('SEIZE', PTRACE.SEIZE, pid, 0, options);
}
export function interrupt(pid: number): void {
  pt('INTERRUPT', PTRACE.INTERRUPT, pid);
}
export function setOptions(pid: number, options: number): void {
  pt('SETOPTIONS', PTRACE.SETOPTIONS, pid, 0, options);
}
export function cont(pid: number, sig = 0): void {
  pt('CONT', PTRACE.CONT, pid, 0, sig);
}
/** Resume until the next syscall entry or exit (PTRACE_SYSCALL). */
export function syscallStep(pid: number, sig = 0): void {
  pt('SYSCALL', PTRACE.SYSCALL, pid, 0, sig);
}
export function detach(pid: number, sig = 0): void {
  pt('DETACH', PTRACE.DETACH, pid, 0, sig);
}
export function getRegs(pid: number, into?: Regs): Regs {
  const r = into ?? new Regs();
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(r.buf), 0);
  iov.writeBigUInt64LE(BigInt(USER_REGS_SIZE), 8);
  pt('GETREGSET', PTRACE.GETREGSET, pid, NT_PRSTATUS, iov, r.buf);
  return r;
}
export function setRegs(pid: number, r: Regs): void {
  pt('SETREGS', PTRACE.SETREGS, pid, 0, r.buf);
}

/** PTRACE_GETREGSET into `buf`; returns the length the kernel filled. */
export function getRegset(pid: number, type: number, buf: Buffer): number {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  pt('GETREGSET', PTRACE.GETREGSET, pid, type, iov, buf);
  return Number(iov.readBigUInt64LE(8));
}
export function setRegset(pid: number, type: number, buf: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  pt('SETREGSET', PTRACE.SETREGSET, pid, type, iov, buf);
}

export function getSigmask(pid: number): bigint {
  const b = Buffer.alloc(8);
  pt('GETSIGMASK', PTRACE.GETSIGMASK, pid, 8, b);
  return b.readBigUInt64LE(0);
}
export function setSigmask(pid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  pt('SETSIGMASK', PTRACE.SETSIGMASK, pid, 8, b);
}

/** The siginfo of the signal a task is stopped for (128 bytes). */
export function getSiginfo(pid: number): Buffer {
  const b = Buffer.alloc(128);
  pt('GETSIGINFO', PTRACE.GETSIGINFO, pid, 0, b);
  return b;
}

export function getEventMsg(pid: number): bigint {
  const b = Buffer.alloc(8);
  pt('GETEVENTMSG', PTRACE.GETEVENTMSG, pid, 0, b);
  return b.readBigUInt64LE(0);
}

export interface RseqConfig {
  rseqAbiPointer: bigint;
  rseqAbiSize: number;
  signature: number;
  flags: number;
}
export function getRseqConfig(pid: number): RseqConfig {
  const b = Buffer.alloc(24);
  pt('GET_RSEQ_CONFIGURATION', PTRACE.GET_RSEQ_CONFIGURATION, pid, b.length, b);
  return {
    rseqAbiPointer: b.readBigUInt64LE(0),
    rseqAbiSize: b.readUInt32LE(8),
    signature: b.readUInt32LE(12),
    flags: b.readUInt32LE(16),
  };
}

/** PTRACE_GET_THREAD_AREA for one GDT TLS slot (user_desc, 16 bytes). */
export function getThreadArea(pid: number, idx: number): Buffer {
  const b = Buffer.alloc(16);
  pt('GET_THREAD_AREA', PTRACE.GET_THREAD_AREA, pid, idx, b);
  return b;
}

/** Pending signals queued to a thread (private) or shared, as raw siginfo records. */
export function peekSiginfo(pid: number, shared: boolean, off: number, nr: number): Buffer[] {
  const args = Buffer.alloc(16);
  args.writeBigUInt64LE(BigInt(off), 0);
  args.writeUInt32LE(shared ? 1 : 0, 8);
  args.writeInt32LE(nr, 12);
  const out = Buffer.alloc(128 * nr);
  const n = pt('PEEKSIGINFO', PTRACE.PEEKSIGINFO, pid, args, out);
  const res: Buffer[] = [];
  for (let i = 0; i < n; i++) res.push(out.subarray(i * 128, (i + 1) * 128));
  return res;
}

/**
 * PTRACE_SECCOMP_GET_FILTER: the BPF program of the thread's filter `index`
 * (0 = the newest), or null past the oldest.
 */
export function seccompFilter(tid: number, index: number): Buffer | null {
  const n = trySyscall(NR.ptrace, PTRACE.SECCOMP_GET_FILTER, tid, index, 0);
  if (n === -2 /* ENOENT */) return null;
  if (n < 0) throw new SysError(`ptrace(SECCOMP_GET_FILTER, ${tid})`, -n);
  const b = Buffer.alloc(n * 8);
  pt('SECCOMP_GET_FILTER', PTRACE.SECCOMP_GET_FILTER, tid, index, b);
  return b;
}

/** PTRACE_SECCOMP_GET_METADATA: the flags filter `index` was installed with. */
export function seccompFilterFlags(tid: number, index: number): number {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(index), 0);
  pt('SECCOMP_GET_METADATA', PTRACE.SECCOMP_GET_METADATA, tid, 16, b);
  return Number(b.readBigUInt64LE(8));
}
