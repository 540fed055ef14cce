// cgroups on dump: which groups each thread is in (a "set" per distinct list of
// groups, its id in the thread's core entry), and with --manage-cgroups the groups
// themselves, each hierarchy's tree below the dumped tasks' groups with their
// properties and permissions. Written to cgroup.img as CRIU writes it.
//
// The set cryo itself is in is set 1 (inventory.root_cg_set) and is not written:
// on restore it means "where the restorer is". When every task is in it, nothing
// is written at all. In the same way a thread in cryo's own group of one
// hierarchy has that hierarchy left out of its set (unless --cgroup-root names
// a root there): it goes to the restorer's group, and neither cryo's group nor
// the groups of others beside and below it are saved.
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import type { Options, CgroupRoot } from '../options/index.js';
import { CryoError, type Logger } from '../context.js';
import {
  create, CgroupEntrySchema, CgSetEntrySchema, CgMemberEntrySchema, CgControllerEntrySchema, CgroupDirEntrySchema,
  CgroupPropEntrySchema, CgroupPermsSchema, type ImageDir, type CgroupDirEntry, type CgroupPropEntry, type CgroupPerms,
} from '../images/index.js';
import { parseCgroupFile, hierarchiesOf, type CgroupMember } from '../proc/cgroup.js';
import { ipc } from '../sys/index.js';
import { propTables, propsFor, imageValue, type PropTables } from './cgroup-props.js';
import { Hierarchies, cgroupContains, namesAny, canonical, isUnder, hierLabel, isV2 } from './cgroup-fs.js';

/** A group of a set; `cgnsPrefix`: the length of its path's part that is the root of the tree's cgroup namespace (CRIU's cgns_prefix). */
interface Member extends CgroupMember {
  cgnsPrefix?: number;
}

interface CgSet {
  id: number;
  ctls: Member[];
}

/** One group of a hierarchy, with the groups below it. */
interface DirNode {
  path: string;
  perms: CgroupPerms;
  props: CgroupPropEntry[];
  children: DirNode[];
}

interface Controller {
  cnames: string[];
  /** The top groups walked (the dumped tasks' groups), each with its subtree. */
  heads: DirNode[];
  threaded: boolean;
}

/**
 * The new root --cgroup-root gives the hierarchy `cnames`: an entry naming one of
 * its controllers, else the one without a controller (the last one given).
 * Entries naming different roots for one hierarchy are refused.
 */
export function rootFor(cnames: readonly string[], roots: readonly CgroupRoot[]): string | undefined {
  let specific: string | undefined;
  let global: string | undefined;
  for (const r of roots) {
    if (r.ctrl === undefined) {
      global = r.path;
    } else if (namesAny(cnames, r.ctrl)) {
      if (specific !== undefined && canonical(specific) !== canonical(r.path)) {
        throw new CryoError(`--cgroup-root: ${specific} and ${r.path} are both given for the hierarchy ${hierLabel(cnames)}`);
      }
      specific = r.path;
    }
  }
  return specific ?? global;
}

export const permsOf = (st: Stats): CgroupPerms => create(CgroupPermsSchema, { mode: st.mode, uid: st.uid, gid: st.gid });

/** The image's dir entries of `nodes`, named relative to `parent` (null: heads, named from the root). */
function dirEntries(nodes: DirNode[], parent: string | null): CgroupDirEntry[] {
  return nodes.map((n) => create(CgroupDirEntrySchema, {
    dirName: parent === null ? n.path.slice(1) : n.path.slice(parent === '/' ? 1 : parent.length + 1),
    children: dirEntries(n.children, n.path),
    properties: n.props,
    dirPerms: n.perms,
  }));
}

export class CgroupDump {
  private readonly sets: CgSet[] = [];
  private readonly controllers: Controller[] = [];
  private readonly tables: PropTables;
  private readonly hier: Hierarchies;
  private readonly enabled: boolean;
  private readonly walk: boolean;
  private readonly criuSet: CgSet | undefined;
  private rootSet: CgSet | undefined;
  private freezer: { v2: boolean; frozen: boolean } | undefined;
  /** The tree's own cgroup namespace (a path to it), whose roots the sets record. */
  private treeCgns: string | undefined;

  constructor(private readonly opts: Options, private readonly log: Logger) {
    // As CRIU: an unprivileged dump knows nothing of cgroups.
    this.enabled = !opts.unprivileged;
    this.walk = this.enabled && opts.manageCgroups !== 'ignore';
    // Bad --cgroup-props fail here, before any task is touched.
    this.tables = propTables(opts.cgroupProps, opts.cgroupPropsFile);
    this.hier = new Hierarchies(opts.cgroupYard);
    if (!this.enabled) return;
    const own = readFileSync('/proc/self/cgroup', 'utf8');
    // The hierarchies cryo is in, as the kernel lists them; named ones come with the tasks.
    for (const h of hierarchiesOf(own)) {
      if (this.skip(h.join(','))) continue;
      const cnames = h.filter((n) => !n.startsWith('name='));
      if (cnames.length) this.controllers.push({ cnames, heads: [], threaded: false });
    }
    this.criuSet = this.setOf(this.members(own), false);
    log.debug(`cgroups: cryo is in set ${this.criuSet.id}`);
  }

