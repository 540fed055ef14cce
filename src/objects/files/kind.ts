// What one kind of fd provides: recognise it, dump it, reopen it.
import type { Stats } from 'node:fs';
import { FdTypes, ImageError, type FileEntry, type ImageDir, type MemfdInodeEntry } from '../../images/index.js';
import type { Cleanup } from '../../cleanup.js';
import type { Options } from '../../options/index.js';
import type { FdInfo } from '../../proc/fdinfo.js';
import type { MountInfo } from '../../proc/mountinfo.js';
import type { FileTable } from './table.js';
import type { Remote } from '../../tracer/remote.js';
import type { UnixRestore } from './unix-restore.js';
import type { Irmap } from './irmap.js';
import type { Remaps } from './remap.js';
import type { MemfdInodes } from './memfd.js';
import type { IdView } from '../userns.js';

export interface FdProbe {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N. */
  link: string;
  st: Stats;
  info: FdInfo;
  /** /proc/PID/fdinfo/N as read (kinds with repeated lines parse it themselves). */
  fdinfoText: string;
  /** The same open file description as an fd of cryo's (taken once, closed after the dump of this fd). */
  copy(): number;
}

export interface DumpFilesEnv {
  files: FileTable;
  shellJob: boolean;
  /** --external: resources (tty[RDEV:DEV]) dumped as external, to be given back with --inherit-fd. */
  external: readonly string[];
  /** --ghost-limit: the largest deleted file whose contents go into the images. */
  ghostLimit: number;
  /** --link-remap: a file deleted but still linked elsewhere is kept by a link_remap.N link. */
  linkRemap: boolean;
  /** --evasive-devices: a device file may be dumped by a path that now names another node of its device. */
  evasiveDevices: boolean;
  /** --tcp-established: established TCP connections are dumped (TCP_REPAIR); without it one fails the dump. */
  tcpEstablished: boolean;
  /** --tcp-close: connected TCP sockets are dumped as they are, to come back closed. */
  tcpClose: boolean;
  /** --skip-in-flight: a listener's connections not yet accepted are left out. */
  skipInFlight: boolean;
  /** --file-locks: locks are dumped; without it a held lock fails the dump. */
  fileLocks: boolean;
  /** The task's pid in the root's pid namespace (lock owners are written so). */
  vpid: number;
  /** How many levels the root's pid namespace is below cryo's (pids of the images are of that level). */
  pidDepth: number;
  /** Dump a file cryo itself holds (an fd in flight in a socket queue); returns its file id. */
  dumpOwn(fd: number): number;
  /** --force-irmap: scan for a watched inode whose file handle gives no usable path. */
  forceIrmap: boolean;
  /** Paths of watched inodes found by scanning (and the irmap cache), for the whole dump. */
  irmap: Irmap;
  /** The id in the images of the namespace /proc names `link` (kind "net", link "net:[INO]"). */
  nsId(kind: string, link: string): number;
  /** The tree's own mount namespace: paths are its, reached from cryo through `root`; files must be on its mounts (`ids`). */
  mntns?: MntView;
  /** The tree's own ipc namespace: the device of its mqueue file system (its queues' descriptors) and its id in the images. */
  mqueue?: { dev: number; nsId: number };
}

/**
 * A mount namespace of the tree's own (the task's): paths are its, reached from cryo
 * through `root`; `of` finds the namespace of the tree any mount is in.
 */
export interface MntView {
  root: string;
  ids: Set<number>;
  mounts: readonly MountInfo[];
  of(mntId: number): MntView | undefined;
  /** Every mount namespace of the tree (a watched inode may be on a mount of another one only). */
  all: readonly MntView[];
}

/** What recording a regular file (of an fd or a mapping) needs of the dump. */
export type RegDumpEnv = Pick<DumpFilesEnv, 'files' | 'ghostLimit' | 'linkRemap' | 'evasiveDevices' | 'mntns' | 'mqueue'>;

/** A deleted file to recreate (ghost-file image), by its remap id. */
export interface Ghost {
  /** st_mode: the type (regular file, directory, FIFO, device, symlink) and permissions. */
  mode: number;
  uid: number;
  gid: number;
  /** A regular file's size and its data, by offset (what lies between is a hole). */
  size: number;
  runs: Array<{ off: number; data: Uint8Array }>;
  /** A device node's number; a symlink's target. */
  rdev?: number;
  symlinkTarget?: string;
  /** Access and modification times, in seconds, when the image has them. */
  atime?: number;
  mtime?: number;
  /** The inode it was (the device as the kernel numbers it, as in fdinfo): watches of it are put on the ghost. */
  dev?: number;
  ino?: bigint;
}

/**
 * What the kinds keep for one dump or restore, each under keys of its own (the
 * data of its side images, the objects it made in cryo): the pipelines and the
 * env types then need no field for any kind.
 */
export class KindStore {
  private readonly m = new Map<string, unknown>();

  /** The value under `key`, made by `make` when there is none yet. */
  get<T>(key: string, make: () => T): T {
    if (!this.m.has(key)) this.m.set(key, make());
    return this.m.get(key) as T;
  }
}

