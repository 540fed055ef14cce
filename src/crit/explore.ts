// crit x DIR ps|fds|mems|rss: a whole images directory at a glance, printed as
// CRIU's crit prints it (the process tree, each task's open files, its memory
// map, its resident pages). Works on the same JSON as `crit decode`, as crit's
// explorers do. Where crit fails on images of current CRIU, this reads what
// CRIU writes now: the fd table id from core's "ids" when there is no
// ids-PID.img, and nr_pages falling back to compat_nr_pages.
import { CritError } from './errors.js';
import { decodeToJson } from './image.js';
import { isObject, type JsonObject, type JsonValue } from './json.js';
import type { Converter } from './convert.js';

export const EXPLORERS = ['ps', 'fds', 'mems', 'rss'] as const;
export type Explorer = (typeof EXPLORERS)[number];

/** Reads a file of the directory; undefined when it does not exist. */
export type DirReader = (name: string) => Uint8Array | undefined;

const rjust = (s: string, w: number) => s.padStart(w);
const ljust = (s: string, w: number) => s.padEnd(w);
const hex = (v: JsonValue | undefined) => BigInt(v as number | bigint).toString(16);
const num = (v: JsonValue | undefined): bigint => {
  if (typeof v === 'number' || typeof v === 'bigint') return BigInt(v);
  throw new CritError(undefined, undefined, `x: expected a number in the images, got ${JSON.stringify(v) ?? 'nothing'}`);
};

class Dir {
  private readonly cache = new Map<string, JsonObject[] | undefined>();
  private readonly fileStrs = new Map<string, string>();

  constructor(
    private readonly path: string,
    private readonly read: DirReader,
    private readonly conv: Converter,
  ) {}

  /** The entries of an image, undefined when it is missing. */
  tryLoad(name: string): JsonObject[] | undefined {
    if (!this.cache.has(name)) {
      const buf = this.read(name);
      this.cache.set(name, buf === undefined ? undefined : decodeToJson(buf, name, { pretty: false }, this.conv).entries);
    }
    return this.cache.get(name);
  }

  load(name: string): JsonObject[] {
    const e = this.tryLoad(name);
    if (e === undefined) throw new CritError(undefined, undefined, `${this.path}: no ${name}`);
    return e;
  }

  loadOne(name: string): JsonObject {
    const e = this.load(name)[0];
    if (e === undefined) throw new CritError(name, undefined, 'the image has no entries');
    return e;
  }

  /** crit's get_file_str(): how an fd's file prints ("pipe[12]", a path, "EVENTFD.5"). */
  fileStr(type: string, id: JsonValue | undefined): string {
    const key = `${type}/${String(id)}`;
    let s = this.fileStrs.get(key);
    if (s === undefined) {
      s = this.describe(type, id);
      this.fileStrs.set(key, s);
    }
    return s;
  }

  private find(id: JsonValue | undefined, field: string, legacy: string): JsonObject | undefined {
    const files = this.tryLoad('files.img') ?? [];
    if (files.length > 0) {
      const f = files.find((x) => String(x['id']) === String(id));
      if (f) {
        const v = f[field];
        return isObject(v) ? v : undefined;
      }
    }
    return (this.tryLoad(legacy) ?? []).find((x) => String(x['id']) === String(id));
  }

  private describe(type: string, id: JsonValue | undefined): string {
    switch (type) {
      case 'REG': {
        const rf = this.find(id, 'reg', 'reg-files.img');
        return rf && rf['name'] ? String(rf['name']) : 'unknown path';
      }
      case 'PIPE': {
        const p = this.find(id, 'pipe', 'pipes.img');
        return p ? `pipe[${String(p['pipe_id'])}]` : 'pipe[?]';
      }
      case 'UNIXSK': {
        const ux = this.find(id, 'usk', 'unixsk.img');
        if (!ux) return 'unix[?]';
        const name = ux['name'] ? ` ${String(ux['name'])}` : '';
        return `unix[${String(ux['ino'])} (${String(ux['peer'])})${name}]`;
      }
      default:
        return `${type}.${String(id)}`;
    }
  }
}

/** get_task_id(): a pstree entry's pid (or its first ns_pid). */
function taskId(p: JsonObject, what: string): JsonValue | undefined {
  if (what in p) return p[what];
  const ns = p[`ns_${what}`];
  return Array.isArray(ns) ? ns[0] : undefined;
}

function ps(d: Dir): string[] {
  interface Item { pid: string; p: JsonObject; comm: string; kids: Item[] }
  const items = new Map<string, Item>();
  for (const p of d.load('pstree.img')) {
    const pid = String(taskId(p, 'pid'));
    const core = d.loadOne(`core-${pid}.img`);
    const tc = core['tc'];
    items.set(pid, { pid, p, comm: isObject(tc) ? String(tc['comm']) : '?', kids: [] });
  }
  const roots: Item[] = [];
  let root: Item | undefined;
  for (const it of items.values()) {
    const parent = items.get(String(it.p['ppid']));
    if (String(it.p['ppid']) === '0') root = it;
    else if (parent) parent.kids.push(it);
    else roots.push(it);
  }
  const out = [`${rjust('PID', 7)}${rjust('PGID', 7)}${rjust('SID', 7)}   COMM`];
  const show = (it: Item, depth: number) => {
    out.push(`${rjust(it.pid, 7)}${rjust(String(taskId(it.p, 'pgid')), 7)}${rjust(String(taskId(it.p, 'sid')), 7)}   ${' '.repeat(4 * depth)}${it.comm}`);
    for (const k of it.kids) show(k, depth + 1);
  };
  for (const r of root ? [root, ...roots] : roots) show(r, 0);
  return out;
}

