// The kernel's structs cryo passes to syscalls and ioctls, x86_64 layouts, one
// codec each (as gVisor's pkg/abi). test/unit/abi.test.ts holds every size and
// offset against the C headers. Field names are the kernel's.
import { struct } from './struct.js';

export { Struct, struct, type Init, type Prim } from './struct.js';

export const timespec = struct('timespec', { tv_sec: 'i64', tv_nsec: 'i64' });
export const timeval = struct('timeval', { tv_sec: 'i64', tv_usec: 'i64' });
export const itimerspec = struct('itimerspec', { it_interval: timespec, it_value: timespec });
export const itimerval = struct('itimerval', { it_interval: timeval, it_value: timeval });

/** sigaltstack's stack_t. */
export const stackT = struct('stack_t', { ss_sp: 'u64', ss_flags: 'i32', ss_size: 'u64' });
/** prlimit64's struct rlimit64. */
export const rlimit64 = struct('rlimit64', { rlim_cur: 'u64', rlim_max: 'u64' });
export const schedParam = struct('sched_param', { sched_priority: 'i32' });

/** rt_sigaction's struct sigaction as the kernel takes it (asm/signal.h; an 8-byte mask). */
export const kSigaction = struct('kernel_sigaction', { sa_handler: 'u64', sa_flags: 'u64', sa_restorer: 'u64', sa_mask: 'u64' });

/** timer_create's sigevent: the union of 64 bytes, of which cryo uses the thread id. */
export const sigevent = struct('sigevent', { sigev_value: 'u64', sigev_signo: 'i32', sigev_notify: 'i32', sigev_notify_thread_id: 'i32' }, { size: 64 });

/** clone3's struct clone_args, version 2 (with cgroup). */
export const cloneArgs = struct('clone_args', {
  flags: 'u64', pidfd: 'u64', child_tid: 'u64', parent_tid: 'u64', exit_signal: 'u64', stack: 'u64', stack_size: 'u64',
  tls: 'u64', set_tid: 'u64', set_tid_size: 'u64', cgroup: 'u64',
});

/** fcntl's struct flock. */
export const flock = struct('flock', { l_type: 'i16', l_whence: 'i16', l_start: 'i64', l_len: 'i64', l_pid: 'i32' });
/** F_GETOWN_EX / F_SETOWN_EX. */
export const fOwnerEx = struct('f_owner_ex', { type: 'i32', pid: 'i32' });

/** capget/capset: the header, and one of the two data words of version 3. */
export const capUserHeader = struct('__user_cap_header_struct', { version: 'u32', pid: 'i32' });
export const capUserData = struct('__user_cap_data_struct', { effective: 'u32', permitted: 'u32', inheritable: 'u32' });

/** PR_SET_MM_MAP's struct prctl_mm_map. */
export const prctlMmMap = struct('prctl_mm_map', {
  start_code: 'u64', end_code: 'u64', start_data: 'u64', end_data: 'u64', start_brk: 'u64', brk: 'u64', start_stack: 'u64',
  arg_start: 'u64', arg_end: 'u64', env_start: 'u64', env_end: 'u64', auxv: 'u64', auxv_size: 'u32', exe_fd: 'u32',
});

/** TCP_REPAIR_WINDOW (linux/tcp.h), and one option of TCP_REPAIR_OPTIONS. */
export const tcpRepairWindow = struct('tcp_repair_window', { snd_wl1: 'u32', snd_wnd: 'u32', max_window: 'u32', rcv_wnd: 'u32', rcv_wup: 'u32' });
export const tcpRepairOpt = struct('tcp_repair_opt', { opt_code: 'u32', opt_val: 'u32' });

export const uffdioApi = struct('uffdio_api', { api: 'u64', features: 'u64', ioctls: 'u64' });
export const uffdioRange = struct('uffdio_range', { start: 'u64', len: 'u64' });
export const uffdioRegister = struct('uffdio_register', { range: uffdioRange, mode: 'u64', ioctls: 'u64' });
export const uffdioCopy = struct('uffdio_copy', { dst: 'u64', src: 'u64', len: 'u64', mode: 'u64', copy: 'i64' });

/** Version 3 of capget/capset: 64-bit sets as two data structs, low words first. */
export interface CapWords {
  eff: bigint;
  prm: bigint;
  inh: bigint;
}
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

export function encodeCapData(c: CapWords): Buffer {
  const b = Buffer.alloc(2 * capUserData.size);
  for (let i = 0; i < 2; i++) {
    const w = (v: bigint) => Number((v >> BigInt(32 * i)) & 0xffffffffn);
    capUserData.encode({ effective: w(c.eff), permitted: w(c.prm), inheritable: w(c.inh) }, b, i * capUserData.size);
  }
  return b;
}

export function decodeCapData(b: Buffer): CapWords {
  const [lo, hi] = [capUserData.decode(b, 0), capUserData.decode(b, capUserData.size)];
  const join = (l: number, h: number) => BigInt(l) | (BigInt(h) << 32n);
  return { eff: join(lo.effective, hi.effective), prm: join(lo.permitted, hi.permitted), inh: join(lo.inheritable, hi.inheritable) };
}
