// cgroups on restore, as CRIU does them with --manage-cgroups MODE:
//   1. before any task exists: re-root the groups (--cgroup-root), create the
//      missing ones (soft, full, strict; none and props create nothing and
//      refuse a missing group; strict refuses an existing one) with their
//      permissions and the properties a group needs before a task enters it
//      (cpuset.cpus, cpuset.mems, devices.list, ...);
//   2. each task, right after clone3 while it is still stopped, is written into
//      its groups (a child that shares its parent's set inherits them);
//   3. once every task is in place: the other properties, of the groups cryo
//      created (soft, full, strict) and of the existing ones (props, full);
//   4. last, just before the tasks go: freezer.state / cgroup.freeze.
// A failed restore removes the groups it created and puts back what it changed.
import {
  chmodSync, chownSync, closeSync, constants as fsc, existsSync, fchmodSync, fchownSync, mkdirSync, openSync,
  readFileSync, rmdirSync, statSync, writeFileSync, writeSync,
} from 'node:fs';
import type { Options, CgroupMode } from '../options/index.js';
import { CryoError, type Logger } from '../context.js';
import {
  create, isFieldSet, ThreadCoreEntrySchema, CgroupDirEntrySchema, type ImageDir, type CgroupEntry, type CgControllerEntry, type CgroupDirEntry,
  type CgroupPropEntry, type CgroupPerms, type CoreEntry, type CgMemberEntry,
} from '../images/index.js';
import { parseCgroupFile } from '../proc/cgroup.js';
import { SPECIAL_PROPS, FREEZER_PROPS, LINE_PROPS, imageValue, ifpriomapLines, subtreeControlWrite } from './cgroup-props.js';
import { Hierarchies, cgroupContains, canonical, isUnder, rebase, hierLabel, isV2 } from './cgroup-fs.js';
import { rootFor } from './cgroup.js';