/** The fd table id of a task: ids-PID.img as crit reads it, else core's ids (CRIU 3.x and later). */
function filesId(d: Dir, pid: string): JsonValue | undefined {
  const ids = d.tryLoad(`ids-${pid}.img`)?.[0];
  if (ids) return ids['files_id'];
  const core = d.loadOne(`core-${pid}.img`);
  const coreIds = core['ids'];
  if (isObject(coreIds)) return coreIds['files_id'];
  throw new CritError(undefined, undefined, `no ids-${pid}.img and no ids in core-${pid}.img`);
}

function fds(d: Dir): string[] {
  const out: string[] = [];
  for (const p of d.load('pstree.img')) {
    const pid = String(taskId(p, 'pid'));
    const fdt = filesId(d, pid);
    out.push(pid);
    for (const fd of d.load(`fdinfo-${String(fdt)}.img`)) {
      out.push(`\t${rjust(String(fd['fd']), 7)}: ${d.fileStr(String(fd['type']), fd['id'])}`);
    }
    const fs = d.loadOne(`fs-${pid}.img`);
    out.push(`\t${rjust('cwd', 7)}: ${d.fileStr('REG', fs['cwd_id'])}`);
    out.push(`\t${rjust('root', 7)}: ${d.fileStr('REG', fs['root_id'])}`);
  }
  return out;
}

const VMA_FILE = (1n << 6n) | (1n << 7n);

function mems(d: Dir): string[] {
  const out: string[] = [];
  const vids = new Map<string, number>();
  const vid = (shmid: JsonValue | undefined) => {
    const k = String(shmid);
    if (!vids.has(k)) vids.set(k, vids.size + 1);
    return vids.get(k)!.toString(16);
  };
  for (const p of d.load('pstree.img')) {
    const pid = String(taskId(p, 'pid'));
    const mm = d.loadOne(`mm-${pid}.img`);
    out.push(pid);
    out.push(`\t${ljust('exe', 36)}    ${d.fileStr('REG', mm['exe_file_id'])}`);
    for (const vma of (mm['vmas'] ?? []) as JsonObject[]) {
      const st = num(vma['status']);
      let fn: string;
      if (st & (1n << 10n)) fn = ` ips[${vid(vma['shmid'])}]`;
      else if (st & (1n << 8n)) fn = ` shmem[${vid(vma['shmid'])}]`;
      else if (st & (1n << 11n)) fn = ` packet[${vid(vma['shmid'])}]`;
      else if (st & VMA_FILE) {
        fn = ' ' + d.fileStr('REG', vma['shmid']);
        if (num(vma['pgoff']) !== 0n) fn += ` + 0x${hex(vma['pgoff'])}`;
        if (st & (1n << 7n)) fn += ' (s)';
      } else if (st & (1n << 1n)) fn = ' [stack]';
      else if (st & (1n << 2n)) fn = ' [vsyscall]';
      else if (st & (1n << 3n)) fn = ' [vdso]';
      else if (num(vma['flags']) & 0x100n) fn = ' [stack?]';
      else fn = '';
      if (!(st & 1n)) fn += ' *';
      const prot = num(vma['prot']);
      const pr = (prot & 1n ? 'r' : '-') + (prot & 2n ? 'w' : '-') + (prot & 4n ? 'x' : '-');
      const astr = `${hex(vma['start']).padStart(8, '0')}-${hex(vma['end']).padStart(8, '0')}`;
      out.push(`\t${ljust(astr, 36)}${pr}${fn}`);
    }
  }
  return out;
}

function rss(d: Dir): string[] {
  const out: string[] = [];
  for (const p of d.load('pstree.img')) {
    const pid = String(taskId(p, 'pid'));
    const vmas = (d.loadOne(`mm-${pid}.img`)['vmas'] ?? []) as JsonObject[];
    const pms = d.load(`pagemap-${pid}.img`);
    out.push(pid);
    // Python indexes from the end with a negative index; so does this.
    const at = (i: number) => vmas[i < 0 ? vmas.length + i : i]!;
    let vmi = 0;
    let pvmi = -1;
    for (const pm of vmas.length > 0 ? pms.slice(1) : []) {
      const nr = num(pm['nr_pages'] ?? pm['compat_nr_pages']);
      const vaddr = num(pm['vaddr']);
      const pstr = `\t${vaddr.toString(16)} / ${ljust(nr.toString(), 8)}`;
      while (vmi < vmas.length && num(at(vmi)['end']) <= vaddr) vmi++;
      const pme = vaddr + (nr << 12n);
      let vstr = '';
      while (vmi < vmas.length && num(at(vmi)['start']) < pme) {
        const vma = at(vmi);
        if (vmi === pvmi) vstr += ' ~';
        else {
          const start = num(vma['start']);
          vstr += ` ${start.toString(16).padStart(8, '0')} / ${ljust(((num(vma['end']) - start) >> 12n).toString(), 8)}`;
          if (num(vma['status']) & VMA_FILE) vstr += ' ' + d.fileStr('REG', vma['shmid']);
          pvmi = vmi;
        }
        vstr += '\n\t' + ' '.repeat(23);
        vmi++;
      }
      vmi--;
      out.push(ljust(pstr, 24) + vstr);
    }
  }
  return out;
}

/** Runs an explorer over the images directory `path`; returns its output lines. */
export function explore(what: Explorer, path: string, read: DirReader, conv: Converter): string[] {
  const d = new Dir(path, read, conv);
  switch (what) {
    case 'ps':
      return ps(d);
    case 'fds':
      return fds(d);
    case 'mems':
      return mems(d);
    case 'rss':
      return rss(d);
  }
}
