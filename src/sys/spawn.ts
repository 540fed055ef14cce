// Starting a process with a chosen pid, optionally as our sibling: clone3() with
// set_tid (and CLONE_PARENT), CLONE_VM|CLONE_VFORK, whose child runs nothing of
// Node's: it returns from the syscall onto a stack we prepared, into a 60-byte
// stub that execve()s the program (or exits 127). The parent resumes once the
// child has exec'd, exactly as with vfork()+exec.
import { addressOf, processVmWrite, syscall } from './libc.js';
import { NR, CLONE, SIG } from './nr.js';

const PAGE = 4096;

/** x86_64 stub: execveat(fd, "", argv, NULL, AT_EMPTY_PATH); exit_group(127). Addresses patched in. */
function stub(base: bigint, fd: number, argv0: string): Buffer {
  const code = Buffer.from([
    0xbf, 0, 0, 0, 0, //                   mov edi, fd
    0x48, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rsi, "" (the path)
    0x48, 0xba, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rdx, argv
    0x45, 0x31, 0xd2, //                   xor r10d, r10d (envp)
    0x41, 0xb8, 0x00, 0x10, 0, 0, //       mov r8d, AT_EMPTY_PATH
    0xb8, 0x42, 0x01, 0, 0, //             mov eax, execveat
    0x0f, 0x05, //                         syscall
    0xbf, 127, 0, 0, 0, //                 mov edi, 127
    0xb8, 231, 0, 0, 0, //                 mov eax, exit_group
    0x0f, 0x05, //                         syscall
  ]);
  const pathOff = 64;
  const arg0Off = pathOff + 8;
  const argvOff = arg0Off + 64;
  const b = Buffer.alloc(argvOff + 16);
  code.copy(b, 0);
  b.writeInt32LE(fd, 1);
  b.writeBigUInt64LE(base + BigInt(pathOff), 7);
  b.writeBigUInt64LE(base + BigInt(argvOff), 17);
  b.write(argv0 + '\0', arg0Off, 'latin1');
  b.writeBigUInt64LE(base + BigInt(arg0Off), argvOff);
  b.writeBigUInt64LE(0n, argvOff + 8);
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
    const self = process.pid;
    processVmWrite(self, stub(base, fd, argv0), base);
    // The child's stack: `ret` in libc's syscall() pops the stub's address.
    const slot = Buffer.alloc(8);
    slot.writeBigUInt64LE(base, 0);
    processVmWrite(self, slot, base + BigInt(2 * PAGE - 8));
    const tid = Buffer.alloc(4);
    tid.writeInt32LE(o.pid, 0);
    const args = Buffer.alloc(88);
    const flags = BigInt(CLONE.VM | CLONE.VFORK | (o.ns ?? 0)) | BigInt(CLONE.CLEAR_SIGHAND) | (o.sibling ? BigInt(CLONE.PARENT) : 0n);
    args.writeBigUInt64LE(flags, 0);
    args.writeBigUInt64LE(o.sibling ? 0n : BigInt(SIG.CHLD), 32); // exit_signal
    args.writeBigUInt64LE(base + BigInt(PAGE), 40); // stack
    args.writeBigUInt64LE(BigInt(PAGE - 8), 48); // stack_size: sp lands on the slot
    if (o.pid) {
      args.writeBigUInt64LE(addressOf(tid), 64);
      args.writeBigUInt64LE(1n, 72);
    }
    return syscall('clone3', NR.clone3, args, 88, 0, 0, 0, 0, tid);
  } finally {
    syscall('munmap', NR.munmap, base, 2 * PAGE);
  }
}
