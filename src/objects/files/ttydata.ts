// Data queued in a pseudo-terminal: what a read of each side would return next
// (tty-data.img, by the side's tty-info id, as CRIU keeps it).
//
// A terminal cannot be peeked: the dump reads a side's queue out and puts the
// same bytes back at once with TIOCSTI, which hands them to that side's line
// discipline as if they had just arrived, synchronously; the restore puts them
// into the new pair the same way. While it does, echo, signals, special
// characters and input mappings are switched off, so that the bytes land as
// they were (the line discipline already processed them once); line ends,
// end-of-file and canonical mode stay, so lines are lines again. TIOCSTI on a
// terminal that is not cryo's own needs CAP_SYS_ADMIN.
import { readSync } from 'node:fs';
import { CAP, NR, TIOC, TERMIOS_SIZE, hasCap, syscall, trySyscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';

const FIONREAD = 0x541b;
const TIOCSTI = 0x5412;
// termios: c_iflag @0, c_lflag @12, c_cc @17.
const C_CC = 17;
const V = { ERASE: 2, KILL: 3, EOF: 4, TIME: 5, MIN: 6, EOL: 11, EOL2: 16 } as const;
const L = { ISIG: 0o1, ICANON: 0o2, ECHO: 0o10, ECHOE: 0o20, ECHOK: 0o40, ECHONL: 0o100, ECHOCTL: 0o1000, ECHOPRT: 0o2000, ECHOKE: 0o4000, PENDIN: 0o40000, IEXTEN: 0o100000 };
const I = { BRKINT: 0o2, PARMRK: 0o10, INPCK: 0o20, ISTRIP: 0o40, INLCR: 0o100, IGNCR: 0o200, ICRNL: 0o400, IUCLC: 0o1000 };

function getTermios(fd: number): Buffer {
  const t = Buffer.alloc(TERMIOS_SIZE);
  syscall('ioctl(TCGETS)', NR.ioctl, fd, TIOC.TCGETS, t);
  return t;
}

function setTermios(fd: number, t: Buffer): void {
  syscall('ioctl(TCSETS)', NR.ioctl, fd, TIOC.TCSETS, t);
}

function intIoctl(fd: number, req: number): number {
  const b = Buffer.alloc(4);
  syscall(`ioctl(0x${req.toString(16)})`, NR.ioctl, fd, req, b);
  return b.readInt32LE(0);
}

function setPacket(fd: number, on: boolean): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(on ? 1 : 0, 0);
  syscall('ioctl(TIOCPKT)', NR.ioctl, fd, TIOC.PKT, b);
}

