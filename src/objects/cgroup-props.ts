// Which cgroup files are saved as properties, and how their values are read and
// written back. The v1 lists are CRIU's (criu/cgroup-props.c); --cgroup-props and
// --cgroup-props-file change them with CRIU's small YAML form:
//
//   "cpu":
//    - "strategy": "replace"
//    - "properties": ["cpu.shares", "cpu.cfs_period_us"]
//
// CRIU keeps no per-controller files of the v2 hierarchy; cryo adds its own list
// (memory.max, cpu.max, ...), which the same YAML entries change too.
import { readFileSync } from 'node:fs';
import { CryoError } from '../context.js';

/** Files of every v1 group; cgroup.procs and tasks only for their permissions. */
export const GLOBAL_V1 = ['cgroup.clone_children', 'notify_on_release', 'cgroup.procs', 'tasks'];
/** Files of every v2 group. */
export const GLOBAL_V2 = ['cgroup.subtree_control', 'cgroup.max.descendants', 'cgroup.max.depth', 'cgroup.freeze', 'cgroup.type'];

// Order matters where the kernel checks one value against another:
// memory.limit_in_bytes before memory.memsw.limit_in_bytes.
const BUILTIN_V1: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['cpu', ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.rt_period_us', 'cpu.rt_runtime_us']],
  ['memory', [
    'memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.swappiness', 'memory.soft_limit_in_bytes',
    'memory.move_charge_at_immigrate', 'memory.oom_control', 'memory.use_hierarchy', 'memory.kmem.limit_in_bytes',
    'memory.kmem.tcp.limit_in_bytes',
  ]],
  ['cpuset', [
    'cpuset.cpus', 'cpuset.mems', 'cpuset.memory_migrate', 'cpuset.cpu_exclusive', 'cpuset.mem_exclusive',
    'cpuset.mem_hardwall', 'cpuset.memory_spread_page', 'cpuset.memory_spread_slab', 'cpuset.sched_load_balance',
    'cpuset.sched_relax_domain_level',
  ]],
  ['blkio', ['blkio.weight']],
  ['freezer', []],
  ['perf_event', []],
  ['net_cls', ['net_cls.classid']],
  ['net_prio', ['net_prio.ifpriomap']],
  ['pids', ['pids.max']],
  ['devices', ['devices.list']],
];

// v2: by the controllers a group has (its cgroup.controllers). A "*" matches any
// part of a name (hugetlb.2MB.max, hugetlb.1GB.max).
const BUILTIN_V2: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['cpu', ['cpu.weight', 'cpu.max', 'cpu.max.burst', 'cpu.idle', 'cpu.uclamp.min', 'cpu.uclamp.max']],
  ['cpuset', ['cpuset.cpus', 'cpuset.mems', 'cpuset.cpus.exclusive', 'cpuset.cpus.partition']],
  ['memory', [
    'memory.min', 'memory.low', 'memory.high', 'memory.max', 'memory.swap.high', 'memory.swap.max',
    'memory.zswap.max', 'memory.zswap.writeback', 'memory.oom.group',
  ]],
  ['io', ['io.weight', 'io.max']],
  ['pids', ['pids.max']],
  ['hugetlb', ['hugetlb.*.max', 'hugetlb.*.rsvd.max']],
  ['rdma', ['rdma.max']],
  ['misc', ['misc.max']],
];

/**
 * Written as soon as the group is created, before any task or child enters it
 * (the kernel refuses them later, or a task could not enter without them).
 */
export const SPECIAL_PROPS = new Set([
  'cpuset.cpus', 'cpuset.mems', 'devices.list', 'memory.kmem.limit_in_bytes', 'memory.swappiness',
  'memory.oom_control', 'memory.use_hierarchy', 'cgroup.type',
]);
/** Written last, just before the tasks are let go: they freeze the group. */
export const FREEZER_PROPS = new Set(['freezer.state', 'cgroup.freeze']);
/** The kernel takes one line per write. */
export const LINE_PROPS = new Set(['io.max', 'io.weight', 'rdma.max', 'misc.max']);

export interface PropTables {
  v1: Map<string, string[]>;
  v2: Map<string, string[]>;
}

export interface PropsEntry {
  controller: string;
  strategy: 'merge' | 'replace';
  props: string[];
}

