// The files.img table of a dump: every file object gets one id, shared by all fds
// and mappings that refer to it.
import { statSync } from 'node:fs';
import { KCMP, kcmp } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { UnixDump } from './unix.js';
import { KindStore } from './kind.js';
import type { TcpStream } from './tcp.js';
import type { PtsOf } from './ptyns.js';
import type { PacketDiag } from './packet.js';
import type { LockedConn, NetLock } from '../netlock.js';
import {
  create, FileEntrySchema, FdTypes, type FileEntry, type RegFileEntry, type TtyInfoEntry, type GhostFileEntry, type FileLockEntry,
  type RemapFilePathEntry, type MemfdInodeEntry, type TtyDataEntry, type EventpollFileEntry, type FdinfoEntry, RegFileEntrySchema, FownEntrySchema, type FownEntry,
} from '../../images/index.js';

/** The owner of a file's signals (F_SETOWN) as cryo writes it: none. */
export function noFown(): FownEntry {
  return create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
}

export interface RegInit {
  flags: number;
  pos: bigint;
  name: string;
  size?: bigint;
  mode?: number;
  mntId?: number;
  /** A POSIX message queue's descriptor: the ipc namespace it is reopened in (cryo's own field). */
  cryoMqIpcNs?: number;
}


export class FileTable {
  readonly entries: FileEntry[] = [];
  /** The kinds' own state for the dump (what their side images will hold). */
  readonly kinds = new KindStore();
  /** tty-info.img: one entry per terminal the tree holds. */
  readonly ttyInfos: TtyInfoEntry[] = [];
  /** Every terminal fd dumped, for the checks once the whole tree is seen (tty.ts). */
  readonly ttyFds: Array<{
    pid: number; fd: number; link: string; infoId: number;
    /** Its path (as the tree sees it) and mount, as its reg-file entry has them. */
    path: string; mntId: number;
    /** A pty's devpts (ptyns.ts), when the kernel tells it. */
    pts?: PtsOf | undefined;
  }> = [];
  /** cryo's copy of one fd of each pty side, by tty-info id, to read its queue once the tree is seen. */
  readonly ttyQueueFds = new Map<number, number>();
  /** tty-data.img: the bytes queued on each pty side. */
  readonly ttyData: TtyDataEntry[] = [];
  /**
   * Deleted files kept as ghost-file images, one per inode ("dev:ino"): the head, and
   * for a regular file its size and cryo's fd to read it through when the images are written.
   */
  /**
   * Established TCP connections, in repair mode through cryo's own fd of each
   * (kept until the dump ends: closed then, or first taken out of repair mode
   * when the tasks run on).
   */
  readonly tcp: Array<{ ino: number; where: string; local: string; peer: string; fd: number; reuseaddr: boolean; stream: TcpStream; conn: LockedConn }> = [];
  /**
   * Reset connections (CLOSE, their error not read) whose peer's end sock_diag does
   * not list (reset too: it has no port then): the error is ECONNRESET only if no
   * FIN of the peer came in first, which the inet kind's finish checks against the
   * peer's end among the tree's connections (`received`: tcpi_bytes_received).
   */
  readonly tcpResets: Array<{ where: string; local: string; peer: string; received: bigint }> = [];
  /** The network lock of the dump (--network-lock): each connection is locked before it goes into repair mode. */
  netlock?: NetLock;
  /** sock_diag's shutdown bits of the inet sockets, by "family:protocol", then inode (inet.ts). */
  readonly inetShutdowns = new Map<string, Map<number, number>>();
  /** packet_diag's view of the packet sockets, by inode (packet.ts), read at the first one. */
  /** packet_diag of each network namespace's packet sockets, by the namespace's inode. */
  readonly packetDiag = new Map<number, Map<number, PacketDiag>>();
  /** Raw sockets' state and peer, by family, then inode (/proc/net/raw: inet-raw.ts). */
  readonly rawSockets = new Map<number, Map<number, { state: number; dst: number[] }>>();
  readonly ghostFiles = new Map<string, { remapId: number; head: GhostFileEntry; size: number; fd?: number }>();
  /** remap-fpath.img: reg-file entries reached through a ghost file or a link_remap file. */
  readonly remaps: RemapFilePathEntry[] = [];
  /** link_remap.N files this dump made (--link-remap): removed again if the dump fails. */
  readonly linkRemaps: Array<{ link: string; root?: string }> = [];
  /** memfd.img: one entry per memfd inode ("dev:ino"), with cryo's fd to read its contents through. */
  readonly memfdInodes = new Map<string, { entry: MemfdInodeEntry; fd: number }>();
  /** filelocks.img entries, and the locks already recorded (a lock shows on every fd of its file). */
  readonly locks: FileLockEntry[] = [];
  readonly locksSeen = new Set<string>();
  /** The inode of the network namespace every socket of the tree must be of (the tree's; it is restored into one). */
  sockNetns?: number;
  /** The tree's other network namespaces (of a tree whose root has its own), by inode: cryo's fd of each, its id. */
  readonly subNetns = new Map<number, { fd: number; nsId: number }>();
  /** The tree has a network namespace of its own (sockNetns is not cryo's). */
  ownNetns = false;
  /** Unix sockets: sock_diag's view and what was dumped (made at the first socket). */
  unix?: UnixDump;
  /** Epolls dumped, whose targets are matched with the fds of their home task once the tree is dumped (epoll.ts). */
  readonly epolls: Array<{ entry: EventpollFileEntry; owner: number; efd: number; where: string }> = [];
  /** The fds of every task dumped, in dump (pstree) order, by pid. */
  readonly taskFds = new Map<number, FdinfoEntry[]>();
  /** Open file descriptions seen so far, by inode: fds sharing one get one id. */
  private readonly descs = new Map<string, Array<{ pid: number; fd: number; id: number }>>();
  private nextId = 1;
  private readonly byKey = new Map<string, number>();

