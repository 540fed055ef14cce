// The table of image kinds: for every file CRIU writes into an images directory, its
// file name pattern, its magic numbers and the schema of its entries. One row per
// kind, as CRIU's criu/image-desc.c, so adding a kind means adding one line here.
//
// Layout of an image file (all integers little-endian u32):
//   [IMG_COMMON_MAGIC | IMG_SERVICE_MAGIC]  kind magic  { length  message  [payload] }
// inventory.img has only its kind magic; raw kinds (pages-*.img, ip tool dumps,
// tarballs) have no magic and no framing at all.
//
// This module is pure: no Node imports.
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { ApparmorEntrySchema } from './gen/apparmor_pb.js';
import { AutofsEntrySchema } from './gen/autofs_pb.js';
import { BinfmtMiscEntrySchema } from './gen/binfmt-misc_pb.js';
import { BpfmapDataEntrySchema } from './gen/bpfmap-data_pb.js';
import { BpfmapFileEntrySchema } from './gen/bpfmap-file_pb.js';
import { CgroupEntrySchema } from './gen/cgroup_pb.js';
import { CoreEntrySchema, TaskKobjIdsEntrySchema } from './gen/core_pb.js';
import { CpuinfoEntrySchema } from './gen/cpuinfo_pb.js';
import { CredsEntrySchema } from './gen/creds_pb.js';
import { EventfdFileEntrySchema } from './gen/eventfd_pb.js';
import { EventpollFileEntrySchema, EventpollTfdEntrySchema } from './gen/eventpoll_pb.js';
import { ExtFileEntrySchema } from './gen/ext-file_pb.js';
import { FdinfoEntrySchema, FileEntrySchema } from './gen/fdinfo_pb.js';
import { IrmapCacheEntrySchema } from './gen/fh_pb.js';
import { FifoEntrySchema } from './gen/fifo_pb.js';
import { FileLockEntrySchema } from './gen/file-lock_pb.js';
import { FsEntrySchema } from './gen/fs_pb.js';
import {
  FanotifyFileEntrySchema,
  FanotifyMarkEntrySchema,
  InotifyFileEntrySchema,
  InotifyWdEntrySchema,
} from './gen/fsnotify_pb.js';
import { GhostChunkEntrySchema, GhostFileEntrySchema } from './gen/ghost-file_pb.js';
import { InventoryEntrySchema } from './gen/inventory_pb.js';
import { IpcMsgEntrySchema } from './gen/ipc-msg_pb.js';
import { IpcSemEntrySchema } from './gen/ipc-sem_pb.js';
import { IpcShmEntrySchema } from './gen/ipc-shm_pb.js';
import { IpcVarEntrySchema } from './gen/ipc-var_pb.js';
import { MemfdInodeEntrySchema } from './gen/memfd_pb.js';
import { MmEntrySchema } from './gen/mm_pb.js';
import { MntEntrySchema } from './gen/mnt_pb.js';
import { NetDeviceEntrySchema, NetnsEntrySchema } from './gen/netdev_pb.js';
import { NsFileEntrySchema } from './gen/ns_pb.js';
import { PacketSockEntrySchema } from './gen/packet-sock_pb.js';
import { PagemapEntrySchema, PagemapHeadSchema } from './gen/pagemap_pb.js';
import { PidfdEntrySchema } from './gen/pidfd_pb.js';
import { PidnsEntrySchema } from './gen/pidns_pb.js';
import { PipeDataEntrySchema } from './gen/pipe-data_pb.js';
import { PipeEntrySchema } from './gen/pipe_pb.js';
import { PstreeEntrySchema } from './gen/pstree_pb.js';
import { RegFileEntrySchema } from './gen/regfile_pb.js';
import { RemapFilePathEntrySchema } from './gen/remap-file-path_pb.js';
import { RlimitEntrySchema } from './gen/rlimit_pb.js';
import { SaEntrySchema } from './gen/sa_pb.js';
import { SeccompEntrySchema } from './gen/seccomp_pb.js';
import { SiginfoEntrySchema } from './gen/siginfo_pb.js';
import { SignalfdEntrySchema } from './gen/signalfd_pb.js';
import { InetSkEntrySchema } from './gen/sk-inet_pb.js';
import { NetlinkSkEntrySchema } from './gen/sk-netlink_pb.js';
import { SkPacketEntrySchema } from './gen/sk-packet_pb.js';
import { UnixSkEntrySchema } from './gen/sk-unix_pb.js';
import { StatsEntrySchema } from './gen/stats_pb.js';
import { TcpStreamEntrySchema } from './gen/tcp-stream_pb.js';
import { TimensEntrySchema } from './gen/timens_pb.js';
import { ItimerEntrySchema, PosixTimerEntrySchema } from './gen/timer_pb.js';
import { TimerfdEntrySchema } from './gen/timerfd_pb.js';
import { TtyDataEntrySchema, TtyFileEntrySchema, TtyInfoEntrySchema } from './gen/tty_pb.js';
import { TunfileEntrySchema } from './gen/tun_pb.js';
import { UsernsEntrySchema } from './gen/userns_pb.js';
import { UtsnsEntrySchema } from './gen/utsns_pb.js';
import { VmaEntrySchema } from './gen/vma_pb.js';

