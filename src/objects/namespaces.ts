// Namespaces of the dumped tree. cryo carries one kind only: a tree whose root
// is the init of a pid namespace of its own comes back in a new pid namespace
// (with a mount namespace and a /proc of its own). A task in any other
// namespace than cryo's, or one that made a namespace for the children it has
// yet to fork (pid_for_children, time_for_children), would come back in cryo's
// own namespaces: the dump refuses it instead, naming the task and namespace.
import { readlinkSync } from 'node:fs';
import { CryoError } from '../context.js';

/** The kinds that must be cryo's own. */
const HOST_KINDS: Array<{ link: string; what: string; forChildren?: string }> = [
  { link: 'net', what: 'network' },
  { link: 'ipc', what: 'IPC' },
  { link: 'uts', what: 'UTS' },
  { link: 'user', what: 'user' },
  { link: 'cgroup', what: 'cgroup' },
  { link: 'time', what: 'time' },
  { link: 'time_for_children', what: 'time', forChildren: 'CLONE_NEWTIME' },
];

function nsOf(pid: number | 'self', link: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${link}`);
  } catch {
    return undefined; // a kernel without this kind, or a task gone: the dump finds out
  }
}

/**
 * Refuse a tree with a namespace cryo cannot carry. `pids` lists the live tasks,
 * the root first (in a pid namespace of its own only as its init: see freeze.ts).
 */
export function checkNamespaces(pids: readonly number[]): void {
  const root = pids[0]!;
  const want = new Map(HOST_KINDS.map((k) => [k.link, nsOf('self', k.link)]));
  const rootPid = nsOf(root, 'pid');
  const ownPidns = rootPid !== nsOf('self', 'pid');
  // In the pid namespace case the restore makes a new mount namespace; else it is cryo's.
  const rootMnt = ownPidns ? nsOf(root, 'mnt') : nsOf('self', 'mnt');
  for (const pid of pids) {
    for (const k of HOST_KINDS) {
      const have = nsOf(pid, k.link);
      const host = want.get(k.link);
      if (have !== undefined && host !== undefined && have !== host) {
        throw new CryoError(k.forChildren
          ? `task ${pid} made a ${k.what} namespace for its children (${have}: unshare(${k.forChildren}) before its next fork); cryo cannot dump ${k.what} namespaces yet`
          : `task ${pid} is in a ${k.what} namespace other than cryo's (${have}); cryo cannot dump ${k.what} namespaces yet`);
      }
    }
    const mnt = nsOf(pid, 'mnt');
    if (mnt !== undefined && rootMnt !== undefined && mnt !== rootMnt) {
      throw new CryoError(`task ${pid} is in a mount namespace (${mnt}) other than ${ownPidns ? `its root's` : `cryo's`}; cryo cannot dump mount namespaces yet`);
    }
    const pidns = nsOf(pid, 'pid');
    if (pidns !== undefined && rootPid !== undefined && pidns !== rootPid) {
      throw new CryoError(`task ${pid} is in a pid namespace (${pidns}) nested in its tree's; cryo cannot dump nested pid namespaces yet`);
    }
    // After unshare(CLONE_NEWPID) the link cannot be read until the first child (the
    // new namespace's init) exists.
    const kids = nsOf(pid, 'pid_for_children');
    if (pidns !== undefined && kids !== rootPid) {
      throw new CryoError(`task ${pid} made a pid namespace for its children (${kids !== undefined ? `${kids}: ` : ''}unshare(CLONE_NEWPID) before its next fork); cryo cannot dump nested pid namespaces yet`);
    }
  }
}
