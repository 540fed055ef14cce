// Kernel facts, found out once per run and only when first asked (CRIU's kerndat):
// what the kernel can do that cryo's dump and restore depend on, and what the
// probes of `cryo check` share (one seed child driven over ptrace, the
// userfaultfd feature mask, the capability set). It hangs off the Context.
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import {
  NR, O, PR, PTRACE, PTRACE_O, NT_X86_XSTATE, ENOSYS, EPERM, UFFD_API, UFFDIO_API, UFFD_USER_MODE_ONLY, USERFAULTFD_IOC_NEW,
  KCMP, errnoName, kcmp, SysError, trySyscall, ptrace, cpuid,
} from './sys/index.js';
import { xsaveLayout, type XsaveLayout } from './objects/regs.js';
import { spawnSeed, killAndReap } from './tracer/seed.js';
import { findSyscallInsn, waitForStop } from './tracer/seize.js';
import { Remote } from './tracer/remote.js';
import { uffdioApi } from './abi/index.js';
import { probeMemTrack } from './objects/track-probe.js';

/** Outcome of one step of a shared probe. */
export interface Step {
  ok: boolean;
  why?: string;
}

export interface SeedFacts {
  seize: Step;
  xstate: Step;
  sigmask: Step;
  peeksiginfo: Step;
  rseq: Step;
  suspendSeccomp: Step;
  remote: Step;
  seccompFilter: Step;
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function step(fn: () => boolean | string | void): Step {
  try {
    const r = fn();
    if (r === undefined || r === true) return { ok: true };
    return { ok: false, why: r === false ? undefined : r };
  } catch (e) {
    return { ok: false, why: describe(e) };
  }
}

export function errname(neg: number): string {
  return errnoName(-neg);
}

/** Close an fd of ours; never throws. */
export function closeFd(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    /* already gone */
  }
}

/**
 * The per-run cache of what several probes share (CRIU's kdat). Nothing here
 * outlives the run: the seed child is gone before seed() returns.
 */
export class Kerndat {
  /** Why a probe said no, by feature name. */
  readonly why = new Map<string, string>();
  private seedFacts?: SeedFacts;
  private uffd?: { features: bigint } | { error: string };
  private caps?: bigint;
  private kcmpStep?: Step;
  private xsave?: XsaveLayout;
  private memTrackStep?: Step;

  /** Memory tracking for pre-dump and --track-mem (async uffd write-protect + PAGEMAP_SCAN), tried for real. */
  memTrack(): Step {
    return (this.memTrackStep ??= step(() => probeMemTrack() ?? true));
  }

  /** Where this CPU's XSAVE area keeps each state component (CPUID leaf 0xD). */
  xsaveLayout(): XsaveLayout {
    return (this.xsave ??= xsaveLayout(cpuid));
  }

  /** Effective capabilities of this process (CapEff of /proc/self/status). */
  capEff(): bigint {
    if (this.caps === undefined) {
      const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
      this.caps = m ? BigInt('0x' + m[1]) : 0n;
    }
    return this.caps;
  }

  hasCap(cap: number): boolean {
    return (this.capEff() & (1n << BigInt(cap))) !== 0n;
  }

