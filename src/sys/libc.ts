// The one place that talks to koffi. Every wrapper reads errno at once, in the same call.
import { readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Koffi from 'koffi';
import { SysError, EINTR } from './errors.js';
import { F, KCMP, NR, O } from './nr.js';

type Fn = ReturnType<ReturnType<typeof Koffi.load>['func']>;

interface Native {
  koffi: typeof Koffi;
  rawSyscall: Fn;
  rawWaitpid: Fn;
  /** glibc's own, which change the ids of every thread of the process (setxid broadcast). */
  setresuid: Fn;
  setresgid: Fn;
  setgroups: Fn;
  mmap: Fn;
  munmap: Fn;
  cpuidProto: ReturnType<typeof Koffi.proto>;
}

/**
 * koffi and libc, loaded at the first system call rather than at import: the
 * start-up snapshot bin/cryo runs from cannot hold a native module. Loaded
 * once; nothing else in cryo is kept between calls.
 */
const native: () => Native = (() => {
  let n: Native | undefined;
  return () => {
    if (n) return n;
    const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
    const libc = koffi.load('libc.so.6');
    n = {
      koffi,
      // Three trailing pointer parameters that the kernel never sees (glibc's syscall()
      // takes six arguments): koffi holds whatever is passed there alive for the whole
      // call. A Buffer whose address alone went into an argument could otherwise be
      // collected by V8 while the kernel reads or writes it.
      rawSyscall: libc.func(
        'long syscall(long nr, uint64 a, uint64 b, uint64 c, uint64 d, uint64 e, uint64 f, void *k1, void *k2, void *k3)',
      ),
      rawWaitpid: libc.func('int waitpid(int pid, void *status, int options)'),
      setresuid: libc.func('int setresuid(uint32 r, uint32 e, uint32 s)'),
      setresgid: libc.func('int setresgid(uint32 r, uint32 e, uint32 s)'),
      setgroups: libc.func('int setgroups(size_t n, void *list)'),
      // Returning koffi's own pointer, which koffi.call() takes (cpuid below).
      mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
      munmap: libc.func('int munmap(void *addr, size_t len)'),
      cpuidProto: koffi.proto('void cryo_cpuid(uint32 leaf, uint32 subleaf, _Out_ uint32 *out)'),
    };
    return n;
  };
})();

/**
 * A system call argument: an integer, or a Buffer/TypedArray that is passed by
 * address (and kept alive until the call returns).
 */
export type Arg = number | bigint | Uint8Array;

/** Address of a Buffer's memory, for building iovecs and pointer arguments. */
export function addressOf(buf: Uint8Array): bigint {
  return native().koffi.address(buf) as bigint;
}

const MAX_KEEP = 3;

/**
 * Marshal arguments: the first six are the system call's, buffers among them are
 * passed by address; any further arguments must be buffers that are only to be
 * kept alive (e.g. the buffers an iovec points at).
 */
function marshal(args: Arg[]): { a: Array<number | bigint>; keep: Array<Uint8Array | null> } {
  const a: Array<number | bigint> = [0, 0, 0, 0, 0, 0];
  const keep: Array<Uint8Array | null> = [null, null, null];
  let k = 0;
  const hold = (b: Uint8Array) => {
    if (k >= MAX_KEEP) throw new Error('syscall: more than 3 buffers to keep alive');
    keep[k++] = b;
  };
  args.forEach((x, i) => {
    if (x instanceof Uint8Array) {
      hold(x);
      if (i < 6) a[i] = addressOf(x);
    } else if (i < 6) {
      a[i] = x;
    } else {
      throw new Error('syscall: only buffers may follow the six arguments');
    }
  });
  return { a, keep };
}

/**
 * Raw system call in this process. Returns the result as a number; throws
 * SysError on -1 with errno read immediately.
 */
export function syscall(name: string, nr: number, ...args: Arg[]): number {
  const { a, keep } = marshal(args);
  const { rawSyscall, koffi } = native();
  for (;;) {
    const r = rawSyscall(nr, a[0], a[1], a[2], a[3], a[4], a[5], keep[0], keep[1], keep[2]) as number | bigint;
    if (r === -1 || r === -1n) {
      const errno = koffi.errno();
      if (errno === EINTR && name !== 'waitpid') continue;
      throw new SysError(name, errno);
    }
    return Number(r);
  }
}

/** Like syscall() but returns -errno instead of throwing (for probing). */
export function trySyscall(nr: number, ...args: Arg[]): number {
  const { a, keep } = marshal(args);
  const { rawSyscall, koffi } = native();
  const r = rawSyscall(nr, a[0], a[1], a[2], a[3], a[4], a[5], keep[0], keep[1], keep[2]) as number | bigint;
  if (r === -1 || r === -1n) return -koffi.errno();
  return Number(r);
}

/** waitpid(2); returns pid 0 with WNOHANG when nothing changed. Retries on EINTR. */
/** clock_gettime(2): the clock's value in nanoseconds, in the calling thread's time namespace. */
export function clockGettime(clock: number): bigint {
  const ts = Buffer.alloc(16);
  syscall('clock_gettime', NR.clock_gettime, clock, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

export function waitpid(pid: number, flags: number): { pid: number; status: number } {
  const st = Buffer.alloc(4);
  const { rawWaitpid, koffi } = native();
  for (;;) {
    const r = rawWaitpid(pid, st, flags) as number;
    if (r === -1) {
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      throw new SysError('waitpid', errno, `pid ${pid}`);
    }
    return { pid: r, status: st.readInt32LE(0) };
  }
}

export function kill(pid: number, sig: number): void {
  // 0 and negative pids signal whole process groups, cryo's own among them: never meant.
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`kill: refusing pid ${pid}`);
  syscall('kill', NR.kill, pid, sig);
}

export function pidfdOpen(pid: number): number {
  return syscall('pidfd_open', NR.pidfd_open, pid, 0);
}

export function pidfdGetfd(pidfd: number, fd: number): number {
  return syscall('pidfd_getfd', NR.pidfd_getfd, pidfd, fd, 0);
}

/** A new fd of the same open file description, close-on-exec. */
export function dupCloexec(fd: number): number {
  return syscall('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, fd, F.DUPFD_CLOEXEC, 0);
}

/**
 * --close FD: let go of a descriptor the caller passed down. Node marks every
 * inherited fd close-on-exec at start and opens its own among them, so the
 * runtime's are told apart by kind: its event loop (anon inodes: epoll, eventfd)
 * and its self-pipes (both ends held here) stay. 0-2 get /dev/null instead, so
 * that later writes to them go nowhere rather than into whatever takes the
 * number next. Returns whether anything was done.
 */
export function closeInherited(fd: number): boolean {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false; // not open: nothing to close, as close(2) would find
  }
  if (fd > 2) {
    if (link.startsWith('anon_inode:')) return false;
    if (link.startsWith('pipe:') && readdirSync('/proc/self/fd').some((o) => Number(o) !== fd && linkOf(Number(o)) === link)) return false;
    return trySyscall(NR.close, fd) === 0;
  }
  const nul = syscall('open(/dev/null)', NR.open, Buffer.from('/dev/null\0'), O.RDWR | O.CLOEXEC, 0);
  try {
    return trySyscall(NR.dup2, nul, fd) === fd;
  } finally {
    trySyscall(NR.close, nul);
  }
}

function linkOf(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

export function memfdCreate(name: string, flags: number): number {
  return syscall('memfd_create', NR.memfd_create, Buffer.from(name + '\0'), flags);
}

export function prctl(option: number, a2: Arg = 0, a3: Arg = 0, a4: Arg = 0, a5: Arg = 0): number {
  return syscall('prctl', NR.prctl, option, a2, a3, a4, a5);
}

/** get_robust_list(2) of another task. */
export function getRobustList(tid: number): { head: bigint; len: bigint } {
  const head = Buffer.alloc(8);
  const len = Buffer.alloc(8);
  syscall('get_robust_list', NR.get_robust_list, tid, head, len);
  return { head: head.readBigUInt64LE(0), len: len.readBigUInt64LE(0) };
}

export function kcmp(pid1: number, pid2: number, type: number, idx1: Arg, idx2: Arg): number {
  return syscall('kcmp', NR.kcmp, pid1, pid2, type, idx1, idx2);
}


/**
 * kcmp(KCMP.EPOLL_TFD): the file at `fd` of `pid1` against the target of epoll
 * `efd` of `pid2` registered at fd number `tfd` (the `toff`-th such one, in
 * fdinfo order). 0 when they are one file, 1 or 2 when not, else -errno
 * (ENOENT: the epoll has no such target; EBADF: no such fd).
 */
export function kcmpEpollTfd(pid1: number, fd: number, pid2: number, efd: number, tfd: number, toff: number): number {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(efd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return trySyscall(NR.kcmp, pid1, pid2, KCMP.EPOLL_TFD, fd, slot);
}

/**
 * process_vm_readv(2) of one remote range into `buf`; returns bytes read (may be
 * short at an unreadable page).
 */
export function processVmRead(pid: number, buf: Uint8Array, remote: bigint, len = buf.length): number {
  const iov = Buffer.alloc(32);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  iov.writeBigUInt64LE(remote, 16);
  iov.writeBigUInt64LE(BigInt(len), 24);
  return syscall('process_vm_readv', NR.process_vm_readv, pid, iov, 1, addressOf(iov) + 16n, 1, 0, buf);
}

/** process_vm_writev(2) of `buf` to `remote` in `pid` (also this process: no /proc/self/mem,
 * which a worker that took a client's uid may not open). Returns bytes written. */
export function processVmWrite(pid: number, buf: Uint8Array, remote: bigint): number {
  const iov = Buffer.alloc(32);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  iov.writeBigUInt64LE(remote, 16);
  iov.writeBigUInt64LE(BigInt(buf.length), 24);
  return syscall('process_vm_writev', NR.process_vm_writev, pid, iov, 1, addressOf(iov) + 16n, 1, 0, buf);
}

/** x86_64 SysV: cpuid(leaf = edi, subleaf = esi, out = rdx): eax, ebx, ecx, edx into out[0..3]. */
const CPUID_CODE = Buffer.from([
  0x53, //                   push rbx (callee-saved; cpuid writes it)
  0x49, 0x89, 0xd0, //       mov r8, rdx
  0x89, 0xf8, //             mov eax, edi
  0x89, 0xf1, //             mov ecx, esi
  0x0f, 0xa2, //             cpuid
  0x41, 0x89, 0x00, //       mov [r8], eax
  0x41, 0x89, 0x58, 0x04, // mov [r8+4], ebx
  0x41, 0x89, 0x48, 0x08, // mov [r8+8], ecx
  0x41, 0x89, 0x50, 0x0c, // mov [r8+12], edx
  0x5b, //                   pop rbx
  0xc3, //                   ret
]);

/**
 * The CPUID instruction, run in this process (as CRIU's compel does): the XSAVE
 * layout that ptrace hands out is the CPU's own (leaf 0xD), and differs between
 * vendors. The code goes into a page of its own, made executable, and out again.
 */
export function cpuid(leaf: number, subleaf = 0): [eax: number, ebx: number, ecx: number, edx: number] {
  const { koffi, mmap, munmap, cpuidProto } = native();
  const PAGE = 4096;
  const page = mmap(null, PAGE, 3 /* rw */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0) as unknown;
  const addr = koffi.address(page) as bigint;
  if (addr === 0xffff_ffff_ffff_ffffn) throw new SysError('mmap', koffi.errno());
  try {
    koffi.encode(page, koffi.array('uint8_t', CPUID_CODE.length), Array.from(CPUID_CODE));
    syscall('mprotect', NR.mprotect, addr, PAGE, 5 /* r-x */);
    const out = new Uint32Array(4);
    koffi.call(page, cpuidProto, leaf, subleaf, out);
    return [out[0]!, out[1]!, out[2]!, out[3]!];
  } finally {
    munmap(page, PAGE);
  }
}

/**
 * Every thread of this process takes these ids and groups (glibc's setgroups,
 * setresgid and setresuid, which the raw system calls would do for the calling
 * thread only: node's other threads would stay root).
 */
export function setProcessIds(uid: number, gid: number, groups: number[]): void {
  const n = native();
  const list = Buffer.alloc(4 * Math.max(1, groups.length));
  groups.forEach((g, i) => list.writeUInt32LE(g, 4 * i));
  const step = (name: string, r: number) => {
    if (r !== 0) throw new SysError(name, n.koffi.errno());
  };
  step('setgroups', n.setgroups(groups.length, list) as number);
  step('setresgid', n.setresgid(gid, gid, gid) as number);
  step('setresuid', n.setresuid(uid, uid, uid) as number);
}

/** pidfd_send_signal(2): a signal to exactly the process of `pidfd`. */
export function pidfdSendSignal(pidfd: number, sig: number): void {
  syscall('pidfd_send_signal', NR.pidfd_send_signal, pidfd, sig, 0, 0);
}
