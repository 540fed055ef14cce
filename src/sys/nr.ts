// x86_64 system call numbers and kernel ABI constants, in one place (gVisor's pkg/abi).

export const NR = {
  read: 0, write: 1, open: 2, close: 3, stat: 4, fstat: 5, poll: 7, lseek: 8, mmap: 9, mprotect: 10,
  munmap: 11, brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, rt_sigreturn: 15, ioctl: 16,
  pread64: 17, pwrite64: 18, readv: 19, writev: 20, mremap: 25, madvise: 28, dup: 32,
  dup2: 33, pause: 34, nanosleep: 35, getitimer: 36, setitimer: 38, getpid: 39,
  socket: 41, sendmsg: 46, recvmsg: 47, clone: 56, fork: 57, exit: 60, wait4: 61, kill: 62,
  fcntl: 72, flock: 73, getcwd: 79, chdir: 80, fchdir: 81, umask: 95, getrlimit: 97,
  ptrace: 101, getuid: 102, getgid: 104, setuid: 105, setgid: 106, setpgid: 109,
  getppid: 110, setsid: 112, getgroups: 115, setgroups: 116, setresuid: 117, getresuid: 118, setresgid: 119, getresgid: 120, getpgid: 121,
  setfsuid: 122, setfsgid: 123, getsid: 124, capget: 125, capset: 126, rt_sigtimedwait: 128,
  rt_sigqueueinfo: 129, sigaltstack: 131, personality: 135, setpriority: 141,
  sched_setscheduler: 144, sched_getscheduler: 145, prctl: 157, arch_prctl: 158, chroot: 161, mount: 165, gettid: 186,
  tkill: 200, futex: 202, set_thread_area: 205, get_thread_area: 211, set_tid_address: 218,
  restart_syscall: 219, timer_create: 222, timer_settime: 223, timer_gettime: 224,
  timer_getoverrun: 225, timer_delete: 226, exit_group: 231, epoll_ctl: 233, tgkill: 234,
  inotify_add_watch: 254, inotify_rm_watch: 255, openat: 257, mkdirat: 258, mknodat: 259, fchownat: 260, unlinkat: 263, renameat: 264, linkat: 265, readlinkat: 267, set_robust_list: 273,
  get_robust_list: 274, tee: 276, timerfd_create: 283, timerfd_settime: 286, signalfd4: 289,
  eventfd2: 290, epoll_create1: 291, dup3: 292, pipe2: 293, inotify_init1: 294, preadv: 295,
  pwritev: 296, rt_tgsigqueueinfo: 297, fanotify_init: 300, fanotify_mark: 301, prlimit64: 302,
  open_by_handle_at: 304,
  mq_open: 240, mq_timedsend: 242, mq_timedreceive: 243, mq_getsetattr: 245,
  process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, seccomp: 317, memfd_create: 319,
  userfaultfd: 323, rseq: 334, pidfd_send_signal: 424, move_mount: 429, fsopen: 430, fsconfig: 431,
  fsmount: 432, pidfd_open: 434, mlock: 149, munlock: 150, io_setup: 206, io_destroy: 207,
  io_getevents: 208, io_submit: 209, membarrier: 324, mlock2: 325,
  open_tree: 428, fspick: 433, mount_setattr: 442, pivot_root: 155, umount2: 166,
  clone3: 435, close_range: 436, openat2: 437, pidfd_getfd: 438,
  connect: 42, sendto: 44, recvfrom: 45, shutdown: 48, bind: 49, listen: 50, getsockname: 51,
  getpeername: 52, socketpair: 53, setsockopt: 54, getsockopt: 55, accept4: 288, renameat2: 316,
  shmget: 29, shmat: 30, shmctl: 31, semget: 64, semctl: 66, shmdt: 67, msgget: 68, msgsnd: 69, msgrcv: 70,
  msgctl: 71, setns: 308, uname: 63, sethostname: 170, setdomainname: 171, unshare: 272, clock_gettime: 228,
} as const;