/** What the dump's whole-tree steps of the kinds see (dumpCleanup, finish, writeImages). */
export interface DumpRunEnv {
  opts: Options;
  /** The tree's tasks (their pids, sessions and groups, as cryo and as the tree see them). */
  tasks: ReadonlyArray<{ pid: number; stat: { pgid: number; sid: number }; ns: { pid: number; pgid: number; sid: number; levels: number[] } }>;
  /** Run fn in the tree's own network namespace (sock_diag, TCP repair), or in cryo's when the tree has none. */
  inTreeNetns<T>(fn: () => T): T;
  /** A new pages-N.img id. */
  newPagesId(): number;
  /** Shared memory objects whose contents are written already (by a mapping of theirs). */
  shmemDone: ReadonlySet<bigint>;
  /** Is `id` a SysV segment's dumped (pagemap-shmem-ID.img names objects by id alone)? */
  isSysvShm(id: bigint): boolean;
  /** The dump's page counts of shared memory, for stats-dump. */
  stats: { shpagesScanned: bigint; shpagesWritten: bigint };
}

export interface RestoreFilesEnv {
  /** The kinds' own state: their side images as loaded, what they made so far. */
  kinds: KindStore;
  files: Map<number, FileEntry>;
  /** The tree's own mount namespace: an O_PATH fd of its root, which paths of the images are opened from. */
  nsRoot?: number;
  /** cryo's pid of the task whose root nsRoot is: its mount namespace is the tree's. */
  nsPid?: number;
  /** Ids between the images (the tree's view) and cryo's, for the owners cryo sets (a pty slave's). */
  ids?: IdView;
  /**
   * The tree's mount namespace that mount `mntId` of the images is in: cryo's O_PATH fd
   * of its root and its fd of the namespace (undefined: the root's, nsRoot, or cryo's).
   */
  mntNsOf?(mntId: number | undefined): { root: number; ns: number; nsId: number } | undefined;
  shellJob: boolean;
  /**
   * orphan_pts_master (RPC): a shell job's pty, whose master was outside the tree,
   * comes back as a new pair of the same number; its master is handed here (to
   * the RPC client).
   */
  orphanPtsMaster?: (master: number) => void;
  /** Our pid of a task of the tree, by its pid in its own namespace (pidfds name them so). */
  hostPid(vpid: number): number;
  /** cryo's fd of the tree's network namespace `nsId` where it is not the root's (a socket is made there). */
  netnsFd?(nsId: number): number | undefined;
  /** Our pid of a task restored so far whose ids name namespace `nsId` in `field`; undefined if none is yet. */
  nsHolder(field: 'pidNsId' | 'mntNsId' | 'netNsId' | 'ipcNsId' | 'utsNsId' | 'userNsId' | 'cgroupNsId' | 'timeNsId', nsId: number): number | undefined;
  /**
   * pidfds of processes that had exited, by inode, then by file id: opened all at
   * once on a process made to die (spawnTemp), so they share one pid and inode.
   */
  deadPidfds: Map<number, Map<number, number>>;
  /** Start a throw-away process of cryo's (its pid); the caller kills and reaps it. */
  spawnTemp(): number;
  /** Deleted files (ghost files, link remaps): how to open them, by reg-file id. */
  remaps: Remaps;
  /** memfd inodes (memfd.img) and their contents. */
  memfds: MemfdInodes;
  /** Unix sockets: queues, options, and the sockets once built. */
  unix: UnixRestore;
  tcpEstablished: boolean;
  /** --tcp-close: connections come back closed (shut down both ways, unbound), as CRIU's. */
  tcpClose: boolean;
  /**
   * Inet sockets to finish once every socket exists: connections made in repair
   * mode leave it (SO_REUSEADDR goes back as it was), and SO_REUSEPORT, set for
   * every bind (sockets sharing a port need it then), goes back as it was.
   */
  inetLate: Array<{ fd: number; repair: boolean; reuseaddr: boolean; reuseport: boolean }>;
  /** cryo's fd of a file entry, opened once (fds in flight in a socket queue). */
  openId(id: number, task?: Remote): number;
  /** --inherit-fd: cryo's fd for each resource key ("pipe:[ID]", a path, "tty[RDEV:DEV]"). */
  inherited: Map<string, { fd: number; used: boolean }>;
}

/** A pseudo-terminal pair recreated in cryo: its master and its slave fds, by file id. */
export interface PtyPair {
  master: number;
  slaves: Map<number, number>;
}

/**
 * What the checks of files.img see before a restore creates anything: every
 * other image already read. Each kind refuses entries it could not restore.
 */
export interface CheckFilesEnv {
  files: Map<number, FileEntry>;
  /** memfd.img, by inode id. */
  memfdInodes: Map<number, MemfdInodeEntry>;
  /** The kinds' side images, as their loadImages read them. */
  kinds: KindStore;
  /** --inherit-fd keys given (without a leading slash). */
  inherited: ReadonlySet<string>;
  extUnixSk: boolean;
  /** The fd numbers of the first task that holds file `id`, if one does (where its afterPlant runs). */
  fdsOf(id: number): ReadonlySet<number> | undefined;
  /** The mount namespace of the images that mount `mntId` is in; undefined for none. */
  mntNsOf?(mntId: number): number | undefined;
}

