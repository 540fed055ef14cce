// Pid namespaces nested in the tree's (cryo's own fields of pstree.img): each
// task's pid at every level below the root's namespace, and which namespace a
// task is in (its ids' pid_ns_id). A nested namespace is made again by its init's
// parent, cloning it with CLONE_NEWPID; a task that was born into one from
// outside (its parent had joined it for its children) is cloned after its
// parent joins it again (setns of a pidfd of its init), and every task's
// pid_for_children is set back as it was. Every clone names the task's pid at
// each level (clone3 set_tid, innermost first).
import { NR, CLONE } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { CoreEntry, PstreeEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';

interface PidTask {
  pstree: PstreeEntry;
  core: CoreEntry;
}

export class PidLevels {
  private readonly byPid = new Map<number, PidTask>();
  /** The top-level pid of each nested namespace's init, by namespace id. */
  private readonly inits = new Map<number, number>();
  /** The namespace each nested one is made in (its init's parent's), by id. */
  private readonly parentNs = new Map<number, number>();
  /** Where each task's next children are born now (its namespace id), while the tree is built. */
  private readonly forChildren = new Map<number, number>();

  constructor(tasks: readonly PidTask[]) {
    for (const t of tasks) this.byPid.set(t.pstree.pid, t);
    for (const t of tasks) {
      const p = t.pstree;
      const d = p.cryoNsPids.length;
      if (p.cryoNsTids.length !== d * p.threads.length) {
        throw new CryoError(`bad image: task ${p.pid} has ${p.cryoNsTids.length} nested thread ids for ${p.threads.length} thread(s) at ${d} level(s)`);
      }
      const ns = this.nsOf(t);
      // A zombie has no ids (nor a namespace to make but its own, gone with it).
      if (d === 0 || p.cryoNsPids[d - 1] !== 1 || ns === undefined) continue;
      const parent = this.byPid.get(p.ppid);
      if (!parent || parent.pstree.cryoNsPids.length !== d - 1) {
        throw new CryoError(`bad image: task ${p.pid}, the init of a nested pid namespace, has no parent one level above it`);
      }
      if (this.inits.has(ns)) throw new CryoError(`bad image: pid namespace ${ns} has two inits`);
      this.inits.set(ns, p.pid);
      this.parentNs.set(ns, this.nsOf(parent)!);
    }
    for (const t of tasks) {
      const ns = this.nsOf(t);
      if (t.pstree.cryoNsPids.length && ns !== undefined && !this.inits.has(ns)) {
        throw new CryoError(`bad image: task ${t.pstree.pid} is in nested pid namespace ${ns}, whose init is not in the images`);
      }
      const next = t.core.ids?.cryoPidForChildrenNsId;
      if (next && next !== ns && !this.inits.has(next)) throw new CryoError(`bad image: task ${t.pstree.pid}'s children are to be born in pid namespace ${next}, which is not nested in the tree's`);
    }
  }

  /** Does the tree have any nested pid namespace? */
  get nested(): boolean {
    return this.inits.size > 0;
  }

  private nsOf(t: PidTask): number | undefined {
    return t.core.ids?.pidNsId;
  }

  /** The task's pids, the root namespace's first. */
  levels(pid: number): number[] {
    const p = this.byPid.get(pid)!.pstree;
    return [p.pid, ...p.cryoNsPids];
  }

  /** Thread `tid`'s ids, the root namespace's first. */
  tidLevels(pid: number, tid: number): number[] {
    const p = this.byPid.get(pid)!.pstree;
    const d = p.cryoNsPids.length;
    const i = p.threads.indexOf(tid);
    return [tid, ...p.cryoNsTids.slice(i * d, (i + 1) * d)];
  }

  /** How many levels below the root's pid namespace the task is. */
  depth(pid: number): number {
    return this.byPid.get(pid)?.pstree.cryoNsPids.length ?? 0;
  }

  /**
   * Task `imgPid` (the root namespace's number) as task `of` sees it: 0 where it
   * is outside `of`'s namespace (what getsid() and the like then say).
   */
  view(of: number, imgPid: number): number {
    const d = this.depth(of);
    if (d === 0 || imgPid === 0) return imgPid;
    const x = this.byPid.get(imgPid);
    const own = this.nsOf(this.byPid.get(of)!);
    if (!x || own === undefined) return 0;
    // Visible when `of`'s namespace is x's or an ancestor of it.
    for (let n = this.nsOf(x); n !== undefined; n = this.parentNs.get(n)) {
      if (n === own) return x.pstree.cryoNsPids[d - 1] ?? 0;
      if (!this.inits.has(n)) break;
    }
    return 0;
  }

  /**
   * The task's session or process group as it sees it (what getsid() and
   * getpgid() say): the images' own number at its level where they have it
   * (cryo_ns_sids/pgids, also for a gone leader), else the leader's there.
   */
  seen(pid: number, which: 'sid' | 'pgid'): number {
    const p = this.byPid.get(pid)!.pstree;
    const d = p.cryoNsPids.length;
    const levels = which === 'sid' ? p.cryoNsSids : p.cryoNsPgids;
    if (d > 0 && levels.length === d) return levels[d - 1]!;
    return this.view(pid, p[which]);
  }

  /**
   * The pids of a helper standing in for the gone leader of the task's session
   * or group, the root namespace's first: the leader's at each of the task's
   * levels, so in the task's own namespace. Undefined where it was of one above
   * (or the images do not say).
   */
  helperLevels(pid: number, which: 'sid' | 'pgid'): number[] | undefined {
    const p = this.byPid.get(pid)!.pstree;
    const d = p.cryoNsPids.length;
    if (d === 0) return [p[which]];
    const levels = which === 'sid' ? p.cryoNsSids : p.cryoNsPgids;
    return levels.length === d && levels.every((v) => v > 0) ? [p[which], ...levels] : undefined;
  }

  /** Before a helper of `c` (a stand-in for its leader) is cloned by `forker` (task `from`): where the forker sees it. */
  prepareHelper(forker: Remote, from: PidTask, c: PidTask, made: ReadonlyMap<number, Remote>): number {
    const want = this.nsOf(c);
    if (this.nested && want !== undefined) this.bearIn(forker, from, want, made);
    return this.depth(from.pstree.pid);
  }

  /** Is the task the init of a nested pid namespace? */
  isInit(pid: number): boolean {
    const p = this.byPid.get(pid)?.pstree;
    return p !== undefined && p.cryoNsPids.at(-1) === 1;
  }

  /**
   * Before `forker` (task `from`) clones task `c`: the clone flag and the level at
   * which the forker sees it. A nested namespace's init is made with
   * CLONE_NEWPID; a task of a namespace other than the forker's is born in it
   * after the forker joins it.
   */
  prepare(forker: Remote, from: PidTask, c: PidTask, made: ReadonlyMap<number, Remote>): { flags: number; seenAt: number } {
    const seenAt = this.depth(from.pstree.pid);
    if (!this.nested) return { flags: 0, seenAt };
    const d = this.depth(c.pstree.pid);
    const want = this.nsOf(c);
    if (want === undefined || this.nsOf(from) === undefined) {
      // A zombie has no ids: born in its forker's namespace, or as the init of one below it.
      if (d === seenAt) return { flags: 0, seenAt };
      if (d === seenAt + 1 && this.isInit(c.pstree.pid)) return { flags: CLONE.NEWPID, seenAt };
      throw new CryoError(`task ${c.pstree.pid}: a zombie in a pid namespace its parent ${from.pstree.pid} is not in, which cryo cannot restore yet`);
    }
    const init = this.inits.get(want) === c.pstree.pid;
    // The init's namespace is made in the one above it; any other task is born in its own.
    this.bearIn(forker, from, init ? this.parentNs.get(want)! : want, made);
    return { flags: init ? CLONE.NEWPID : 0, seenAt };
  }

  /** Once the task has made its children: it bears them in its own namespace again (CLONE_THREAD wants that for its threads). */
  afterChildren(rem: Remote, t: PidTask, made: ReadonlyMap<number, Remote>): void {
    const own = this.nsOf(t);
    if (this.nested && own !== undefined) this.bearIn(rem, t, own, made);
  }

  /** Once its threads exist: each bears its children where it did (unshare(CLONE_NEWPID) or setns). */
  finish(rems: readonly Remote[], t: PidTask, made: ReadonlyMap<number, Remote>): void {
    const next = t.core.ids?.cryoPidForChildrenNsId;
    if (!next || next === this.nsOf(t)) return;
    for (const r of rems) this.join(r, t, next, made);
  }

  /** Make task `t` bear its next children in namespace `ns`, where it does not yet. */
  private bearIn(rem: Remote, t: PidTask, ns: number, made: ReadonlyMap<number, Remote>): void {
    if ((this.forChildren.get(t.pstree.pid) ?? this.nsOf(t)) === ns) return;
    this.join(rem, t, ns, made);
    this.forChildren.set(t.pstree.pid, ns);
  }

  /** setns of `rem` (task `t` or a thread of it) to a pidfd of a task in namespace `ns`: the task itself, or the init. */
  private join(rem: Remote, t: PidTask, ns: number, made: ReadonlyMap<number, Remote>): void {
    const holder = ns === this.nsOf(t) ? t.pstree.pid : this.inits.get(ns);
    if (holder === undefined || !made.has(holder)) {
      throw new CryoError(`task ${t.pstree.pid}: its children are born in pid namespace ${ns}, whose init is not made yet: cryo cannot restore this tree's pid namespaces in that order`);
    }
    const vpid = this.view(t.pstree.pid, holder);
    if (!vpid) throw new CryoError(`bad image: task ${t.pstree.pid} bears children in pid namespace ${ns}, which is not below its own`);
    const fd = rem.call('pidfd_open', NR.pidfd_open, vpid, 0);
    try {
      rem.call('setns(CLONE_NEWPID)', NR.setns, fd, CLONE.NEWPID);
    } finally {
      rem.call('close', NR.close, fd);
    }
  }
}
