// Namespaces, one row per kind (CRIU's ns_desc): how a task's namespace is
// named in /proc and in the ids of the images, and whether cryo carries it. A
// tree in a namespace cryo does not carry is refused, at dump and at restore:
// restoring it into cryo's own namespaces would let a container out. As CRIU,
// a carried namespace other than pid is the root's: every task of the tree is
// in it (the root's own one, dumped and made anew, or cryo's, left alone); but
// a tree whose root has a mount namespace of its own may have several, each
// dumped and made anew (never cryo's among them).
import { readlinkSync } from 'node:fs';
import { CLONE } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { TaskKobjIdsEntry } from '../images/index.js';

export interface NsKind {
  /** The name in /proc/PID/ns and in messages. */
  readonly name: 'pid' | 'mnt' | 'net' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';
  readonly cloneFlag: number;
  readonly idField: 'pidNsId' | 'mntNsId' | 'netNsId' | 'ipcNsId' | 'utsNsId' | 'userNsId' | 'cgroupNsId' | 'timeNsId';
  /** A namespace of the tree's own that cryo dumps and restores. */
  readonly carried: boolean;
  /** The /proc/PID/ns entry of the namespace a task's next children get, where it can differ. */
  readonly forChildren?: string;
}

/**
 * Carried: a pid namespace whose init is the tree's root (made anew on restore,
 * with the same pids), and the root's user, uts, ipc, net, mount, time and cgroup
 * namespaces (userns.ts, utsns.ts, ipcns.ts, netns.ts, mntns/, timens.ts, cgroup.ts).
 */
export const NS_KINDS: readonly NsKind[] = [
  { name: 'pid', cloneFlag: CLONE.NEWPID, idField: 'pidNsId', carried: true, forChildren: 'pid_for_children' },
  { name: 'mnt', cloneFlag: CLONE.NEWNS, idField: 'mntNsId', carried: true },
  { name: 'net', cloneFlag: CLONE.NEWNET, idField: 'netNsId', carried: true },
  { name: 'ipc', cloneFlag: CLONE.NEWIPC, idField: 'ipcNsId', carried: true },
  { name: 'uts', cloneFlag: CLONE.NEWUTS, idField: 'utsNsId', carried: true },
  { name: 'user', cloneFlag: CLONE.NEWUSER, idField: 'userNsId', carried: true },
  { name: 'cgroup', cloneFlag: CLONE.NEWCGROUP, idField: 'cgroupNsId', carried: true },
  { name: 'time', cloneFlag: CLONE.NEWTIME, idField: 'timeNsId', carried: true, forChildren: 'time_for_children' },
];

/** A task to check: its pid as cryo sees it, its name, its threads. */
export interface NsTask {
  pid: number;
  comm: string;
  threads: number[];
  /** Its parent (cryo's pid; 0 for the root). */
  parent?: number;
  /** Its pids in the pid namespaces nested in the root's, outermost first (none if it is in the root's). */
  levels?: number[];
}

const link = (tid: number, entry: string): string | undefined => {
  try {
    return readlinkSync(`/proc/${tid}/ns/${entry}`);
  } catch {
    return undefined; // a zombie or a thread that just went: nothing of it runs on
  }
};

/** A namespace the tree has of its own (its root's, not cryo's), to be dumped. */
export interface TreeNs {
  kind: 'user' | 'uts' | 'ipc' | 'net' | 'mnt' | 'time' | 'cgroup';
  /** Its /proc/PID/ns link (the name the dump's ids are made of). */
  link: string;
  /** A path to it, for setns. */
  path: string;
}

/**
 * At dump: every thread of every task must be in cryo's own namespace of each
 * kind cryo does not carry, in the root's pid namespace or one nested in it
 * (checkNestedPidns), and in the root's user, uts,
 * ipc, net, time and cgroup namespaces (a user namespace nested in the tree's is refused so), and in
 * the root's mount namespace or, when the root has one of its own, in any but cryo's
 * (treeMntNamespaces lists them); and none may have made a namespace for
 * its children that they would be born into, but a pid namespace of the
 * tree's. Returns those the tree owns.
 */
