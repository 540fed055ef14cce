// The mount namespaces of the images, read and checked before anything is made:
// every mount's role (made anew, bound from another, external, the root from
// --root), across all namespaces of the tree (mount ids are one space), in the
// order they are made.
import { existsSync, statSync } from 'node:fs';
import type { BinfmtMiscEntry, ImageDir, MntEntry } from '../../images/index.js';
import { checkBinfmtEntries } from './binfmt.js';
import { CryoError } from '../../context.js';
import { AUTODETECTED_MOUNT, extMounts } from './dump.js';
import { fsByCode, codeName } from './fstypes.js';

export type Role =
  | { role: 'root'; path: string }
  | { role: 'external'; path: string }
  | { role: 'new' }
  | { role: 'bind'; from: number };

export interface MntNsImages {
  nsId: number;
  /** In the order they are made: each after its parent and its source. */
  order: MntEntry[];
  roles: Map<number, Role>;
  /** tmpfs contents, by mount id: the image's path. */
  tmpfs: Map<number, string>;
  /** The namespace of every mount of the tree's namespaces (by its id in the images). */
  nsOf: ReadonlyMap<number, number>;
  /** The entries of the tree's binfmt_misc instance (one for the tree), registered on its first new mount. */
  binfmt: readonly BinfmtMiscEntry[];
  /** Procs of pid namespaces nested in the root's (cryo_proc_pid_ns), not in `order`: mounted once the namespace exists. */
  late: MntEntry[];
}

/** Is `p` at or below directory `dir`? */
export const under = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(dir + '/');
/** `p` relative to directory `dir` (no leading slash). */
export const rel = (p: string, dir: string) => (dir === '/' ? p : p.slice(dir.length)).replace(/^\/+/, '');

/**
 * Read and check mountpoints-N.img of every mount namespace of the tree (`nsIds`,
 * the root's first); every mount must be one cryo can make, with what it needs
 * given. Mount ids are one space for all: a mount is bound from one of any
 * namespace (another namespace's root from the root's, a copy of a tmpfs from
 * its first mount). Returned in the order they are made: each namespace after
 * those it binds from.
 */