export const PTRACE = {
  PEEKDATA: 2, POKEDATA: 5, CONT: 7, KILL: 8, GETREGS: 12, SETREGS: 13, GETFPREGS: 14,
  SETFPREGS: 15, ATTACH: 16, DETACH: 17, SYSCALL: 24, GET_THREAD_AREA: 25, ARCH_PRCTL: 30,
  SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201, GETSIGINFO: 0x4202, SETSIGINFO: 0x4203,
  GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207, LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, SECCOMP_GET_FILTER: 0x420c, SECCOMP_GET_METADATA: 0x420d,
  GET_SYSCALL_INFO: 0x420e, GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10,
  TRACEVFORKDONE: 0x20, TRACEEXIT: 0x40, TRACESECCOMP: 0x80, EXITKILL: 0x100000,
  SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, SECCOMP: 7, STOP: 128 } as const;

export const NT_PRSTATUS = 1;
export const NT_PRFPREG = 2;
export const NT_X86_XSTATE = 0x202;

export const SIG = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10,
  SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18,
  STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
} as const;
export const SIGMAX = 64;

export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01, PRIVATE: 0x02, FIXED: 0x10, ANONYMOUS: 0x20, GROWSDOWN: 0x100,
  DENYWRITE: 0x800, EXECUTABLE: 0x1000, LOCKED: 0x2000, NORESERVE: 0x4000,
  POPULATE: 0x8000, HUGETLB: 0x40000, FIXED_NOREPLACE: 0x100000,
  /** A private mapping the kernel may drop under memory pressure (a mapping type, as SHARED). */
  DROPPABLE: 0x08,
} as const;
/** The huge page size of a MAP_HUGETLB mapping (or MFD_HUGETLB memfd): log2(size) << 26. */
export const MAP_HUGE_SHIFT = 26;
export const MAP_HUGE_MASK = 0x3f << MAP_HUGE_SHIFT;
export const MREMAP = { MAYMOVE: 1, FIXED: 2, DONTUNMAP: 4 } as const;
export const MADV = {
  NORMAL: 0, RANDOM: 1, SEQUENTIAL: 2, WILLNEED: 3, DONTNEED: 4, FREE: 8, REMOVE: 9,
  DONTFORK: 10, DOFORK: 11, MERGEABLE: 12, UNMERGEABLE: 13, HUGEPAGE: 14, NOHUGEPAGE: 15,
  DONTDUMP: 16, DODUMP: 17, WIPEONFORK: 18, KEEPONFORK: 19, GUARD_INSTALL: 102,
} as const;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000, PATH: 0o10000000, LARGEFILE: 0o100000,
  /** O_TMPFILE: __O_TMPFILE | O_DIRECTORY. */
  TMPFILE: 0o20200000,
} as const;
export const AT_FDCWD = -100;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
/** ioctl FS_IOC_FIEMAP: _IOWR('f', 11, struct fiemap). */
export const FS_IOC_FIEMAP = 0xc020660b;
export const F = {
  DUPFD: 0, GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, DUPFD_CLOEXEC: 1030, SETPIPE_SZ: 1031, GETPIPE_SZ: 1032,
  ADD_SEALS: 1033, GET_SEALS: 1034,
} as const;
/** memfd seals (fcntl F_ADD_SEALS / F_GET_SEALS). */
export const F_SEAL = { SEAL: 0x1, SHRINK: 0x2, GROW: 0x4, WRITE: 0x8, FUTURE_WRITE: 0x10, EXEC: 0x20 } as const;
/** memfd_create flags. */
export const MFD = { CLOEXEC: 0x1, ALLOW_SEALING: 0x2, HUGETLB: 0x4 } as const;
/** lseek whence values beyond SET/CUR/END: the next data or hole from an offset. */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const FD_CLOEXEC = 1;

/** fanotify_init() flags (FAN_CLASS_*, FAN_REPORT_* pass through) and fanotify_mark() flags. */
export const FAN = { CLOEXEC: 0x1, NONBLOCK: 0x2 } as const;
export const FAN_MARK = {
  ADD: 0x1, MOUNT: 0x10, IGNORED_MASK: 0x20, IGNORED_SURV_MODIFY: 0x40, FILESYSTEM: 0x100,
  EVICTABLE: 0x200, IGNORE: 0x400,
} as const;

