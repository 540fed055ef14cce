// Remote system calls: make a stopped task execute one system call of our choice.
// We point its instruction pointer at an existing `syscall` instruction (in its vDSO
// or any executable mapping, never writing code into it) and step it with
// PTRACE_SYSCALL to the syscall-exit stop, where rax holds the result.
import { readFileSync } from 'node:fs';
import {
  ptrace, trySyscall, Regs, decodeWaitStatus, waitpid, __WALL, NR, SIG, PROT, MAP, PTRACE_EVENT,
  NT_X86_XSTATE, ERESTARTNOHAND, ERESTARTSYS, ERESTARTNOINTR, ERESTART_RESTARTBLOCK, errnoName,
} from '../sys/index.js';
import { MemIO } from './memio.js';

/** A system call that failed inside the target task. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  readonly code: string;
  constructor(readonly pid: number, readonly call: string, readonly errno: number) {
    super(`${call} in task ${pid}: ${errnoName(errno)}`);
    this.code = errnoName(errno);
  }
}

/** The task went away (killed or exited) while we were driving it. */
export class TaskGoneError extends Error {
  override readonly name = 'TaskGoneError';
  constructor(readonly pid: number, how: string) {
    super(`task ${pid} ${how}`);
  }
}

/** Another tracer (a debugger, another dump) holds the task: it is not ours to take. */
export class TaskTracedError extends Error {
  override readonly name = 'TaskTracedError';
  constructor(readonly pid: number, readonly tracer: number, tracerComm: string) {
    super(`task ${pid} is already being traced by ${tracer} (${tracerComm}); another dump?`);
  }
}

const SYSCALL_STOP = SIG.TRAP | 0x80; // with PTRACE_O_TRACESYSGOOD
/**
 * The stub page's code: `syscall; int3` (one call, one stop), then at BATCH_AT
 * a loop over entries at rbx of 8 words (nr, six arguments, the result) until
 * one whose nr is -1 or a call that fails, then int3 (batch: one stop for many).
 */
const BATCH_AT = 8;
const STUB = Buffer.from([
  0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, // syscall; int3; padding
  0x48, 0x8b, 0x03, //             loop: mov rax, [rbx]
  0x48, 0x83, 0xf8, 0xff, //             cmp rax, -1
  0x74, 0x2c, //                         je done
  0x48, 0x8b, 0x7b, 0x08, //             mov rdi, [rbx+8]
  0x48, 0x8b, 0x73, 0x10, //             mov rsi, [rbx+16]
  0x48, 0x8b, 0x53, 0x18, //             mov rdx, [rbx+24]
  0x4c, 0x8b, 0x53, 0x20, //             mov r10, [rbx+32]
  0x4c, 0x8b, 0x43, 0x28, //             mov r8, [rbx+40]
  0x4c, 0x8b, 0x4b, 0x30, //             mov r9, [rbx+48]
  0x0f, 0x05, //                         syscall
  0x48, 0x89, 0x43, 0x38, //             mov [rbx+56], rax
  0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax, -4095
  0x73, 0x06, //                         jae done
  0x48, 0x83, 0xc3, 0x40, //             add rbx, 64
  0xeb, 0xcb, //                         jmp loop
  0xcc, //                         done: int3
]);
/** Where each kind of run stops: just past its int3. */
const SINGLE_END = 3;
const BATCH_END = STUB.length;
/** Entries of one batch at most: they take the last 4 KiB of the scratch area. */
const BATCH_MAX = 63;

/** One call of Remote.batch. */
export interface BatchCall {
  name: string;
  nr: number;
  args: Array<bigint | number>;
}

/**
 * Apply the kernel's syscall-restart rule to registers of a task stopped inside a
 * system call, as the kernel would when it returns to user space with no handler to
 * run: the interrupted call is re-executed. Returns a new Regs with orig_ax = -1.
 *
 * A call that restarts through restart_syscall() (-ERESTART_RESTARTBLOCK: poll,
 * nanosleep, futex waits with a timeout) needs the task's kernel restart block.
 * A task that goes on in place (`inPlace`) still has it; a restored one does not
 * (restart_syscall would fail with EINTR, which CRIU passes on and which e.g. GNU
 * tail treats as fatal), so for the image the call itself is run again with its
 * own arguments, still in the registers: a relative timeout starts over.
 */