/** Parse CRIU's --cgroup-props form; throws an Error saying where it went wrong. */
export function parsePropsStream(text: string): PropsEntry[] {
  let i = 0;
  const out: PropsEntry[] = [];
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const where = () => `at offset ${i}`;
  const quoted = (what: string): string => {
    ws();
    if (text[i] !== '"') throw new Error(`expected ${what} in quotes ${where()}`);
    const end = text.indexOf('"', i + 1);
    if (end < 0) throw new Error(`unterminated ${what} ${where()}`);
    const v = text.slice(i + 1, end);
    i = end + 1;
    return v;
  };
  const sym = (s: string, what: string) => {
    ws();
    if (!text.startsWith(s, i)) throw new Error(`expected ${what} ${where()}`);
    i += s.length;
  };
  ws();
  while (i < text.length) {
    const controller = quoted('a controller name');
    if (!controller) throw new Error(`empty controller name ${where()}`);
    sym(':', `':' after "${controller}"`);
    sym('-', `'- "strategy"' in "${controller}"`);
    if (quoted('"strategy"') !== 'strategy') throw new Error(`expected "strategy" in "${controller}"`);
    sym(':', `':' after "strategy"`);
    const strategy = quoted('a strategy');
    if (strategy !== 'merge' && strategy !== 'replace') throw new Error(`unknown strategy "${strategy}" in "${controller}"`);
    sym('-', `'- "properties"' in "${controller}"`);
    if (quoted('"properties"') !== 'properties') throw new Error(`expected "properties" in "${controller}"`);
    sym(':', `':' after "properties"`);
    sym('[', `'[' in the properties of "${controller}"`);
    const props: string[] = [];
    ws();
    if (text[i] === ']') i++;
    else {
      for (;;) {
        props.push(quoted('a property name'));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          break;
        } else throw new Error(`expected ',' or ']' in the properties of "${controller}" ${where()}`);
      }
    }
    out.push({ controller, strategy, props });
    ws();
  }
  return out;
}

function apply(table: Map<string, string[]>, e: PropsEntry): void {
  const cur = table.get(e.controller);
  if (cur && e.strategy === 'merge') cur.push(...e.props);
  else table.set(e.controller, [...e.props]);
}

/** The property lists: the built-in ones changed by --cgroup-props, then by --cgroup-props-file. */
export function propTables(props?: string, file?: string): PropTables {
  const t: PropTables = {
    v1: new Map(BUILTIN_V1.map(([c, p]) => [c, [...p]])),
    v2: new Map(BUILTIN_V2.map(([c, p]) => [c, [...p]])),
  };
  const use = (text: string, origin: string) => {
    let entries: PropsEntry[];
    try {
      entries = parsePropsStream(text);
    } catch (e) {
      throw new CryoError(`${origin}: ${(e as Error).message}`);
    }
    for (const e of entries) {
      apply(t.v1, e);
      apply(t.v2, e);
    }
  };
  if (props) use(props, '--cgroup-props');
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CryoError(`--cgroup-props-file ${file}: ${(e as Error).message}`);
    }
    use(text, `--cgroup-props-file ${file}`);
  }
  return t;
}

/** Does a property pattern (with "*") name this file? */
export function propMatches(pattern: string, file: string): boolean {
  if (!pattern.includes('*')) return pattern === file;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}$`);
  return re.test(file);
}

/**
 * The files to save for one group, in order, among `files` (the group's
 * directory): per controller of the hierarchy (v1) or of the group (v2), then
 * the global ones.
 */
export function propsFor(t: PropTables, v2: boolean, controllers: string[], files: Set<string>): string[] {
  const out: string[] = [];
  const add = (p: string) => {
    if (p.includes('*')) {
      for (const f of [...files].sort()) if (propMatches(p, f) && !out.includes(f)) out.push(f);
    } else if (files.has(p) && !out.includes(p)) out.push(p);
  };
  for (const c of controllers) for (const p of (v2 ? t.v2 : t.v1).get(c) ?? []) add(p);
  for (const p of v2 ? GLOBAL_V2 : GLOBAL_V1) add(p);
  return out;
}

const LLONG_MAX = (1n << 63n) - 1n;

/**
 * A property's value as the image keeps it: one trailing newline cut, a number
 * at LLONG_MAX (or beyond, as strtoll saturates) as "-1", memory.oom_control as
 * its oom_kill_disable flag alone. cgroup.procs and tasks are kept empty.
 */
export function imageValue(name: string, raw: string): string {
  if (name === 'cgroup.procs' || name === 'tasks') return '';
  const m = /^\s*([+-]?)(\d+)/.exec(raw);
  if (m && m[1] !== '-' && BigInt(m[2]!) >= LLONG_MAX) return '-1';
  if (name === 'memory.oom_control') {
    const d = /^oom_kill_disable (\d+)/.exec(raw);
    if (!d) throw new Error(`cannot read oom_kill_disable from "${raw}"`);
    return d[1]!;
  }
  return raw.endsWith('\n') ? raw.slice(0, -1) : raw;
}

/** net_prio.ifpriomap lines with a priority other than 0 (0 is every interface's default). */
export function ifpriomapLines(value: string): string[] {
  return value.split('\n').filter((l) => {
    const sp = l.indexOf(' ');
    if (!l) return false;
    if (sp < 0) throw new CryoError(`bad net_prio.ifpriomap line "${l}"`);
    return Number.parseInt(l.slice(sp + 1), 10) !== 0;
  });
}

/**
 * The write that turns a v2 group's cgroup.subtree_control from `current` into
 * `wanted`: every controller now on switched off, every wanted one on.
 */
export function subtreeControlWrite(current: string, wanted: string): string {
  const words = (s: string) => s.trim().split(/\s+/).filter(Boolean);
  return [...words(current).map((c) => `-${c}`), ...words(wanted).map((c) => `+${c}`)].join(' ');
}
