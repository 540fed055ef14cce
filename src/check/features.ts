// The table of features `cryo check` probes: one row per feature, with its
// name (CRIU's --feature name where CRIU has one), purpose, kind and probe.
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import {
  F, NR, O, PR, PR_SET_MM_MAP_SIZE, PAGE_SIZE, PAGE_IS, PROT, MAP, MREMAP, MFD,
  EINVAL, ENOENT, ENOSYS, EFAULT, SysError, addressOf, syscall, trySyscall, pidfdOpen,
  pidfdGetfd, kcmpEpollTfd, netlink, IPPROTO, IPV6, CAP, LOCK, CLOCK, TFD_IOC_SET_TICKS, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OP, memfdCreate, prctl, processVmRead, pagemapScan, sock, AF, SOCK, SO, SOL_SOCKET, SIOCUNIXFILE, tun, openInRoot,
} from '../sys/index.js';
import { describe, step, errname, closeFd, Kerndat, type Step, type SeedFacts } from '../kerndat.js';
import type { FeatureKind, Feature, FeatureResult } from './feature.js';
import { cloneArgs, prctlMmMap } from '../abi/index.js';
import { probeNftLock } from '../objects/netlock.js';
import { probeTcpHalfClosed } from './tcp-half.js';
import { legacyIptables, onPath } from '../objects/netns.js';
import { probeUserns } from './userns-probe.js';
import { probeSetGroup } from './mount-probe.js';

// ---- probes ------------------------------------------------------------------------

/** Run a probe body: true/undefined is yes, a string or false is no (with why). Never throws. */
function probeWith(name: string, body: (k: Kerndat) => boolean | string | void): (k: Kerndat) => boolean {
  return (k) => {
    const s = step(() => body(k));
    if (!s.ok && s.why !== undefined) k.why.set(name, s.why);
    return s.ok;
  };
}

function fromSeed(name: string, pick: (f: SeedFacts) => Step): (k: Kerndat) => boolean {
  return probeWith(name, (k) => {
    const s = pick(k.seed());
    return s.ok || (s.why ?? false);
  });
}

/** A page of our own memory, written to, and its address. */
function ownPage(): { buf: Buffer; addr: bigint } {
  const buf = Buffer.alloc(3 * PAGE_SIZE, 0x5a);
  const page = BigInt(PAGE_SIZE);
  const addr = ((addressOf(buf) + page - 1n) / page) * page;
  return { buf, addr };
}

function withPagemap<T>(fn: (fd: number) => T): T {
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** CRIU's PAGEMAP_SCAN query of its own kerndat, plus `extraRet` categories. */
function scanOwnPage(extraRet: bigint): boolean {
  const { buf, addr } = ownPage();
  const excl = PAGE_IS.PFNZERO | PAGE_IS.FILE;
  const r = withPagemap((fd) =>
    pagemapScan(fd, addr, addr + BigInt(PAGE_SIZE), {
      inverted: excl, mask: excl, anyof: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
      ret: PAGE_IS.PRESENT | PAGE_IS.SWAPPED | PAGE_IS.SOFT_DIRTY | extraRet,
    }),
  );
  buf[0] = 1; // keep the page alive until here
  return r !== null;
}

/**
 * What restoring an AIO ring needs, as CRIU checks it: a ring of io_setup moved
 * with mremap is still its context (the context id is its address).
 */
function probeAioRemap(): boolean | string {
  const ctxBuf = Buffer.alloc(8);
  const r = trySyscall(NR.io_setup, 16, ctxBuf);
  if (r < 0) return `io_setup: ${errname(r)}`;
  let ctx = ctxBuf.readBigUInt64LE(0);
  try {
    const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.startsWith(`${ctx.toString(16)}-`));
    if (!line) return 'the AIO ring is not in /proc/self/maps';
    const len = Number(BigInt('0x' + line.split(/[- ]/)[1]!) - ctx);
    const to = trySyscall(NR.mmap, 0, len, PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0);
    if (to < 0 && to > -4096) return `mmap: ${errname(to)}`;
    const moved = trySyscall(NR.mremap, ctx, len, len, MREMAP.MAYMOVE | MREMAP.FIXED, to);
    if (moved !== to) {
      trySyscall(NR.munmap, to, len);
      return `mremap of the ring: ${errname(moved)}`;
    }
    ctx = BigInt(to);
    const ev = trySyscall(NR.io_getevents, ctx, 0, 1, 0, 0);
    return ev === 0 ? true : `io_getevents on the moved ring: ${errname(ev)}`;
  } finally {
    trySyscall(NR.io_destroy, ctx);
  }
}

