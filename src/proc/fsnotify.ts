// Parser of the inotify and fanotify lines of /proc/PID/fdinfo/N: pure.
// Every number there is hex (the kernel prints them with %x), the watch
// descriptor too.

/** A watched inode's file handle as fdinfo shows it (absent where the kernel cannot encode one). */
export interface FdinfoHandle {
  bytes: number;
  type: number;
  handle: Buffer;
}

export interface InotifyWatch {
  wd: number;
  ino: bigint;
  /** Kernel encoding: MAJOR << 20 | MINOR. */
  sdev: number;
  mask: number;
  ignoredMask: number;
  fh: FdinfoHandle | undefined;
}

export interface FanotifyMarkBase {
  mflags: number;
  mask: number;
  ignoredMask: number;
}

export type FanotifyMarkInfo =
  | (FanotifyMarkBase & { kind: 'inode'; ino: bigint; sdev: number; fh: FdinfoHandle | undefined })
  | (FanotifyMarkBase & { kind: 'mount'; mntId: number });

export interface FanotifyInfo {
  /** fanotify_init()'s flags (FAN_CLASS_*, FAN_REPORT_*, ...) and event_f_flags. */
  flags: number;
  eventFlags: number;
  marks: FanotifyMarkInfo[];
  /** "fanotify ..." lines of marks with no place in CRIU's image (filesystem marks, say). */
  unsupported: string[];
}

const hex = (s: string) => parseInt(s, 16);

function handleOf(text: string): FdinfoHandle | undefined {
  const m = /fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]*)/.exec(text);
  if (!m) return undefined;
  return { bytes: hex(m[1]!), type: hex(m[2]!), handle: Buffer.from(m[3]!, 'hex') };
}

export function parseInotifyFdinfo(text: string): InotifyWatch[] {
  const out: InotifyWatch[] = [];
  for (const line of text.split('\n')) {
    const m = /^inotify wd:([0-9a-f]+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)/.exec(line);
    if (!m) continue;
    out.push({
      wd: hex(m[1]!), ino: BigInt('0x' + m[2]), sdev: hex(m[3]!), mask: hex(m[4]!), ignoredMask: hex(m[5]!),
      fh: handleOf(line),
    });
  }
  return out;
}

export function parseFanotifyFdinfo(text: string): FanotifyInfo {
  const info: FanotifyInfo = { flags: 0, eventFlags: 0, marks: [], unsupported: [] };
  let group = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith('fanotify ')) continue;
    let m = /^fanotify flags:([0-9a-f]+) event-flags:([0-9a-f]+)/.exec(line);
    if (m) {
      info.flags = hex(m[1]!);
      info.eventFlags = hex(m[2]!);
      group = true;
      continue;
    }
    m = /^fanotify ino:([0-9a-f]+) sdev:([0-9a-f]+) mflags:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)/.exec(line);
    if (m) {
      info.marks.push({
        kind: 'inode', ino: BigInt('0x' + m[1]), sdev: hex(m[2]!), mflags: hex(m[3]!), mask: hex(m[4]!),
        ignoredMask: hex(m[5]!), fh: handleOf(line),
      });
      continue;
    }
    m = /^fanotify mnt_id:([0-9a-f]+) mflags:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)/.exec(line);
    if (m) {
      info.marks.push({ kind: 'mount', mntId: hex(m[1]!), mflags: hex(m[2]!), mask: hex(m[3]!), ignoredMask: hex(m[4]!) });
      continue;
    }
    info.unsupported.push(line.trim());
  }
  if (!group) info.unsupported.push('(no "fanotify flags:" line)');
  return info;
}
