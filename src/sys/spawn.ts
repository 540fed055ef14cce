// Starting a process with a chosen pid, optionally as our sibling: clone3() with
// set_tid (and CLONE_PARENT), CLONE_VM|CLONE_VFORK, whose child runs nothing of
// Node's: it returns from the syscall onto a stack we prepared, into a 60-byte
// stub that execve()s the program (or exits 127). The parent resumes once the
// child has exec'd, exactly as with vfork()+exec.
import { addressOf, processVmWrite, syscall } from './libc.js';
import { NR, CLONE, SIG } from './nr.js';

const PAGE = 4096;

const imm32 = (v: number): number[] => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return [...b];
};
const imm64 = (v: bigint): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v, 0);
  return [...b];
};

/**
 * x86_64 stub at `base`: `before` (code of its own), then execveat(fd, "", argv,
 * NULL, AT_EMPTY_PATH); exit_group(127). Its data (a scratch byte, the path,
 * argv) after the code.
 */
function stub(base: bigint, fd: number, argv0: string, before: (scratch: bigint) => number[] = () => []): Buffer {
  const bufOff = 160;
  const pathOff = bufOff + 8;
  const arg0Off = pathOff + 8;
  const argvOff = arg0Off + 64;
  const code = Buffer.from([
    ...before(base + BigInt(bufOff)),
    0xbf, ...imm32(fd), //                         mov edi, fd
    0x48, 0xbe, ...imm64(base + BigInt(pathOff)), // movabs rsi, "" (the path)
    0x48, 0xba, ...imm64(base + BigInt(argvOff)), // movabs rdx, argv
    0x45, 0x31, 0xd2, //                           xor r10d, r10d (envp)
    0x41, 0xb8, 0x00, 0x10, 0, 0, //               mov r8d, AT_EMPTY_PATH
    0xb8, 0x42, 0x01, 0, 0, //                     mov eax, execveat
    0x0f, 0x05, //                                 syscall
    0xbf, 127, 0, 0, 0, //                         mov edi, 127
    0xb8, 231, 0, 0, 0, //                         mov eax, exit_group
    0x0f, 0x05, //                                 syscall
  ]);
  if (code.length > bufOff) throw new Error('spawn: stub too long');
  const b = Buffer.alloc(argvOff + 16);
  code.copy(b, 0);
  b.write(argv0 + '\0', arg0Off, 'latin1');
  b.writeBigUInt64LE(base + BigInt(arg0Off), argvOff);
  return b;
}

export interface SpawnAsOptions {
  /** The pid the child must get (clone3 set_tid); 0 for any. */
  pid: number;
  /** Make the child our sibling (CLONE_PARENT) instead of our child. */
  sibling: boolean;
  /** CLONE_NEW* flags: namespaces the child starts in. */
  ns?: number;
}

/**
 * Start the executable open at `fd` as a new process; returns its pid once it has
 * exec'd. By fd, not by a /proc/self/fd path: the child is another thread group,
 * which may not walk a non-dumpable cryo's /proc directory.
 */
export function spawnAs(fd: number, argv0: string, o: SpawnAsOptions): number {
  if (argv0.length > 60) throw new Error('spawnAs: argv0 too long');
  const base = BigInt(syscall('mmap', NR.mmap, 0, 2 * PAGE, 7 /* rwx */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0));
  try {
    return cloneOnto(base, stub(base, fd, argv0), o, CLONE.VFORK);
  } finally {
    syscall('munmap', NR.munmap, base, 2 * PAGE);
  }
}

/**
 * clone3() of a child of CLONE_VM that runs `code` (put at `base`, the first of
 * two pages whose second is its stack): `ret` in libc's syscall() pops the
 * stub's address from the stack. Returns the child's pid.
 */