export function restartAdjusted(r: Regs, inPlace = false): Regs {
  const out = r.clone();
  if (r.getSigned('orig_ax') >= 0n) {
    const ax = -r.getSigned('ax');
    if (ax === BigInt(ERESTARTNOHAND) || ax === BigInt(ERESTARTSYS) || ax === BigInt(ERESTARTNOINTR)) {
      out.set('ax', r.get('orig_ax'));
      out.set('ip', r.get('ip') - 2n);
    } else if (ax === BigInt(ERESTART_RESTARTBLOCK)) {
      out.set('ax', inPlace ? BigInt(NR.restart_syscall) : r.get('orig_ax'));
      out.set('ip', r.get('ip') - 2n);
    }
  }
  out.set('orig_ax', -1n);
  return out;
}

const SI_TKILL = -6;
const TRAP_BIT = 1n << BigInt(SIG.TRAP - 1);

/** SigIgn of /proc/PID/status: the signals the task ignores (dispositions are per process). */
function sigIgnored(pid: number): bigint {
  try {
    const m = /^SigIgn:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? BigInt('0x' + m[1]) : 0n;
  } catch {
    return 0n;
  }
}

/**
 * Queue a signal again with its siginfo (rt_tgsigqueueinfo accepts the kernel's
 * negative codes, SI_TIMER among them, from another process); one sent by kill or
 * tgkill, or by the kernel, can only be sent again as tgkill.
 */
function requeue(tgid: number, tid: number, sig: number, info: Buffer): void {
  const code = info.readInt32LE(8);
  if (code < 0 && code !== SI_TKILL) {
    if (trySyscall(NR.rt_tgsigqueueinfo, tgid, tid, sig, info) === 0) return;
  }
  trySyscall(NR.tgkill, tgid, tid, sig);
}

export interface RemoteOptions {
  /** Address of a `syscall` instruction in the task. */
  syscallIp: bigint;
  /**
   * Runs the task's pidfd_getfd calls of cryo's fd `cryoFd` (a task in a user
   * namespace of its own takes them from a donor inside it: see startRootInUserns).
   */
  reachCryo?: <T>(cryoFd: number, fn: () => T) => T;
  /**
   * The tasks and threads it clones get their pids by cryo's write of
   * ns_last_pid, not set_tid: a task of a user namespace of the tree's own in
   * cryo's pid namespace has no CAP_CHECKPOINT_RESTORE over that pid namespace.
   */
  pidsByLastPid?: boolean;
}

/**
 * A task stopped under ptrace that we drive. Created from a ptrace stop; `finish()`
 * puts back its registers (restart-adjusted) and signal mask.
 */
export class Remote {
  readonly mem: MemIO;
  /** Registers as they were when we took the task. */
  readonly saved: Regs;
  readonly savedSigmask: bigint;
  private readonly work: Regs;
  private scratchAddr = 0n;
  private scratchLen = 0;
  /** Signals taken out of the queue by a delivery stop while we drove the task, with their siginfo. */
  private readonly held: Array<{ sig: number; info: Buffer }> = [];
  /** A SIGSTOP came while we drove the task: it stops once let go. */
  private stopWhenDone = false;
  /**
   * SIGTRAPs that came while we drove the task (SIGTRAP stays unblocked, see the
   * constructor): queued again only when we let go, or the next call would take
   * them out again.
   */
  private readonly heldTraps: Buffer[] = [];
  /**
   * The task ignores SIGTRAP: our int3 would reset that to the default (the
   * kernel does so for a forced signal that is ignored), so calls step with
   * PTRACE_SYSCALL instead.
   */
  private trapIgnored: boolean;
  /** Pid (in cryo's pid namespace) of the last task this one cloned or forked. */
  lastChild = 0;
  syscallIp: bigint;
  /** Address of our own `syscall; int3` stub in scratch memory (fast path), or 0. */
  private stubIp = 0n;
  /** Scratch borrowed from another thread of the same address space: not ours to unmap. */
  private borrowed = false;

  /** See RemoteOptions; the tasks and threads this one clones get it too. */
  readonly reachCryo: (<T>(cryoFd: number, fn: () => T) => T) | undefined;
  /** See RemoteOptions; so do its clones. */
  readonly pidsByLastPid: boolean;

