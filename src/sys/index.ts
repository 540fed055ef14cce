export * from './errors.js';
export * from './nr.js';
export * from './regs.js';
export * as ptrace from './ptrace.js';
export {
  addressOf, syscall, trySyscall, waitpid, kill, pidfdOpen, pidfdGetfd, pidfdSendSignal, dupCloexec, closeInherited,
  memfdCreate, prctl, getRobustList, kcmp, kcmpEpollTfd, processVmRead, setProcessIds, clockGettime, cpuid,
} from './libc.js';
export * from './wait.js';
export type { Arg } from './libc.js';
export * from './pagemap.js';
export * from './uffd.js';
export * from './spawn.js';
export * as sock from './socket.js';
export { sockDiagDump } from './socket.js';
export * from './caps.js';
export * as ipc from './ipc.js';
export * as netlink from './netlink.js';
export * as tun from './tun.js';
export * from './mount.js';
