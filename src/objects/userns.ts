// The tree's own user namespace (CRIU's userns-ID.img): its uid and gid maps,
// whether setgroups is denied in it, and the translation of ids between cryo's
// view (the host's: /proc, fstat, what cryo's own calls take) and the tree's
// (what its tasks see, and what the images hold, as CRIU's userns_uid()).
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { NR, O, syscall } from '../sys/index.js';
import { CryoError } from '../context.js';
import { create, UidGidExtentSchema, UsernsEntrySchema, type ImageDir, type UidGidExtent, type UsernsEntry } from '../images/index.js';

/** ioctl NS_GET_USERNS: _IO(0xb7, 0x1), an fd of the user namespace owning a namespace. */
const NS_GET_USERNS = 0xb701;
/** ioctl NS_GET_PARENT: _IO(0xb7, 0x2), an fd of the parent of a user (or pid) namespace. */
const NS_GET_PARENT = 0xb702;

type Extent = { first: number; lowerFirst: number; count: number };

/** One of /proc/PID/{uid,gid}_map as read by a process outside the namespace: "first lower count" lines. */
export function parseIdMap(text: string): Extent[] {
  const out: Extent[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    out.push({ first: Number(f[0]), lowerFirst: Number(f[1]), count: Number(f[2]) });
  }
  return out;
}

/** The text a uid_map or gid_map is written with. */
export function idMapText(map: readonly Extent[]): string {
  return map.map((e) => `${e.first >>> 0} ${e.lowerFirst >>> 0} ${e.count >>> 0}\n`).join('');
}

const inside = (map: readonly Extent[], id: number): number | undefined => {
  for (const e of map) if (id >= e.lowerFirst && id - e.lowerFirst < e.count) return e.first + (id - e.lowerFirst);
  return undefined;
};
const outside = (map: readonly Extent[], id: number): number | undefined => {
  for (const e of map) if (id >= e.first && id - e.first < e.count) return e.lowerFirst + (id - e.first);
  return undefined;
};

/** (uid_t)-1: "no id" (an unset loginuid, a kept id); the same in every namespace. */
const NO_ID = 0xffffffff;

/**
 * Ids between cryo's view and the tree's. With no user namespace of the tree's
 * own the two views are one (`IdView.SAME`). An id that has no mapping throws:
 * it could only come back as some other id.
 */
export class IdView {
  static readonly SAME = new IdView([], [], false);
  constructor(readonly uidMap: readonly Extent[], readonly gidMap: readonly Extent[], readonly own = true) {}

  private conv(kind: 'uid' | 'gid', id: number, toNs: boolean, what: string): number {
    if (!this.own || id >>> 0 === NO_ID) return id;
    const map = kind === 'uid' ? this.uidMap : this.gidMap;
    const r = toNs ? inside(map, id >>> 0) : outside(map, id >>> 0);
    if (r === undefined) {
      throw new CryoError(toNs
        ? `${what}: ${kind} ${id >>> 0} has no mapping in the tree's user namespace, which cryo cannot restore (it would come back as another ${kind})`
        : `${what}: ${kind} ${id >>> 0} of the images has no mapping in the tree's user namespace (its ${kind}_map)`);
    }
    return r;
  }
  /** A uid as cryo sees it, as the tree sees it (for the images). */
  nsUid(id: number, what: string): number {
    return this.conv('uid', id, true, what);
  }
  nsGid(id: number, what: string): number {
    return this.conv('gid', id, true, what);
  }
  /** A uid of the images (the tree's view), as cryo's own calls take it. */
  hostUid(id: number, what: string): number {
    return this.conv('uid', id, false, what);
  }
  hostGid(id: number, what: string): number {
    return this.conv('gid', id, false, what);
  }
}

/** What userns-ID.img holds, with the setgroups setting (cryo's own field; CRIU's images lack it: allowed). */
export interface UserNs {
  view: IdView;
  setgroupsDeny: boolean;
}

const nsIno = (path: string): number => statSync(path).ino;

/** The inode of the namespace that ioctl `req` (NS_GET_USERNS, NS_GET_PARENT) names for namespace file `path`. */
function relatedIno(path: string, req: number, name: string): number {
  const fd = openSync(path, O.RDONLY | O.CLOEXEC);
  try {
    const u = syscall(`ioctl(${path}, ${name})`, NR.ioctl, fd, req);
    try {
      return fstatSync(u).ino;
    } finally {
      closeSync(u);
    }
  } finally {
    closeSync(fd);
  }
}

/** The inode of the user namespace owning namespace file `path`. */
const ownerIno = (path: string): number => relatedIno(path, NS_GET_USERNS, 'NS_GET_USERNS');
/** The inode of the parent of user namespace file `path`. */
const parentIno = (path: string): number => relatedIno(path, NS_GET_PARENT, 'NS_GET_PARENT');

/**
 * At dump: the root's user namespace, a child of cryo's. Every other namespace
 * the tree has of its own (`kinds`; the pid one when the root is its init) must
 * be owned by it: made anew from inside it on restore, that is whose they are
 * (as CRIU's check_user_ns). Writes userns-ID.img; returns the maps.
 */