  constructor(readonly pid: number, opts: RemoteOptions) {
    this.syscallIp = opts.syscallIp;
    this.reachCryo = opts.reachCryo;
    this.pidsByLastPid = opts.pidsByLastPid ?? false;
    this.saved = ptrace.getRegs(pid);
    this.work = this.saved.clone();
    this.trapIgnored = (sigIgnored(pid) & TRAP_BIT) !== 0n;
    // A task stopped inside sigsuspend/ppoll runs with a temporary mask; the kernel
    // puts its real one back as soon as the task resumes. One harmless call first,
    // so that what we read (and later restore) is the task's real blocked mask.
    this.callRaw(NR.getpid);
    this.savedSigmask = ptrace.getSigmask(pid);
    // Block everything we can while we run calls, so no handler runs in between;
    // but not SIGTRAP: the int3 of our stub forces one, and a forced signal that
    // is blocked gets its handler reset to the default by the kernel.
    ptrace.setSigmask(pid, ~TRAP_BIT);
    this.mem = new MemIO(pid);
    // A signal that came during that first call goes back into the queue, siginfo and
    // all: the dump sees it as pending, and the task gets it as it would have.
    for (const h of this.held.splice(0)) {
      if (h.sig === SIG.TRAP) this.heldTraps.push(h.info);
      else requeue(this.tgid(), pid, h.sig, h.info);
    }
  }

  /**
   * The task's SIGTRAP disposition became SIG_IGN (a restore set it): from now on
   * calls step with PTRACE_SYSCALL, which needs no int3.
   */
  noteTrapIgnored(ignored: boolean): void {
    this.trapIgnored = ignored;
  }

  /** Run one system call; returns the raw (signed) rax. */
  callRaw(nr: number, ...args: Array<bigint | number>): bigint {
    if (nr === NR.pidfd_getfd && this.reachCryo) return this.reachCryo(Number(args[1]), () => this.run(nr, args));
    return this.run(nr, args);
  }

  private run(nr: number, args: Array<bigint | number>): bigint {
    const r = this.work;
    r.buf.set(this.saved.buf);
    r.set('ax', nr);
    r.set('orig_ax', -1n);
    r.set('ip', this.stubIp || this.syscallIp);
    const names = ['di', 'si', 'dx', 'r10', 'r8', 'r9'] as const;
    for (let i = 0; i < 6; i++) r.set(names[i]!, i < args.length ? BigInt(args[i]!) : 0n);
    ptrace.setRegs(this.pid, r);
    if (this.stubIp && !this.trapIgnored) {
      this.runToTrap(r, SINGLE_END); // one stop: the int3 after the syscall
    } else {
      this.step(); // syscall-enter stop
      this.step(); // syscall-exit stop
      ptrace.getRegs(this.pid, r);
    }
    return r.getSigned('ax');
  }