/** Precedes the kind magic in every image except inventory and raw images. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** Precedes the kind magic in service files (stats-*, irmap-cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;
/** Magic of raw images: no magic is written or read. */
export const RAW_IMAGE_MAGIC = 0;
/** inventory_entry.img_version of every image set written since CRIU 1.x. */
export const CRTOOLS_IMAGES_V1_1 = 2;
/** Magic of CRIU's kerndat cache (/run/criu.kdat), not an image in the directory. */
export const KDAT_MAGIC = 0x57023458;

/** What precedes the kind magic in the file. */
export type MagicPrefix = 'common' | 'service' | 'none';

/**
 * How many raw bytes follow one entry's message. `rest` is the file from just
 * after the message to its end (for images whose payload has its own framing),
 * `first` is true for the first entry of the file.
 */
export type PayloadLength<M> = (msg: M, rest: Uint8Array, first: boolean) => number;

/** A kind whose entries are protobuf messages (`E`), optionally after one head entry (`H`). */
export interface PbKind<E extends DescMessage = DescMessage, H extends DescMessage = DescMessage> {
  readonly raw: false;
  /** crit's name of the magic ("CORE", "PAGEMAP"): the "magic" field of crit's JSON. */
  readonly crit: string;
  /** File name with at most one printf conversion: %u %lu %d %ld (decimal), %x (hex), %s. */
  readonly file: string;
  readonly magic: number;
  readonly prefix: MagicPrefix;
  /** Schema of every entry (of every entry after the first when `head` is set). */
  readonly schema: E;
  /** Schema of the first entry when it differs from the others (pagemap, ghost-file). */
  readonly head?: H;
  /** Raw bytes that follow an entry; absent when entries are bare messages. */
  readonly payload?: PayloadLength<MessageShape<E> | MessageShape<H>>;
}

/** A kind whose file is raw data with no magic and no framing (pages, ip dumps, tarballs). */
export interface RawKind {
  readonly raw: true;
  readonly crit: string;
  readonly file: string;
}

export type ImageKind = PbKind<DescMessage, DescMessage> | RawKind;

function pb<E extends DescMessage, H extends DescMessage = never>(
  crit: string,
  file: string,
  magic: number,
  schema: E,
  more: { prefix?: MagicPrefix; head?: H; payload?: PayloadLength<MessageShape<E> | MessageShape<H>> } = {},
): PbKind<E, H> {
  return {
    raw: false,
    crit,
    file,
    magic,
    prefix: more.prefix ?? 'common',
    schema,
    ...(more.head ? { head: more.head } : {}),
    ...(more.payload ? { payload: more.payload } : {}),
  };
}