  /** --cgroup-dump-controller: only the hierarchies named (by their whole name) are dumped. */
  private skip(name: string): boolean {
    return this.opts.cgroupDumpController.length > 0 && !this.opts.cgroupDumpController.includes(name);
  }

  private members(text: string): CgroupMember[] {
    return parseCgroupFile(text).filter((m) => !this.skip(m.name));
  }

  /** With --freeze-cgroup: the freezer's state before cryo froze it, kept on the freezer hierarchy's top group. */
  setFreezer(v2: boolean, frozen: boolean): void {
    this.freezer = { v2, frozen };
  }

  /** The tree is in a cgroup namespace of its own, at `nsPath`: each thread's groups get its roots. */
  setTreeCgns(nsPath: string): void {
    if (!this.enabled) throw new CryoError('the tree is in a cgroup namespace of its own, which an unprivileged dump cannot save');
    this.treeCgns = nsPath;
  }

  /** The set id of a thread, for its core entry's cg_set; {} when cgroups are not dumped. */
  threadField(pid: number, tid: number, who = `task ${pid}`): { cgSet?: number } {
    if (!this.enabled) return {};
    const file = `/proc/${pid}/task/${tid}/cgroup`;
    const text = readFileSync(file, 'utf8');
    const all: Member[] = this.members(text);
    if (this.treeCgns !== undefined) this.cgnsRoots(all, ipc.inNamespace(this.treeCgns, 'cgroup', () => readFileSync(file, 'utf8')), who);
    const ctls = all.filter((m) => m.cgnsPrefix !== undefined || !this.isCryos(m));
    const set = ctls.length ? this.setOf(ctls, true) : this.criuSet!;
    this.rootSet ??= set; // the root task's leader comes first
    return { cgSet: set.id };
  }

  /**
   * As CRIU: the path a thread sees from inside its cgroup namespace (`inner`)
   * is the end of the one cryo sees; the rest is the namespace's root there,
   * recorded as its length. A root at the top of a hierarchy is recorded as no
   * prefix, which a restore (as CRIU's) takes as "where the restorer is": that
   * is refused unless cryo's own group there is the top too.
   */
  private cgnsRoots(members: Member[], inner: string, who: string): void {
    const seen = this.members(inner);
    for (const m of members) {
      const i = seen.find((x) => x.name === m.name);
      if (!i) throw new CryoError(`${who}: its cgroup ${m.name || 'v2'}:${m.path} is not in the cgroup file seen from its cgroup namespace`);
      if (i.path === m.path) {
        const mine = this.criuSet?.ctls.find((c) => c.name === m.name)?.path ?? '/';
        if (mine !== '/') throw new CryoError(`${who}: its cgroup namespace is rooted at the top of the hierarchy ${m.name || 'v2'}, above cryo's own group there (${mine}), which cryo cannot restore`);
        continue;
      }
      const tail = i.path.slice(1);
      if (!m.path.endsWith(tail) || (tail && m.path[m.path.length - tail.length - 1] !== '/')) {
        throw new CryoError(`${who}: its cgroup ${m.name || 'v2'}:${m.path} is seen as ${i.path} from its cgroup namespace, which is not below the namespace's root`);
      }
      let prefix = m.path.length - tail.length;
      if (m.path[prefix - 1] === '/') prefix--;
      m.cgnsPrefix = prefix;
    }
  }

  /** The thread is in cryo's own group of this hierarchy, and no dump root is given for it. */
  private isCryos(m: CgroupMember): boolean {
    if (rootFor(m.name.split(','), this.opts.cgroupRoot) !== undefined) return false;
    return this.criuSet!.ctls.some((c) => c.name === m.name && c.path === m.path);
  }

  /** inventory.root_cg_set: the set cryo is in. */
  get criuSetId(): number | undefined {
    return this.criuSet?.id;
  }

  private setOf(ctls: Member[], collect: boolean): CgSet {
    const same = (s: CgSet) => s.ctls.length === ctls.length && s.ctls.every((c, i) => c.name === ctls[i]!.name && c.path === ctls[i]!.path && c.cgnsPrefix === ctls[i]!.cgnsPrefix);
    const found = this.sets.find(same);
    if (found) return found;
    const set: CgSet = { id: this.sets.length + 1, ctls };
    this.sets.push(set);
    this.log.debug(`cgroups: new set ${set.id}: ${ctls.map((c) => `${c.name}:${c.path}`).join(' ')}`);
    if (collect) this.collect(set);
    return set;
  }