  /**
   * Start a seed child, seize it and try each ptrace request cryo uses on it, then
   * a remote syscall and a seccomp filter dump; kill and reap it. Done once.
   */
  seed(): SeedFacts {
    if (this.seedFacts !== undefined) return this.seedFacts;
    const no = (why: string): Step => ({ ok: false, why });
    let pid = -1;
    try {
      pid = spawnSeed(0, false);
    } catch (e) {
      const s = no(`cannot start a child to trace: ${describe(e)}`);
      return (this.seedFacts = {
        seize: s, xstate: s, sigmask: s, peeksiginfo: s, rseq: s, suspendSeccomp: s, remote: s, seccompFilter: s,
      });
    }
    try {
      const base = PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL;
      const seize = step(() => {
        ptrace.seize(pid, base);
        ptrace.interrupt(pid);
        waitForStop(pid);
      });
      const notStopped = no(`the child could not be seized: ${seize.why ?? ''}`);
      if (!seize.ok) {
        return (this.seedFacts = {
          seize, xstate: notStopped, sigmask: notStopped, peeksiginfo: notStopped, rseq: notStopped,
          suspendSeccomp: notStopped, remote: notStopped, seccompFilter: notStopped,
        });
      }
      const xstate = step(() => {
        const n = ptrace.getRegset(pid, NT_X86_XSTATE, Buffer.alloc(1 << 16));
        // The legacy FXSAVE area (512 bytes) and the XSAVE header (64) at least.
        return n >= 576 || `PTRACE_GETREGSET NT_X86_XSTATE returned only ${n} bytes`;
      });
      const sigmask = step(() => {
        const m = ptrace.getSigmask(pid);
        ptrace.setSigmask(pid, m | (1n << 9n)); // SIGUSR1 (bit 9) blocked for a moment
        const changed = ptrace.getSigmask(pid);
        ptrace.setSigmask(pid, m);
        return (changed === (m | (1n << 9n)) && ptrace.getSigmask(pid) === m) || 'PTRACE_SETSIGMASK did not take';
      });
      const peeksiginfo = step(() => {
        ptrace.peekSiginfo(pid, false, 0, 1);
        ptrace.peekSiginfo(pid, true, 0, 1);
      });
      const rseq = step(() => {
        const c = ptrace.getRseqConfig(pid);
        return c.flags === 0 || `PTRACE_GET_RSEQ_CONFIGURATION reports flags ${c.flags}`;
      });
      const suspendSeccomp = step(() => {
        try {
          ptrace.setOptions(pid, base | PTRACE_O.SUSPEND_SECCOMP);
        } catch (e) {
          if (SysError.is(e, 'EINVAL')) return false;
          throw e;
        }
        ptrace.setOptions(pid, base);
      });
      let rem: Remote | undefined;
      const remote = step(() => {
        rem = new Remote(pid, { syscallIp: findSyscallInsn(pid) });
        const got = rem.callRaw(NR.getpid);
        return got === BigInt(pid) || `a remote getpid() returned ${got}`;
      });
      const seccompFilter = step(() => {
        if (rem === undefined) return `needs remote syscalls: ${remote.why ?? ''}`;
        // One BPF instruction: ret SECCOMP_RET_ALLOW.
        const insn = Buffer.alloc(8);
        insn.writeUInt16LE(0x06, 0);
        insn.writeUInt32LE(0x7fff0000, 4);
        const insnAddr = rem.put(insn, 0);
        const prog = Buffer.alloc(16);
        prog.writeUInt16LE(1, 0);
        prog.writeBigUInt64LE(insnAddr, 8);
        const progAddr = rem.put(prog, 64);
        rem.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        rem.call('prctl(PR_SET_SECCOMP)', NR.prctl, PR.SET_SECCOMP, 2, progAddr);
        const n = trySyscall(NR.ptrace, PTRACE.SECCOMP_GET_FILTER, pid, 0, 0);
        if (n === 1) return true;
        return `PTRACE_SECCOMP_GET_FILTER gave ${n < 0 ? errname(n) : n}`;
      });
      try {
        rem?.mem.close();
      } catch {
        /* closed */
      }
      return (this.seedFacts = { seize, xstate, sigmask, peeksiginfo, rseq, suspendSeccomp, remote, seccompFilter });
    } finally {
      killAndReap(pid);
    }
  }

  /** kcmp(KCMP_FILE) tells two opens of one file apart and an fd from itself. */
  kcmpFile(): Step {
    if (this.kcmpStep !== undefined) return this.kcmpStep;
    let a = -1;
    let b = -1;
    this.kcmpStep = step(() => {
      a = openSync('/dev/null', 'r');
      b = openSync('/dev/null', 'r');
      if (kcmp(process.pid, process.pid, KCMP.FILE, a, a) !== 0) return 'kcmp(KCMP_FILE) says an fd differs from itself';
      if (kcmp(process.pid, process.pid, KCMP.FILE, a, b) === 0) return 'kcmp(KCMP_FILE) says two opens are one';
    });
    closeFd(a);
    closeFd(b);
    return this.kcmpStep;
  }

  /** The userfaultfd feature mask (UFFDIO_API), or why there is none. */
  uffdFeatures(): { features: bigint } | { error: string } {
    if (this.uffd !== undefined) return this.uffd;
    const flags = O.CLOEXEC | O.NONBLOCK;
    let fd = trySyscall(NR.userfaultfd, flags);
    if (fd === -EPERM) fd = trySyscall(NR.userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (fd === -EPERM && existsSync('/dev/userfaultfd')) {
      let dev = -1;
      try {
        dev = openSync('/dev/userfaultfd', constants.O_RDWR | O.CLOEXEC);
        fd = trySyscall(NR.ioctl, dev, USERFAULTFD_IOC_NEW, flags);
      } catch {
        /* keep EPERM */
      } finally {
        closeFd(dev);
      }
    }
    if (fd < 0) {
      return (this.uffd = {
        error: fd === -ENOSYS ? 'the kernel has no userfaultfd' : `userfaultfd() failed with ${errname(fd)}`,
      });
    }
    try {
      const api = uffdioApi.encode({ api: UFFD_API });
      const r = trySyscall(NR.ioctl, fd, UFFDIO_API, api);
      if (r < 0) return (this.uffd = { error: `UFFDIO_API failed with ${errname(r)}` });
      return (this.uffd = { features: uffdioApi.decode(api).features });
    } finally {
      closeFd(fd);
    }
  }
}