function raw(crit: string, file: string): RawKind {
  return { raw: true, crit, file };
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Reads a little-endian u32 at `off`, or -1 when `buf` is too short. */
function u32At(buf: Uint8Array, off: number): number {
  if (off + 4 > buf.length) return -1;
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

/** Reads field 2 (msize, a varint) of an ipc_msg message without decoding it fully. */
function ipcMsgSize(msg: Uint8Array): number {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (i >= msg.length || shift > 63) return -1;
      const b = msg[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
    }
  };
  while (i < msg.length) {
    const tag = varint();
    if (tag < 0) return -1;
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) {
      const v = varint();
      if (v < 0) return -1;
      if (field === 2) return v;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const n = varint();
      if (n < 0) return -1;
      i += n;
    } else return -1;
  }
  return -1;
}

/**
 * The payload after an ipc_msg_entry: qnum times { u32 length, ipc_msg, msize bytes
 * rounded up to 8 }. Returns a length past `rest` when it is truncated, so that the
 * reader reports it.
 */
function ipcMsgQueueLength(qnum: number, rest: Uint8Array): number {
  let off = 0;
  for (let n = 0; n < qnum; n++) {
    const len = u32At(rest, off);
    if (len < 0 || off + 4 + len > rest.length) return rest.length + 1;
    const msize = ipcMsgSize(rest.subarray(off + 4, off + 4 + len));
    if (msize < 0) return rest.length + 1;
    off += 4 + len + roundUp(msize, 8);
  }
  return off;
}

/**
 * Every kind of image CRIU has, keyed by a short name of ours. `crit` is the magic
 * name crit prints. Kinds that share a magic (pagemap/shmemPagemap, signal/psignal,
 * binfmtMisc/binfmtMiscOld) differ only in file name.
 */