export function checkDumpNamespaces(root: NsTask, tasks: NsTask[]): TreeNs[] {
  const mine = new Map(NS_KINDS.map((k) => [k.name, readlinkSync(`/proc/self/ns/${k.name}`)]));
  const rootPidns = link(root.pid, 'pid');
  const rootNs = new Map(NS_KINDS.map((k) => [k.name, link(root.pid, k.name)]));
  const treePidns = checkNestedPidns(tasks, rootPidns);
  for (const t of tasks) {
    const who = `task ${t.pid} (${t.comm})`;
    for (const tid of t.threads) {
      for (const k of NS_KINDS) {
        const ns = link(tid, k.name);
        if (ns === undefined) continue;
        if (k.name === 'pid') {
          if (!treePidns.has(ns)) throw new CryoError(`${who} is in a pid namespace (${ns}) that is neither the tree root's nor nested in it`);
        } else if (k.carried) {
          // As CRIU: one namespace of the kind for the whole tree ("Can't dump nested uts namespace"),
          // but for mount namespaces, several of which a tree with its own may hold (never cryo's).
          // Network namespaces too: CRIU dumps each of a tree whose root has its own.
          const several = k.name === 'mnt' || k.name === 'net';
          const nested = several && rootNs.get(k.name) !== mine.get(k.name) && ns !== mine.get(k.name);
          if (ns !== rootNs.get(k.name) && !nested) {
            if (several && rootNs.get(k.name) !== mine.get(k.name)) {
              const what = k.name === 'mnt' ? 'mount' : 'network';
              throw new CryoError(`${who} is in cryo's own ${what} namespace (${ns}) while the tree's root has one of its own, which cryo cannot dump (nor can CRIU): a task may only be in the tree's own ${what} namespaces`);
            }
            const rootWhose = rootNs.get(k.name) === mine.get(k.name) ? "cryo's own" : 'one of its own';
            // CRIU too refuses nested uts, ipc, time and cgroup namespaces, and other network namespaces in a tree in the dumper's.
            const why = k.name === 'net' ? 'which cryo cannot dump (nor can CRIU) while the root is in cryo\'s: a tree of several network namespaces needs its root in one of its own' : 'which cryo cannot dump: as CRIU, every task must be in the root\'s';
            throw new CryoError(`${who} is in a ${k.name} namespace (${ns}) other than the tree root's (${rootWhose}), ${why}`);
          }
        } else if (ns !== mine.get(k.name)) {
          throw new CryoError(`${who} is in a ${k.name} namespace of its own (${ns}), which cryo does not dump yet`);
        }
        if (k.forChildren) {
          const next = link(tid, k.forChildren);
          // A pid namespace of the tree's that it made (unshare) or joined (setns) for its children is in the images (cryo's own field).
          if (next !== undefined && next !== ns && !(k.name === 'pid' && treePidns.has(next) && (t.threads.length < 2 || next === link(t.pid, k.forChildren)))) {
            const nested = k.name === 'pid' ? ', one with no task of the tree in it' : '';
            throw new CryoError(`${who} has made a ${k.name} namespace for its children (${next})${nested}, which cryo does not dump yet`);
          }
          // After unshare(CLONE_NEWPID) pid_for_children cannot be read until the
          // first child, the new namespace's init, exists (nor can a zombie's, nor
          // any other of its links but pid: it has no namespaces left).
          if (next === undefined && k.name === 'pid' && link(tid, 'mnt') !== undefined && link(process.pid, k.forChildren) !== undefined) {
            throw new CryoError(`${who} has made a pid namespace for its children (unshare(CLONE_NEWPID), no child in it yet), which cryo does not dump yet`);
          }
        }
      }
    }
  }
  const own: TreeNs[] = [];
  // The user namespace first: the others are owned by it, and its maps translate the ids of the rest.
  for (const kind of ['user', 'uts', 'ipc', 'net', 'mnt', 'time', 'cgroup'] as const) {
    const ns = rootNs.get(kind);
    if (ns !== undefined && ns !== mine.get(kind)) own.push({ kind, link: ns, path: `/proc/${root.pid}/ns/${kind}` });
  }
  return own;
}