  /**
   * Run independent system calls in order with one stop for all (the stub's
   * loop), as CRIU's restorer runs them in the task; throws RemoteError for the
   * first that fails, none after it having run. Calls one by one where the stub
   * cannot stop on its int3 (SIGTRAP ignored) or there is no stub yet.
   */
  batch(calls: readonly BatchCall[]): bigint[] {
    if (!this.stubIp || this.trapIgnored || calls.length < 2) return calls.map((c) => this.call(c.name, c.nr, ...c.args));
    const out: bigint[] = [];
    for (let at = 0; at < calls.length; at += BATCH_MAX) {
      const part = calls.slice(at, at + BATCH_MAX);
      const buf = Buffer.alloc(64 * (part.length + 1));
      part.forEach((c, i) => {
        buf.writeBigInt64LE(BigInt(c.nr), 64 * i);
        c.args.forEach((a, j) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 64 * i + 8 * (j + 1)));
      });
      buf.writeBigInt64LE(-1n, 64 * part.length);
      const addr = this.scratch(4096) + BigInt(this.scratchLen - 4096);
      this.mem.write(addr, buf);
      const r = this.work;
      r.buf.set(this.saved.buf);
      r.set('orig_ax', -1n);
      r.set('ip', this.stubIp + BigInt(BATCH_AT));
      r.set('bx', addr);
      ptrace.setRegs(this.pid, r);
      this.runToTrap(r, BATCH_END);
      const res = this.mem.read(addr, buf.length);
      for (let i = 0; i < part.length; i++) {
        const ret = res.readBigInt64LE(64 * i + 56);
        if (ret < 0n && ret > -4096n) throw new RemoteError(this.pid, part[i]!.name, Number(-ret));
        out.push(ret);
      }
    }
    return out;
  }

  /** Run one system call; throws RemoteError on failure. */
  call(name: string, nr: number, ...args: Array<bigint | number>): bigint {
    const ret = this.callRaw(nr, ...args);
    if (ret < 0n && ret > -4096n) throw new RemoteError(this.pid, name, Number(-ret));
    return ret;
  }

  private step(): void {
    for (;;) {
      ptrace.syscallStep(this.pid, 0);
      const { status } = waitpid(this.pid, __WALL);
      const ws = decodeWaitStatus(status);
      if (ws.exited !== undefined) throw new TaskGoneError(this.pid, `exited with status ${ws.exited}`);
      if (ws.signaled !== undefined) throw new TaskGoneError(this.pid, `was killed by signal ${ws.signaled}`);
      if (ws.stopped === SYSCALL_STOP) return;
      if (ws.event !== undefined) {
        this.noteEvent(ws.event); // event stop (clone, PTRACE_EVENT_STOP...): go on
        continue;
      }
      // A signal-delivery stop (no int3 runs here: a SIGTRAP is a real one too):
      // hold it back, to be queued again (see the constructor).
      if (ws.stopped !== undefined) this.hold(ws.stopped);
    }
  }

  /** Run to our int3 (the stub's byte before `end`); `r` gets the registers there. */
  private runToTrap(r: Regs, end: number): void {
    for (;;) {
      ptrace.cont(this.pid, 0);
      const { status } = waitpid(this.pid, __WALL);
      const ws = decodeWaitStatus(status);
      if (ws.exited !== undefined) throw new TaskGoneError(this.pid, `exited with status ${ws.exited}`);
      if (ws.signaled !== undefined) throw new TaskGoneError(this.pid, `was killed by signal ${ws.signaled}`);
      if (ws.event !== undefined) {
        this.noteEvent(ws.event);
        continue;
      }
      if (ws.stopped === SIG.TRAP) {
        // Ours is the one raised by the int3, just past it; a SIGTRAP sent to the
        // task arrives on the way out of the syscall, before the int3 ran.
        ptrace.getRegs(this.pid, r);
        if (r.get('ip') === this.stubIp + BigInt(end)) return;
      }
      if (ws.stopped !== undefined) this.hold(ws.stopped);
    }
  }

  private hold(sig: number): void {
    const info = ptrace.getSiginfo(this.pid);
    if (this.savedSigmask === undefined) this.held.push({ sig, info });
    // Once every signal but SIGTRAP is blocked only SIGSTOP and SIGTRAP can stop
    // us: both are sent again when the task is let go (sent now, they would stop
    // the next call again).
    else if (sig === SIG.STOP) this.stopWhenDone = true;
    else if (sig === SIG.TRAP) this.heldTraps.push(info);
    else requeue(this.tgid(), this.pid, sig, info);
  }

  /** Queue again the SIGTRAPs held back (the task is stopped with its own mask again). */
  private requeueTraps(): void {
    for (const info of this.heldTraps.splice(0)) requeue(this.tgid(), this.pid, SIG.TRAP, info);
  }

  /** The thread group, as cryo sees it (not a remote getpid: that is the task's pid namespace's view). */
  private tgid(): number {
    const m = /^Tgid:\s+(\d+)/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : this.pid;
  }

  private noteEvent(ev: number): void {
    if (ev === PTRACE_EVENT.CLONE || ev === PTRACE_EVENT.FORK || ev === PTRACE_EVENT.VFORK) {
      this.lastChild = Number(ptrace.getEventMsg(this.pid));
    }
  }

  /**
   * Place the scratch area at a fixed address (restore: somewhere no dumped VMA
   * will go). Any previous scratch area is forgotten, not unmapped: the caller is
   * about to unmap everything else anyway.
   */
  placeScratch(addr: bigint, len: number): void {
    const size = Math.max(65536, (len + 4095) & ~4095) + 4096;
    this.stubIp = 0n;
    const a = this.call('mmap', NR.mmap, addr, size, PROT.READ | PROT.WRITE | PROT.EXEC,
      MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE, -1, 0);
    if (a !== addr) throw new Error(`scratch mapping landed at 0x${a.toString(16)}, not 0x${addr.toString(16)}`);
    this.mem.write(a, STUB);
    this.stubIp = a;
    this.scratchAddr = a + 4096n;
    this.scratchLen = size - 4096;
  }

  /**
   * Use the scratch area of `owner`, another thread of the same address space
   * (threads share memory, so one area serves all; calls are never concurrent).
   */
  borrowScratch(owner: Remote): void {
    if (!owner.scratchAddr) owner.scratch(4096);
    this.scratchAddr = owner.scratchAddr;
    this.scratchLen = owner.scratchLen;
    this.stubIp = owner.stubIp;
    this.syscallIp = owner.syscallIp;
    this.borrowed = true;
  }

  /**
   * Calls made without the stub go through the stub's own syscall instruction
   * (stepped to the syscall's exit, so the int3 after it never runs: the stub may
   * unmap itself). For a task that is to have no vDSO, whose syscall it used.
   */
  syscallsThroughStub(): void {
    if (!this.stubIp) throw new Error(`task ${this.pid}: no scratch stub to make system calls through`);
    this.syscallIp = this.stubIp;
  }

  /** [start, end) of the scratch area including the stub page, or null. */
  scratchRange(): [bigint, bigint] | null {
    return this.scratchAddr ? [this.scratchAddr - 4096n, this.scratchAddr + BigInt(this.scratchLen)] : null;
  }

  /** Scratch memory in the task (mapped on first use, unmapped by finish()). */
  scratch(len: number): bigint {
    if (len > this.scratchLen) {
      if (this.borrowed) throw new Error(`borrowed scratch of ${this.scratchLen} bytes is too small for ${len}`);
      if (this.scratchAddr) this.unmapScratch();
      this.stubIp = 0n;
      // One extra page in front holds our `syscall; int3` stub: one stop per call.
      const size = Math.max(65536, (len + 4095) & ~4095) + 4096;
      const a = this.call('mmap', NR.mmap, 0, size, PROT.READ | PROT.WRITE | PROT.EXEC, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0);
      this.scratchAddr = a + 4096n;
      this.scratchLen = size - 4096;
      this.mem.write(a, STUB);
      this.stubIp = a;
    }
    return this.scratchAddr;
  }

  /** Copy `data` into scratch memory at `offset`; returns its remote address. */
  put(data: Uint8Array, offset = 0): bigint {
    const a = this.scratch(offset + data.length) + BigInt(offset);
    this.mem.write(a, data);
    return a;
  }

  /** Drop the scratch mapping (if any). */
  releaseScratch(): void {
    if (this.borrowed) {
      this.scratchAddr = 0n;
      this.scratchLen = 0;
      this.stubIp = 0n;
      this.borrowed = false;
      return;
    }
    if (this.scratchAddr) this.unmapScratch();
  }

  private unmapScratch(): void {
    // The stub lives in the scratch mapping: unmap it from elsewhere.
    this.stubIp = 0n;
    this.call('munmap', NR.munmap, this.scratchAddr - 4096n, this.scratchLen + 4096);
    this.scratchAddr = 0n;
    this.scratchLen = 0;
  }

  /**
   * End of a restore: drop the scratch area, then give the task its final
   * registers, FPU state and signal mask. The task stays stopped until detached.
   */
  finishAs(regs: Regs, sigmask: bigint, xstate?: Buffer, last?: (mem: MemIO) => void): void {
    this.releaseScratch();
    // After the last call of ours: what the kernel would undo on our calls' way out.
    last?.(this.mem);
    const r = regs.clone();
    r.set('orig_ax', -1n); // no syscall-restart processing on the way out
    ptrace.setRegs(this.pid, r);
    if (xstate) ptrace.setRegset(this.pid, NT_X86_XSTATE, xstate);
    ptrace.setSigmask(this.pid, sigmask);
    this.mem.close();
    this.requeueTraps();
  }

  /** Put back the task's own registers and mask; the task stays stopped. */
  finish(): void {
    try {
      this.releaseScratch();
    } finally {
      ptrace.setRegs(this.pid, restartAdjusted(this.saved, true));
      ptrace.setSigmask(this.pid, this.savedSigmask);
      this.mem.close();
      this.requeueTraps();
      if (this.stopWhenDone) trySyscall(NR.tgkill, this.tgid(), this.pid, SIG.STOP);
    }
  }
}