export const KINDS = {
  inventory: pb('INVENTORY', 'inventory.img', 0x58313116, InventoryEntrySchema, { prefix: 'none' }),
  pstree: pb('PSTREE', 'pstree.img', 0x50273030, PstreeEntrySchema),
  core: pb('CORE', 'core-%u.img', 0x55053847, CoreEntrySchema),
  ids: pb('IDS', 'ids-%u.img', 0x54432030, TaskKobjIdsEntrySchema),
  mm: pb('MM', 'mm-%u.img', 0x57492820, MmEntrySchema),
  vmas: pb('VMAS', 'vmas-%u.img', 0x54123737, VmaEntrySchema),
  pagemap: pb('PAGEMAP', 'pagemap-%lu.img', 0x56084025, PagemapEntrySchema, { head: PagemapHeadSchema }),
  shmemPagemap: pb('PAGEMAP', 'pagemap-shmem-%lu.img', 0x56084025, PagemapEntrySchema, {
    head: PagemapHeadSchema,
  }),
  pages: raw('PAGES', 'pages-%u.img'),
  fs: pb('FS', 'fs-%u.img', 0x51403912, FsEntrySchema),
  creds: pb('CREDS', 'creds-%u.img', 0x54023547, CredsEntrySchema),
  sigacts: pb('SIGACT', 'sigacts-%u.img', 0x55344201, SaEntrySchema),
  itimers: pb('ITIMERS', 'itimers-%u.img', 0x57464056, ItimerEntrySchema),
  posixTimers: pb('POSIX_TIMERS', 'posix-timers-%u.img', 0x52603957, PosixTimerEntrySchema),
  rlimit: pb('RLIMIT', 'rlimit-%u.img', 0x57113925, RlimitEntrySchema),
  signal: pb('SIGNAL', 'signal-s-%u.img', 0x59255647, SiginfoEntrySchema),
  psignal: pb('SIGNAL', 'signal-p-%u.img', 0x59255647, SiginfoEntrySchema),
  // files
  files: pb('FILES', 'files.img', 0x56303138, FileEntrySchema),
  fdinfo: pb('FDINFO', 'fdinfo-%u.img', 0x56213732, FdinfoEntrySchema),
  regFiles: pb('REG_FILES', 'reg-files.img', 0x50363636, RegFileEntrySchema),
  extFiles: pb('EXT_FILES', 'ext-files.img', 0x59255641, ExtFileEntrySchema),
  nsFiles: pb('NS_FILES', 'ns-files.img', 0x61394011, NsFileEntrySchema),
  remapFpath: pb('REMAP_FPATH', 'remap-fpath.img', 0x59133954, RemapFilePathEntrySchema),
  ghostFile: pb('GHOST_FILE', 'ghost-file-%x.img', 0x52583605, GhostChunkEntrySchema, {
    head: GhostFileEntrySchema,
    // A head without `chunks` is followed by the whole file; with `chunks`, each
    // ghost_chunk_entry is followed by its `len` bytes.
    payload: (m, rest) => {
      if (m.$typeName === 'criu.GhostFileEntry') return m.chunks ? 0 : rest.length;
      return Number(m.len);
    },
  }),
  memfdInode: pb('MEMFD_INODE', 'memfd.img', 0x48453499, MemfdInodeEntrySchema),
  pipes: pb('PIPES', 'pipes.img', 0x56513555, PipeEntrySchema),
  pipesData: pb('PIPES_DATA', 'pipes-data.img', 0x56453709, PipeDataEntrySchema, { payload: (m) => m.bytes }),
  fifo: pb('FIFO', 'fifo.img', 0x58364939, FifoEntrySchema),
  fifoData: pb('FIFO_DATA', 'fifo-data.img', 0x59333054, PipeDataEntrySchema, { payload: (m) => m.bytes }),
  eventfd: pb('EVENTFD_FILE', 'eventfd.img', 0x44523722, EventfdFileEntrySchema),
  eventpoll: pb('EVENTPOLL_FILE', 'eventpoll.img', 0x45023858, EventpollFileEntrySchema),
  eventpollTfd: pb('EVENTPOLL_TFD', 'eventpoll-tfd.img', 0x44433746, EventpollTfdEntrySchema),
  signalfd: pb('SIGNALFD', 'signalfd.img', 0x57323820, SignalfdEntrySchema),
  inotify: pb('INOTIFY_FILE', 'inotify.img', 0x48424431, InotifyFileEntrySchema),
  inotifyWd: pb('INOTIFY_WD', 'inotify-wd.img', 0x54562009, InotifyWdEntrySchema),
  fanotify: pb('FANOTIFY_FILE', 'fanotify.img', 0x55096122, FanotifyFileEntrySchema),
  fanotifyMark: pb('FANOTIFY_MARK', 'fanotify-mark.img', 0x56506035, FanotifyMarkEntrySchema),
  timerfd: pb('TIMERFD', 'timerfd.img', 0x50493712, TimerfdEntrySchema),
  tty: pb('TTY_FILES', 'tty.img', 0x59433025, TtyFileEntrySchema),
  ttyInfo: pb('TTY_INFO', 'tty-info.img', 0x59453036, TtyInfoEntrySchema),
  ttyData: pb('TTY_DATA', 'tty-data.img', 0x59413026, TtyDataEntrySchema),
  tunfile: pb('TUNFILE', 'tunfile.img', 0x57143751, TunfileEntrySchema),
  fileLocks: pb('FILE_LOCKS', 'filelocks.img', 0x54323616, FileLockEntrySchema),
  bpfmapFile: pb('BPFMAP_FILE', 'bpfmap-file.img', 0x57506142, BpfmapFileEntrySchema),
  bpfmapData: pb('BPFMAP_DATA', 'bpfmap-data.img', 0x64324033, BpfmapDataEntrySchema, {
    payload: (m) => m.keysBytes + m.valuesBytes,
  }),
  pidfd: pb('PIDFD', 'pidfd.img', 0x54435556, PidfdEntrySchema),
  // sockets
  unixsk: pb('UNIXSK', 'unixsk.img', 0x54373943, UnixSkEntrySchema),
  inetsk: pb('INETSK', 'inetsk.img', 0x56443851, InetSkEntrySchema),
  packetsk: pb('PACKETSK', 'packetsk.img', 0x60454618, PacketSockEntrySchema),
  netlinksk: pb('NETLINK_SK', 'netlinksk.img', 0x58005614, NetlinkSkEntrySchema),
  skQueues: pb('SK_QUEUES', 'sk-queues.img', 0x56264026, SkPacketEntrySchema, { payload: (m) => m.length }),
  tcpStream: pb('TCP_STREAM', 'tcp-stream-%x.img', 0x51465506, TcpStreamEntrySchema, {
    payload: (m) => m.inqLen + m.outqLen,
  }),
  // namespaces
  utsns: pb('UTSNS', 'utsns-%u.img', 0x54473203, UtsnsEntrySchema),
  ipcVar: pb('IPC_VAR', 'ipcns-var-%u.img', 0x53115007, IpcVarEntrySchema),
  ipcShm: pb('IPCNS_SHM', 'ipcns-shm-%u.img', 0x46283044, IpcShmEntrySchema, {
    // Since CRIU 3.x the contents live in the shmem pagemap (in_pagemaps).
    payload: (m) => (m.inPagemaps ? 0 : roundUp(Number(m.size), 4)),
  }),
  ipcMsg: pb('IPCNS_MSG', 'ipcns-msg-%u.img', 0x55453737, IpcMsgEntrySchema, {
    payload: (m, rest) => ipcMsgQueueLength(m.qnum, rest),
  }),
  ipcSem: pb('IPCNS_SEM', 'ipcns-sem-%u.img', 0x59573019, IpcSemEntrySchema, {
    payload: (m) => roundUp(2 * m.nsems, 8),
  }),
  mnts: pb('MNTS', 'mountpoints-%u.img', 0x55563928, MntEntrySchema),
  netdev: pb('NETDEV', 'netdev-%u.img', 0x57373951, NetDeviceEntrySchema),
  netns: pb('NETNS', 'netns-%u.img', 0x55933752, NetnsEntrySchema),
  userns: pb('USERNS', 'userns-%u.img', 0x55474906, UsernsEntrySchema),
  timens: pb('TIMENS', 'timens-%u.img', 0x43114433, TimensEntrySchema),
  pidns: pb('PIDNS', 'pidns-%u.img', 0x61157326, PidnsEntrySchema),
  ifaddr: raw('IFADDR', 'ifaddr-%u.img'),
  route: raw('ROUTE', 'route-%u.img'),
  route6: raw('ROUTE6', 'route6-%u.img'),
  rule: raw('RULE', 'rule-%u.img'),
  iptables: raw('IPTABLES', 'iptables-%u.img'),
  ip6tables: raw('IP6TABLES', 'ip6tables-%u.img'),
  nftables: raw('NFTABLES', 'nftables-%u.img'),
  netnfCt: raw('NETNF_CT', 'netns-ct-%u.img'),
  netnfExp: raw('NETNF_EXP', 'netns-exp-%u.img'),
  tmpfsImg: raw('TMPFS_IMG', 'tmpfs-%u.tar.gz.img'),
  tmpfsDev: raw('TMPFS_DEV', 'tmpfs-dev-%u.tar.gz.img'),
  // the rest of the system
  autofs: pb('AUTOFS', 'autofs-%u.img', 0x49353943, AutofsEntrySchema),
  binfmtMisc: pb('BINFMT_MISC', 'binfmt-misc.img', 0x67343323, BinfmtMiscEntrySchema),
  binfmtMiscOld: pb('BINFMT_MISC', 'binfmt-misc-%u.img', 0x67343323, BinfmtMiscEntrySchema),
  cgroup: pb('CGROUP', 'cgroup.img', 0x59383330, CgroupEntrySchema),
  cpuinfo: pb('CPUINFO', 'cpuinfo.img', 0x61404013, CpuinfoEntrySchema),
  seccomp: pb('SECCOMP', 'seccomp.img', 0x64413049, SeccompEntrySchema),
  apparmor: pb('APPARMOR', 'apparmor.img', 0x59423047, ApparmorEntrySchema),
  // service files
  stats: pb('STATS', 'stats-%s', 0x57093306, StatsEntrySchema, { prefix: 'service' }),
  irmapCache: pb('IRMAP_CACHE', 'irmap-cache', 0x57004059, IrmapCacheEntrySchema, { prefix: 'service' }),
} as const;