/**
 * The tree's pid namespaces: the root's, and those nested in it, each with its
 * init in the tree (CRIU dumps none nested: its images have no pid per level;
 * cryo's have, its own fields of pstree.img). The init of a nested one must be
 * a child of a task of the namespace just above it (its parent did not join a
 * deeper one for it), so that its parent can make it again.
 */
function checkNestedPidns(tasks: NsTask[], rootPidns: string | undefined): Set<string> {
  const out = new Set<string>();
  if (rootPidns !== undefined) out.add(rootPidns);
  const byPid = new Map(tasks.map((t) => [t.pid, t]));
  for (const t of tasks) {
    const levels = t.levels ?? [];
    const ns = link(t.pid, 'pid');
    if (ns === undefined || levels.at(-1) !== 1) continue;
    const p = byPid.get(t.parent ?? 0);
    if (p && levels.length !== (p.levels?.length ?? 0) + 1) {
      throw new CryoError(`task ${t.pid} (${t.comm}) is the init of a pid namespace (${ns}) made below another pid namespace than its parent's, which cryo does not dump yet`);
    }
    out.add(ns);
  }
  for (const t of tasks) {
    const ns = link(t.pid, 'pid');
    if (ns !== undefined && (t.levels?.length ?? 0) > 0 && !out.has(ns)) {
      throw new CryoError(`task ${t.pid} (${t.comm}) is in a pid namespace nested in the tree's (${ns}) whose init is not in the tree, which cannot be dumped`);
    }
  }
  return out;
}

/**
 * At restore: the namespaces the images hold, by their ids (CRIU's
 * root_ns_mask: the root's ids against the dumper's in inventory.img, each
 * task's against its parent's). Refused where cryo does not carry them; the pid
 * namespace only with the root as its init, or nested in the root's (the task
 * has pids below it: PidLevels checks the rest). Returns the CLONE_NEW* flags of
 * the namespaces the root is to be made in.
 */
export function restoreNamespaces(dumper: TaskKobjIdsEntry | undefined, tasks: Array<{ pid: number; ppid: number; nested?: boolean; ids?: TaskKobjIdsEntry }>): number {
  let flags = 0;
  const byPid = new Map(tasks.map((t) => [t.pid, t]));
  for (const t of tasks) {
    if (!t.ids) continue; // a zombie
    const parent = t === tasks[0] ? dumper : byPid.get(t.ppid)?.ids;
    if (!parent) continue;
    for (const k of NS_KINDS) {
      if (t.ids[k.idField] === parent[k.idField]) continue;
      const root = t === tasks[0];
      if (k.name === 'pid' && !root && t.nested) continue;
      // As CRIU: a task below the root may be in another mount (or network) namespace of the tree's, never the dumper's.
      if ((k.name === 'mnt' || k.name === 'net') && !root && flags & k.cloneFlag) {
        if (t.ids[k.idField] !== dumper?.[k.idField]) continue;
        throw new CryoError(`task ${t.pid} of the images is in the dumper's ${k.name === 'mnt' ? 'mount' : 'network'} namespace while the tree's root has one of its own, which cannot be restored`);
      }
      if (!k.carried || !root) {
        throw new CryoError(`task ${t.pid} of the images is in a ${k.name} namespace ${root ? 'of its own' : 'nested in its parent\'s'}, which cryo does not restore yet`);
      }
      if (k.name === 'pid' && t.pid !== 1) throw new CryoError(`task ${t.pid} of the images is in a pid namespace of its own but is not its init`);
      flags |= k.cloneFlag;
    }
  }
  return flags;
}

/** A mount or network namespace of the tree: its /proc link and the first task in it (the root for the root's). */
export interface TreeMntNs {
  link: string;
  pid: number;
  comm: string;
}

/**
 * Every mount (or network) namespace of a tree whose root has one of its own
 * (checked by checkDumpNamespaces), the root's first, then in the order of the tasks.
 */
export function treeMntNamespaces(tasks: NsTask[], kind: 'mnt' | 'net' = 'mnt'): TreeMntNs[] {
  const out: TreeMntNs[] = [];
  for (const t of tasks) {
    const ns = link(t.pid, kind);
    if (ns !== undefined && !out.some((o) => o.link === ns)) out.push({ link: ns, pid: t.pid, comm: t.comm });
  }
  return out;
}