export const PR = {
  SET_PDEATHSIG: 1, GET_PDEATHSIG: 2, GET_DUMPABLE: 3, SET_DUMPABLE: 4, SET_NAME: 15,
  GET_NAME: 16, GET_SECCOMP: 21, SET_SECCOMP: 22, SET_MM: 35, SET_CHILD_SUBREAPER: 36,
  GET_CHILD_SUBREAPER: 37, SET_NO_NEW_PRIVS: 38, GET_NO_NEW_PRIVS: 39, GET_TID_ADDRESS: 40,
  SET_THP_DISABLE: 41, GET_THP_DISABLE: 42, CAP_AMBIENT: 47, GET_KEEPCAPS: 7, SET_KEEPCAPS: 8,
  CAPBSET_READ: 23, CAPBSET_DROP: 24, GET_SECUREBITS: 27, SET_SECUREBITS: 28,
} as const;
/** PR_CAP_AMBIENT's operations. */
export const PR_CAP_AMBIENT_OP = { IS_SET: 1, RAISE: 2, LOWER: 3, CLEAR_ALL: 4 } as const;
export const PR_SET_MM_MAP = 14;
export const PR_SET_MM_MAP_SIZE = 15;
/** prctl(PR_TIMER_CREATE_RESTORE_IDS, ...): timer_create() takes the id asked for (6.15+). */
export const PR_TIMER_CREATE_RESTORE_IDS = 77;
export const PR_TIMER_CREATE_RESTORE_IDS_OP = { OFF: 0, ON: 1, GET: 2 } as const;

/** kcmp() types. */
export const KCMP = { FILE: 0, VM: 1, FILES: 2, FS: 3, SIGHAND: 4, IO: 5, SYSVSEM: 6, EPOLL_TFD: 7 } as const;
/** flock() operations. */
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;
export const CLOCK = { REALTIME: 0, MONOTONIC: 1, BOOTTIME: 7 } as const;
/** timerfd: set the count of expirations not yet read (_IOW('T', 0, u64)). */
export const TFD_IOC_SET_TICKS = 0x40085400;
/** userfaultfd() flags: UFFD_USER_MODE_ONLY (faults from user space only, allowed unprivileged). */
export const UFFD_USER_MODE_ONLY = 1;

export const CLONE = {
  VM: 0x100, FS: 0x200, FILES: 0x400, SIGHAND: 0x800, PIDFD: 0x1000, PTRACE: 0x2000,
  VFORK: 0x4000, PARENT: 0x8000, THREAD: 0x10000, NEWNS: 0x20000, SYSVSEM: 0x40000,
  SETTLS: 0x80000, PARENT_SETTID: 0x100000, CHILD_CLEARTID: 0x200000,
  CHILD_SETTID: 0x1000000, NEWCGROUP: 0x2000000, NEWUTS: 0x4000000, NEWIPC: 0x8000000,
  NEWUSER: 0x10000000, NEWPID: 0x20000000, NEWNET: 0x40000000, NEWTIME: 0x80,
  CLEAR_SIGHAND: 0x100000000,
} as const;

/** The new mount API (fsopen/fsconfig/fsmount), for cgroup hierarchies mounted detached. */
export const FSOPEN_CLOEXEC = 1;
export const FSMOUNT_CLOEXEC = 1;
export const FSCONFIG = { SET_FLAG: 0, SET_STRING: 1, CMD_CREATE: 6, CMD_RECONFIGURE: 7 } as const;

export const WNOHANG = 1;
export const WUNTRACED = 2;
export const __WALL = 0x40000000;

export const PAGE_SIZE = 4096;
export const IOV_MAX = 1024;