/** A problem found in files.img: one line naming the image, the entry and what is wrong. */
export function badFile(fe: FileEntry, what: string): ImageError {
  return new ImageError('IMG_INVALID', 'files.img', undefined, `file id ${hexId(fe.id)}: ${what}`);
}

/**
 * The part of a file entry its kind needs (fe.reg for REG, ...), which must be
 * there and carry the entry's own id.
 */
export function partOf<K extends keyof FileEntry>(fe: FileEntry, field: K): NonNullable<FileEntry[K]> {
  const v = fe[field];
  if (v === undefined || v === null) throw badFile(fe, `${FdTypes[fe.type] ?? fe.type} entry without its ${String(field)} field`);
  const own = (v as { id?: unknown }).id;
  if (typeof own === 'number' && own !== fe.id) throw badFile(fe, `its ${String(field)} part has id ${hexId(own)}`);
  return v as NonNullable<FileEntry[K]>;
}

/** A reg-file entry that another entry names (a FIFO's or a terminal's path). */
export function regOf(fe: FileEntry, id: number, what: string, env: CheckFilesEnv): void {
  const r = env.files.get(id);
  if (!r) throw badFile(fe, `${what} ${hexId(id)} names no entry of files.img`);
  if (!r.reg) throw badFile(fe, `${what} ${hexId(id)} is not a regular file entry`);
}

/** Ids as CRIU prints them in its messages ("reg-file-ID 0x63"). */
export function hexId(id: number | bigint): string {
  return '0x' + id.toString(16);
}

export interface FdKind {
  name: string;
  type: FdTypes;
  match(p: FdProbe): boolean;
  /** Record the object; returns its file id. */
  dump(p: FdProbe, env: DumpFilesEnv): number;
  /**
   * Recreate the object in cryo; returns cryo's fd (the task takes a copy).
   * `task` is the first task that holds it, for objects only it can open (/dev/tty).
   */
  open(fe: FileEntry, env: RestoreFilesEnv, task?: Remote): number;
  /** The --inherit-fd key naming the object, as CRIU spells it. */
  inheritKey?(fe: FileEntry, env: RestoreFilesEnv): string | undefined;
  /** Use `fd` (given with --inherit-fd) for the object; default: the same open file description. */
  openInherited?(fe: FileEntry, fd: number, env: RestoreFilesEnv): number;
  /**
   * Once every file of the restore is in place and its ghosts and links are gone,
   * on cryo's own fd of the object (an inotify drops the events the restore caused).
   */
  settled?(fe: FileEntry, fd: number): void;
  /** Once every fd of the task is in place (an epoll's targets, say). */
  afterPlant?(rem: Remote, fe: FileEntry, fd: number): void;
  /**
   * Before anything is created: throw (badFile) if these entries, every entry of
   * this kind in files.img, cannot be restored as they are (a missing part, an id
   * that names nothing, a value out of range).
   */
  check(entries: FileEntry[], env: CheckFilesEnv): void;
  /**
   * As the dump starts: put on `cl` the release of what dump() makes and cryo
   * holds (copies of fds, links made, sockets in repair), and of what a failed
   * dump must take back.
   */
  dumpCleanup?(files: FileTable, cl: Cleanup, env: DumpRunEnv): void;
  /**
   * Once every task is dumped, before any side image is written: what needs the
   * whole tree (a terminal's session, a socket's peer). In table order.
   */
  finish?(files: FileTable, env: DumpRunEnv): void;
  /** Then: write the side images of what dump() gathered (in files.kinds). */
  writeImages?(dir: ImageDir, files: FileTable, env: DumpRunEnv): void;
  /**
   * Before the checks of a restore: read its side images into `store` (an image a
   * dump had no cause to write may be missing); `files` is files.img by id.
   */
  loadImages?(dir: ImageDir, store: KindStore, files: ReadonlyMap<number, FileEntry>): void;
  /**
   * As the restore starts making things: put on `cl` the release of what open()
   * makes and cryo holds (pipe ends, memfds), and what a failed restore must take
   * back (ghost files).
   */
  holdCleanup?(store: KindStore, cl: Cleanup, env: RestoreFilesEnv): void;
  /** Every mapping and fd of every task is in place (memfds get their seals, ghost files go). */
  allPlaced?(env: RestoreFilesEnv): void;
  /** The tree is about to resume (after the network lock is gone): the last touch (sockets leave repair mode). */
  beforeResume?(env: RestoreFilesEnv): void;
}

// glibc's dev_t layout; BigInt because JS shifts wrap at 32 bits.
export function major(rdev: number): number {
  const d = BigInt(rdev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
export function minor(rdev: number): number {
  const d = BigInt(rdev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}
/** A dev_t as the kernel numbers a superblock (MKKDEV: major << 20 | minor), as fdinfo and CRIU's images give it. */
export function kdev(dev: number): number {
  return ((major(dev) << 20) | minor(dev)) >>> 0;
}