export function loadMntNs(dir: ImageDir, nsIds: readonly number[], opts: { root?: string | undefined; external: readonly string[]; autoExtMnt: boolean }): MntNsImages[] {
  const byId = new Map<number, MntEntry>();
  const nsOf = new Map<number, number>();
  const perNs = nsIds.map((nsId) => {
    const file = dir.fileName('mnts', nsId);
    const bad = (what: string) => new CryoError(`bad image: ${file}: ${what}`);
    const entries = dir.read('mnts', nsId);
    const own = new Set<number>();
    for (const e of entries) {
      if (byId.has(e.mntId)) throw bad(`two mounts with the id ${e.mntId}`);
      if (!e.mountpoint.startsWith('/') || e.mountpoint.includes('\0') || e.root.includes('\0')) throw bad(`mount ${e.mntId}: mount point ${JSON.stringify(e.mountpoint)}`);
      if (Buffer.byteLength(e.mountpoint) > 3000 || Buffer.byteLength(e.root) > 3000) throw bad(`mount ${e.mntId}: path too long`);
      byId.set(e.mntId, e);
      nsOf.set(e.mntId, nsId);
      own.add(e.mntId);
    }
    const roots = entries.filter((e) => !own.has(e.parentMntId));
    if (roots.length !== 1) throw bad(`${roots.length} root mounts`);
    return { nsId, entries, root: roots[0]!, bad };
  });
  const all = perNs.flatMap((n) => n.entries);
  const root = perNs[0]!.root;
  const nestedRoots = new Set(perNs.slice(1).map((n) => n.root));
  const ext = extMounts(opts.external);
  const roles = new Map<number, Role>();
  if (opts.root === undefined) throw new CryoError('the images hold a mount namespace: its root is needed, give it with --root PATH');
  if (!existsSync(opts.root) || !statSync(opts.root).isDirectory()) throw new CryoError(`--root ${opts.root} is not a directory`);
  roles.set(root.mntId, { role: 'root', path: opts.root });
  for (const e of all) {
    if (e === root || !e.extKey) continue;
    if (e.extKey === AUTODETECTED_MOUNT) {
      // Found outside at the dump (--ext-mount-map auto): its path there, in the entry's source.
      if (!opts.autoExtMnt) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} is an autodetected external mount (/${e.source}): allow them with --ext-mount-map auto`);
      const path = `/${e.source}`;
      if (!e.source || e.source.includes('\0') || !existsSync(path)) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} is an autodetected external mount of ${path}, which is not there`);
      roles.set(e.mntId, { role: 'external', path });
      continue;
    }
    const given = ext.get(e.extKey);
    if (given === undefined) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} is external (key ${e.extKey}): give its path with --external mnt[${e.extKey}]:PATH`);
    // A relative one is from "/", as CRIU's restore takes it (zdtm mnt_root_ext).
    const path = given.startsWith('/') ? given : `/${given}`;
    if (!existsSync(path)) throw new CryoError(`--external mnt[${e.extKey}]:${path}: no such file or directory`);
    roles.set(e.mntId, { role: 'external', path });
  }
  const fromRootOrExternal = (e: MntEntry) =>
    all.find((o) => o !== e && o.rootDev === e.rootDev && ['root', 'external'].includes(roles.get(o.mntId)?.role ?? '') && under(e.root, o.root));
  // Another namespace's root is bound from what the root's shows of its file system.
  for (const e of nestedRoots) {
    const src = roles.has(e.mntId) ? undefined : fromRootOrExternal(e);
    if (src) roles.set(e.mntId, { role: 'bind', from: src.mntId });
  }
  const tmpfs = new Map<number, string>();
  const binfmtDevs = new Set<number>();
  for (const e of all) {
    if (roles.has(e.mntId)) continue;
    const fs = fsByCode(e.fstype);
    const owner = fs && all.find((o) => o.rootDev === e.rootDev && o.root === '/' && !o.extKey && o !== root && (roles.get(o.mntId) ?? { role: 'new' }).role === 'new');
    if (owner === e) {
      roles.set(e.mntId, { role: 'new' });
      if (fs!.name === 'binfmt_misc') binfmtDevs.add(e.rootDev);
      if (fs!.how === 'tmpfs') {
        const img = ['tmpfsDev', 'tmpfsImg'].map((k) => dir.pathOf(k as 'tmpfsDev', k === 'tmpfsDev' ? e.rootDev : e.mntId)).find((p) => existsSync(p));
        if (!img) throw new CryoError(`bad image: ${dir.fileName('mnts', nsOf.get(e.mntId)!)}: tmpfs mount ${e.mntId} at ${e.mountpoint}: its contents (${dir.fileName('tmpfsDev', e.rootDev)}) are missing`);
        tmpfs.set(e.mntId, img);
      }
      continue;
    }
    const src = owner && under(e.root, owner.root) ? owner : fromRootOrExternal(e);
    if (!src) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} (${codeName(e.fstype)}) of the images is neither a file system cryo makes nor a bind mount of one in its namespaces`);
    roles.set(e.mntId, { role: 'bind', from: src.mntId });
  }
  const binfmt = loadBinfmt(dir, [...binfmtDevs]);
  // Each namespace: parents first; a bind after its source when that is in it; a mount
  // after the siblings it hides (on its parent below its mount point: one propagated
  // under it, zdtm overmount_with_shared_parent), which are reached only before it is there.
  const loaded = perNs.map(({ nsId, entries, root: nsRoot, bad }) => {
    const order: MntEntry[] = [nsRoot];
    const made = new Set([nsRoot.mntId]);
    const hides = (e: MntEntry) => entries.some((o) => !made.has(o.mntId) && o !== e && o.parentMntId === e.parentMntId && o.mountpoint !== e.mountpoint && under(o.mountpoint, e.mountpoint));
    for (let progress = true; progress && order.length < entries.length;) {
      progress = false;
      for (const e of entries) {
        if (made.has(e.mntId) || !made.has(e.parentMntId)) continue;
        const r = roles.get(e.mntId)!;
        if (r.role === 'bind' && nsOf.get(r.from) === nsId && !made.has(r.from)) continue;
        if (hides(e)) continue;
        order.push(e);
        made.add(e.mntId);
        progress = true;
      }
    }
    if (order.length < entries.length) throw bad('mounts whose parent or source can never be made (a cycle)');
    // A proc of a nested pid namespace is mounted by a task of it, after the tree is made: nothing may be on it or bound from it.
    const late = order.filter((e) => e.cryoProcPidNs);
    for (const e of late) {
      if (fsByCode(e.fstype)?.name !== 'proc') throw bad(`mount ${e.mntId} at ${e.mountpoint} is of a nested pid namespace but no proc`);
      if (entries.some((o) => o.parentMntId === e.mntId || (roles.get(o.mntId)?.role === 'bind' && (roles.get(o.mntId) as { from: number }).from === e.mntId))) {
        throw bad(`mount ${e.mntId} at ${e.mountpoint}, a proc of a nested pid namespace, has mounts on it or binds of it`);
      }
    }
    order.splice(0, order.length, ...order.filter((e) => !e.cryoProcPidNs));
    const own = new Map(entries.map((e) => [e.mntId, roles.get(e.mntId)!]));
    const needs = new Set(entries.flatMap((e) => { const r = roles.get(e.mntId)!; return r.role === 'bind' && nsOf.get(r.from) !== nsId ? [nsOf.get(r.from)!] : []; }));
    return { img: { nsId, order, roles: own, tmpfs: new Map([...tmpfs].filter(([id]) => own.has(id))), nsOf, binfmt, late }, needs };
  });
  // Namespaces after those they bind from; the root's first.
  const out: MntNsImages[] = [];
  const left = [...loaded];
  while (left.length) {
    const i = left.findIndex((l) => [...l.needs].every((n) => out.some((o) => o.nsId === n)));
    if (i < 0 || (out.length === 0 && left[i] !== loaded[0])) throw new CryoError(`bad image: mount namespaces ${left.map((l) => l.img.nsId).join(', ')} bind mounts from each other in a cycle`);
    out.push(left.splice(i, 1)[0]!.img);
  }
  return out;
}