export function dumpUserNs(root: number, who: string, nsId: number, kinds: readonly string[], dir: ImageDir): UserNs {
  const userPath = `/proc/${root}/ns/user`;
  const link = `user:[${nsIno(userPath)}]`;
  if (parentIno(userPath) !== nsIno('/proc/self/ns/user')) {
    throw new CryoError(`${who} is in a user namespace (${link}) nested in another of cryo's children, which cryo does not dump yet: only a child of cryo's own`);
  }
  const me = nsIno(userPath);
  for (const k of kinds) {
    const owner = ownerIno(`/proc/${root}/ns/${k}`);
    if (owner !== me) {
      throw new CryoError(`${who}: its ${k} namespace is owned by user namespace user:[${owner}], not the tree's (${link}): cryo cannot restore it so (made from inside the tree's user namespace)`);
    }
  }
  const uidMap = parseIdMap(readFileSync(`/proc/${root}/uid_map`, 'utf8'));
  const gidMap = parseIdMap(readFileSync(`/proc/${root}/gid_map`, 'utf8'));
  if (!uidMap.length || !gidMap.length) {
    throw new CryoError(`${who}: its user namespace (${link}) has no ${uidMap.length ? 'gid' : 'uid'}_map written, which cryo cannot restore`);
  }
  const setgroupsDeny = readFileSync(`/proc/${root}/setgroups`, 'utf8').trim() === 'deny';
  const ext = (m: Extent[]): UidGidExtent[] => m.map((e) => create(UidGidExtentSchema, e));
  dir.write('userns', [create(UsernsEntrySchema, { uidMap: ext(uidMap), gidMap: ext(gidMap), setgroupsDeny })], nsId);
  return { view: new IdView(uidMap, gidMap), setgroupsDeny };
}

/** At restore: userns-ID.img. */
export function loadUserNs(dir: ImageDir, nsId: number): UserNs {
  const e = dir.readOne('userns', nsId) as UsernsEntry;
  const name = dir.fileName('userns', nsId);
  const ext = (m: UidGidExtent[], kind: string): Extent[] => {
    if (!m.length) throw new CryoError(`bad image: ${name}: no ${kind}_map`);
    if (m.length > 340) throw new CryoError(`bad image: ${name}: ${m.length} extents in its ${kind}_map, more than a kernel takes (340)`);
    return m.map((x) => ({ first: x.first, lowerFirst: x.lowerFirst, count: x.count }));
  };
  const view = new IdView(ext(e.uidMap, 'uid'), ext(e.gidMap, 'gid'));
  // The tree is built as root inside it, as CRIU's prepare_userns_creds.
  for (const kind of ['uid', 'gid'] as const) {
    if (outside(kind === 'uid' ? view.uidMap : view.gidMap, 0) === undefined) {
      throw new CryoError(`${name}: the user namespace maps no ${kind} 0, which cryo needs to rebuild the tree inside it`);
    }
  }
  return { view, setgroupsDeny: e.setgroupsDeny === true };
}

/**
 * Give task `pid` (just cloned into a new user namespace, nothing run in it yet)
 * its maps: setgroups first (it can only be denied before the gid_map is written).
 * Maps the kernel refuses fail the restore with the one it refused.
 */
export function writeUserNsMaps(pid: number, ns: UserNs): void {
  const write = (file: string, text: string) => {
    try {
      writeFileSync(`/proc/${pid}/${file}`, text);
    } catch (e) {
      throw new CryoError(`restore failed: the root's new user namespace: cannot write its ${file} (${text.trim().replace(/\n/g, ', ')}): ${(e as Error).message}`);
    }
  };
  if (ns.setgroupsDeny) write('setgroups', 'deny');
  write('uid_map', idMapText(ns.view.uidMap));
  write('gid_map', idMapText(ns.view.gidMap));
}

/** An object of the images with an owner: what it is (for messages), and the object whose uid and gid are its owner's. */
export interface Owned {
  what: string;
  ids: { uid: number; gid: number };
}

/**
 * The owners of files cryo makes itself (ghost files, memfds, bound unix
 * sockets' names), in the images as the tree sees them, as CRIU writes them
 * (userns_uid): at dump each is translated into the tree's view; one the
 * namespace does not map is refused, as it could not be made again.
 */
export function ownersToNs(view: IdView, owned: Iterable<Owned>, who: string): void {
  if (!view.own) return;
  for (const o of owned) {
    const what = `${who}: ${o.what}`;
    const [uid, gid] = [view.nsUid(o.ids.uid, what), view.nsGid(o.ids.gid, what)];
    o.ids.uid = uid;
    o.ids.gid = gid;
  }
}

/** On restore, the same owners of the images back in cryo's view, which its own calls (fchown...) take. */
export function ownersToHost(view: IdView, owned: Iterable<Owned>, who: string): void {
  if (!view.own) return;
  for (const o of owned) {
    const what = `${who}: ${o.what}`;
    const [uid, gid] = [view.hostUid(o.ids.uid, what), view.hostGid(o.ids.gid, what)];
    o.ids.uid = uid;
    o.ids.gid = gid;
  }
}
