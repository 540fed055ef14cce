// Value parsers for option arguments, with the exact C semantics CRIU gets
// from atoi/strtol/strtoul/sscanf, and the small grammars of its compound
// arguments (--cpu-cap, --join-ns, --inherit-fd, --external, ...).
// Pure functions: no file system, no globals.

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/** C isspace() in the "C" locale. */
export function isCSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

interface Scanned {
  /** The digits' value with the sign applied, unbounded. */
  readonly value: bigint;
  /** Index just past the last digit, or 0 when no digits were found. */
  readonly end: number;
  readonly digits: boolean;
}

/** Base-10 scan as strtol/strtoul do it: spaces, one sign, digits. */
function scanDecimal(s: string): Scanned {
  let i = 0;
  while (isCSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  const start = i;
  while (i < s.length && s[i]! >= '0' && s[i]! <= '9') i++;
  if (i === start) return { value: 0n, end: 0, digits: false };
  const v = BigInt(s.slice(start, i));
  return { value: neg ? -v : v, end: i, digits: true };
}

/** The largest pid Linux can give (PID_MAX_LIMIT). */
export const PID_MAX_LIMIT = 4 * 1024 * 1024;

/**
 * A pid as an argument: a whole decimal number from 1 to PID_MAX_LIMIT and
 * nothing else (no sign, no spaces, no fraction or exponent, nothing after it).
 */
export function parsePid(s: string): number | undefined {
  if (!/^[0-9]{1,8}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= PID_MAX_LIMIT ? n : undefined;
}

/** strtol(s, NULL, 10): saturates at the bounds of a 64-bit long. */
export function cStrtol(s: string): bigint {
  const { value } = scanDecimal(s);
  if (value > INT64_MAX) return INT64_MAX;
  if (value < INT64_MIN) return INT64_MIN;
  return value;
}

/** atoi(s): glibc computes (int) strtol(s, NULL, 10). */
export function cAtoi(s: string): number {
  return Number(BigInt.asIntN(32, cStrtol(s)));
}

/** strtoul(s, &end, 10): value as a 64-bit unsigned and the end index (0 when nothing was parsed). */
export function cStrtoul(s: string): { value: bigint; end: number } {
  const { value, end, digits } = scanDecimal(s);
  if (!digits) return { value: 0n, end: 0 };
  const mag = value < 0n ? -value : value;
  if (mag > UINT64_MAX) return { value: UINT64_MAX, end };
  return { value: value < 0n ? BigInt.asUintN(64, -mag) : mag, end };
}

/** sscanf(s, "%d", &v): undefined when no number is there. */
export function cScanInt(s: string): number | undefined {
  const { digits } = scanDecimal(s);
  if (!digits) return undefined;
  return cAtoi(s);
}

/**
 * CRIU's parse_size (--ghost-limit): a K, M or G anywhere in the text scales
 * the leading number by 2^10, 2^20 or 2^30 (checked in that order).
 */
export function parseSize(s: string): number {
  const n = cStrtol(s);
  let shift = 0n;
  if (s.includes('K')) shift = 10n;
  else if (s.includes('M')) shift = 20n;
  else if (s.includes('G')) shift = 30n;
  return Number(BigInt.asUintN(64, n << shift));
}

// ---------------------------------------------------------------------------
// CPU capabilities (--cpu-cap)

export const CPU_CAP_NONE = 0;
export const CPU_CAP_FPU = 1 << 0;
export const CPU_CAP_CPU = 1 << 1;
export const CPU_CAP_INS = 1 << 2;
/** Write the cpuinfo image on dump, check it on restore. */
export const CPU_CAP_IMAGE = 1 << 3;
export const CPU_CAP_ALL = CPU_CAP_FPU | CPU_CAP_CPU | CPU_CAP_INS;
export const CPU_CAP_DEFAULT = CPU_CAP_FPU | CPU_CAP_INS;

/**
 * Apply a --cpu-cap argument to the current mask. Without an argument every
 * capability is selected. `^` inverts the following names until a comma.
 * Returns undefined on a name it does not know.
 */
export function applyCpuCap(current: number, arg: string | undefined): number | undefined {
  if (arg === undefined) return current | CPU_CAP_ALL | CPU_CAP_IMAGE;
  let cap = current;
  let inverse = false;
  const set = (bits: number): void => {
    cap = inverse ? cap & ~bits : cap | bits;
  };
  let s = arg;
  while (s.length > 0) {
    if (s.startsWith('^')) {
      inverse = !inverse;
      s = s.slice(1);
    } else if (s.startsWith(',')) {
      inverse = false;
      s = s.slice(1);
    } else if (s.startsWith('fpu')) {
      set(CPU_CAP_FPU);
      s = s.slice(3);
    } else if (s.startsWith('all')) {
      set(CPU_CAP_ALL);
      s = s.slice(3);
    } else if (s.startsWith('none')) {
      cap = inverse ? CPU_CAP_ALL : CPU_CAP_NONE;
      s = s.slice(4);
    } else if (s.startsWith('cpu')) {
      set(CPU_CAP_CPU);
      s = s.slice(3);
    } else if (s.startsWith('ins')) {
      set(CPU_CAP_INS);
      s = s.slice(3);
    } else {
      return undefined;
    }
  }
  if (cap !== CPU_CAP_NONE) cap |= CPU_CAP_IMAGE;
  return cap >>> 0;
}

// ---------------------------------------------------------------------------
// Compound arguments

/** --join-ns NS:{PID|FILE}[,EXTRA] */
export interface JoinNs {
  readonly ns: string;
  readonly nsFile: string;
  readonly extraOpt?: string | undefined;
}

const JOINABLE_NS = ['net', 'uts', 'time', 'ipc', 'pid', 'user', 'mnt'];

/** An integer string in 0..65535 (CRIU's check for user-ns uid/gid). Empty passes. */
function isSmallUint(s: string | undefined): boolean {
  if (s === undefined || s === '') return true;
  const { value, end, digits } = scanDecimal(s);
  return digits && end === s.length && value >= 0n && value <= 65535n;
}

/**
 * Parse --join-ns. 'bad-arg' when there is no colon (CRIU reports it as an
 * invalid argument); a message for the other errors. The namespace file or pid
 * is checked for existence later, not here.
 */
export function parseJoinNs(arg: string): JoinNs | 'bad-arg' | { error: string } {
  const colon = arg.indexOf(':');
  if (colon < 0) return 'bad-arg';
  const ns = arg.slice(0, colon);
  let nsFile = arg.slice(colon + 1);
  let extraOpt: string | undefined;
  const comma = nsFile.indexOf(',');
  if (comma >= 0) {
    extraOpt = nsFile.slice(comma + 1);
    nsFile = nsFile.slice(0, comma);
  }
  if (!JOINABLE_NS.includes(ns)) return { error: `invalid namespace type ${ns}` };
  if (ns === 'pid') return { error: 'join-ns pid namespace not supported' };
  if (ns === 'user' && extraOpt !== undefined) {
    const c = extraOpt.indexOf(',');
    const uid = c < 0 ? extraOpt : extraOpt.slice(0, c);
    const gid = c < 0 ? undefined : extraOpt.slice(c + 1);
    if (!isSmallUint(uid) || !isSmallUint(gid)) {
      return { error: `invalid user namespace extra_opts ${extraOpt}` };
    }
  }
  return { ns, nsFile, extraOpt };
}

/** --inherit-fd fd[N]:RES */
export interface InheritFd {
  readonly fd: number;
  readonly key: string;
}

/**
 * Parse --inherit-fd. The `debug[N]:TEXT` form (CRIU writes TEXT to fd N) is
 * returned as { debug }. Undefined when the text is malformed.
 */
export function parseInheritFd(arg: string): InheritFd | { debug: InheritFd } | undefined {
  let rest: string | undefined;
  let debug = false;
  if (arg.startsWith('fd')) rest = arg.slice(2);
  else if (arg.startsWith('debug')) {
    rest = arg.slice(5);
    debug = true;
  }
  if (rest === undefined || !rest.startsWith('[')) return undefined;
  const fd = cScanInt(rest.slice(1));
  const colon = arg.indexOf(':');
  if (fd === undefined || fd < 0 || colon < 0 || colon + 1 >= arg.length) return undefined;
  const entry = { fd, key: arg.slice(colon + 1) };
  return debug ? { debug: entry } : entry;
}

/** --cgroup-root [CONTROLLER:]PATH */
export interface CgroupRoot {
  readonly ctrl?: string | undefined;
  readonly path: string;
}

export function parseCgroupRoot(arg: string): CgroupRoot {
  const colon = arg.indexOf(':');
  if (colon < 0) return { path: arg };
  return { ctrl: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

/**
 * --ext-unix-sk=INO[,INO...]: the inode numbers as `unix[INO]` external
 * entries, or undefined when one of them does not parse (or is zero).
 */
export function parseUnixInodes(arg: string): string[] | undefined {
  const out: string[] = [];
  let s = arg;
  while (s.length > 0) {
    if (s.startsWith(',')) {
      s = s.slice(1);
      continue;
    }
    const { value, end } = cStrtoul(s);
    const ino = Number(BigInt.asUintN(32, value));
    if (ino === 0) return undefined;
    out.push(`unix[${ino}]`);
    s = s.slice(end);
  }
  return out;
}

/**
 * The part of an `--external mnt[]...` argument after `mnt[]`: `:m` enables
 * external masters, `:s` external sharing, nothing just auto-detection.
 * Undefined when the suffix is not understood.
 */
export function parseAutoExtMount(suffix: string): { masters: boolean; sharing: boolean } | undefined {
  if (suffix === '') return { masters: false, sharing: false };
  if (!suffix.startsWith(':')) return { masters: false, sharing: false };
  const c = suffix[1];
  if (c === 'm') return { masters: true, sharing: false };
  if (c === 's') return { masters: false, sharing: true };
  if (c === undefined) return { masters: false, sharing: false };
  return undefined;
}

/** The major LSMs that label tasks, as --lsm-profile names them. */
export type LsmName = 'apparmor' | 'selinux';

/** --lsm-profile TYPE:NAME, as CRIU's lsm_check_opts reads it; undefined type for "none:". */
export function parseLsmProfile(arg: string): { type: LsmName | undefined; name: string } | { error: string } {
  const colon = arg.indexOf(':');
  if (colon < 0) return { error: `invalid argument ${arg} for --lsm-profile` };
  const type = arg.slice(0, colon);
  const name = arg.slice(colon + 1);
  if (type === 'apparmor' || type === 'selinux') return { type, name };
  if (type === 'none') return { type: undefined, name: '' };
  return { error: `unknown lsm ${type}` };
}
