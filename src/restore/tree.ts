// The restored tree: each task clones its children with their exact pids
// (tracer/seed.ts makes the tasks), joins its process group and session, and
// zombies end as they did.
import { readFileSync } from 'node:fs';
import { parseStat } from '../proc/stat.js';
import { NR, CLONE, PR, SIG, errnoName, __WALL } from '../sys/index.js';
import { Remote } from '../tracer/remote.js';
import { CryoError, type Logger } from '../context.js';
import { isZombieState, type CoreEntry, type PstreeEntry } from '../images/index.js';
import { cloneTask } from '../tracer/seed.js';
import { becomeZombie } from '../objects/zombie.js';
import type { PidLevels } from './pidns.js';

/**
 * The signal that stops a restored task as it was stopped. SIGTSTP, SIGTTIN and
 * SIGTTOU are dropped by the kernel for a task of an orphaned process group (no
 * member has a parent in another group of its session): there only SIGSTOP stops
 * it. The root's parent is cryo's (or cryo's parent's), outside the tree's sessions.
 */
export function stopSignal(tasks: readonly TreeTask[], t: TreeTask, rootHost: number, log: Logger): number {
  const sig = t.core.tc?.stopSigno || SIG.STOP;
  if (sig === SIG.STOP) return sig;
  const byPid = new Map<number, { pgid: number; sid: number }>(tasks.map((x) => [x.pstree.pid, x.pstree]));
  const { pgid, sid } = t.pstree;
  const anchored = tasks.some(({ pstree: m }, i) => {
    if (m.pgid !== pgid) return false;
    const p = i === 0 ? parentIds(rootHost) : byPid.get(m.ppid);
    return p !== undefined && p.pgid !== pgid && p.sid === sid;
  });
  if (anchored) return sig;
  log.warn(`task ${t.pstree.pid}: stopped by signal ${sig}, which cannot stop a task of its orphaned process group ${pgid} here; stopped by SIGSTOP`);
  return SIG.STOP;
}

