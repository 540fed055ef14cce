// Parsers of /proc/PID/stat and /proc/PID/status: pure.

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  ttyNr: number;
  /** Foreground process group of the controlling terminal (-1: none). */
  tpgid: number;
  flags: number;
  nice: number;
  numThreads: number;
  startTime: bigint;
  exitSignal: number;
  rtPriority: number;
  policy: number;
  startCode: bigint;
  endCode: bigint;
  startStack: bigint;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
  exitCode: number;
}

/** Parse /proc/PID/stat; comm may contain spaces and parentheses. */
export function parseStat(text: string): ProcStat {
  const l = text.indexOf('(');
  const r = text.lastIndexOf(')');
  if (l < 0 || r < l) throw new Error('malformed /proc stat line');
  const pid = Number(text.slice(0, l).trim());
  const comm = text.slice(l + 1, r);
  // f[0] is field 3 (state).
  const f = text.slice(r + 2).trim().split(/\s+/);
  const n = (i: number) => Number(f[i - 3]);
  const b = (i: number) => BigInt(f[i - 3] ?? '0');
  return {
    pid, comm, state: f[0]!, ppid: n(4), pgid: n(5), sid: n(6), ttyNr: n(7), tpgid: n(8), flags: n(9),
    nice: n(19), numThreads: n(20), startTime: b(22), exitSignal: n(38), rtPriority: n(40), policy: n(41),
    startCode: b(26), endCode: b(27), startStack: b(28), startData: b(45), endData: b(46),
    startBrk: b(47), argStart: b(48), argEnd: b(49), envStart: b(50), envEnd: b(51),
    exitCode: n(52),
  };
}

/** Parse /proc/PID/status into a key → value map. */
export function parseStatus(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** The four ids of a Uid:/Gid: line (real, effective, saved, fs). */
export function parseIds(v: string | undefined): number[] {
  return (v ?? '').split(/\s+/).filter(Boolean).map(Number);
}
