// Terminals. A shell job (--shell-job) holds fds of the terminal it was started
// from; on restore they are connected to the terminal cryo itself runs on, as CRIU
// does. Pseudo-terminal pairs created inside the tree come with issue #4.
import { closeSync, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import {
  create, FdTypes, FileEntrySchema, TtyFileEntrySchema, TtyInfoEntrySchema, TtyType, TermiosEntrySchema,
  WinsizeEntrySchema, TtyPtyEntrySchema, FownEntrySchema, type TtyInfoEntry,
} from '../../images/index.js';
import { O, NR, syscall, pidfdOpen, pidfdGetfd } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { major, minor, type FdKind } from './kind.js';

// dev_t as glibc's major()/minor() split it. (Not with `>> 32`: JS shift counts
// are taken mod 32, so `x >> 32` is `x`, and /dev/pts/0 = 136:0 came out as 32904.)
const TTY_MAJORS = new Set([4, 5, 136, 137, 138, 139, 140, 141, 142, 143]);
const TCGETS = 0x5401;
const TIOCGPGRP = 0x540f;
const TIOCGWINSZ = 0x5413;
const TIOCGSID = 0x5429;

function ioctl(fd: number, req: number, buf: Buffer): number {
  return syscall(`ioctl(0x${req.toString(16)})`, NR.ioctl, fd, req, buf);
}

export function isTty(rdev: number): boolean {
  return TTY_MAJORS.has(major(rdev));
}

/** /proc/PID/stat from the state field on (state, ppid, pgrp, session, tty_nr, tpgid...). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Terminal state read through a copy of the task's fd. */
function ttyInfo(pid: number, fd: number, id: number, rdev: number): TtyInfoEntry {
  const pidfd = pidfdOpen(pid);
  let copy = -1;
  try {
    copy = pidfdGetfd(pidfd, fd);
    const t = Buffer.alloc(64);
    ioctl(copy, TCGETS, t);
    const w = Buffer.alloc(8);
    ioctl(copy, TIOCGWINSZ, w);
    const i32 = Buffer.alloc(4);
    let sid = 0;
    let pgrp = 0;
    try {
      ioctl(copy, TIOCGSID, i32);
      sid = i32.readInt32LE(0);
      ioctl(copy, TIOCGPGRP, i32);
      pgrp = i32.readInt32LE(0);
    } catch {
      // ENOTTY: these ioctls answer only inside the terminal's own session (CRIU
      // asks from the parasite). Our tasks' stat tells the same for their
      // controlling terminal: the session and the foreground group.
      const f = statFields(pid);
      if (f && Number(f[4]) === rdev) {
        sid = Number(f[3]);
        pgrp = Math.max(0, Number(f[5]));
      }
    }
    const m = major(rdev);
    return create(TtyInfoEntrySchema, {
      id, type: m >= 136 && m <= 143 ? TtyType.PTY : m === 4 ? TtyType.VT : TtyType.CTTY,
      locked: false, exclusive: false, packetMode: false, sid, pgrp, rdev,
      termios: create(TermiosEntrySchema, {
        cIflag: t.readUInt32LE(0), cOflag: t.readUInt32LE(4), cCflag: t.readUInt32LE(8), cLflag: t.readUInt32LE(12),
        cLine: t.readUInt8(16), cIspeed: 0, cOspeed: 0, cCc: [...t.subarray(17, 17 + 19)],
      }),
      winsize: create(WinsizeEntrySchema, { wsRow: w.readUInt16LE(0), wsCol: w.readUInt16LE(2), wsXpixel: w.readUInt16LE(4), wsYpixel: w.readUInt16LE(6) }),
      ...(m >= 136 && m <= 143 ? { pty: create(TtyPtyEntrySchema, { index: minor(rdev) + (m - 136) * 256 }) } : {}),
    });
  } finally {
    if (copy >= 0) closeSync(copy);
    closeSync(pidfd);
  }
}

/** The terminal cryo runs on (the first of stdin, stdout, stderr that is one). */
export function ownTerminal(): string | null {
  for (const fd of [0, 1, 2]) {
    try {
      const st = statSync(`/proc/self/fd/${fd}`);
      if (st.isCharacterDevice() && isTty(st.rdev)) return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      /* closed */
    }
  }
  return null;
}

export const tty: FdKind = {
  name: 'terminal',
  type: FdTypes.TTY,
  match: (p) => p.st.isCharacterDevice() && isTty(p.st.rdev),
  dump(p, env) {
    if (!env.shellJob) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is the terminal ${p.link}; dump with --shell-job (-j) if it is a job of this shell`);
    }
    const files = env.files;
    const rdev = p.st.rdev;
    let info = files.ttyInfos.find((t) => t.rdev === rdev);
    if (!info) {
      info = ttyInfo(p.pid, p.fd, files.newId(), rdev);
      files.ttyInfos.push(info);
    }
    const regfId = files.addReg({ flags: p.info.flags & ~O.CLOEXEC, pos: 0n, name: p.link }, undefined);
    const id = files.newId();
    const fown = create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
    files.add(create(FileEntrySchema, {
      type: FdTypes.TTY, id,
      tty: create(TtyFileEntrySchema, { id, ttyInfoId: info.id, flags: p.info.flags & ~O.CLOEXEC, fown, regfId }),
    }));
    return id;
  },
  open(fe, env) {
    const t = fe.tty;
    if (!t) throw new CryoError(`file id ${fe.id}: terminal entry without its tty field`);
    if (!env.shellJob) throw new CryoError('the tree used a terminal of its shell: restore it with --shell-job (-j)');
    const path = ownTerminal();
    if (!path) throw new CryoError('--shell-job: cryo has no terminal on stdin, stdout or stderr to give the restored job');
    return openSync(path, (t.flags & ~(O.CREAT | O.TRUNC | O.EXCL)) | O.NOCTTY | O.CLOEXEC);
  },
};