function cloneOnto(base: bigint, code: Buffer, o: SpawnAsOptions, more: number): number {
  const self = process.pid;
  processVmWrite(self, code, base);
  const slot = Buffer.alloc(8);
  slot.writeBigUInt64LE(base, 0);
  processVmWrite(self, slot, base + BigInt(2 * PAGE - 8));
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(o.pid, 0);
  const args = Buffer.alloc(88);
  const flags = BigInt(CLONE.VM | more | (o.ns ?? 0)) | BigInt(CLONE.CLEAR_SIGHAND) | (o.sibling ? BigInt(CLONE.PARENT) : 0n);
  args.writeBigUInt64LE(flags, 0);
  args.writeBigUInt64LE(o.sibling ? 0n : BigInt(SIG.CHLD), 32); // exit_signal
  args.writeBigUInt64LE(base + BigInt(PAGE), 40); // stack
  args.writeBigUInt64LE(BigInt(PAGE - 8), 48); // stack_size: sp lands on the slot
  if (o.pid) {
    args.writeBigUInt64LE(addressOf(tid), 64);
    args.writeBigUInt64LE(1n, 72);
  }
  return syscall('clone3', NR.clone3, args, 88, 0, 0, 0, 0, tid);
}

/**
 * What spawnGated's stub does before the exec: read(gate, buf, 1);
 * setresgid(0, 0, 0); setresuid(0, 0, 0). Ids 0 of its new user namespace:
 * their maps are written while it waits at the gate, and the exec keeps the
 * capabilities of a root.
 */
function gateCode(gate: number): (scratch: bigint) => number[] {
  const zero3 = [0x31, 0xff, 0x31, 0xf6, 0x31, 0xd2]; // xor edi, edi; xor esi, esi; xor edx, edx
  return (scratch) => [
    0xbf, ...imm32(gate), //                 mov edi, gate
    0x48, 0xbe, ...imm64(scratch), //        movabs rsi, buf
    0xba, 1, 0, 0, 0, //                     mov edx, 1
    0x31, 0xc0, //                           xor eax, eax (read)
    0x0f, 0x05, //                           syscall
    ...zero3, 0xb8, 119, 0, 0, 0, 0x0f, 0x05, // setresgid(0, 0, 0)
    ...zero3, 0xb8, 117, 0, 0, 0, 0x0f, 0x05, // setresuid(0, 0, 0)
  ];
}

/** read(2) of one byte, again after EINTR. */
function readRetrying(fd: number): void {
  for (;;) {
    try {
      syscall('read', NR.read, fd, Buffer.alloc(1), 1);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EINTR') throw e;
    }
  }
}

/**
 * As spawnAs, for a child in a new user namespace (CLONE_NEWUSER among
 * `o.ns`) that must be its root: the child waits at a gate while `gate(pid)`
 * writes its maps, then becomes ids 0 there and execs, a root with every
 * capability of its namespace. Without CLONE_VFORK (the parent goes on to
 * write the maps), still CLONE_VM: the parent waits for the exec (a
 * close-on-exec pipe's end closing) before it unmaps the stub. Returns the pid.
 */
export function spawnGated(fd: number, argv0: string, o: SpawnAsOptions, gate: (pid: number) => void): number {
  if (argv0.length > 60) throw new Error('spawnGated: argv0 too long');
  const O_CLOEXEC = 0o2000000;
  const pipe = (): [number, number] => {
    const b = Buffer.alloc(8);
    syscall('pipe2', NR.pipe2, b, O_CLOEXEC);
    return [b.readInt32LE(0), b.readInt32LE(4)];
  };
  const [gateR, gateW] = pipe();
  const [execR, execW] = pipe();
  const open = new Set([gateR, gateW, execR, execW]);
  const close = (f: number) => {
    if (open.delete(f)) syscall('close', NR.close, f);
  };
  const base = BigInt(syscall('mmap', NR.mmap, 0, 2 * PAGE, 7 /* rwx */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0));
  let pid = 0;
  try {
    pid = cloneOnto(base, stub(base, fd, argv0, gateCode(gateR)), o, 0);
    close(execW);
    gate(pid);
    syscall('write', NR.write, gateW, Buffer.from([1]), 1);
    close(gateW);
    // EOF once the child has exec'd (or died): its copy of the pipe's end is gone.
    readRetrying(execR);
    return pid;
  } catch (e) {
    if (pid > 0) {
      syscall('kill', NR.kill, pid, SIG.KILL);
      close(execW);
      close(gateW);
      readRetrying(execR); // it is gone from our memory before we unmap it
    }
    throw e;
  } finally {
    for (const f of [...open]) close(f);
    syscall('munmap', NR.munmap, base, 2 * PAGE);
  }
}