/**
 * binfmt-misc.img, or of older dumps binfmt-misc-DEV.img (as CRIU reads it):
 * entries only where the images have a binfmt_misc mount to register them on.
 */
function loadBinfmt(dir: ImageDir, devs: readonly number[]): BinfmtMiscEntry[] {
  const from: Array<[BinfmtKind, number | undefined]> = [['binfmtMisc', undefined], ...devs.map((d): [BinfmtKind, number] => ['binfmtMiscOld', d])];
  const found = from.filter(([k, d]) => dir.exists(k, d));
  if (!found.length) return [];
  const [k, d] = found[0]!;
  if (!devs.length) throw new CryoError(`bad image: ${dir.fileName(k, d)}: binfmt_misc entries, but no binfmt_misc mount to register them on`);
  if (devs.length > 1) throw new CryoError(`bad image: the mounts are of ${devs.length} binfmt_misc instances, one of which ${dir.fileName(k, d)} holds the entries of`);
  const entries = dir.read(k, d);
  checkBinfmtEntries(entries, dir.fileName(k, d));
  return entries;
}
type BinfmtKind = 'binfmtMisc' | 'binfmtMiscOld';

/**
 * Where a hard link from `a` (on mount `aMnt`) to `b` (on mount `bMnt`) can be
 * made when the two mounts differ (a link cannot cross mounts, EXDEV): on the
 * mount the first one was bound from at the end of its chain (it shows the
 * most of the file system), both paths converted to it, as CRIU's rfi_remap.
 * Returns its namespace and the two paths there; undefined when there is none.
 */
export function commonMount(imgs: readonly MntNsImages[], aMnt: number, a: string, bMnt: number, b: string): { nsId: number; a: string; b: string } | undefined {
  const byId = new Map(imgs.flatMap((i) => i.order.map((e) => [e.mntId, e] as const)));
  const roleOf = (id: number) => imgs.find((i) => i.roles.has(id))?.roles.get(id);
  const ea = byId.get(aMnt);
  const eb = byId.get(bMnt);
  if (!ea || !eb || ea.rootDev !== eb.rootDev) return undefined;
  let t = ea;
  for (let r = roleOf(t.mntId), n = 0; r?.role === 'bind' && n < byId.size; r = roleOf(t.mntId), n++) t = byId.get(r.from)!;
  const conv = (e: MntEntry, p: string): string | undefined => {
    if (!under(p, e.mountpoint)) return undefined;
    const sb = `${e.root}/${rel(p, e.mountpoint)}`.replace(/\/+/g, '/');
    if (!under(sb, t.root)) return undefined;
    return `${t.mountpoint}/${rel(sb, t.root)}`.replace(/\/+/g, '/');
  };
  const ca = conv(ea, a);
  const cb = conv(eb, b);
  return ca === undefined || cb === undefined ? undefined : { nsId: imgs[0]!.nsOf.get(t.mntId)!, a: ca, b: cb };
}
