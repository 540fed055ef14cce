// The file systems cryo carries in a mount namespace (CRIU's fstypes table,
// filesystems.c): how each is saved and made again.
import { Fstype } from '../../images/index.js';
import { MS, MOUNT_ATTR } from '../../sys/index.js';

/**
 * fresh: mounted anew on restore by the tree's root (in its namespaces: proc of
 * its pid namespace, mqueue of its ipc one...); tmpfs: mounted anew and filled
 * from tmpfs-dev-N.tar.gz.img, as CRIU.
 */
export type FsHow = 'fresh' | 'tmpfs';

export interface FsType {
  name: string;
  code: Fstype;
  how: FsHow;
  /** Superblock options not given on a new mount (devtmpfs is one superblock for the whole machine). */
  noOptions?: boolean;
}

export const FSTYPES: readonly FsType[] = [
  { name: 'proc', code: Fstype.PROC, how: 'fresh' },
  { name: 'sysfs', code: Fstype.SYSFS, how: 'fresh' },
  { name: 'devtmpfs', code: Fstype.DEVTMPFS, how: 'fresh', noOptions: true },
  { name: 'tmpfs', code: Fstype.TMPFS, how: 'tmpfs' },
  { name: 'devpts', code: Fstype.DEVPTS, how: 'fresh' },
  { name: 'mqueue', code: Fstype.MQUEUE, how: 'fresh' },
  { name: 'cgroup', code: Fstype.CGROUP, how: 'fresh' },
  { name: 'cgroup2', code: Fstype.CGROUP2, how: 'fresh' },
  // Of the host or of the tree's user namespace: its entries are in binfmt-misc.img (binfmt.ts).
  { name: 'binfmt_misc', code: Fstype.BINFMT_MISC, how: 'fresh' },
];

export const fsByName = (name: string): FsType | undefined => FSTYPES.find((f) => f.name === name.split('.')[0]);
export const fsByCode = (code: number): FsType | undefined => FSTYPES.find((f) => f.code === code);

/** CRIU's names of the codes it knows but cryo does not carry (for messages). */
export function codeName(code: number): string {
  return Fstype[code]?.toLowerCase() ?? `fstype ${code}`;
}

/** Per-mount options into flags, as CRIU's parse_mnt_flags (MS_STRICTATIME when no atime option). */
export function mntFlags(opts: string): number {
  let f = 0;
  for (const o of opts.split(',')) {
    f |= ({ ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, noatime: MS.NOATIME, nodiratime: MS.NODIRATIME, relatime: MS.RELATIME } as Record<string, number>)[o] ?? 0;
  }
  if (!(f & (MS.RELATIME | MS.NOATIME))) f |= MS.STRICTATIME;
  return f;
}

/** Superblock options into flags and the rest, as CRIU's parse_sb_opt. */
export function sbFlags(opts: string): { flags: number; rest: string } {
  let flags = 0;
  const rest: string[] = [];
  const known: Record<string, number> = { rw: 0, ro: MS.RDONLY, sync: MS.SYNCHRONOUS, dirsync: MS.DIRSYNC, mand: MS.MANDLOCK };
  for (const o of opts.split(',')) {
    if (!o) continue;
    if (o in known) flags |= known[o]!;
    else rest.push(o);
  }
  return { flags, rest: rest.join(',') };
}

/** A mount's flags as mount_setattr's attr_set, and the attr_clr that goes with it. */
export function mountAttrOf(flags: number): { set: number; clr: number } {
  let set = 0;
  if (flags & MS.RDONLY) set |= MOUNT_ATTR.RDONLY;
  if (flags & MS.NOSUID) set |= MOUNT_ATTR.NOSUID;
  if (flags & MS.NODEV) set |= MOUNT_ATTR.NODEV;
  if (flags & MS.NOEXEC) set |= MOUNT_ATTR.NOEXEC;
  if (flags & MS.NODIRATIME) set |= MOUNT_ATTR.NODIRATIME;
  if (flags & MS.NOATIME) set |= MOUNT_ATTR.NOATIME;
  else if (flags & MS.STRICTATIME) set |= MOUNT_ATTR.STRICTATIME;
  const clr = MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC | MOUNT_ATTR._ATIME | MOUNT_ATTR.NODIRATIME;
  return { set, clr };
}