/** The group and session of a task's parent, from /proc; undefined if unreadable. */
function parentIds(pid: number): { pgid: number; sid: number } | undefined {
  try {
    return parseStat(readFileSync(`/proc/${parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).ppid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export interface TreeTask {
  pstree: PstreeEntry;
  core: CoreEntry;
}

/**
 * Create every task below the root with its pid, parents first, and give each its
 * session and process group as CRIU does: a session leader calls setsid() before
 * it forks (its children inherit the session), and process groups are joined once
 * every task exists (a group's leader may be anywhere in the tree). Zombies exit
 * last, after taking their session and group.
 *
 * A session or group whose leader is gone (a daemon's double fork) gets a helper
 * task with the leader's pid: it calls setsid() (or setpgid) and forks the task
 * with CLONE_PARENT, so the task has its real parent and the old session; the
 * helper then exits and its parent reaps it, as CRIU's helpers do.
 *
 * `onSetsid` runs in each session leader right after its setsid(); `onClone` in
 * each task right after its creation, before it runs or creates anything, with
 * the task whose groups it was born in; `beforeForks` in each live task before
 * it forks its children (and helpers), with the task whose restored memory it
 * was born with (its parent's, but for one forked by another's helper).
 */
export function buildTree(
  tasks: TreeTask[], rems: Map<number, Remote>, created: number[], log: Logger, pids: PidLevels,
  onSetsid?: (rem: Remote, sid: number) => void,
  onClone?: (rem: Remote, task: TreeTask, parent: TreeTask) => void,
  beforeForks?: (rem: Remote, task: TreeTask, memFrom: TreeTask | undefined) => void,
): void {
  const zombies = new Map<number, { rem: Remote; status: number }>();
  // Each helper with its pid as its parent sees it (the parent reaps it by that).
  const helpers: Array<{ rem: Remote; parent: Remote; pid: number }> = [];
  // They go before any zombie-to-be that forked one becomes a zombie.
  const adoptHelpers: Array<{ rem: Remote; parent: Remote; pid: number }> = [];
  const all = new Map<number, Remote>(rems);
  const inTree = new Set(tasks.map((t) => t.pstree.pid));
  const root = tasks[0]!.pstree;
  // The root's session may be cryo's own (a shell job): that one needs no helper.
  const external = new Set(root.sid === root.pid ? [] : [root.sid]);
  const helperFor = new Map<number, Remote>();
  const { byLeader, reapers, deferred, bornSid } = planSessions(tasks);
  const byPid = new Map(tasks.map((t) => [t.pstree.pid, t]));
  let freePid = Math.max(...tasks.flatMap((t) => [t.pstree.pid, t.pstree.pgid, t.pstree.sid])) + 1;
  // The task whose restored memory each new one was born with (its forker's,
  // or where the forker has none of its own, a zombie's, the forker's source).
  const memFrom = new Map<number, TreeTask | undefined>();
  const live = (x: TreeTask) => !isZombieState(x.core.tc?.taskState);
  /**
   * Fork `c` (whose parent is `parent`) from `forker`, a task or helper made from `from`, after `from`'s memory if it has its own.
   * `helperDepth`: the forker is a helper in `c`'s pid namespace (made by helperOf), this many levels below the root's.
   */
  const make = (forker: Remote, c: TreeTask, parent: TreeTask, from: TreeTask, flags: number, helperDepth?: number) => {
    // As CRIU: a child with its parent's fd table id shares that table (CLONE_FILES).
    if (sharesFdTable(c, parent)) {
      if (forker !== all.get(parent.pstree.pid)) throw new CryoError(`task ${c.pstree.pid} shares its fd table with its parent and needs a helper for its session: cryo cannot restore that yet`);
      flags |= CLONE.FILES;
    }
    if (forker !== all.get(from.pstree.pid) && helperDepth === undefined) noHelper(from, `task ${c.pstree.pid}`);
    const ns = helperDepth === undefined ? pids.prepare(forker, from, c, all) : { flags: 0, seenAt: helperDepth };
    const r = cloneTask(forker, pids.levels(c.pstree.pid), flags | ns.flags, ns.seenAt);
    created.push(r.pid);
    memFrom.set(c.pstree.pid, live(from) ? from : memFrom.get(from.pstree.pid));
    onClone?.(r, c, from); // it is in the groups of `from` (its forker's)
    all.set(c.pstree.pid, r);
    if (isZombieState(c.core.tc?.taskState)) zombies.set(c.pstree.pid, { rem: r, status: c.core.tc!.exitCode });
    else rems.set(c.pstree.pid, r);
  };
  /**
   * A helper with the pids of the gone leader of `c`'s session or group, cloned
   * by `forker` (task `from`) into `c`'s pid namespace; it goes once the tree is built.
   */
  const helperOf = (forker: Remote, from: TreeTask, c: TreeTask, which: 'sid' | 'pgid', list = helpers): Remote => {
    const what = which === 'sid' ? `session ${c.pstree.sid}` : `process group ${c.pstree.pgid}`;
    const levels = pids.helperLevels(c.pstree.pid, which);
    if (!levels) throw new CryoError(`task ${c.pstree.pid}: in a nested pid namespace, it would need a helper for ${what}, whose leader was of a pid namespace above its: cryo cannot restore that yet`);
    const seenAt = pids.prepareHelper(forker, from, c, all);
    const h = cloneTask(forker, levels, 0, seenAt);
    created.push(h.pid);
    list.push({ rem: h, parent: forker, pid: levels[seenAt]! });
    return h;
  };
  // Parents before children; a deferred child's turn comes once its leader made it.
  const pending = [...tasks];
  while (pending.length) {
    const at = pending.findIndex((x) => all.has(x.pstree.pid));
    if (at < 0) throw new CryoError(`task ${pending[0]!.pstree.pid}: its parent ${pending[0]!.pstree.ppid} is not in the image`);
    const t = pending.splice(at, 1)[0]!;
    const rem = all.get(t.pstree.pid)!;
    const leader = t.pstree.sid === t.pstree.pid;
    // The inits of nested pid namespaces first: their namespace exists before any other task is born in it.
    let kids = tasks.filter((x) => x.pstree.ppid === t.pstree.pid && !deferred.has(x)).sort((a, b) => Number(pids.isInit(b.pstree.pid)) - Number(pids.isInit(a.pstree.pid)));
    if (live(t)) {
      beforeForks?.(rem, t, memFrom.get(t.pstree.pid));
      // A session leader's children born in the session it was born in are
      // forked before its setsid() (CRIU's restore_before_setsid).
      const born = bornSid.get(t.pstree.pid);
      const early = leader && born !== undefined ? kids.filter((c) => (bornSid.get(c.pstree.pid) ?? c.pstree.sid) === born) : [];
      for (const c of early) make(rem, c, t, t, 0);
      kids = kids.filter((c) => !early.includes(c));
    }
    if (leader) {
      rem.call('setsid', NR.setsid);
      onSetsid?.(rem, t.pstree.sid); // its controlling terminal, before it forks the members
    } else if (t.pstree.pgid === t.pstree.pid && live(t)) {
      // Its group before its children: one in a nested pid namespace cannot name it, it is born in it.
      rem.call('setpgid', NR.setpgid, 0, 0);
    }
    // A zombie-to-be leader forks them too: it lives until the tree is built.
    const adopted = byLeader.get(t.pstree.pid);
    if (adopted) {
      noHelper(t, `session ${t.pstree.sid}`);
      const pid = freePid++;
      const h = cloneTask(rem, pid, 0);
      created.push(h.pid);
      adoptHelpers.push({ rem: h, parent: rem, pid });
      log.debug(`helper ${pid} of session leader ${t.pstree.pid} forks ${adopted.map((c) => c.pstree.pid).join(', ')}, children of a reaper in its session`);
      for (const c of adopted) make(h, c, byPid.get(c.pstree.ppid)!, t, 0);
    }
    if (!live(t)) continue; // a zombie has no children
    for (const c of kids) {
      const sid = c.pstree.sid;
      let forker: Remote = rem;
      let flags = 0;
      if (sid !== t.pstree.sid && sid !== c.pstree.pid && !inTree.has(sid) && !external.has(sid)) {
        let h = helperFor.get(sid);
        if (!h) {
          h = helperOf(rem, t, c, 'sid');
          h.call('setsid', NR.setsid);
          helperFor.set(sid, h);
          log.debug(`helper ${sid} stands in for the gone leader of session ${sid}`);
        }
        forker = h;
        flags = CLONE.PARENT; // the task's parent is t, its session the helper's
      }
      make(forker, c, t, t, flags, forker === rem ? undefined : pids.depth(c.pstree.pid));
    }
    pids.afterChildren(rem, t, all);
  }
  // A group whose leader is gone (it exited, its members live on) gets a helper
  // with the leader's pid, a child of the first member: it makes the group, the
  // members join it, and it goes (as CRIU's helpers). Not in a session outside
  // the tree (a shell job's), where the group is the shell's business.
  const groupHelpers: Array<{ rem: Remote; parent: Remote; pid: number }> = [];
  for (const t of tasks) {
    const p = t.pstree;
    if (!p.pgid || p.pgid === p.pid || all.has(p.pgid) || helperFor.has(p.pgid) || external.has(p.sid)) continue;
    const parent = all.get(p.pid)!;
    const h = helperOf(parent, t, t, 'pgid', groupHelpers);
    h.call('setpgid', NR.setpgid, 0, 0);
    all.set(p.pgid, h);
    log.debug(`helper ${p.pgid} stands in for the gone leader of process group ${p.pgid}`);
  }
  // Group leaders first, then the members.
  const order = [...tasks].sort((a, b) => Number(b.pstree.pgid === b.pstree.pid) - Number(a.pstree.pgid === a.pstree.pid));
  for (const t of order) {
    const p = t.pstree;
    const rem = all.get(p.pid)!;
    if (p.sid === p.pid) continue; // setsid made it its own group already
    // In a nested pid namespace the task names groups by its own pids; one led from outside it was inherited.
    const pgid = pids.seen(p.pid, 'pgid');
    if (Number(rem.call('getpgid', NR.getpgid, 0)) === pgid || pgid === 0) continue;
    const r = rem.callRaw(NR.setpgid, 0, p.pgid === p.pid ? 0 : pgid);
    if (r >= 0n) continue;
    // Inside the tree's own sessions every group can be made: failing there would restore a wrong tree.
    if (!external.has(p.sid)) throw new CryoError(`task ${p.pid}: cannot join process group ${p.pgid}: ${errnoName(Number(-r))}`);
    log.warn(`task ${p.pid}: cannot join process group ${p.pgid} (errno ${-r})`);
  }
  // Every task in its session and group, or the tree is not the one dumped.
  for (const t of tasks) {
    const p = t.pstree;
    if (external.has(p.sid)) continue;
    const rem = all.get(p.pid)!;
    const [sid, pgid] = [Number(rem.call('getsid', NR.getsid, 0)), Number(rem.call('getpgid', NR.getpgid, 0))];
    if (sid !== pids.seen(p.pid, 'sid') || pgid !== pids.seen(p.pid, 'pgid') || !sameHostIds(rem.pid, all.get(p.sid), all.get(p.pgid))) throw new CryoError(`task ${p.pid}: came back in session ${sid} and process group ${pgid}, not ${p.sid} and ${p.pgid}: cryo cannot make this tree's sessions yet`);
  }
  // The orphans of the adopting helpers go to their reapers: subreapers already.
  for (const r of reapers) all.get(r.pstree.pid)!.call('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  // Group helpers go before any task becomes a zombie: their parent reaps them.
  for (const h of [...groupHelpers, ...adoptHelpers]) {
    becomeZombie(h.rem, 0);
    h.parent.call('wait4', NR.wait4, h.pid, 0, 0, 0); // the pid as the parent sees it
  }
  // The helpers' orphans went to their parents again, or the tree is not the one dumped.
  for (const c of deferred) {
    const ppid = Number(all.get(c.pstree.pid)!.call('getppid', NR.getppid));
    if (ppid !== pids.view(c.pstree.pid, c.pstree.ppid)) throw new CryoError(`task ${c.pstree.pid}: came back a child of ${ppid}, not of ${c.pstree.ppid}: cryo cannot make this tree's sessions yet`);
  }
  for (const z of zombies.values()) becomeZombie(z.rem, z.status);
  // Helpers go; the group they lead lives on while a member does.
  for (const h of helpers) {
    becomeZombie(h.rem, 0);
    h.parent.call('wait4', NR.wait4, h.pid, 0, 0, 0); // the pid as the parent sees it
  }
  // Those exits queued SIGCHLDs the dumped tasks never had: drop every pending
  // signal now (the dumped ones are queued again later, from the images).
  for (const r of rems.values()) drainSignals(r);
}

/** Helpers get a pid of the root's pid namespace only: none for a task in a nested one. */
function noHelper(t: TreeTask, what: string): void {
  if (t.pstree.cryoNsPids.length) throw new CryoError(`task ${t.pstree.pid}: in a nested pid namespace, it would need a helper for ${what}: cryo cannot restore that yet`);
}

/**
 * The session and group of task `host` as cryo sees them (its /proc: a nested
 * task's own calls cannot tell one led from outside its namespace from another),
 * against their leaders where those are in the tree.
 */
function sameHostIds(host: number, sid: Remote | undefined, pgid: Remote | undefined): boolean {
  const st = parseStat(readFileSync(`/proc/${host}/stat`, 'utf8'));
  return (sid === undefined || st.sid === sid.pid) && (pgid === undefined || st.pgid === pgid.pid);
}

/**
 * Who forks whom where sessions need it. A child of a reaper (the root as pid 1
 * of the tree's pid namespace, or a child subreaper) in the session of another
 * task, reparented to it when its parent died, is forked by a helper child of
 * that session's leader, which then exits: the child goes to the reaper again,
 * in its session (CRIU's helpers of prepare_pstree_ids; `byLeader`, with the
 * subreapers that must be so by then). And the sessions tasks were born in.
 */
function planSessions(tasks: readonly TreeTask[]): { byLeader: Map<number, TreeTask[]>; reapers: Set<TreeTask>; deferred: Set<TreeTask>; bornSid: Map<number, number> } {
  const root = tasks[0]!;
  const byPid = new Map(tasks.map((t) => [t.pstree.pid, t]));
  const subreaper = (x: TreeTask) => x.core.tc?.childSubreaper === true;
  const byLeader = new Map<number, TreeTask[]>();
  const reapers = new Set<TreeTask>();
  // The helper's pid must be free: in a pid namespace of the tree's own it is.
  if (root.pstree.pid !== 1) return { byLeader, reapers, deferred: new Set(), bornSid: bornSessions(tasks, new Set()) };
  const wanted: Array<{ c: TreeTask; parent: TreeTask; leader: TreeTask }> = [];
  for (const c of tasks) {
    const p = c.pstree;
    const parent = byPid.get(p.ppid);
    const leader = byPid.get(p.sid);
    if (!parent || !leader || p.sid === parent.pstree.sid || p.sid === p.pid || !(parent === root || subreaper(parent))) continue;
    wanted.push({ c, parent, leader });
  }
  // Subreapers get their flag back only after the tree is built (as CRIU's):
  // while it is built, the orphans of a helper go to the nearest of these (made
  // subreapers first), else to pid 1.
  const early = new Set(wanted.map((w) => w.parent).filter((p) => p !== root));
  const reaperOf = (x: TreeTask): TreeTask => {
    for (let p: TreeTask | undefined = x; p; p = byPid.get(p.pstree.ppid)) if (early.has(p)) return p;
    return root;
  };
  for (const { c, parent, leader } of wanted) {
    if (reaperOf(leader) !== parent) continue;
    byLeader.set(c.pstree.sid, [...(byLeader.get(c.pstree.sid) ?? []), c]);
    if (parent !== root) reapers.add(parent);
  }
  const deferred = new Set([...byLeader.values()].flat());
  return { byLeader, reapers, deferred, bornSid: bornSessions(tasks, deferred) };
}

/**
 * The session each task was born in where it is not its own (CRIU's born_sid):
 * a task in the session of an ancestor other than its parent was forked before
 * its parent, and each ancestor up to that session's leader, called setsid().
 * Ancestors that would have to be born in two sessions cannot be restored.
 */
function bornSessions(tasks: readonly TreeTask[], skip: ReadonlySet<TreeTask>): Map<number, number> {
  const byPid = new Map(tasks.map((t) => [t.pstree.pid, t]));
  const born = new Map<number, number>();
  for (const t of tasks.slice(1)) {
    const sid = t.pstree.sid;
    if (skip.has(t) || sid === byPid.get(t.pstree.ppid)?.pstree.sid || !byPid.has(sid)) continue;
    const chain: TreeTask[] = [];
    for (let p = byPid.get(t.pstree.ppid); p && p.pstree.pid !== sid; p = byPid.get(p.pstree.ppid)) chain.push(p);
    if (!byPid.get(sid) || !chain.length || chain.at(-1)!.pstree.ppid !== sid) continue; // the leader is no ancestor
    for (const p of chain) {
      const was = born.get(p.pstree.pid);
      if (was !== undefined && was !== sid) throw new CryoError(`task ${p.pstree.pid}: cannot tell whether it was born in session ${was} or ${sid}`);
      born.set(p.pstree.pid, sid);
    }
  }
  return born;
}

/** Does task `c` share the fd table of its parent `p` (one files_id in the images)? */
export function sharesFdTable(c: TreeTask, p: TreeTask): boolean {
  if (isZombieState(c.core.tc?.taskState) || isZombieState(p.core.tc?.taskState)) return false;
  return c.core.ids !== undefined && p.core.ids !== undefined && c.core.ids.filesId === p.core.ids.filesId;
}

/** Dequeue every pending signal of the task (shared and its own) without delay. */
function drainSignals(rem: Remote): void {
  const set = Buffer.alloc(8, 0xff);
  const zero = Buffer.alloc(16);
  const setAddr = rem.put(set, 0);
  const tsAddr = rem.put(zero, 64);
  for (let i = 0; i < 4096; i++) {
    if (rem.callRaw(NR.rt_sigtimedwait, setAddr, 0, tsAddr, 8) < 0n) return; // EAGAIN: none left
  }
}