// Sockets.
export const AF = { UNIX: 1, INET: 2, NETLINK: 16, INET6: 10 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, PACKET: 10, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const SOL_SOCKET = 1;
export const SO = {
  TYPE: 3, REUSEADDR: 2, DONTROUTE: 5, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, OOBINLINE: 10,
  NO_CHECK: 11, PRIORITY: 12, LINGER: 13, REUSEPORT: 15, PASSCRED: 16, PEERCRED: 17, RCVLOWAT: 18,
  RCVTIMEO: 20, SNDTIMEO: 21, BINDTODEVICE: 25, ATTACH_FILTER: 26, GET_FILTER: 26, LOCK_FILTER: 44, SNDBUFFORCE: 32, RCVBUFFORCE: 33,
  PASSSEC: 34, MARK: 36, PROTOCOL: 38, DOMAIN: 39, PEEK_OFF: 42, PEERGROUPS: 59, BUF_LOCK: 72, PEERPIDFD: 77,
} as const;
/** Inet socket levels and options (netinet/in.h, netinet/tcp.h, linux/udp.h). */
export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ICMPV6: 58, UDPLITE: 136, RAW: 255 } as const;
export const IP = { TOS: 1, TTL: 2, HDRINCL: 3, PKTINFO: 8, FREEBIND: 15, NODEFRAG: 22 } as const;
export const IPV6 = { CHECKSUM: 7, UNICAST_HOPS: 16, V6ONLY: 26, HDRINCL: 36, RECVPKTINFO: 49, TCLASS: 67, FREEBIND: 78 } as const;
/** Raw sockets' own level (SOL_RAW) and ICMPv6's, with their ICMP type filters. */
export const SOL_RAW = 255;
export const SOL_ICMPV6 = 58;
export const ICMP_FILTER = 1;
export const ICMPV6_FILTER = 1;
export const TCP = {
  NODELAY: 1, MAXSEG: 2, CORK: 3, KEEPIDLE: 4, KEEPINTVL: 5, KEEPCNT: 6, INFO: 11, USER_TIMEOUT: 18,
  REPAIR: 19, REPAIR_QUEUE: 20, QUEUE_SEQ: 21, REPAIR_OPTIONS: 22, TIMESTAMP: 24, REPAIR_WINDOW: 29,
} as const;
/** TCP_REPAIR_QUEUE's queues, and the options TCP_REPAIR_OPTIONS sets (TCPOPT_*). */
export const TCP_QUEUE = { NO: 0, RECV: 1, SEND: 2 } as const;
export const TCPOPT = { MSS: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 } as const;
/** tcp_info's tcpi_options bits (CRIU's opt_mask). */
export const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4 } as const;
/** The bytes of the send queue never sent (TCP). */
export const SIOCOUTQNSD = 0x894b;
export const UDP_CORK = 1;
/** Bytes queued to read and not yet sent (FIONREAD, TIOCOUTQ on sockets). */
export const SIOCINQ = 0x541b;
export const SIOCOUTQ = 0x5411;
export const SCM_RIGHTS = 1;
export const SCM_CREDENTIALS = 2;
export const MSG = { PEEK: 2, TRUNC: 0x20, DONTWAIT: 0x40, CTRUNC: 0x8, NOSIGNAL: 0x4000, CMSG_CLOEXEC: 0x40000000 } as const;
export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;
/** The kernel's TCP_* states, which unix sockets reuse. */
export const TCP_ESTABLISHED = 1;
export const TCP_CLOSE = 7;
export const TCP_LISTEN = 10;
/** ioctl: an O_PATH fd of the file a unix socket is bound to. */
export const SIOCUNIXFILE = 0x89e0;
export const NETLINK_SOCK_DIAG = 4;
export const SOCK_DIAG_BY_FAMILY = 20;
export const NLM_F = { REQUEST: 1, MULTI: 2, ACK: 4, ROOT: 0x100, MATCH: 0x200, DUMP: 0x300 } as const;
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3 } as const;
export const UDIAG_SHOW = { NAME: 1, VFS: 2, PEER: 4, ICONS: 8, RQLEN: 0x10, MEMINFO: 0x20, UID: 0x40 } as const;
export const UNIX_DIAG = { NAME: 0, VFS: 1, PEER: 2, ICONS: 3, RQLEN: 4, MEMINFO: 5, SHUTDOWN: 6, UID: 7 } as const;
/** Terminal ioctls (asm-generic/ioctls.h); the _IOR ones carry an int. */
export const TIOC = {
  TCGETS: 0x5401, TCSETS: 0x5402, EXCL: 0x540c, SCTTY: 0x540e, GPGRP: 0x540f, SPGRP: 0x5410,
  GWINSZ: 0x5413, SWINSZ: 0x5414, PKT: 0x5420, GSID: 0x5429, GPTN: 0x80045430, SPTLCK: 0x40045431,
  GPKT: 0x80045438, GPTLCK: 0x80045439, GEXCL: 0x80045440, GPTPEER: 0x5441, GLCKTRMIOS: 0x5456,
  SLCKTRMIOS: 0x5457,
} as const;
/** struct termios as TCGETS fills it: four flag words, c_line, c_cc[NCCS]. */
export const TERMIOS_SIZE = 36;
export const NCCS = 19;
