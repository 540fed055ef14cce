// userfaultfd ioctls, and mapping a file into cryo for UFFDIO_COPY's source.
// UFFDIO_COPY puts freshly allocated pages straight into another task's address
// space, filled from our buffer: no page fault and no zeroing in the target.
import { syscall, trySyscall } from './libc.js';
import { NR } from './nr.js';
import { uffdioApi, uffdioCopy, uffdioRange, uffdioRegister } from '../abi/index.js';

export const UFFD_API = 0xaan;
export const UFFDIO_API = 0xc018aa3f; // _IOWR(0xAA, 0x3F, struct uffdio_api)
const UFFDIO_REGISTER = 0xc020aa00;
const UFFDIO_UNREGISTER = 0x8010aa01;
const UFFDIO_COPY = 0xc028aa03;
/** On /dev/userfaultfd: a new userfaultfd (_IO(0xAA, 0x00)). */
export const USERFAULTFD_IOC_NEW = 0xaa00;
const UFFDIO_WRITEPROTECT = 0xc018aa06; // _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
const UFFDIO_REGISTER_MODE_MISSING = 1n;
const UFFDIO_REGISTER_MODE_WP = 2n;
const UFFDIO_WRITEPROTECT_MODE_WP = 1n;
/** Writes resolve write-protect faults themselves: nothing is delivered, PAGEMAP_SCAN shows them (6.7+). */
export const UFFD_FEATURE_WP_ASYNC = 1n << 15n;
const EAGAIN = 11;

export function uffdApi(fd: number): void {
  syscall('ioctl(UFFDIO_API)', NR.ioctl, fd, UFFDIO_API, uffdioApi.encode({ api: UFFD_API }));
}

/** UFFDIO_API asking for `features`; throws (EINVAL) when the kernel lacks one. */
export function uffdApiFeatures(fd: number, features: bigint): void {
  syscall('ioctl(UFFDIO_API)', NR.ioctl, fd, UFFDIO_API, uffdioApi.encode({ api: UFFD_API, features }));
}

/** Register [start, start+len) for write-protect tracking; returns the errno (EBUSY: another uffd has it), or 0. */
export function uffdRegisterWp(fd: number, start: bigint, len: bigint): number {
  const b = uffdioRegister.encode({ range: { start, len }, mode: UFFDIO_REGISTER_MODE_WP });
  const r = trySyscall(NR.ioctl, fd, UFFDIO_REGISTER, b);
  return r < 0 ? -r : 0;
}

/** Write-protect [start, start+len) (or lift the protection): the next write marks the page written. */
export function uffdWriteProtect(fd: number, start: bigint, len: bigint, protect = true): void {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0n, 16);
  syscall('ioctl(UFFDIO_WRITEPROTECT)', NR.ioctl, fd, UFFDIO_WRITEPROTECT, b);
}

export function uffdRegister(fd: number, start: bigint, len: bigint): void {
  const b = uffdioRegister.encode({ range: { start, len }, mode: UFFDIO_REGISTER_MODE_MISSING });
  syscall('ioctl(UFFDIO_REGISTER)', NR.ioctl, fd, UFFDIO_REGISTER, b);
}

export function uffdUnregister(fd: number, start: bigint, len: bigint): void {
  syscall('ioctl(UFFDIO_UNREGISTER)', NR.ioctl, fd, UFFDIO_UNREGISTER, uffdioRange.encode({ start, len }));
}

/** Copy `len` bytes from our address `src` to `dst` in the uffd's address space. */
export function uffdCopy(fd: number, dst: bigint, src: bigint, len: bigint): void {
  const b = Buffer.alloc(uffdioCopy.size);
  while (len > 0n) {
    uffdioCopy.encode({ dst, src, len }, b);
    const r = trySyscall(NR.ioctl, fd, UFFDIO_COPY, b);
    const copied = uffdioCopy.decode(b).copy;
    if (r === 0) return;
    if (r === -EAGAIN && copied > 0n) {
      dst += copied;
      src += copied;
      len -= copied;
      continue;
    }
    syscall('ioctl(UFFDIO_COPY)', NR.ioctl, fd, UFFDIO_COPY, b); // throws with errno
  }
}

const PROT_READ = 1;
const MAP_SHARED = 1;
const MAP_POPULATE = 0x8000;

/** mmap a window of a file read-only into cryo; returns its address. */
export function mapFileWindow(fd: number, offset: number, len: number): bigint {
  return BigInt(syscall('mmap', NR.mmap, 0, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, offset));
}

export function unmap(addr: bigint, len: number): void {
  syscall('munmap', NR.munmap, addr, len);
}
