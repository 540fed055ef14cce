// Parser of /proc/PID/mountinfo: pure.

export interface MountInfo {
  mntId: number;
  parentId: number;
  /** The superblock's device in the kernel's encoding (MAJOR << 20 | MINOR), as fdinfo prints s_dev. */
  sdev: number;
  /** The directory of the filesystem mounted here. */
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
  /** Per-mount options (field 6: rw,nosuid,relatime...). */
  mntOpts: string;
  /** Optional fields: shared:N, master:N, propagate_from:N, unbindable. */
  optional: string[];
  /** Superblock options (the last field). */
  sbOpts: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    const dev = /^(\d+):(\d+)$/.exec(f[2] ?? '');
    if (f.length < 7 || sep < 0 || !dev) continue;
    out.push({
      mntId: Number(f[0]), parentId: Number(f[1]), sdev: (Number(dev[1]) << 20 | Number(dev[2])) >>> 0,
      root: unescape(f[3]!), mountpoint: unescape(f[4]!), fstype: f[sep + 1] ?? '', source: unescape(f[sep + 2] ?? ''),
      mntOpts: f[5] ?? '', optional: f.slice(6, sep), sbOpts: f[sep + 3] ?? '',
    });
  }
  return out;
}