/** A thread's set id from its core entry (0: none, e.g. a zombie). */
export function cgSetOf(core: CoreEntry): number {
  const t = core.threadCore;
  return t && isFieldSet(t, ThreadCoreEntrySchema.field.cgSet) ? t.cgSet : core.tc?.cgSet ?? 0;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/**
 * A hierarchy whose image has no groups (dumped without --manage-cgroups) gets
 * one for each group a set names, nested, without properties: so the groups
 * can still be re-rooted and, in the modes that create groups, created.
 */
export function synthesizeDirs(entry: CgroupEntry): void {
  for (const ctl of entry.controllers) {
    if (ctl.dirs.length) continue;
    const paths = new Set<string>();
    for (const s of entry.sets) for (const m of s.ctls) if (cgroupContains(ctl.cnames, m.name)) paths.add(canonical(m.path));
    const sorted = [...paths].sort((a, b) => a.length - b.length);
    const nodes: Array<{ path: string; d: CgroupDirEntry }> = [];
    for (const p of sorted) {
      const up = [...nodes].reverse().find((n) => n.path !== p && isUnder(p, n.path));
      const d = create(CgroupDirEntrySchema, { dirName: up ? p.slice(up.path === '/' ? 1 : up.path.length + 1) : p.slice(1) });
      (up ? up.d.children : ctl.dirs).push(d);
      nodes.push({ path: p, d });
    }
  }
}

/**
 * --cgroup-root: each hierarchy given a new root has its top groups moved there,
 * and every set's group below one of them moved along (the most specific top
 * group first). The entry is changed in place.
 */
export function rewriteRoots(entry: CgroupEntry, roots: Options['cgroupRoot']): void {
  for (const ctl of entry.controllers) {
    const to = rootFor(ctl.cnames, roots);
    if (to === undefined) continue;
    const newRoot = canonical(to);
    const bases = ctl.dirs.map((d) => canonical(`/${d.dirName}`)).sort((a, b) => b.length - a.length);
    for (const s of entry.sets) {
      for (const m of s.ctls) {
        if (!cgroupContains(ctl.cnames, m.name)) continue;
        const base = bases.find((b) => isUnder(canonical(m.path), b));
        if (base === undefined) continue;
        // The root of the tree's cgroup namespace moves along (CRIU: the prefix becomes the new root's).
        if (m.cgnsPrefix) {
          const nsRoot = canonical(m.path.slice(0, m.cgnsPrefix) || '/');
          if (!isUnder(nsRoot, base)) throw new CryoError(`--cgroup-root: the tree's cgroup namespace is rooted at ${nsRoot}, above the group ${base} moved to ${newRoot}`);
          m.cgnsPrefix = rebase(nsRoot, base, newRoot).length;
        }
        m.path = rebase(canonical(m.path), base, newRoot);
      }
    }
    for (const d of ctl.dirs) d.dirName = newRoot.slice(1);
  }
}

/** One group of the image, where it will be on this machine. */
interface Group {
  cnames: string[];
  path: string;
  dir: string;
  entry: CgroupDirEntry;
  /** cryo made it. */
  created: boolean;
  /** Its properties are written (it was created, or the mode writes existing ones). */
  writeProps: boolean;
}

export class CgroupRestore {
  private readonly hier: Hierarchies;
  private readonly groups: Group[] = [];
  /** Directories cryo made, in order. */
  private readonly made: string[] = [];
  /** Changes to groups that were there before, to put back if the restore fails. */
  private readonly undoSteps: Array<() => void> = [];
  private readonly freezerProps: Array<{ g: Group; p: CgroupPropEntry }> = [];
  /** Set while undoing: the writes then are not remembered in turn. */
  private undoing = false;
  private readonly sets: Map<number, CgMemberEntry[]>;

  private constructor(
    private readonly entry: CgroupEntry,
    /** The set cryo was in at dump time (not in the image): "where the restorer is". */
    readonly criuSetId: number,
    private readonly mode: CgroupMode,
    private readonly log: Logger,
    yard: string | undefined,
  ) {
    this.hier = new Hierarchies(yard);
    this.sets = new Map(entry.sets.map((s) => [s.id, s.ctls]));
  }

  /** Read cgroup.img and re-root it; null when there is nothing to do (no image, or mode ignore). */
  static load(dir: ImageDir, opts: Options, log: Logger): CgroupRestore | null {
    if (opts.unprivileged || opts.manageCgroups === 'ignore') return null;
    const entry = dir.tryRead('cgroup')?.[0];
    if (!entry || entry.sets.length === 0) return null;
    for (const c of entry.controllers) {
      if (c.cnames.length === 0) throw new CryoError('cgroup.img: a hierarchy without a controller name');
    }
    const criuSet = dir.readOne('inventory').rootCgSet ?? 0;
    synthesizeDirs(entry);
    rewriteRoots(entry, opts.cgroupRoot);
    return new CgroupRestore(entry, criuSet, opts.manageCgroups, log, opts.cgroupYard);
  }

  /** Before anything is made: every set a task or thread names is in cgroup.img. */
  checkSets(tasks: Array<{ pstree: { pid: number }; core: CoreEntry; threadCores: Map<number, CoreEntry> }>): void {
    for (const t of tasks) {
      for (const [tid, core] of [[t.pstree.pid, t.core] as const, ...t.threadCores]) {
        const set = cgSetOf(core);
        if (set && !this.sets.has(set) && set !== this.criuSetId) throw new CryoError(`core-${tid}.img: cgroup set ${set} names no set of cgroup.img`);
      }
    }
  }

  /** Step 1: every group in place, created ones with their early properties. */
  prepare(): void {
    this.log.info(`cgroups: preparing groups (--manage-cgroups=${this.mode})`);
    for (const ctl of this.entry.controllers) {
      for (const d of ctl.dirs) this.prepareGroup(ctl, null, d);
    }
  }

  private prepareGroup(ctl: CgControllerEntry, parent: string | null, d: CgroupDirEntry): void {
    const path = canonical(parent === null ? `/${d.dirName}` : `${parent}/${d.dirName}`);
    const dir = this.hier.at(ctl.cnames, path);
    const label = `${hierLabel(ctl.cnames)}:${path}`;
    const g: Group = { cnames: ctl.cnames, path, dir, entry: d, created: false, writeProps: false };
    if (!existsSync(dir)) {
      if (this.mode === 'none' || this.mode === 'props') {
        throw new CryoError(`cgroup ${label} does not exist (--manage-cgroups=${this.mode} creates none)`);
      }
      this.mkdirs(ctl.cnames, path, label);
      this.setPerms(dir, d.dirPerms, label, false);
      for (const p of d.properties) if (SPECIAL_PROPS.has(p.name)) this.writeSpecial(g, p);
      // v2: the controllers of the groups below, before they are made (their
      // files, such as cpuset.cpus, exist only then) and while no task is in it.
      for (const p of d.properties) if (p.name === 'cgroup.subtree_control') this.writeProp(g, p);
      g.created = true;
      g.writeProps = true;
      this.log.debug(`cgroups: created ${label}`);
    } else {
      if (this.mode === 'strict') throw new CryoError(`cgroup ${label} already exists (--manage-cgroups=strict)`);
      g.writeProps = this.mode === 'props' || this.mode === 'full';
      if (this.mode !== 'none') this.setPerms(dir, d.dirPerms, label, true);
    }
    this.groups.push(g);
    for (const c of d.children) this.prepareGroup(ctl, path, c);
  }

  /** mkdir -p, remembering each directory made. */
  private mkdirs(cnames: string[], path: string, label: string): void {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = this.hier.at(cnames, `/${parts.slice(0, i).join('/')}`);
      if (existsSync(dir)) continue;
      try {
        mkdirSync(dir);
      } catch (e) {
        throw new CryoError(`cannot create cgroup ${label}: ${errCode(e)}`);
      }
      this.made.push(dir);
    }
  }

  private setPerms(file: string, perms: CgroupPerms | undefined, label: string, undo: boolean): void {
    if (!perms) return;
    const old = statSync(file);
    if ((old.mode & 0o7777) === (perms.mode & 0o7777) && old.uid === perms.uid && old.gid === perms.gid) return;
    try {
      chownSync(file, perms.uid, perms.gid);
      chmodSync(file, perms.mode & 0o7777);
    } catch (e) {
      throw new CryoError(`cannot set the owner and mode of cgroup ${label}: ${errCode(e)}`);
    }
    if (undo) {
      this.undoSteps.push(() => {
        chownSync(file, old.uid, old.gid);
        chmodSync(file, old.mode & 0o7777);
      });
    }
  }

  /** The properties a group needs before anything enters it (CRIU's special ones). */
  private writeSpecial(g: Group, p: CgroupPropEntry): void {
    // The defaults of a new group: nothing to write.
    if (p.name === 'memory.swappiness' && p.value === '60') return;
    if (p.name === 'memory.oom_control' && p.value === '0') return;
    if (p.name === 'devices.list') {
      // A whitelist: deny everything, then allow each line (one per write).
      const perms = p.perms ? { ...p.perms, mode: 0o200 } : undefined;
      this.writeFile(g, 'devices.deny', ['a'], perms);
      if (p.value) this.writeFile(g, 'devices.allow', p.value.split('\n'), perms);
      return;
    }
    this.writeProp(g, p);
  }

  /** Write one property: its permissions, then its value (or nothing for cgroup.procs and tasks). */
  private writeProp(g: Group, p: CgroupPropEntry): void {
    const { name, value } = p;
    if (name === 'cgroup.procs' || name === 'tasks') {
      this.writeFile(g, name, [], p.perms);
    } else if (name === 'cgroup.subtree_control') {
      const current = this.readFile(g, name);
      this.writeFile(g, name, [subtreeControlWrite(current, value)], p.perms);
    } else if (name === 'cgroup.type') {
      // Only "threaded" can be written; a new group is a domain already.
      this.writeFile(g, name, value === 'threaded' ? [value] : [], p.perms);
    } else if (name === 'net_prio.ifpriomap') {
      // Interfaces differ between machines: a line that fails is skipped, as CRIU does.
      this.writeFile(g, name, ifpriomapLines(value), p.perms, true);
    } else {
      this.writeFile(g, name, LINE_PROPS.has(name) ? value.split('\n') : [value], p.perms);
    }
  }

  private readFile(g: Group, name: string): string {
    try {
      return readFileSync(`${g.dir}/${name}`, 'utf8');
    } catch (e) {
      throw new CryoError(`cannot read cgroup property ${hierLabel(g.cnames)}:${g.path}/${name}: ${errCode(e)}`);
    }
  }

  /** Open a group's file, set its permissions, write each of `writes` (one write each). */
  private writeFile(g: Group, name: string, writes: string[], perms: CgroupPerms | undefined, skipFails = false): void {
    const file = `${g.dir}/${name}`;
    const what = `${hierLabel(g.cnames)}:${g.path}/${name}`;
    const existed = !this.undoing && !this.made.includes(g.dir);
    if (existed) this.rememberValue(g, name, file);
    let fd: number;
    try {
      fd = openSync(file, name === 'cgroup.subtree_control' ? fsc.O_RDWR : fsc.O_WRONLY);
    } catch (e) {
      throw new CryoError(`cannot write cgroup property ${what}: ${errCode(e)}`);
    }
    try {
      if (perms) {
        const old = existed ? statSync(file) : undefined;
        fchownSync(fd, perms.uid, perms.gid);
        fchmodSync(fd, perms.mode & 0o7777);
        if (old) this.undoSteps.push(() => {
          chownSync(file, old.uid, old.gid);
          chmodSync(file, old.mode & 0o7777);
        });
      }
      for (const w of writes) {
        if (!w) continue;
        try {
          const n = writeSync(fd, w);
          if (n !== Buffer.byteLength(w)) throw Object.assign(new Error('short write'), { code: `a short write (${n} bytes)` });
        } catch (e) {
          // Deprecated by the kernel (58056f77502f3): CRIU accepts it too.
          if (name === 'memory.kmem.limit_in_bytes' && errCode(e) === 'EOPNOTSUPP') continue;
          if (skipFails) {
            this.log.warn(`cgroups: cannot write "${w}" to ${what}: ${errCode(e)}`);
            continue;
          }
          throw new CryoError(`cannot write cgroup property ${what} = "${w}": ${errCode(e)}`);
        }
      }
    } catch (e) {
      if (e instanceof CryoError) throw e;
      throw new CryoError(`cannot write cgroup property ${what}: ${errCode(e)}`);
    } finally {
      closeSync(fd);
    }
  }

  /** Before a group that was there before changes: how to put the value back. */
  private rememberValue(g: Group, name: string, file: string): void {
    if (name === 'cgroup.procs' || name === 'tasks' || name === 'devices.deny' || name === 'devices.allow') {
      if (name === 'devices.deny' && existsSync(`${g.dir}/devices.list`)) {
        const old = this.readFile(g, 'devices.list').replace(/\n$/, '');
        this.undoSteps.push(() => {
          writeFileSync(`${g.dir}/devices.deny`, 'a');
          for (const l of old.split('\n')) if (l) writeFileSync(`${g.dir}/devices.allow`, l);
        });
      }
      return;
    }
    let old: string;
    try {
      old = imageValue(name, readFileSync(file, 'utf8'));
    } catch {
      return; // unreadable: nothing to put back
    }
    this.undoSteps.push(() => this.writeProp(g, { name, value: old } as CgroupPropEntry));
  }

  /** The hierarchy path of a member: its group's directory. */
  private memberDir(m: CgMemberEntry): { dir: string; cnames: string[] } {
    const cnames = m.name.split(',');
    return { dir: this.hier.at(cnames, m.path), cnames };
  }

  /** The groups of a set; cryo's own set of the dump means cryo's groups now. */
  private membersOf(set: number): CgMemberEntry[] {
    const s = this.sets.get(set);
    if (s) return s;
    if (set === this.criuSetId) {
      return parseCgroupFile(readFileSync('/proc/self/cgroup', 'utf8')).map((m) => ({ name: m.name, path: m.path }) as CgMemberEntry);
    }
    throw new CryoError(`cgroup.img has no set ${set}`);
  }

  /**
   * The groups to enter, coming from the groups `from`: those of the set, and
   * for each hierarchy the set leaves out (it was in the dumper's own group
   * there) the restorer's group, where `from` is elsewhere.
   */
  private movesFrom(from: CgMemberEntry[], to: CgMemberEntry[]): CgMemberEntry[] {
    const moves = [...to];
    let own: CgMemberEntry[] | undefined;
    for (const f of from) {
      if (to.some((m) => m.name === f.name)) continue;
      own ??= this.membersOf(this.criuSetId);
      const o = own.find((m) => m.name === f.name);
      if (o && o.path !== f.path) moves.push(o);
    }
    return moves;
  }

  /**
   * Step 2: put a task (`pid` as cryo sees it), just created and still stopped,
   * into the groups of its set. It came with those of `parentSet` (its parent's,
   * or for the root the set cryo was in): the same set needs no move.
   */
  enterTask(pid: number, vpid: number, set: number, parentSet: number): void {
    if (!set || set === parentSet) return;
    for (const m of this.movesFrom(this.membersOf(parentSet), this.membersOf(set))) {
      const { dir, cnames } = this.memberDir(m);
      try {
        writeFileSync(`${dir}/cgroup.procs`, String(pid));
      } catch (e) {
        throw new CryoError(`cannot move task ${vpid} into cgroup ${hierLabel(cnames)}:${m.path}: ${errCode(e)}`);
      }
    }
    this.log.debug(`cgroups: task ${vpid} entered set ${set}`);
  }

  /**
   * Before the root unshares its cgroup namespace (CRIU's prepare_cgns): the
   * root `pid` into the namespace's root group in each hierarchy its set
   * records one for. A new namespace is rooted where its maker is.
   */
  enterCgnsRoots(pid: number, vpid: number, set: number): void {
    for (const m of this.membersOf(set)) {
      if (!m.cgnsPrefix) continue;
      const path = m.path.slice(0, m.cgnsPrefix) || '/';
      const { dir, cnames } = this.memberDir({ name: m.name, path } as CgMemberEntry);
      try {
        writeFileSync(`${dir}/cgroup.procs`, String(pid));
      } catch (e) {
        throw new CryoError(`cannot move task ${vpid} into cgroup ${hierLabel(cnames)}:${path}, the root of its cgroup namespace: ${errCode(e)}`);
      }
    }
  }

  /** A thread whose groups differ from its leader's (v1, or a threaded v2 group). */
  enterThread(tid: number, vtid: number, set: number, leaderSet: number): void {
    if (!set || set === leaderSet) return;
    const leader = this.membersOf(leaderSet);
    for (const m of this.movesFrom(leader, this.membersOf(set))) {
      if (leader.some((l) => l.name === m.name && l.path === m.path)) continue;
      const { dir, cnames } = this.memberDir(m);
      try {
        writeFileSync(`${dir}/${isV2(cnames) ? 'cgroup.threads' : 'tasks'}`, String(tid));
      } catch (e) {
        throw new CryoError(`cannot move thread ${vtid} into cgroup ${hierLabel(cnames)}:${m.path}: ${errCode(e)}`);
      }
    }
  }

  /** Step 3: the properties of every group that gets them, parents first; the root never. */
  writeProperties(): void {
    for (const g of this.groups) {
      if (!g.writeProps || g.path === '/') continue;
      for (const p of g.entry.properties) {
        // Written when the group was created.
        if (SPECIAL_PROPS.has(p.name) || (g.created && p.name === 'cgroup.subtree_control')) continue;
        if (FREEZER_PROPS.has(p.name)) this.freezerProps.push({ g, p });
        else this.writeProp(g, p);
      }
    }
  }

  /** Step 4: freeze (or thaw) as the groups were when dumped. */
  restoreFreezer(): void {
    for (const { g, p } of this.freezerProps) this.writeProp(g, p);
  }

  /** A failed restore (its tasks are gone): put back what changed, remove what was made. */
  undo(): void {
    this.undoing = true;
    for (const step of this.undoSteps.splice(0).reverse()) {
      try {
        step();
      } catch (e) {
        this.log.warn(`cgroups: cannot put a group back: ${(e as Error).message}`);
      }
    }
    for (const dir of [...this.made].reverse()) {
      for (let i = 0; ; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (e) {
          // A killed task may leave its group a moment after it is reaped.
          if (errCode(e) === 'EBUSY' && i < 50) {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
            continue;
          }
          this.log.warn(`cgroups: cannot remove ${dir}: ${errCode(e)}`);
          break;
        }
      }
    }
    this.made.length = 0;
  }

  close(): void {
    this.hier.close();
  }
}