export type Kinds = typeof KINDS;
/** Every kind's key. */
export type KindKey = keyof Kinds;
/** Keys of kinds made of framed protobuf entries. */
export type PbKindKey = { [K in KindKey]: Kinds[K] extends PbKind<DescMessage, DescMessage> ? K : never }[KindKey];
/** Keys of raw kinds (no magic, no framing). */
export type RawKindKey = Exclude<KindKey, PbKindKey>;

/** The message type of a kind's entries (after the head, for kinds with one). */
export type EntryOf<K extends PbKindKey> = Kinds[K] extends PbKind<infer E, DescMessage> ? MessageShape<E> : never;
/** The message type of a kind's first entry when it differs (pagemap_head), else never. */
export type HeadOf<K extends PbKindKey> = Kinds[K] extends PbKind<DescMessage, infer H>
  ? [H] extends [never]
    ? never
    : MessageShape<H>
  : never;
/** Any entry of a kind: the head or an ordinary entry. */
export type AnyEntryOf<K extends PbKindKey> = EntryOf<K> | HeadOf<K>;
/** The entries of a whole image: `[head, ...entries]` for kinds with a head. */
export type ImageEntries<K extends PbKindKey> = [HeadOf<K>] extends [never]
  ? EntryOf<K>[]
  : [HeadOf<K>, ...EntryOf<K>[]];

