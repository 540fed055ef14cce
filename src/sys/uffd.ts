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
const UFFDIO_REGISTER_MODE_MISSING = 1n;
const EAGAIN = 11;

export function uffdApi(fd: number): void {
  syscall('ioctl(UFFDIO_API)', NR.ioctl, fd, UFFDIO_API, uffdioApi.encode({ api: UFFD_API }));
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
