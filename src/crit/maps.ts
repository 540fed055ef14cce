// The symbolic names crit prints for fields marked (criu).flags and (criu).dict,
// as CRIU 4.x's pycriu has them (lib/pycriu/images/pb2dict.py). Pure.

type FlagMap = readonly (readonly [string, bigint])[];

const MMAP_PROT: FlagMap = [
  ['PROT_READ', 0x1n],
  ['PROT_WRITE', 0x2n],
  ['PROT_EXEC', 0x4n],
];

const MMAP_FLAGS: FlagMap = [
  ['MAP_SHARED', 0x1n],
  ['MAP_PRIVATE', 0x2n],
  ['MAP_DROPPABLE', 0x08n],
  ['MAP_ANON', 0x20n],
  ['MAP_GROWSDOWN', 0x0100n],
];

const MMAP_STATUS: FlagMap = [
  ['VMA_AREA_NONE', 0n],
  ['VMA_AREA_REGULAR', 1n << 0n],
  ['VMA_AREA_STACK', 1n << 1n],
  ['VMA_AREA_VSYSCALL', 1n << 2n],
  ['VMA_AREA_VDSO', 1n << 3n],
  ['VMA_AREA_HEAP', 1n << 5n],
  ['VMA_FILE_PRIVATE', 1n << 6n],
  ['VMA_FILE_SHARED', 1n << 7n],
  ['VMA_ANON_SHARED', 1n << 8n],
  ['VMA_ANON_PRIVATE', 1n << 9n],
  ['VMA_AREA_SYSVIPC', 1n << 10n],
  ['VMA_AREA_SOCKET', 1n << 11n],
  ['VMA_AREA_VVAR', 1n << 12n],
  ['VMA_AREA_AIORING', 1n << 13n],
  ['VMA_AREA_MEMFD', 1n << 14n],
  ['VMA_AREA_SHSTK', 1n << 15n],
  ['VMA_AREA_UPROBES', 1n << 17n],
  ['VMA_UNSUPP', 1n << 31n],
];

const RFILE_FLAGS: FlagMap = [
  ['O_WRONLY', 0o1n],
  ['O_RDWR', 0o2n],
  ['O_CREAT', 0o100n],
  ['O_EXCL', 0o200n],
  ['O_NOCTTY', 0o400n],
  ['O_TRUNC', 0o1000n],
  ['O_APPEND', 0o2000n],
  ['O_NONBLOCK', 0o4000n],
  ['O_DSYNC', 0o10000n],
  ['FASYNC', 0o20000n],
  ['O_DIRECT', 0o40000n],
  ['O_LARGEFILE', 0o100000n],
  ['O_DIRECTORY', 0o200000n],
  ['O_NOFOLLOW', 0o400000n],
  ['O_NOATIME', 0o1000000n],
  ['O_CLOEXEC', 0o2000000n],
];

const SEALS_FLAGS: FlagMap = [
  ['F_SEAL_SEAL', 0x1n],
  ['F_SEAL_SHRINK', 0x2n],
  ['F_SEAL_GROW', 0x4n],
  ['F_SEAL_WRITE', 0x8n],
  ['F_SEAL_FUTURE_WRITE', 0x10n],
];

const PMAP_FLAGS: FlagMap = [
  ['PE_PARENT', 1n << 0n],
  ['PE_LAZY', 1n << 1n],
  ['PE_PRESENT', 1n << 2n],
];

/** (criu).flags name -> bit names. */
export const FLAG_MAPS: Readonly<Record<string, FlagMap>> = {
  'mmap.prot': MMAP_PROT,
  'mmap.flags': MMAP_FLAGS,
  'mmap.status': MMAP_STATUS,
  'rfile.flags': RFILE_FLAGS,
  'pmap.flags': PMAP_FLAGS,
  'seals.flags': SEALS_FLAGS,
};

/** (criu).dict name -> field name -> value -> name. */
export const DICT_MAPS: Readonly<Record<string, Readonly<Record<string, ReadonlyMap<number, string>>>>> = {
  gen: {
    task_state: new Map([
      [1, 'Alive'],
      [3, 'Zombie'],
      [6, 'Stopped'],
    ]),
  },
  sk: {
    family: new Map([
      [1, 'UNIX'],
      [2, 'INET'],
      [10, 'INET6'],
      [16, 'NETLINK'],
      [17, 'PACKET'],
    ]),
    type: new Map([
      [1, 'STREAM'],
      [2, 'DGRAM'],
      [3, 'RAW'],
      [5, 'SEQPACKET'],
      [10, 'PACKET'],
    ]),
    state: new Map([
      [1, 'ESTABLISHED'],
      [2, 'SYN_SENT'],
      [3, 'SYN_RECV'],
      [4, 'FIN_WAIT1'],
      [5, 'FIN_WAIT2'],
      [6, 'TIME_WAIT'],
      [7, 'CLOSE'],
      [8, 'CLOSE_WAIT'],
      [9, 'LAST_ACK'],
      [10, 'LISTEN'],
    ]),
    proto: new Map([
      [0, 'IP'],
      [6, 'TCP'],
      [17, 'UDP'],
      [136, 'UDPLITE'],
    ]),
  },
};

/** crit's map_flags(): "PROT_READ | PROT_WRITE", unknown bits as a trailing "0x..", 0 as "". */
export function formatFlags(value: bigint, map: FlagMap): string {
  const names = map.filter(([, bit]) => (value & bit) !== 0n).map(([name]) => name);
  let all = 0n;
  for (const [, bit] of map) all += bit;
  const rest = value & ~all;
  if (rest !== 0n) names.push('0x' + rest.toString(16));
  return names.join(' | ');
}

/** crit's unmap_flags(): each "|"-separated part is a name or a number (int(x, 0)). */
export function parseFlags(text: string, map: FlagMap, toInt: (s: string) => bigint | undefined): bigint | undefined {
  if (text === '') return 0n;
  const byName = new Map(map);
  let sum = 0n;
  for (const raw of text.split('|')) {
    const part = raw.trim();
    const v = byName.get(part) ?? toInt(part);
    if (v === undefined) return undefined;
    sum += v;
  }
  return sum;
}
