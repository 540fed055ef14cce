// Whether memory tracking (objects/track.ts) really works here, tried on cryo's
// own memory: two pages write-protected through an async userfaultfd, one then
// written by the kernel (clock_gettime into it), and PAGEMAP_SCAN must say that
// exactly that one was written. Also pidfd_getfd, by which the uffd is taken.
import { closeSync, openSync } from 'node:fs';
import {
  MAP, NR, O, PAGE_IS, PROT, UFFD_FEATURE_WP_ASYNC, UFFD_USER_MODE_ONLY, pagemapScan, pidfdGetfd, pidfdOpen,
  syscall, trySyscall, uffdApiFeatures, uffdRegisterWp, uffdWriteProtect, errnoName,
} from '../sys/index.js';

/** undefined when tracking works, else why not. */
export function probeMemTrack(): string | undefined {
  const len = 8192;
  const addr = BigInt(syscall('mmap', NR.mmap, 0, len, PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0));
  const fds: number[] = [];
  try {
    syscall('clock_gettime', NR.clock_gettime, 1, addr);
    syscall('clock_gettime', NR.clock_gettime, 1, addr + 4096n);
    const fd = trySyscall(NR.userfaultfd, O.CLOEXEC | O.NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0) return `userfaultfd() failed with ${errnoName(-fd)}`;
    fds.push(fd);
    const pidfd = pidfdOpen(process.pid);
    fds.push(pidfd);
    const copy = pidfdGetfd(pidfd, fd);
    fds.push(copy);
    try {
      uffdApiFeatures(copy, UFFD_FEATURE_WP_ASYNC);
    } catch {
      return 'userfaultfd has no UFFD_FEATURE_WP_ASYNC';
    }
    const errno = uffdRegisterWp(copy, addr, BigInt(len));
    if (errno) return `UFFDIO_REGISTER (write-protect) failed with ${errnoName(errno)}`;
    uffdWriteProtect(copy, addr, BigInt(len));
    syscall('clock_gettime', NR.clock_gettime, 1, addr + 4096n);
    const pm = openSync('/proc/self/pagemap', 'r');
    try {
      const w = pagemapScan(pm, addr, addr + BigInt(len), { inverted: 0n, mask: PAGE_IS.WRITTEN, anyof: 0n, ret: PAGE_IS.WRITTEN });
      if (!w) return 'ioctl(PAGEMAP_SCAN) is not supported';
      if (w.length !== 1 || w[0]!.start !== addr + 4096n || w[0]!.end !== addr + BigInt(len)) {
        return 'PAGEMAP_SCAN does not report exactly the page written after the write-protection';
      }
    } finally {
      closeSync(pm);
    }
    return undefined;
  } finally {
    for (const fd of fds.reverse()) closeSync(fd);
    syscall('munmap', NR.munmap, addr, len);
  }
}
