// Terminal parameters: termios, locked termios and window size, read on dump and
// set on restore through any fd of the terminal (ours, in cryo).
import {
  create, TermiosEntrySchema, WinsizeEntrySchema, type TermiosEntry, type TtyInfoEntry, type WinsizeEntry,
} from '../../images/index.js';
import { NR, TIOC, TERMIOS_SIZE, NCCS, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';

export function ioctl(fd: number, req: number, arg: Buffer | number): number {
  return syscall(`ioctl(0x${req.toString(16)})`, NR.ioctl, fd, req, arg);
}

/** An ioctl that fills an int; `undefined` when the terminal does not answer it (ENOTTY). */
export function ioctlInt(fd: number, req: number): number | undefined {
  const b = Buffer.alloc(4);
  const r = trySyscall(NR.ioctl, fd, req, b);
  if (r === -25 /* ENOTTY */) return undefined;
  if (r < 0) throw new CryoError(`ioctl(0x${req.toString(16)}) on a terminal: errno ${-r}`);
  return b.readInt32LE(0);
}

export function setInt(fd: number, req: number, v: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  ioctl(fd, req, b);
}

/**
 * c_cc as CRIU 4.2 keeps it: tty.c's termios_copy memcpy()s the 32 bytes of
 * glibc's c_cc into (and back out of) the entry's uint32 array, so control
 * character i is byte i of the array's little-endian memory: bits 8*(i%4) of
 * word i/4. The words past the eighth hold whatever CRIU's memory held; a
 * restore reads only the first NCCS bytes.
 */
function packCc(cc: Uint8Array): number[] {
  const words = new Array<number>(NCCS).fill(0);
  cc.forEach((c, i) => (words[i >> 2] = (words[i >> 2]! | (c << (8 * (i & 3)))) >>> 0));
  return words;
}

function ccByte(words: number[], i: number): number {
  return (words[i >> 2]! >>> (8 * (i & 3))) & 0xff;
}

function readTermios(fd: number, req: number): TermiosEntry {
  const t = Buffer.alloc(TERMIOS_SIZE);
  ioctl(fd, req, t);
  return create(TermiosEntrySchema, {
    cIflag: t.readUInt32LE(0), cOflag: t.readUInt32LE(4), cCflag: t.readUInt32LE(8), cLflag: t.readUInt32LE(12),
    cLine: t.readUInt8(16), cIspeed: 0, cOspeed: 0, cCc: packCc(t.subarray(17, 17 + NCCS)),
  });
}

function termiosBuf(e: TermiosEntry, what: string): Buffer {
  if (e.cCc.length < NCCS) throw new CryoError(`tty-info.img: ${what} has ${e.cCc.length} control characters, want ${NCCS}`);
  const t = Buffer.alloc(TERMIOS_SIZE);
  t.writeUInt32LE(e.cIflag, 0);
  t.writeUInt32LE(e.cOflag, 4);
  t.writeUInt32LE(e.cCflag, 8);
  t.writeUInt32LE(e.cLflag, 12);
  t.writeUInt8(e.cLine & 0xff, 16);
  for (let i = 0; i < NCCS; i++) t.writeUInt8(ccByte(e.cCc, i), 17 + i);
  return t;
}

export interface TtyParams {
  termios: TermiosEntry;
  termiosLocked: TermiosEntry;
  winsize: WinsizeEntry;
}

/** The parameters as CRIU saves them; undefined for a hung-up terminal (EIO). */
export function readParams(fd: number): TtyParams | undefined {
  const probe = Buffer.alloc(TERMIOS_SIZE);
  if (trySyscall(NR.ioctl, fd, TIOC.TCGETS, probe) === -5 /* EIO */) return undefined;
  const w = Buffer.alloc(8);
  ioctl(fd, TIOC.GWINSZ, w);
  return {
    termios: readTermios(fd, TIOC.TCGETS),
    termiosLocked: readTermios(fd, TIOC.GLCKTRMIOS),
    winsize: create(WinsizeEntrySchema, {
      wsRow: w.readUInt16LE(0), wsCol: w.readUInt16LE(2), wsXpixel: w.readUInt16LE(4), wsYpixel: w.readUInt16LE(6),
    }),
  };
}

/**
 * Put the saved parameters back. termios goes in before the locked termios:
 * once bits are locked, TCSETS can no longer change them (CRIU sets the lock
 * first and so loses locked bits that differ from a fresh terminal's).
 */
export function applyParams(fd: number, info: TtyInfoEntry): void {
  const what = `terminal ${info.id}`;
  if (info.termios) ioctl(fd, TIOC.TCSETS, termiosBuf(info.termios, `${what} termios`));
  if (info.termiosLocked) {
    const want = termiosBuf(info.termiosLocked, `${what} locked termios`);
    // Setting it needs CAP_SYS_ADMIN; without, it is fine if it already is what we want (as CRIU).
    if (trySyscall(NR.ioctl, fd, TIOC.SLCKTRMIOS, want) === -1 /* EPERM */) {
      const have = Buffer.alloc(TERMIOS_SIZE);
      ioctl(fd, TIOC.GLCKTRMIOS, have);
      if (!have.equals(want)) throw new CryoError(`${what}: cannot set its locked termios without CAP_SYS_ADMIN`);
    }
  }
  const w = info.winsize;
  if (w) {
    const b = Buffer.alloc(8);
    b.writeUInt16LE(w.wsRow & 0xffff, 0);
    b.writeUInt16LE(w.wsCol & 0xffff, 2);
    b.writeUInt16LE(w.wsXpixel & 0xffff, 4);
    b.writeUInt16LE(w.wsYpixel & 0xffff, 6);
    ioctl(fd, TIOC.SWINSZ, b);
  }
}
