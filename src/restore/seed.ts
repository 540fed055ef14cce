// The seed: a 130-byte static ELF that loops on pause(). cryo starts it as the
// tree's root, with the root's pid (clone3 set_tid; as cryo's sibling with
// --restore-sibling); every restored task starts as a copy of this tiny address
// space, which it then replaces.
import { closeSync, writeSync } from 'node:fs';
import { MFD, memfdCreate, spawnAs } from '../sys/index.js';

const BASE = 0x200000n;
const CODE = Buffer.from([
  0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
  0x0f, 0x05, //                   syscall
  0xeb, 0xf7, //                   jmp back to mov
]);

/** Build the seed executable image. */
export function seedElf(): Buffer {
  const ehdr = 64;
  const phdr = 56;
  const size = ehdr + phdr + CODE.length;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELF64, little endian, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // x86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BASE + BigInt(ehdr + phdr), 24); // entry
  b.writeBigUInt64LE(BigInt(ehdr), 32); // phoff
  b.writeUInt16LE(ehdr, 52);
  b.writeUInt16LE(phdr, 54);
  b.writeUInt16LE(1, 56); // phnum
  const p = ehdr;
  b.writeUInt32LE(1, p); // PT_LOAD
  b.writeUInt32LE(5, p + 4); // R+X
  b.writeBigUInt64LE(0n, p + 8);
  b.writeBigUInt64LE(BASE, p + 16);
  b.writeBigUInt64LE(BASE, p + 24);
  b.writeBigUInt64LE(BigInt(size), p + 32);
  b.writeBigUInt64LE(BigInt(size), p + 40);
  b.writeBigUInt64LE(0x1000n, p + 48);
  CODE.copy(b, ehdr + phdr);
  return b;
}


/** Start a seed with pid `pid` (0: any), as cryo's child or sibling, in new namespaces `ns`. */
export function spawnSeed(pid: number, sibling: boolean, ns = 0): number {
  const fd = memfdCreate('cryo-seed', MFD.CLOEXEC);
  try {
    const elf = seedElf();
    writeSync(fd, elf, 0, elf.length, 0);
    return spawnAs(fd, 'cryo-seed', { pid, sibling, ns });
  } finally {
    closeSync(fd);
  }
}