function fdinfoOf(fd: number): string {
  return readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
}

/** True if `path` can be read, else why not. */
function readable(path: string): true | string {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch (e) {
    return describe(e);
  }
}

const NOT_LAZY = 'cryo does not restore memory lazily yet';
const NOT_MNT = 'cryo does not dump or restore autofs mounts yet';

/** The feature table: every probe cryo knows, in the order `cryo check` runs them. */
export const FEATURES: readonly Feature[] = [
  // ---- required: cryo cannot dump or restore without these ----
  {
    name: 'capabilities', kind: 'required', level: 'error',
    description: 'CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (map_files, clone3 set_tid, PR_SET_MM_MAP)',
    missing: 'cryo needs the CAP_SYS_ADMIN or the CAP_CHECKPOINT_RESTORE capability',
    probe: probeWith('capabilities', (k) => k.hasCap(CAP.CHECKPOINT_RESTORE) || k.hasCap(CAP.SYS_ADMIN)),
  },
  {
    name: 'ptrace_seize', kind: 'required', level: 'error',
    description: 'PTRACE_SEIZE + PTRACE_INTERRUPT: freeze tasks without a signal',
    missing: 'ptrace(PTRACE_SEIZE/PTRACE_INTERRUPT) does not work',
    probe: fromSeed('ptrace_seize', (f) => f.seize),
  },
  {
    name: 'ptrace_xstate', kind: 'required', level: 'error',
    description: 'PTRACE_GETREGSET NT_X86_XSTATE: FPU/SSE/AVX state of every thread',
    missing: 'ptrace(PTRACE_GETREGSET, NT_X86_XSTATE) does not work',
    probe: fromSeed('ptrace_xstate', (f) => f.xstate),
  },
  {
    name: 'ptrace_sigmask', kind: 'required', level: 'error',
    description: 'PTRACE_GETSIGMASK/SETSIGMASK: blocked signals of every thread',
    missing: 'Unable to dump signal blocking mask',
    probe: fromSeed('ptrace_sigmask', (f) => f.sigmask),
  },
  {
    name: 'ptrace_peeksiginfo', kind: 'required', level: 'error',
    description: 'PTRACE_PEEKSIGINFO: pending signals, read without dequeuing them',
    missing: 'Unable to dump pending signals',
    probe: fromSeed('ptrace_peeksiginfo', (f) => f.peeksiginfo),
  },
  {
    name: 'remote_syscall', kind: 'required', level: 'error',
    description: 'system calls run in a stopped task over ptrace (how cryo does everything inside a task)',
    missing: 'cannot run a system call in a traced task',
    probe: fromSeed('remote_syscall', (f) => f.remote),
  },
  {
    name: 'clone3_set_tid', kind: 'required', level: 'warn',
    description: 'clone3() with set_tid: restore every task with its own pid',
    missing: 'clone3() with set_tid not supported',
    probe: probeWith('clone3_set_tid', (k) => {
      // Too small a struct: EINVAL where clone3 exists, ENOSYS where it does not.
      const r0 = trySyscall(NR.clone3, 0, 0);
      if (r0 === -ENOSYS) return 'the kernel has no clone3()';
      if (r0 !== -EINVAL) return `clone3(NULL, 0) gave ${r0 < 0 ? errname(r0) : r0}`;
      // As CRIU's kerndat: a struct with set_tid but set_tid_size 0 is EINVAL where
      // set_tid is known, E2BIG where the struct is larger than the kernel's.
      const args = cloneArgs.encode({ set_tid: -1n });
      const r = trySyscall(NR.clone3, args, args.length);
      if (r >= 0) throw new Error(`clone3 unexpectedly created ${r}`); // cannot happen: set_tid_size 0
      if (r !== -EINVAL) return `clone3() does not know set_tid (${errname(r)})`;
      if (!k.hasCap(CAP.CHECKPOINT_RESTORE) && !k.hasCap(CAP.SYS_ADMIN)) {
        return 'set_tid needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN';
      }
      return true;
    }),
  },
  {
    // cryo's own name: CRIU's pidfd_store is the pidfd_store_sk of pre-dumps (below).
    name: 'pidfd_getfd', kind: 'required', level: 'warn',
    description: 'pidfd_open + pidfd_getfd: take a copy of any fd of a task',
    missing: 'pidfd_open and pidfd_getfd are not supported',
    probe: probeWith('pidfd_getfd', () => {
      let pidfd = -1;
      try {
        pidfd = pidfdOpen(process.pid);
      } catch (e) {
        return describe(e);
      }
      try {
        const copy = pidfdGetfd(pidfd, 0);
        closeFd(copy);
      } catch (e) {
        return describe(e);
      } finally {
        closeFd(pidfd);
      }
    }),
  },
  {
    name: 'proc_mem', kind: 'required', level: 'error',
    description: '/proc/PID/mem: read and write task memory',
    missing: '/proc/<pid>/mem cannot be read',
    probe: probeWith('proc_mem', () => {
      const { buf, addr } = ownPage();
      buf.writeUInt32LE(0xc0ffee, Number(addr - addressOf(buf)));
      const fd = openSync('/proc/self/mem', 'r');
      try {
        const out = Buffer.alloc(4);
        const n = readSync(fd, out, 0, 4, Number(addr));
        return (n === 4 && out.readUInt32LE(0) === 0xc0ffee) || 'it returned other bytes';
      } finally {
        closeFd(fd);
      }
    }),
  },
  {
    name: 'map_files', kind: 'required', level: 'error',
    description: '/proc/PID/map_files: open the file behind each mapping',
    missing: '/proc/<pid>/map_files is inaccessible',
    probe: probeWith('map_files', () => {
      const r = readable('/proc/self/map_files');
      if (r !== true) return r;
      // Listing and readlink work for anyone; following a link (stat, open) needs
      // CAP_CHECKPOINT_RESTORE. stat follows it without opening anything.
      const first = readdirSync('/proc/self/map_files')[0];
      if (first === undefined) return 'it is empty';
      statSync(`/proc/self/map_files/${first}`);
    }),
  },
  {
    name: 'kcmp', kind: 'required', level: 'error',
    description: 'kcmp(KCMP_FILE): find fds that share one open file description',
    missing: 'System call kcmp is not supported',
    probe: probeWith('kcmp', (k) => {
      const s = k.kcmpFile();
      return s.ok || (s.why ?? false);
    }),
  },
  {
    name: 'memfd', kind: 'required', level: 'error',
    description: 'memfd_create: the seed executable, memfd files',
    missing: 'memfd_create is not supported',
    probe: probeWith('memfd', () => {
      closeFd(memfdCreate('cryo-check', MFD.CLOEXEC));
    }),
  },
  {
    name: 'prctl_mm_map', kind: 'required', level: 'error',
    description: 'PR_SET_MM_MAP (and PR_GET_TID_ADDRESS): restore brk, arg/env, auxv, exe link in one call',
    missing: 'prctl: PR_SET_MM_MAP is not supported',
    probe: probeWith('prctl_mm_map', () => {
      const tid = Buffer.alloc(8);
      try {
        prctl(PR.GET_TID_ADDRESS, tid);
      } catch (e) {
        return `PR_GET_TID_ADDRESS failed: ${describe(e)}`;
      }
      const size = Buffer.alloc(4);
      try {
        prctl(PR.SET_MM, PR_SET_MM_MAP_SIZE, size);
      } catch (e) {
        return `PR_SET_MM_MAP_SIZE failed: ${describe(e)}`;
      }
      const n = size.readUInt32LE(0);
      return n === prctlMmMap.size || `struct prctl_mm_map is ${n} bytes, cryo knows ${prctlMmMap.size}`;
    }),
  },

  // ---- extra: used when present, or needed only for some trees ----
  {
    name: 'get_rseq_conf', kind: 'extra', level: 'warn',
    description: 'PTRACE_GET_RSEQ_CONFIGURATION: dump the rseq area glibc registers in every thread',
    missing: "ptrace(PTRACE_GET_RSEQ_CONFIGURATION) isn't supported. C/R of processes which are using rseq() won't work.",
    probe: fromSeed('get_rseq_conf', (f) => f.rseq),
  },
  {
    name: 'cap_sys_ptrace', kind: 'extra', level: 'warn',
    description: 'CAP_SYS_PTRACE: trace tasks of other users',
    missing: 'No CAP_SYS_PTRACE: only tasks of this user can be dumped',
    probe: probeWith('cap_sys_ptrace', (k) => k.hasCap(CAP.SYS_PTRACE)),
  },
  {
    name: 'process_vm_readv', kind: 'extra', level: 'warn',
    description: 'process_vm_readv: bulk reads of task memory',
    missing: 'process_vm_readv is not supported',
    probe: probeWith('process_vm_readv', () => {
      const { buf, addr } = ownPage();
      const off = Number(addr - addressOf(buf));
      buf.writeUInt32LE(0xfeedbeef, off);
      const out = Buffer.alloc(16);
      const n = processVmRead(process.pid, out, addr);
      return (n === 16 && out.readUInt32LE(0) === 0xfeedbeef) || 'it returned other bytes';
    }),
  },
  {
    name: 'ns_last_pid', kind: 'extra', level: 'warn',
    description: '/proc/sys/kernel/ns_last_pid: the old way to pick pids (cryo uses clone3 set_tid)',
    missing: 'sys/kernel/ns_last_pid sysctl is inaccessible',
    probe: probeWith('ns_last_pid', () => {
      const r = readable('/proc/sys/kernel/ns_last_pid');
      return r;
    }),
  },
  {
    name: 'vdso', kind: 'extra', level: 'warn',
    description: '[vdso] mapping: a syscall instruction in every task; moved to its dumped address on restore',
    missing: 'No [vdso] mapping in /proc/self/maps',
    probe: probeWith('vdso', () => /\[vdso\]$/m.test(readFileSync('/proc/self/maps', 'utf8'))),
  },
  {
    name: 'pagemap_scan', kind: 'extra', level: 'warn',
    description: 'PAGEMAP_SCAN ioctl: find present pages in one call (else /proc/PID/pagemap is read)',
    missing: 'ioctl(PAGEMAP_SCAN) is not supported',
    probe: probeWith('pagemap_scan', () => scanOwnPage(0n)),
  },
  {
    name: 'pagemap_scan_guard_pages', kind: 'extra', level: 'warn',
    description: 'PAGEMAP_SCAN reports PAGE_IS_GUARD (madvise guard regions)',
    missing: "ioctl(PAGEMAP_SCAN) doesn't support PAGE_IS_GUARD flag",
    probe: probeWith('pagemap_scan_guard_pages', () => scanOwnPage(PAGE_IS.GUARD)),
  },
  {
    // cryo's own name: CRIU's uffd and uffd-noncoop are about lazy restore (below).
    name: 'userfaultfd', kind: 'extra', level: 'warn',
    description: 'userfaultfd: fill private memory on restore by UFFDIO_COPY (else by preadv in the task)',
    missing: 'userfaultfd is not available: memory is restored by preadv',
    probe: probeWith('userfaultfd', (k) => {
      const u = k.uffdFeatures();
      return 'features' in u || u.error;
    }),
  },
  {
    name: 'ns_pid', kind: 'extra', level: 'warn',
    description: 'pid namespaces, with NSpid in /proc/PID/status',
    missing: 'pid namespaces (NSpid in /proc/<pid>/status) are not supported',
    probe: probeWith('ns_pid', () =>
      existsSync('/proc/self/ns/pid') && /^NSpid:/m.test(readFileSync('/proc/self/status', 'utf8'))),
  },
  {
    name: 'mnt_id', kind: 'extra', level: 'error',
    description: 'mnt_id in /proc/PID/fdinfo: which mount an open file is on',
    missing: "fdinfo doesn't contain the mnt_id field",
    probe: probeWith('mnt_id', () => {
      const fd = openSync('/dev/null', 'r');
      try {
        return /^mnt_id:/m.test(fdinfoOf(fd));
      } finally {
        closeFd(fd);
      }
    }),
  },
  {
    name: 'fdinfo_lock', kind: 'extra', level: 'error',
    description: 'lock: lines in /proc/PID/fdinfo: file locks',
    missing: "fdinfo doesn't contain the lock field",
    probe: probeWith('fdinfo_lock', () => {
      const fd = memfdCreate('cryo-check-lock', MFD.CLOEXEC);
      try {
        syscall('flock', NR.flock, fd, LOCK.SH);
        return /^lock:/m.test(fdinfoOf(fd));
      } finally {
        closeFd(fd); // drops the lock with the last reference
      }
    }),
  },
  {
    name: 'timerfd', kind: 'extra', level: 'error',
    description: 'TFD_IOC_SET_TICKS: restore timerfd expirations',
    missing: 'No timerfd support for c/r',
    probe: probeWith('timerfd', () => {
      const fd = syscall('timerfd_create', NR.timerfd_create, CLOCK.MONOTONIC, O.CLOEXEC);
      try {
        const r = trySyscall(NR.ioctl, fd, TFD_IOC_SET_TICKS, 0);
        return r === -EFAULT || `ioctl(TFD_IOC_SET_TICKS) gave ${r < 0 ? errname(r) : r}`;
      } finally {
        closeFd(fd);
      }
    }),
  },
  {
    name: 'seccomp_suspend', kind: 'extra', level: 'error',
    description: 'PTRACE_O_SUSPEND_SECCOMP: run remote syscalls in tasks under seccomp',
    missing: "Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP",
    probe: fromSeed('seccomp_suspend', (f) => f.suspendSeccomp),
  },
  {
    name: 'seccomp_filters', kind: 'extra', level: 'error',
    description: 'PTRACE_SECCOMP_GET_FILTER: dump seccomp filters',
    missing: 'Dumping seccomp filters not supported',
    probe: fromSeed('seccomp_filters', (f) => f.seccompFilter),
  },
  {
    name: 'timer_cr_ids', kind: 'extra', level: 'warn',
    description: 'PR_TIMER_CREATE_RESTORE_IDS: restore POSIX timers with their ids',
    missing: 'PR_TIMER_CREATE_RESTORE_IDS is not supported',
    probe: probeWith('timer_cr_ids', () =>
      trySyscall(NR.prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OP.GET, 0, 0, 0) >= 0),
  },
  {
    name: 'sk_unix_file', kind: 'extra', level: 'warn',
    description: 'SIOCUNIXFILE: the file a unix socket bound to a path made (its mode, owner, directory)',
    missing: 'ioctl(SIOCUNIXFILE) on a unix socket is not supported',
    probe: probeWith('sk_unix_file', () => {
      const path = `/tmp/.cryo-check-${process.pid}.sock`;
      const fd = sock.socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
      try {
        sock.bindUnix(fd, Buffer.from(path));
        closeFd(syscall('ioctl(SIOCUNIXFILE)', NR.ioctl, fd, SIOCUNIXFILE, 0));
      } finally {
        closeFd(fd);
        rmSync(path, { force: true });
      }
    }),
  },
  {
    name: 'kcmp_epoll', kind: 'extra', level: 'warn',
    description: 'kcmp(KCMP_EPOLL_TFD): the file behind each epoll target, when the fd it was added by is closed or reused',
    missing: 'kcmp(KCMP_EPOLL_TFD) is not supported: an epoll watching a file through a closed fd cannot be dumped',
    probe: probeWith('kcmp_epoll', () => {
      // A pipe watched through one fd, that fd moved to another number: the watch is found there.
      const ep = syscall('epoll_create1', NR.epoll_create1, O.CLOEXEC);
      const p = new Int32Array(2);
      syscall('pipe2', NR.pipe2, new Uint8Array(p.buffer), O.CLOEXEC);
      const [r, w] = [p[0]!, p[1]!];
      let moved = -1;
      let rOpen = true;
      try {
        const ev = Buffer.alloc(12);
        ev.writeUInt32LE(1 /* EPOLLIN */, 0);
        syscall('epoll_ctl', NR.epoll_ctl, ep, 1 /* EPOLL_CTL_ADD */, r, ev);
        moved = syscall('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, r, F.DUPFD_CLOEXEC, 0);
        closeFd(r);
        rOpen = false;
        const same = kcmpEpollTfd(process.pid, moved, process.pid, ep, r, 0);
        if (same < 0) return `kcmp(KCMP_EPOLL_TFD) gave ${errname(same)}`;
        if (same !== 0) return 'kcmp(KCMP_EPOLL_TFD) does not find the watched file under its new fd';
        if (kcmpEpollTfd(process.pid, w, process.pid, ep, r, 0) === 0) return 'kcmp(KCMP_EPOLL_TFD) takes another file for the watched one';
      } finally {
        for (const fd of [ep, w, moved, rOpen ? r : -1]) closeFd(fd);
      }
    }),
  },
  {
    name: 'sockopt_buf_lock', kind: 'extra', level: 'warn',
    description: 'SO_BUF_LOCK: the locked buffer sizes of unix sockets',
    missing: 'SO_BUF_LOCK is not supported',
    probe: probeWith('sockopt_buf_lock', () => {
      const fd = sock.socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
      try {
        return sock.getsockoptInt(fd, SOL_SOCKET, SO.BUF_LOCK) !== undefined;
      } finally {
        closeFd(fd);
      }
    }),
  },

  // ---- CRIU's names for things cryo does not do (yet): answered, never probed ----
  {
    name: 'aio_remap', kind: 'extra', level: 'warn',
    description: 'mremap() of AIO rings: restore io_setup contexts at their address',
    missing: "AIO remap doesn't work properly",
    probe: probeWith('aio_remap', () => probeAioRemap()),
  },
  {
    name: 'memfd_hugetlb', kind: 'extra', level: 'warn',
    description: 'memfd_create(MFD_HUGETLB): memfds backed by huge pages',
    missing: 'memfd_create(MFD_HUGETLB) is not supported',
    probe: probeWith('memfd_hugetlb', () => {
      try {
        closeFd(memfdCreate('cryo-check-huge', MFD.CLOEXEC | MFD.HUGETLB));
        return true;
      } catch (e) {
        if (e instanceof SysError && [EINVAL, ENOENT, ENOSYS].includes(e.errno)) return false;
        throw e;
      }
    }),
  },
  notDone('lazy_pages', 'extra', 'restore memory on demand (RPC feature lazy_pages)', NOT_LAZY),
  notDone('uffd', 'extra', 'userfaultfd for lazy restore', NOT_LAZY),
  notDone('uffd-noncoop', 'extra', 'userfaultfd events for lazy restore of a whole tree', NOT_LAZY),
  {
    // CRIU's soft-dirty bits are missing here; cryo tracks by async userfaultfd write-protection.
    name: 'mem_dirty_track', kind: 'extra', level: 'warn',
    description: 'memory changes tracked between dumps (pre-dump, --track-mem; RPC feature mem_track): async userfaultfd write-protect and PAGEMAP_SCAN',
    missing: 'Dirty tracking is OFF. Memory snapshot will not work.',
    probe: probeWith('mem_dirty_track', (k) => {
      const s = k.memTrack();
      return s.ok || (s.why ?? false);
    }),
  },
  notDone('pidfd_store', 'extra', 'pidfds of the tree kept by the client across pre-dumps (pidfd_store_sk)',
    'cryo does not keep pidfds in a pidfd_store_sk yet'),
  {
    name: 'userns', kind: 'extra', level: 'warn',
    description: 'user namespaces: a tree in one of its own, its other namespaces owned by it, made anew as the restore makes it',
    missing: 'user namespaces cannot be restored here',
    probe: probeWith('userns', probeUserns),
  },
  {
    name: 'loginuid', kind: 'extra', level: 'warn',
    description: '/proc/PID/loginuid and CAP_AUDIT_CONTROL: restore the audit login uid',
    missing: 'Loginuid restore is OFF.',
    // CRIU writes loginuid to test it, which starts a new audit session: we only look.
    probe: probeWith('loginuid', (k) => readable('/proc/self/loginuid') === true && k.hasCap(CAP.AUDIT_CONTROL)),
  },
  {
    name: 'ipv6_freebind', kind: 'extra', level: 'warn',
    description: 'IPV6_FREEBIND: IPv6 sockets bound to an address the host does not have',
    missing: 'IPV6_FREEBIND is not supported',
    probe: probeWith('ipv6_freebind', () => {
      const fd = sock.socket(AF.INET6, SOCK.DGRAM);
      try {
        sock.setsockoptInt(fd, IPPROTO.IPV6, IPV6.FREEBIND, 1);
        return sock.getsockoptInt(fd, IPPROTO.IPV6, IPV6.FREEBIND) === 1 || 'IPV6_FREEBIND did not take';
      } finally {
        closeFd(fd);
      }
    }),
  },
  {
    name: 'cgroupns', kind: 'extra', level: 'warn', description: 'cgroup namespaces (a tree\'s own, its roots as cgns_prefix in cgroup.img)',
    missing: 'the kernel has no cgroup namespaces', probe: probeWith('cgroupns', () => existsSync('/proc/self/ns/cgroup') || 'no /proc/self/ns/cgroup'),
  },
  {
    name: 'timens', kind: 'extra', level: 'warn', description: 'time namespaces (timens-N.img: a tree\'s own, made anew with its clocks)',
    missing: 'the kernel has no time namespaces', probe: probeWith('timens', () => existsSync('/proc/self/timens_offsets') || 'no /proc/self/timens_offsets'),
  },
  notDone('can_map_vdso', 'extra', 'arch_prctl(ARCH_MAP_VDSO_64)',
    'cryo moves the task\'s own vDSO into place with mremap and does not map one'),
  {
    // Paths of a tree with its own mount namespace are opened from its root with it (RESOLVE_IN_ROOT).
    name: 'openat2', kind: 'extra', level: 'warn', description: 'openat2() with RESOLVE_* restrictions',
    missing: 'the kernel has no openat2', probe: probeWith('openat2', () => {
      const root = openSync('/', O.PATH | O.DIRECTORY | O.CLOEXEC);
      try {
        closeSync(openInRoot(root, '/proc', O.PATH | O.DIRECTORY | O.CLOEXEC));
        return true;
      } finally {
        closeSync(root);
      }
    }),
  },
  {
    // As CRIU's kerndat_has_move_mount_set_group: the restore gives mounts their peer groups so.
    name: 'move_mount_set_group', kind: 'extra', level: 'warn', description: 'mount sharing groups (MOVE_MOUNT_SET_GROUP)',
    missing: 'move_mount cannot give a mount another\'s peer group', probe: probeWith('move_mount_set_group', probeSetGroup),
  },
  {
    // As CRIU's check_tun_cr: devices are made again with their indexes (TUNSETIFINDEX).
    name: 'tun', kind: 'extra', level: 'warn', description: 'TUN/TAP devices and files (TUNSETIFINDEX)',
    missing: 'tun devices cannot be made with a given index', probe: () => tun.canSetIndex(),
  },
  {
    // As CRIU's check_tun_netns_cr: a tun file tells its network namespace (SIOCGSKNS).
    name: 'tun_ns', kind: 'extra', level: 'warn', description: 'TUN files tell their network namespace (SIOCGSKNS)',
    missing: 'a tun file does not tell its network namespace',
    probe: () => {
      let fd: number;
      try {
        fd = tun.openTun();
      } catch {
        return false;
      }
      try {
        const ns = netlink.socketNetns(fd);
        if (ns === undefined) return false;
        closeFd(ns);
        return true;
      } finally {
        closeFd(fd);
      }
    },
  },
  notDone('autofs', 'experimental', 'autofs mounts', NOT_MNT),
  {
    name: 'tcp_half_closed', kind: 'extra', level: 'warn',
    description: 'half-closed TCP connections (FIN_WAIT*, CLOSE_WAIT, LAST_ACK, CLOSING) through TCP_REPAIR',
    missing: 'half-closed TCP connections cannot be carried here',
    probe: probeWith('tcp_half_closed', () => probeTcpHalfClosed()),
  },
  notDone('compat_cr', 'experimental', '32-bit tasks', 'cryo checkpoints x86_64 tasks only'),
  {
    name: 'sk_ns', kind: 'extra', level: 'warn',
    description: 'SIOCGSKNS: the network namespace of a socket (each socket of the tree must be of its namespace)',
    missing: 'SIOCGSKNS is not supported',
    probe: probeWith('sk_ns', () => {
      const fd = sock.socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
      try {
        const ns = netlink.socketNetns(fd);
        if (ns === undefined) return 'ioctl(SIOCGSKNS) failed';
        closeFd(ns);
        return true;
      } finally {
        closeFd(fd);
      }
    }),
  },
  {
    // CRIU's name: it finds raw sockets with raw_diag; cryo reads their state and
    // peer from /proc/net/raw and raw6, so the question is whether that works here.
    name: 'net_diag_raw', kind: 'extra', level: 'warn',
    description: 'raw inet sockets: their state and peer (/proc/net/raw, raw6)',
    missing: 'raw sockets cannot be listed here',
    probe: probeWith('net_diag_raw', () => {
      for (const [family, file] of [[AF.INET, 'raw'], [AF.INET6, 'raw6']] as const) {
        const fd = sock.socket(family, SOCK.RAW, IPPROTO.UDP);
        try {
          const ino = statSync(`/proc/self/fd/${fd}`).ino;
          const listed = readFileSync(`/proc/thread-self/net/${file}`, 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[9] === String(ino));
          if (!listed) return `a raw socket is not in /proc/net/${file}`;
        } finally {
          closeFd(fd);
        }
      }
      return true;
    }),
  },
  {
    name: 'nsid', kind: 'extra', level: 'warn', description: 'netlink NSIDs (RTM_GETNSID: how one network namespace of a tree names another)',
    missing: 'the kernel has no RTM_GETNSID', probe: () => netlink.hasNsid(),
  },
  {
    name: 'link_nsid', kind: 'extra', level: 'warn', description: 'link NSIDs (a veth whose ends are in two network namespaces of the tree, IFLA_LINK_NETNSID)',
    missing: 'the kernel has no RTM_GETNSID: veths across network namespaces cannot be told', probe: () => netlink.hasNsid(),
  },
  // As CRIU's: not a kernel check, it says --external net[INO]:KEY is understood.
  { name: 'external_net_ns', kind: 'extra', level: 'warn', description: 'external network namespaces (--external net[INO]:KEY)', missing: 'never: it needs nothing of the kernel', probe: () => true },
  {
    name: 'newifindex', kind: 'extra', level: 'warn', description: 'a link moved into a namespace keeps its index (IFLA_NEW_IFINDEX; --external netdev[IFNAME]:HOSTDEV)',
    missing: 'links moved into the restored namespace (--external netdev[]) cannot keep their index', probe: () => netlink.hasNewIfindex(),
  },
  {
    name: 'nftables', kind: 'extra', level: 'warn', description: 'nftables rules of a network namespace (nftables-N.img, by nft)',
    missing: 'nft is not installed: nftables rules will not be preserved', probe: () => onPath('nft'),
  },
  {
    name: 'has_ipt_legacy', kind: 'extra', level: 'warn', description: 'iptables legacy (iptables-N.img, by iptables-legacy-save/-restore)',
    missing: 'no iptables with the legacy API is installed',
    probe: probeWith('has_ipt_legacy', () => {
      const v6 = existsSync('/proc/sys/net/ipv6');
      for (const restore of [false, true]) {
        if (!legacyIptables(false, restore)) return `no legacy iptables-${restore ? 'restore' : 'save'}`;
        if (v6 && !legacyIptables(true, restore)) return `no legacy ip6tables-${restore ? 'restore' : 'save'}`;
      }
      return true;
    }),
  },
  notDone('apparmor_stacking', 'extra', 'AppArmor stacking', 'cryo does not checkpoint LSM profiles yet'),
  {
    name: 'network_lock_nftables', kind: 'extra', level: 'warn',
    description: 'the network lock with nftables (--network-lock nftables): nft and sets of concatenated addresses',
    missing: 'nftables based locking needs the nft tool and set concatenations',
    probe: probeWith('network_lock_nftables', () => probeNftLock()),
  },
  notDone('overlayfs_maps', 'extra', 'overlayfs paths in map_files', 'cryo does not check overlayfs mappings yet'),
  notDone('breakpoints', 'extra', 'hardware breakpoints', 'cryo does not checkpoint hardware breakpoints yet'),
];

function notDone(name: string, kind: FeatureKind, description: string, reason: string): Feature {
  return { name, kind, description, level: 'warn', missing: reason, notImplemented: reason, probe: () => false };
}

/** Every name `check --feature` accepts. */
export function featureNames(): string[] {
  return FEATURES.map((f) => f.name);
}

export function resultOf(f: Feature, k: Kerndat): FeatureResult {
  const base = { name: f.name, description: f.description, kind: f.kind };
  if (f.notImplemented !== undefined) return { ...base, implemented: false, ok: false, detail: f.notImplemented };
  const ok = f.probe(k);
  if (ok) return { ...base, implemented: true, ok };
  const why = k.why.get(f.name);
  return { ...base, implemented: true, ok, detail: why === undefined ? f.missing : `${f.missing} (${why})` };
}

/**
 * Probe the named features (default: all of them), once each, in table order.
 * Unknown names are ignored. Never throws; any child it starts is gone when it returns.
 */
export function probeFeatures(names?: readonly string[]): FeatureResult[] {
  const k = new Kerndat();
  const want = names === undefined ? undefined : new Set(names);
  return FEATURES.filter((f) => want === undefined || want.has(f.name)).map((f) => resultOf(f, k));
}
