// Mount API constants (linux/mount.h, sys/mount.h) and the one local call the
// restore needs: openat2 confined to a directory (a tree's own root).
import { NR } from './nr.js';
import { syscall } from './libc.js';

export const MS = {
  RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, SYNCHRONOUS: 16, REMOUNT: 32, MANDLOCK: 64, DIRSYNC: 128,
  NOATIME: 1024, NODIRATIME: 2048, BIND: 4096, MOVE: 8192, REC: 16384, UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20, RELATIME: 1 << 21, STRICTATIME: 1 << 24,
} as const;

export const MOUNT_ATTR = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, _ATIME: 0x70, RELATIME: 0, NOATIME: 0x10,
  STRICTATIME: 0x20, NODIRATIME: 0x80,
} as const;

export const OPEN_TREE_CLONE = 1;
export const OPEN_TREE_CLOEXEC = 0o2000000;
export const MOVE_MOUNT = { F_EMPTY_PATH: 0x4, SET_GROUP: 0x100 } as const;
export const AT_EMPTY_PATH = 0x1000;
export const AT_RECURSIVE = 0x8000;
export const MNT_DETACH = 2;
const RESOLVE_IN_ROOT = 0x10;
/** openat2's resolve flag that refuses /proc magic links (they would lead out of a root). */
export const RESOLVE_NO_MAGICLINKS = 0x02;

/** struct mount_attr (MOUNT_ATTR_SIZE_VER0): attr_set, attr_clr, propagation, userns_fd. */
export function mountAttr(set: number, clr: number, propagation = 0): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(BigInt(set), 0);
  b.writeBigUInt64LE(BigInt(clr), 8);
  b.writeBigUInt64LE(BigInt(propagation), 16);
  return b;
}

/**
 * Open `path` as if `root` were "/": absolute symlinks and ".." stay below it
 * (openat2 RESOLVE_IN_ROOT). A tree's files are opened so from its root.
 */
export function openInRoot(root: number, path: string, flags: number, mode = 0, resolve = 0): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | resolve), 16);
  return syscall(`openat2(${path})`, NR.openat2, root, Buffer.from(path + '\0'), how, how.length);
}