  /** Allocate a fresh id. */
  newId(): number {
    return this.nextId++;
  }

  add(entry: FileEntry, key?: string): number {
    this.entries.push(entry);
    if (key !== undefined) this.byKey.set(key, entry.id);
    return entry.id;
  }

  /** The id of an fd whose open file description (kcmp) this fd shares, if any. */
  sharedWith(pid: number, fd: number, inodeKey: string): number | undefined {
    for (const d of this.descs.get(inodeKey) ?? []) {
      let same: number;
      try {
        same = kcmp(pid, d.pid, KCMP.FILE, fd, d.fd);
      } catch (e) {
        // Never taken as two files: that would split one offset into two.
        throw new CryoError(`task ${pid}: fd ${fd} cannot be compared with fd ${d.fd} of task ${d.pid}: ${(e as Error).message}`);
      }
      if (same === 0) return d.id;
    }
    return undefined;
  }

  rememberDescription(pid: number, fd: number, inodeKey: string, id: number): void {
    const l = this.descs.get(inodeKey) ?? [];
    l.push({ pid, fd, id });
    this.descs.set(inodeKey, l);
  }

  lookup(key: string): number | undefined {
    return this.byKey.get(key);
  }

  /** A regular-file entry; `key` deduplicates (e.g. one entry per mapped file). */
  addReg(init: RegInit, key?: string): number {
    if (key !== undefined) {
      const have = this.byKey.get(key);
      if (have !== undefined) return have;
    }
    const id = this.newId();
    const reg: RegFileEntry = create(RegFileEntrySchema, {
      ...init,
      id,
      fown: noFown(),
    });
    return this.add(create(FileEntrySchema, { type: FdTypes.REG, id, reg }), key);
  }
}

/** The inode of the network namespace cryo's thread is in now (sock_diag answers for it). */
export function netnsHere(): number {
  return Number(statSync('/proc/thread-self/ns/net').ino);
}