  /** Find each hierarchy of a new set; with --manage-cgroups walk its groups. */
  private collect(set: CgSet): void {
    for (const cc of set.ctls) {
      let ctl = this.controllers.find((c) => cgroupContains(c.cnames, cc.name));
      if (!ctl) {
        // Only named hierarchies are not among cryo's own.
        if (!cc.name.startsWith('name=')) throw new CryoError(`cgroup controller ${cc.name} is not one cryo is in`);
        ctl = { cnames: [cc.name], heads: [], threaded: false };
        this.controllers.push(ctl);
      }
      if (!this.walk) continue;
      const root = canonical(rootFor(ctl.cnames, this.opts.cgroupRoot) ?? cc.path);
      this.walkGroup(ctl, root);
    }
  }

  private walkGroup(ctl: Controller, path: string): void {
    const dir = this.hier.at(ctl.cnames, path);
    let st: Stats;
    try {
      st = statSync(dir);
    } catch (e) {
      throw new CryoError(`cgroup ${hierLabel(ctl.cnames)}:${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    // A group already walked (from another set) brought its whole subtree.
    const node = this.insert(ctl, path, st);
    if (!node) return;
    const files = new Set<string>();
    const subdirs: string[] = [];
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (d.isDirectory()) subdirs.push(d.name);
      else files.add(d.name);
    }
    node.props = this.readProps(ctl, path, dir, files);
    for (const s of subdirs.sort()) this.walkGroup(ctl, path === '/' ? `/${s}` : `${path}/${s}`);
  }

  /** Put a group in its hierarchy's tree; null when it is there already. */
  private insert(ctl: Controller, path: string, st: Stats): DirNode | null {
    let list = ctl.heads;
    for (;;) {
      if (list.some((n) => n.path === path)) return null;
      const up = list.find((n) => isUnder(path, n.path));
      if (!up) break;
      list = up.children;
    }
    const node: DirNode = { path, perms: permsOf(st), props: [], children: [] };
    // Groups walked before from deeper down now hang below this one.
    for (let i = list.length - 1; i >= 0; i--) {
      if (isUnder(list[i]!.path, path)) node.children.unshift(...list.splice(i, 1));
    }
    list.push(node);
    return node;
  }

  private readProps(ctl: Controller, path: string, dir: string, files: Set<string>): CgroupPropEntry[] {
    const v2 = isV2(ctl.cnames);
    const controllers = v2 && files.has('cgroup.controllers')
      ? readFileSync(`${dir}/cgroup.controllers`, 'utf8').trim().split(/\s+/).filter(Boolean)
      : ctl.cnames;
    const out: CgroupPropEntry[] = [];
    for (const name of propsFor(this.tables, v2, controllers, files)) {
      const file = `${dir}/${name}`;
      let value: string;
      let st: Stats;
      try {
        st = statSync(file);
        value = name === 'cgroup.procs' || name === 'tasks' ? '' : imageValue(name, readFileSync(file, 'utf8'));
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        throw new CryoError(`cannot read cgroup property ${hierLabel(ctl.cnames)}:${path}/${name}: ${why}`);
      }
      if (name === 'tasks' || (name === 'cgroup.type' && value === 'threaded')) ctl.threaded = true;
      out.push(create(CgroupPropEntrySchema, { name, value, perms: permsOf(st) }));
    }
    return out;
  }

  /**
   * With --freeze-cgroup the group's state as it was before cryo froze it goes on
   * the freezer hierarchy's first top group (CRIU's add_freezer_state), to be
   * put back after restore.
   */
  private addFreezerState(): void {
    if (!this.freezer || !this.walk) return;
    const { v2, frozen } = this.freezer;
    const ctl = this.controllers.find((c) => (v2 ? isV2(c.cnames) : c.cnames.includes('freezer')));
    const head = ctl?.heads[0];
    if (!head) return;
    const name = v2 ? 'cgroup.freeze' : 'freezer.state';
    const value = v2 ? (frozen ? '1' : '0') : frozen ? 'FROZEN' : 'THAWED';
    const old = head.props.find((p) => p.name === name);
    if (old) old.value = value;
    else head.props.push(create(CgroupPropEntrySchema, { name, value }));
  }

  /** Write cgroup.img, unless every task is where cryo is. */
  write(dir: ImageDir): void {
    if (!this.enabled || !this.rootSet) return;
    if (this.rootSet === this.criuSet && this.sets.length === 1) {
      this.log.info('cgroups: every task is in cryo\'s own cgroups; nothing to dump');
      return;
    }
    this.addFreezerState();
    const sets = this.sets.filter((s) => s !== this.criuSet).map((s) => create(CgSetEntrySchema, {
      id: s.id,
      ctls: s.ctls.map((c) => create(CgMemberEntrySchema, { name: c.name, path: c.path, ...(c.cgnsPrefix ? { cgnsPrefix: c.cgnsPrefix } : {}) })),
    }));
    const controllers = this.controllers.map((c) => create(CgControllerEntrySchema, {
      cnames: c.cnames, dirs: dirEntries(c.heads, null), isThreaded: c.threaded,
    }));
    dir.write('cgroup', [create(CgroupEntrySchema, { sets, controllers })]);
    this.log.info(`cgroups: ${sets.length} set(s), ${controllers.length} hierarchies`);
  }

  close(): void {
    this.hier.close();
  }
}