/** One read(2) of what is there; 0 when nothing is (also for an O_NONBLOCK file). */
function readSome(fd: number, buf: Buffer): number {
  try {
    return readSync(fd, buf, 0, buf.length, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    throw e;
  }
}

/** The termios under which bytes are put back verbatim (see the top). */
function quiet(t: Buffer): Buffer {
  const q = Buffer.from(t);
  q.writeUInt32LE(q.readUInt32LE(0) & ~(I.BRKINT | I.PARMRK | I.INPCK | I.ISTRIP | I.INLCR | I.IGNCR | I.ICRNL | I.IUCLC), 0);
  q.writeUInt32LE(q.readUInt32LE(12) & ~(L.ISIG | L.IEXTEN | L.ECHO | L.ECHOE | L.ECHOK | L.ECHONL | L.ECHOCTL | L.ECHOPRT | L.ECHOKE | L.PENDIN), 12);
  q[C_CC + V.ERASE] = 0; // 0 disables a special character
  q[C_CC + V.KILL] = 0;
  return q;
}

/** Run `fn` with packet mode off (a packet-mode master's reads carry a status byte). */
function withoutPacket<T>(fd: number, master: boolean, fn: () => T): T {
  const packet = master && intIoctl(fd, TIOC.GPKT) !== 0;
  if (packet) setPacket(fd, false);
  try {
    return fn();
  } finally {
    if (packet) setPacket(fd, true);
  }
}

/**
 * Read out everything queued for reading on this side of a pty. In canonical
 * mode the complete lines come first, one read each (a line that ended with
 * end-of-file gets the VEOF character back, as it was typed); then, with
 * canonical mode off for a moment, the line still being typed.
 */
function drain(fd: number, t: Buffer): Buffer {
  const parts: Buffer[] = [];
  const buf = Buffer.alloc(8192);
  const cc = (v: number) => t[C_CC + v]!;
  if (t.readUInt32LE(12) & L.ICANON) {
    while (intIoctl(fd, FIONREAD) > 0) {
      const n = readSome(fd, buf);
      if (n <= 0) break;
      const line = Buffer.from(buf.subarray(0, n));
      parts.push(line);
      const last = line[n - 1]!;
      const ended = last === 0x0a || (cc(V.EOL) !== 0 && last === cc(V.EOL)) || (cc(V.EOL2) !== 0 && last === cc(V.EOL2));
      if (!ended && cc(V.EOF) !== 0) parts.push(Buffer.from([cc(V.EOF)]));
    }
  }
  const raw = Buffer.from(t);
  raw.writeUInt32LE(raw.readUInt32LE(12) & ~L.ICANON, 12);
  raw[C_CC + V.MIN] = 0;
  raw[C_CC + V.TIME] = 0;
  setTermios(fd, raw);
  try {
    for (;;) {
      const n = readSome(fd, buf);
      if (n <= 0) break;
      parts.push(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    setTermios(fd, t);
  }
  return Buffer.concat(parts);
}

/** Hand `data` to this side's line discipline, as if it had just arrived. */
function inject(fd: number, t: Buffer, data: Uint8Array): void {
  setTermios(fd, quiet(t));
  try {
    const c = Buffer.alloc(1);
    for (const byte of data) {
      c[0] = byte;
      syscall('ioctl(TIOCSTI)', NR.ioctl, fd, TIOCSTI, c);
    }
  } finally {
    setTermios(fd, t);
  }
}

/**
 * Dump: the bytes queued on this side (`fd` is cryo's copy of one of its
 * fds), left in place. Without CAP_SYS_ADMIN they could not be put back:
 * a side with data refuses the dump then (a line still being typed in
 * canonical mode shows in no count, and stays where it is).
 */
export function takeQueued(fd: number, master: boolean, what: string): Buffer {
  if (!hasCap(CAP.SYS_ADMIN)) {
    const n = trySyscall(NR.ioctl, fd, FIONREAD, Buffer.alloc(4)) === 0 ? intIoctl(fd, FIONREAD) : 0;
    if (n > 0) throw new CryoError(`${what} has ${n} bytes queued: carrying them needs CAP_SYS_ADMIN (TIOCSTI)`);
    return Buffer.alloc(0);
  }
  return withoutPacket(fd, master, () => {
    if (master) {
      const data = drainMaster(fd);
      if (data.length) injectMaster(fd, data);
      return data;
    }
    const t = getTermios(fd);
    const data = drain(fd, t);
    if (data.length) inject(fd, t, data);
    return data;
  });
}

/*
 * A master's termios ioctls act on its slave: its own line discipline stays as
 * the driver made it, raw (no echo, no processing, reads wait for one byte).
 * So its queue is read by its count, and put back as it is.
 */
function drainMaster(fd: number): Buffer {
  const parts: Buffer[] = [];
  for (let n = intIoctl(fd, FIONREAD); n > 0; n = intIoctl(fd, FIONREAD)) {
    const buf = Buffer.alloc(n);
    const got = readSome(fd, buf);
    if (got <= 0) break;
    parts.push(buf.subarray(0, got));
  }
  return Buffer.concat(parts);
}

function injectMaster(fd: number, data: Uint8Array): void {
  const c = Buffer.alloc(1);
  for (const byte of data) {
    c[0] = byte;
    syscall('ioctl(TIOCSTI)', NR.ioctl, fd, TIOCSTI, c);
  }
}

/** Restore: queue `data` for reading on this side of a new pair (its parameters already set). */
export function putQueued(fd: number, master: boolean, data: Uint8Array, what: string): void {
  if (!data.length) return;
  if (!hasCap(CAP.SYS_ADMIN)) throw new CryoError(`${what} had ${data.length} bytes queued: restoring them needs CAP_SYS_ADMIN (TIOCSTI)`);
  withoutPacket(fd, master, () => (master ? injectMaster(fd, data) : inject(fd, getTermios(fd), data)));
}
