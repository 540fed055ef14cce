// A tree of several network namespaces (its root in one of its own, some tasks
// in others they made): on restore the root makes each other one (unshare, in
// its user namespace) and cryo fills it as the root's (netns.ts); each task is
// born in its parent's and enters its own (setns, as CRIU's), and each socket
// is made in the one its entry names (CRIU's ns_id).
import { openSync, closeSync } from 'node:fs';
import { NR, CLONE } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { FileEntry, TaskKobjIdsEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import { TreeNetns } from './netns.js';
import { joinCryoNs } from './mntns/enter.js';

/** The network namespace a socket's entry names (CRIU's ns_id), if any. */
export function socketNsId(fe: FileEntry): number | undefined {
  return (fe.usk ?? fe.isk ?? fe.psk ?? fe.nlsk)?.nsId || undefined;
}

/** The ids of the tree's network namespaces other than the root's (and never the dumper's), of its tasks, sockets and tun files. */
export function subNetnsIds(tasks: ReadonlyArray<{ core: { ids?: TaskKobjIdsEntry | undefined } }>, files: Iterable<FileEntry>, root: number, dumper: number | undefined): number[] {
  const ids = new Set<number>();
  for (const t of tasks) if (t.core.ids) ids.add(t.core.ids.netNsId);
  for (const fe of files) {
    const id = socketNsId(fe) ?? (fe.tunf?.nsId || undefined);
    if (id !== undefined) ids.add(id);
  }
  ids.delete(root);
  if (dumper !== undefined && ids.has(dumper)) throw new CryoError(`bad image: a socket or tun file of the tree is of the dumper's network namespace ${dumper} while the root has one of its own`);
  return [...ids];
}

/**
 * A new network namespace made by the root (so owned by its user namespace):
 * it unshares one, cryo takes a handle of it, and the root goes back into its own.
 */
export function makeSubNetns(root: Remote, cryoPidfd: bigint): TreeNetns {
  const back = openSync(`/proc/${root.pid}/ns/net`, 'r');
  try {
    root.call('unshare(CLONE_NEWNET)', NR.unshare, CLONE.NEWNET);
    const made = new TreeNetns(`/proc/${root.pid}/ns/net`);
    joinCryoNs(root, cryoPidfd, back, CLONE.NEWNET, 'CLONE_NEWNET');
    return made;
  } finally {
    closeSync(back);
  }
}

/**
 * Task `c`, just born in the network namespace of `from` (its forker), enters
 * its own where that is another of the tree's. `now`: each task's namespace id.
 */
export function enterTaskNetNs(rem: Remote, c: { pstree: { pid: number }; core: { ids?: TaskKobjIdsEntry | undefined } }, from: { pstree: { pid: number } },
  now: Map<number, number>, made: ReadonlyMap<number, TreeNetns>, cryoPidfd: bigint): void {
  const born = now.get(from.pstree.pid);
  const want = c.core.ids?.netNsId ?? born;
  if (want !== undefined) now.set(c.pstree.pid, want);
  if (want === born || want === undefined) return;
  const ns = made.get(want);
  if (!ns) throw new CryoError(`task ${c.pstree.pid} of the images is in network namespace ${want}, which the images do not hold`);
  joinCryoNs(rem, cryoPidfd, ns.fd, CLONE.NEWNET, 'CLONE_NEWNET');
}