/** The kind description of a key. */
export function kindOf<K extends KindKey>(key: K): Kinds[K] {
  const k = KINDS[key];
  if (k === undefined) throw new TypeError(`unknown image kind ${String(key)}`);
  return k;
}

/** Whether a file name pattern takes an argument (core-%u.img does, pstree.img does not). */
export function takesArg(key: KindKey): boolean {
  return /%[a-z]+/.test(kindOf(key).file);
}

/** The argument of a file name pattern: a pid, an id, a counter, or "dump"/"restore" for stats. */
export type ImageArg = number | bigint | string;

/**
 * The file name of an image: `fileName('core', 42)` is "core-42.img". Throws a
 * TypeError when the argument is missing, superfluous or of the wrong form.
 */
export function fileName(key: KindKey, arg?: ImageArg): string {
  const pattern = kindOf(key).file;
  const m = /%(u|lu|d|ld|x|s)/.exec(pattern);
  if (!m) {
    if (arg !== undefined) throw new TypeError(`image ${pattern} takes no argument, got ${String(arg)}`);
    return pattern;
  }
  if (arg === undefined) throw new TypeError(`image ${pattern} needs an argument`);
  let text: string;
  if (m[1] === 's') {
    if (typeof arg !== 'string' || arg === '' || arg.includes('/') || arg.includes('\0')) {
      throw new TypeError(`image ${pattern}: bad argument ${JSON.stringify(arg)}`);
    }
    text = arg;
  } else {
    if (typeof arg === 'string' || (typeof arg === 'number' && !Number.isSafeInteger(arg))) {
      throw new TypeError(`image ${pattern}: argument ${String(arg)} is not an integer`);
    }
    const signed = m[1] === 'd' || m[1] === 'ld';
    if (!signed && arg < 0) throw new TypeError(`image ${pattern}: argument ${String(arg)} is negative`);
    text = m[1] === 'x' ? arg.toString(16) : arg.toString(10);
  }
  return pattern.slice(0, m.index) + text + pattern.slice(m.index + m[0].length);
}

/**
 * The protobuf kinds that carry `magic`, canonical kind first (pagemap before
 * shmemPagemap). Used by tools that identify an image by its magic, as crit does.
 */
export function kindsByMagic(magic: number): PbKindKey[] {
  const out: PbKindKey[] = [];
  for (const key of Object.keys(KINDS) as KindKey[]) {
    const k = KINDS[key];
    if (!k.raw && k.magic === magic) out.push(key as PbKindKey);
  }
  return out;
}
