// The restore pipeline: read and check every image, create the tasks with their
// pids, rebuild each one, then let them all go at once. A failure kills whatever
// was created; the images are only ever read.
import { closeSync, existsSync, fstatSync, openSync, statSync, writeFileSync } from 'node:fs';
import type { Context } from './context.js';
import { CryoError } from './context.js';
import {
  ImageDir, ImageError, isZombieState, TASK_STOPPED, VMA_AREA_SYSVIPC, type UtsnsEntry, type TimensEntry,
  type InventoryEntry,
  ThreadCoreEntrySchema, isFieldSet, StatsEntrySchema, RestoreStatsEntrySchema, create,
} from './images/index.js';
import { netlink, O, CAP, CLONE, NR, SIG, SysError, EEXIST, hasCap, kill, ptrace, waitpid, decodeWaitStatus, ipc, Regs } from './sys/index.js';
import type { Remote } from './tracer/remote.js';
import type { MemIO } from './tracer/memio.js';
import { RemoteError, TaskGoneError } from './tracer/remote.js';
import { entryToGpregs, entryToXstate, readXstate } from './objects/regs.js';
import { buildTree, sharesFdTable, stopSignal } from './restore/tree.js';
import { spawnSeed, startRoot, startRootInUserns, cloneTask, killAll, killAndReap, type Root } from './tracer/seed.js';
import { IdView, loadUserNs, ownersToHost, writeUserNsMaps, type UserNs } from './objects/userns.js';
import { restoreLocks } from './objects/files/locks.js';
import { filesPlaced, holdKindCleanups, kindsBeforeResume, openFileEntry, reownFile } from './objects/files/fds.js';
import { inflightHomes } from './objects/files/inflight.js';
import { skQueuesOf } from './objects/files/unix-restore.js';
import { restoreCtty, restoreTtyPgrps, boundPtysOf } from './objects/files/pty.js';
import { CgroupRestore, cgSetOf } from './objects/cgroup-restore.js';
import { restoreNamespaces } from './objects/namespaces.js';
import { PidLevels } from './restore/pidns.js';
import { enterTaskNetNs, makeSubNetns, subNetnsIds } from './objects/netns-tree.js';
import { loadUtsNs, restoreUtsNs } from './objects/utsns.js';
import { loadTimeNs, restoreTimeNs } from './objects/timens.js';
import { checkJoinNs, enterJoinedNs, type JoinedNs } from './objects/joinns.js';
import { writeStats } from './stats.js';
import { loadNetNs, madeEmpty, restoreNetNs, restoreNetnsFirewall, TreeNetns, type NetnsImages } from './objects/netns.js';
import { attachedTunDevices } from './objects/files/tunfile.js';
import { checkLsm } from './objects/lsm.js';
import { closeMntNs, commonMount, enterTaskMntNs, loadMntNs, mountLateProc, readOnlyAtLast, restoreMntNs, type MadeMntNs, type MntNsImages } from './objects/mntns/restore.js';
import { loadIpcNs, restoreIpcNs, finishIpcNs, checkAttachments, attachSpan, type IpcNsImages } from './objects/ipcns.js';
import { runAction } from './actions.js';
import { validateImages } from './restore/validate.js';
import { execCommand } from './sys/exec.js';
import { planTcpRestore, type TcpRestorePlan } from './objects/files/tcp-plan.js';
import { lockMethodOf, unlockNetnsRules } from './objects/netlock.js';
import { MemfdInodes } from './objects/files/memfd.js';
import { ShmemObjects, readPagemap } from './objects/shmem.js';
import { FI, faultInjected, injectFailure } from './fault.js';
import { restoreMemory, restoreFiles, type TaskImages, type RestoreShared, type Handles } from './restore/task.js';
import { restoreStage, type RestoredThread, type TaskRestore } from './objects/task-state.js';
import { loadImages, type Loaded } from './restore/load.js';

/** The flags glibc's pthread_create passes to clone. */
const THREAD_FLAGS = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM;

/** (uid_t)-1: leave that id as it is. */
const KEEP = 0xffffffff;

/** shmget in the root (still root, its credentials come later), as the segment's creator cuid/cgid. */
function rootShmget(rem: Remote, key: number, size: bigint, flags: number, d: { cuid: number; cgid: number }): number {
  const as = d.cuid !== 0 || d.cgid !== 0;
  if (as) rem.call('setresgid', NR.setresgid, KEEP, d.cgid, KEEP);
  if (as) rem.call('setresuid', NR.setresuid, KEEP, d.cuid, KEEP);
  try {
    return Number(rem.call('shmget', NR.shmget, key, size, flags));
  } finally {
    if (as) rem.call('setresuid', NR.setresuid, KEEP, 0, KEEP);
    if (as) rem.call('setresgid', NR.setresgid, KEEP, 0, KEEP);
  }
}

/**
 * SysV attachments (VMA_AREA_SYSVIPC) need the segments of the tree's own ipc
 * namespace; CRIU refuses them in any other at dump, cryo's images never have them.
 */
function checkSysvAttachments(tasks: TaskImages[], ipcImg: IpcNsImages | undefined): void {
  const segments = new Map(ipcImg?.shm.map((s) => [BigInt(s.e.desc!.id), attachSpan(s.e)]) ?? []);
  for (const t of tasks) {
    const v = t.mm?.vmas.find((x) => x.status & VMA_AREA_SYSVIPC);
    if (!v) continue;
    if (!ipcImg) throw new CryoError(`bad image: mm-${t.pstree.pid}.img: VMA 0x${v.start.toString(16)} is SysV shared memory, but the tree has no ipc namespace of its own in the images`);
    checkAttachments(`bad image: mm-${t.pstree.pid}.img`, t.mm!.vmas, segments);
  }
}

// The fds cryo held for the restore (never the --inherit-fd ones: they are the caller's).
function closeAll(fds: Iterable<number>): void {
  for (const fd of fds) closeSync(fd);
}

/** What cryo cannot restore with the capabilities it runs with, said before anything is made. */
function refuseBeyondPower(l: Loaded): void {
  if (hasCap(CAP.SYS_ADMIN)) return;
  for (const t of l.tasks) {
    for (const [tid, c] of [[t.pstree.pid, t.core] as const, ...t.threadCores]) {
      if (c.threadCore?.seccompMode) throw new CryoError(`task ${tid} ran under seccomp: restoring it needs CAP_SYS_ADMIN (PTRACE_O_SUSPEND_SECCOMP)`);
    }
  }
}

/**
 * One fd table (files_id) is restored by sharing it from parent to child (CLONE_FILES),
 * as CRIU does: tasks that share one but not along that line cannot come back so.
 */
function checkFdTables(l: Loaded): void {
  const byPid = new Map(l.tasks.map((t) => [t.pstree.pid, t]));
  const owner = new Map<number, number>();
  for (const t of l.tasks) {
    if (!t.core.ids || isZombieState(t.core.tc?.taskState)) continue;
    const id = t.core.ids.filesId;
    const first = owner.get(id);
    if (first === undefined) {
      owner.set(id, t.pstree.pid);
      continue;
    }
    const parent = byPid.get(t.pstree.ppid);
    if (!parent || !sharesFdTable(t, parent)) {
      throw new CryoError(`task ${t.pstree.pid} shares its fd table (files_id ${id}) with task ${first} but not with its parent: cryo cannot restore that`);
    }
  }
}

/** Each proc of a nested pid namespace, mounted by a live task of it in the mount's namespace (its init if it is one). */
function mountLateProcs(imgs: readonly MntNsImages[], tasks: Loaded['tasks'], rems: ReadonlyMap<number, Remote>): void {
  for (const img of imgs) {
    for (const e of img.late) {
      const by = tasks.filter((t) => rems.has(t.pstree.pid) && t.core.ids?.pidNsId === e.cryoProcPidNs && t.core.ids.mntNsId === img.nsId)
        .sort((a, b) => Number(b.pstree.cryoNsPids.at(-1) === 1) - Number(a.pstree.cryoNsPids.at(-1) === 1))[0];
      if (!by) throw new CryoError(`mount ${e.mntId} at ${e.mountpoint} is a proc of pid namespace ${e.cryoProcPidNs}, which no task of mount namespace ${img.nsId} is in to mount it`);
      mountLateProc(rems.get(by.pstree.pid)!, e);
    }
  }
}

/** `cryo restore`: returns the process exit code. */
export async function runRestore(ctx: Context): Promise<number> {
  const { rootPid } = restoreTree(ctx);
  if (ctx.opts.execCmd) execCommand(ctx.opts.execCmd);
  if (ctx.opts.restoreDetached) return 0;
  // Like CRIU without -d: wait for the root and report how it ended.
  const { status } = waitpid(rootPid, 0);
  const ws = decodeWaitStatus(status);
  if (ws.exited !== undefined) return ws.exited;
  return 128 + (ws.signaled ?? 0);
}

/** An action point after which failing changes nothing: logged, not thrown. */
function lateAction(ctx: Context, action: 'pre-resume' | 'post-resume', rootPid: number): void {
  try {
    runAction(ctx, action, { rootPid });
  } catch (e) {
    ctx.log.error((e as Error).message);
  }
}

/** Restore the tree of the images; returns the root's pid as cryo sees it. */
export function restoreTree(ctx: Context): { rootPid: number } {
  const { opts, log } = ctx;
  const t0 = performance.now();
  if (!existsSync(opts.imagesDir) || !statSync(opts.imagesDir).isDirectory()) {
    throw new CryoError(`images directory ${opts.imagesDir} does not exist`);
  }
  runAction(ctx, 'pre-restore');
  const dir = ImageDir.open(opts.imagesDir, { write: false });
  const cl = ctx.cleanup;
  cl.always('the images directory', () => dir.close());
  let loaded: Loaded;
  let cg: CgroupRestore | null;
  let nsFlags: number;
  let pids: PidLevels;
  let utsImg: UtsnsEntry | undefined;
  let timeImg: TimensEntry | undefined;
  let joined: JoinedNs[] = [];
  let joinFlags = 0;
  let ownNetns = false;
  let inv: InventoryEntry | undefined;
  let ipcImg: IpcNsImages | undefined;
  let tcpPlan: TcpRestorePlan;
  let netImg: NetnsImages | undefined;
  let subNetImgs: NetnsImages[] = [];
  let mntImgs: MntNsImages[] | undefined;
  let userns: UserNs | undefined;
  try {
    loaded = loadImages(dir, opts.deprecated);
    inv = dir.readOne('inventory');
    // The dump locked the tree's own network namespace whole, no connection by itself (as CRIU):
    // taken out where the tree is restored.
    ownNetns = inv.rootIds !== undefined && loaded.tasks[0]!.core.ids?.netNsId !== inv.rootIds.netNsId;
    tcpPlan = planTcpRestore(inv, loaded.files.values(), opts, loaded.tasks[0]!.pstree.pid, ownNetns);
    // Paths are CRIU's keys without the leading slash; accept either spelling.
    const inheritKeys = new Set(opts.inheritFd.map(({ key }) => key.replace(/^\//, '')));
    validateImages(dir, loaded, { inherited: inheritKeys, extUnixSk: opts.extUnixSk });
    refuseBeyondPower(loaded);
    checkLsm(opts.lsmProfile, inv.lsmtype, loaded.tasks.flatMap((t) => [{ tid: t.pstree.pid, core: t.core }, ...[...t.threadCores].map(([tid, core]) => ({ tid, core }))]), log);
    // Namespaces of the tree's own: the root's, pid namespaces nested in its (PidLevels), its other mount and network namespaces.
    const dumper = inv.rootIds;
    nsFlags = restoreNamespaces(dumper, loaded.tasks.map((t) => ({ pid: t.pstree.pid, ppid: t.pstree.ppid, nested: t.pstree.cryoNsPids.length > 0, ...(t.core.ids ? { ids: t.core.ids } : {}) })));
    pids = new PidLevels(loaded.tasks);
    if (!dumper && loaded.tasks[0]!.pstree.pid === 1) nsFlags = CLONE.NEWPID; // images without the dumper's ids
    // --join-ns: namespaces given, entered as they are; none of those kinds is made or filled from the images.
    ({ joined, flags: joinFlags } = checkJoinNs(opts.joinNs, opts.emptyNs));
    nsFlags &= ~joinFlags;
    const rootIds = loaded.tasks[0]!.core.ids!;
    if (nsFlags & CLONE.NEWUSER) {
      userns = loadUserNs(dir, rootIds.userNsId);
      ownersToHost(userns.view, [
        ...[...loaded.files.values()].flatMap((e) => (e.usk?.filePerms ? [{ what: `the name of unix socket ${e.usk.ino} (file id ${e.id})`, ids: e.usk.filePerms }] : [])),
        ...loaded.memfdInodes.map((m) => ({ what: `memfd ${m.name}`, ids: m })),
        ...loaded.remaps.ghostOwners().map((g) => ({ what: `ghost file ${g.remapId}`, ids: g.ids })),
      ], 'the images');
    }
    if (nsFlags & CLONE.NEWUTS) utsImg = loadUtsNs(dir, rootIds.utsNsId);
    if (nsFlags & CLONE.NEWTIME) timeImg = loadTimeNs(dir, rootIds.timeNsId);
    if (nsFlags & CLONE.NEWNS) {
      // Every mount namespace of the tree, the root's first (each task's mnt_ns_id names its own).
      const mntIds = [...new Set([rootIds.mntNsId, ...loaded.tasks.flatMap((t) => (t.core.ids ? [t.core.ids.mntNsId] : []))])];
      mntImgs = loadMntNs(dir, mntIds, { root: opts.root, external: opts.external, autoExtMnt: opts.autoExtMnt });
    }
    else if (opts.root !== undefined) throw new CryoError('--root is given but the images hold no mount namespace of the tree: not supported yet');
    if (nsFlags & CLONE.NEWIPC) ipcImg = loadIpcNs(dir, rootIds.ipcNsId, (shmid) => readPagemap(dir, 'shmemPagemap', shmid));
    if (nsFlags & CLONE.NEWNET) {
      // The tree's other network namespaces, made and filled as the root's (veths may join them).
      const subIds = subNetnsIds(loaded.tasks, loaded.files.values(), rootIds.netNsId, dumper?.netNsId);
      const treeNs = new Set([rootIds.netNsId, ...subIds]);
      netImg = loadNetNs(dir, rootIds.netNsId, (opts.emptyNs & CLONE.NEWNET) !== 0, opts.external, `task ${loaded.tasks[0]!.pstree.pid}`, attachedTunDevices(loaded.files.values(), rootIds.netNsId), treeNs);
      subNetImgs = subIds.map((id) => loadNetNs(dir, id, false, opts.external, `network namespace ${id}`, attachedTunDevices(loaded.files.values(), id), treeNs));
    }
    checkSysvAttachments(loaded.tasks, ipcImg);
    checkFdTables(loaded);
    cg = CgroupRestore.load(dir, opts, log);
    const c = cg;
    if (c) cl.always('the cgroup hierarchies open', () => c.close());
    cg?.checkSets(loaded.tasks);
    // The roots of a cgroup namespace of the tree's own are in cgroup.img; with none the namespace cannot be made right.
    if (nsFlags & CLONE.NEWCGROUP && !cg) {
      throw new CryoError(opts.unprivileged ? 'the tree is in a cgroup namespace of its own, which an unprivileged restore cannot make'
        : opts.manageCgroups === 'ignore' ? 'the tree is in a cgroup namespace of its own, rooted at its groups: restoring it needs --manage-cgroups (a mode other than ignore)'
        : 'bad image: the tree is in a cgroup namespace of its own, but cgroup.img has no sets (its roots)');
    }
  } catch (e) {
    cl.unwind(log);
    if (ImageError.is(e)) throw new CryoError(`bad image: ${e.message}`);
    throw e;
  }
  // A tree whose root was the init of a pid namespace gets a new one, where its pids are free.
  const newPidns = (nsFlags! & CLONE.NEWPID) !== 0;
  const taken = (newPidns ? [] : loaded.tasks).find((t) => existsSync(`/proc/${t.pstree.pid}`));
  // Files of dead processes' /proc directories: their pids, taken for a moment by processes of cryo's.
  const dead = loaded.remaps.deadPids();
  const deadTaken = newPidns ? undefined : dead.find((pid) => existsSync(`/proc/${pid}`));
  if (taken || deadTaken !== undefined) {
    cl.unwind(log);
    if (taken) throw new CryoError(`pid ${taken.pstree.pid} is already in use`, 1, EEXIST);
    throw new CryoError(`pid ${deadTaken} is already in use (a task held a file of that dead process's /proc directory)`, 1, EEXIST);
  }

  const inherited = new Map<string, { fd: number; used: boolean }>();
  for (const { fd, key } of opts.inheritFd) {
    try {
      fstatSync(fd);
    } catch {
      cl.unwind(log);
      throw new CryoError(`--inherit-fd fd[${fd}]:${key}: fd ${fd} is not open in cryo`);
    }
    // Paths are CRIU's keys without the leading slash; accept either spelling.
    inherited.set(key.replace(/^\//, ''), { fd, used: false });
  }
  // An external network namespace (--external net[INO]:KEY at dump) is joined, given with --inherit-fd fd[N]:KEY.
  const extNet = netImg?.netns?.extKey || undefined;
  let extNetFd: number | undefined;
  if (extNet !== undefined) {
    const given = inherited.get(extNet);
    if (!given) {
      cl.unwind(log);
      throw new CryoError(`the tree's network namespace was dumped as external (${extNet}): give it with --inherit-fd fd[N]:${extNet}`);
    }
    given.used = true;
    extNetFd = given.fd;
    nsFlags! &= ~CLONE.NEWNET;
  }
  let netns: TreeNetns | undefined;
  const subNetns = new Map<number, TreeNetns>();
  const closeNetns = () => {
    netns?.close();
    for (const n of subNetns.values()) n.close();
  };
  const sh: RestoreShared = {
    netnsFd: (nsId) => subNetns.get(nsId)?.fd,
    kdat: ctx.kdat,
    ids: userns?.view ?? IdView.SAME,
    inherited,
    files: loaded.files,
    shellJob: opts.shellJob,
    orphanPtsMaster: opts.orphanPtsMaster && ctx.notify ? (fd) => ctx.notify!('orphan-pts-master', { fd }) : undefined,
    kinds: loaded.kinds,
    remaps: loaded.remaps,
    memfds: new MemfdInodes(loaded.memfdInodes, loaded.memfdContents, (id) => sh.pagesFd(id), (shmid) => (sh.shmem.has(shmid) ? sh.shmem.fd(shmid) : undefined)),
    shmem: new ShmemObjects(loaded.shmemShapes, loaded.shmemContents, (id) => sh.pagesFd(id)),
    hostPid: (vpid) => rems.get(vpid)?.pid ?? vpid,
    nsHolder: (field, nsId) => {
      const t = loaded.tasks.find((x) => x.core.ids?.[field] === nsId && rems.has(x.pstree.pid));
      return t ? rems.get(t.pstree.pid)!.pid : undefined;
    },
    deadPidfds: new Map(),
    spawnTemp: () => spawnSeed(0, false),
    afterPlanted: new Set(),
    inflightAt: inflightHomes(loaded.tasks.map((t) => ({ pid: t.pstree.pid, fdinfo: t.fdinfo })), skQueuesOf(loaded.kinds)),
    unix: { extUnixSk: opts.extUnixSk, ...(mntImgs ? { mountpoints: new Map(mntImgs.flatMap((i) => i.order).map((m) => [m.mntId, m.mountpoint])) } : {}) },
    tcpEstablished: opts.tcpEstablished,
    tcpClose: opts.tcpClose,
    inetLate: [],
    openId(id, task) {
      let fd = sh.opened.get(id);
      if (fd === undefined) {
        const fe = sh.files.get(id);
        if (!fe) throw new CryoError(`file id ${id} is missing from files.img`);
        fd = openFileEntry(fe, sh, task);
        sh.opened.set(id, fd);
        const held = fd;
        cl.always(`file ${id}, opened`, () => closeSync(held));
      }
      return fd;
    },
    opened: new Map(),
    log,
    pagesFd(id) {
      let fd = pagesFds.get(id);
      if (fd === undefined) {
        fd = dir.openPages(id, 'r');
        pagesFds.set(id, fd);
        const held = fd;
        cl.always(`pages-${id}.img`, () => closeSync(held));
      }
      return fd;
    },
  };
  const pagesFds = new Map<number, number>();
  // Ghost files of a tree with its own mount namespace are made in it, from its root.
  sh.remaps.root = (mntId) => sh.mntNsOf?.(mntId)?.root ?? sh.nsRoot;
  // What the kinds make in cryo as they go (each fd kind puts its own: pipe ends,
  // pty pairs, unix sockets...); pidfds of dead processes, memfds, shared memory.
  holdKindCleanups(sh.kinds, cl, sh);
  // cryo's fds of the tree's mount namespaces and their roots (the root's is nsRoot).
  let mntMade: Map<number, MadeMntNs> | undefined;
  cl.always("the fds of the tree's mount namespaces", () => {
    for (const m of mntMade?.values() ?? []) closeMntNs(m);
  });
  cl.always('pidfds of dead processes', () => closeAll([...sh.deadPidfds.values()].flatMap((m) => [...m.values()])));
  cl.always('shared memory made', () => sh.shmem.close());
  // Pids below are the tree's own (as in the images); Remote.pid is cryo's view.
  const created: number[] = [];
  const rems = new Map<number, Remote>();
  const root = loaded.tasks[0]!.pstree.pid;
  let pagesRestored = 0;
  let forkingUs = 0;
  if (cg) {
    const c = cg;
    cl.onFailure('cgroups made', () => c.undo());
  }
  cl.onFailure('tasks made', () => killAll(created));
  try {
    cg?.prepare();
    const tFork = performance.now();
    // The root is born in the namespace of the thread that clones it: the external one, if any.
    // A new time namespace is not one to clone into: its offsets must be set before a task is in it (restoreTimeNs).
    // Nor a cgroup one: it is rooted where the root is when it unshares it, in its groups' roots.
    const cloneNs = nsFlags! & ~(CLONE.NEWTIME | CLONE.NEWCGROUP);
    const start = (): Root => {
      if (!userns) return startRoot(root, opts.restoreSibling, cloneNs);
      const uns = userns;
      // With setgroups denied no task inside can set its groups: the root is born with them.
      const c = loaded.tasks[0]!.core.threadCore?.creds;
      const groups = uns.setgroupsDeny ? (c?.groups ?? []).map((g) => uns.view.hostGid(g, `task ${root}: its supplementary groups`)) : [];
      const r = startRootInUserns(root, cloneNs & ~CLONE.NEWUSER, groups, (pid) => writeUserNsMaps(pid, uns), opts.restoreSibling);
      // The donor of cryo's fds goes once the tree is built (or not).
      cl.always('the fd donor in the tree\'s user namespace', () => {
        r.close?.();
        killAndReap(r.donor);
      });
      return r;
    };
    const root0 = extNetFd === undefined ? start() : netlink.inNetns(extNetFd, start);
    created.push(root0.rem.pid);
    // A dead process's /proc files are of the tree's pid namespace: its stand-in is made there.
    if (newPidns && dead.length) {
      const spawn = loaded.remaps.spawnAs;
      const pidns = `/proc/${root0.rem.pid}/ns/pid`;
      loaded.remaps.spawnAs = (pid) => ipc.inNamespace(pidns, 'pid', () => spawn(pid));
    }
    enterJoinedNs(root0.rem, joined);
    if (timeImg) restoreTimeNs(root0.rem, timeImg);
    // As CRIU's: the root dies before it has made its children.
    if (faultInjected(FI.RESTORE_ROOT_ONLY)) kill(root0.rem.pid, SIG.KILL);
    if (nsFlags! & CLONE.NEWCGROUP) {
      cg!.enterCgnsRoots(root0.rem.pid, root, cgSetOf(loaded.tasks[0]!.core));
      root0.rem.call('unshare(CLONE_NEWCGROUP)', NR.unshare, CLONE.NEWCGROUP);
    }
    cg?.enterTask(root0.rem.pid, root, cgSetOf(loaded.tasks[0]!.core), cg.criuSetId);
    const h: Handles = { cryoPidfd: root0.cryoPidfd };
    rems.set(root, root0.rem);
    // Its mount namespace first: every path of the images is in it.
    if (mntImgs) {
      const made = restoreMntNs(root0.rem, root0.cryoPidfd, mntImgs, log, boundPtysOf(sh.kinds), sh.ids, loaded.remaps.mounts());
      mntMade = made;
      sh.nsRoot = made.get(mntImgs[0]!.nsId)!.root;
      sh.nsPid = root0.rem.pid;
      // A file's paths are those of its mount's namespace.
      const nsOf = mntImgs[0]!.nsOf;
      sh.mntNsOf = (mntId) => {
        const nsId = mntId === undefined || mntId < 0 ? undefined : nsOf.get(mntId);
        const m = nsId === undefined ? undefined : made.get(nsId);
        return m && nsId !== undefined ? { ...m, nsId } : undefined;
      };
      const imgs = mntImgs;
      sh.remaps.common = (aMnt, a, bMnt, b) => {
        const c = commonMount(imgs, aMnt, a, bMnt, b);
        return c && { root: made.get(c.nsId)!.root, a: c.a, b: c.b };
      };
    }
    // The root's new uts and ipc namespaces get their state before any task uses them.
    let making = 'uts';
    try {
      if (utsImg) restoreUtsNs(`/proc/${root0.rem.pid}/ns/uts`, utsImg);
      making = 'ipc';
      if (ipcImg) restoreIpcNs(`/proc/${root0.rem.pid}/ns/ipc`, ipcImg, (id) => sh.pagesFd(id), log, (key, size, flags, d) => rootShmget(root0.rem, key, size, flags, d), sh.ids);
      making = 'net';
      if (netImg) {
        netns = new TreeNetns(`/proc/${root0.rem.pid}/ns/net`);
        // Every one made first: a veth's ends may be in two of them.
        for (const img of subNetImgs) subNetns.set(img.id, makeSubNetns(root0.rem, root0.cryoPidfd));
        const lock = ownNetns ? { lock: { method: lockMethodOf(inv!.networkLockMethod) ?? 'skip', runId: inv!.dumpCriuRunId } } : {};
        const env = { dir, log, weakSysctls: opts.weakSysctls, external: opts.external, netnsFd: (id: number) => subNetns.get(id)?.fd ?? (id === netImg!.id ? netns!.fd : undefined), made: new Set<string>(), ...lock };
        restoreNetNs(netns.fd, netImg, env);
        for (const img of subNetImgs) {
          making = `net ${img.id}`;
          restoreNetNs(subNetns.get(img.id)!.fd, img, env);
        }
      } else if (joinFlags & CLONE.NEWNET) {
        netns = new TreeNetns(`/proc/${root0.rem.pid}/ns/net`); // its sockets are made there
      }
    } catch (e) {
      if (SysError.is(e)) throw new CryoError(`restore failed: the root's new ${making} namespace: ${e.message}`);
      throw e;
    }
    if (newPidns || userns || utsImg || ipcImg || netImg || mntImgs) {
      runAction(ctx, 'setup-namespaces', { rootPid: root0.rem.pid });
      runAction(ctx, 'post-setup-namespaces', { rootPid: root0.rem.pid });
    }
    // The mount namespace each task made so far is in: born in its forker's, it enters its own (as CRIU's restore_task_mnt_ns).
    const mntNow = new Map<number, number>(mntImgs ? [[root, mntImgs[0]!.nsId]] : []);
    // And the network namespace, where the tree has several.
    const netNow = new Map<number, number>([[root, loaded.tasks[0]!.core.ids!.netNsId]]);
    const netMade = new Map<number, TreeNetns>(netns && subNetns.size ? [[loaded.tasks[0]!.core.ids!.netNsId, netns], ...subNetns] : []);
    // Each task's memory before it forks its children: they get it from it, shared copy-on-write.
    const byPid = new Map(loaded.tasks.map((t) => [t.pstree.pid, t]));
    const stages = new Map<number, TaskRestore>();
    buildTree(loaded.tasks, rems, created, log, pids!, (rem, sid) => restoreCtty(rem, sid, sh, h.cryoPidfd),
      (rem, c, p) => {
        cg?.enterTask(rem.pid, c.pstree.pid, cgSetOf(c.core), cgSetOf(p.core));
        if (mntMade) enterTaskMntNs(rem, c, p, mntNow, mntMade, h.cryoPidfd);
        if (netMade.size) enterTaskNetNs(rem, c, p, netNow, netMade, h.cryoPidfd);
      },
      (rem, t, memFrom) => {
        const img = byPid.get(t.pstree.pid)!;
        const tr: TaskRestore = { rem, img, sh, h: { cryoPidfd: h.cryoPidfd }, threads: [], filters: loaded.seccomp, sharedFilters: 0 };
        stages.set(t.pstree.pid, tr);
        pagesRestored += restoreMemory(rem, img, sh, tr.h, memFrom && byPid.get(memFrom.pstree.pid));
        restoreStage('memory', tr);
      });
    forkingUs = Math.round((performance.now() - tFork) * 1000);
    if (mntImgs) mountLateProcs(mntImgs, loaded.tasks, rems);
    restoreTtyPgrps(rems, sh, h.cryoPidfd);
    // Tasks sharing one fd table (CLONE_FILES): the first restores it, the last one
    // done closes cryo's pidfd in it.
    const fdTables = new Map<number, { pidfd?: bigint; left: number }>();
    for (const t of loaded.tasks) {
      if (!rems.has(t.pstree.pid)) continue;
      const e = fdTables.get(t.core.ids!.filesId) ?? { left: 0 };
      e.left++;
      fdTables.set(t.core.ids!.filesId, e);
    }
    const finals: Array<{ rem: Remote; regs: Regs; mask: bigint; xstate: Buffer; last: ((mem: MemIO) => void) | undefined }> = [];
    for (const t of loaded.tasks) {
      const rem = rems.get(t.pstree.pid);
      if (!rem) continue; // zombie
      const tr = stages.get(t.pstree.pid)!;
      const table = fdTables.get(t.core.ids!.filesId)!;
      const th: Handles = { cryoPidfd: table.pidfd ?? h.cryoPidfd };
      tr.h = th;
      if (table.pidfd === undefined) {
        // Sockets are made in the tree's network namespace.
        TreeNetns.within(netns, () => restoreFiles(rem, t, sh, th));
        table.pidfd = th.cryoPidfd;
      }
      // As CRIU: locks come back only when asked for with --file-locks.
      if (opts.fileLocks) restoreLocks(rem, loaded.locks.filter((l) => l.pid === t.pstree.pid), (fd) => reownFile(t, fd, sh));
      restoreStage('files', tr);
      restoreStage('task', tr);
      // Threads share everything just rebuilt; each then gets its own state.
      const threads: RestoredThread[] = [];
      for (const [tid, core] of t.threadCores) {
        const thr = cloneTask(rem, pids!.tidLevels(t.pstree.pid, tid), THREAD_FLAGS);
        created.push(thr.pid);
        cg?.enterThread(thr.pid, tid, cgSetOf(core), cgSetOf(t.core));
        thr.borrowScratch(rem);
        threads.push({ rem: thr, core, tid });
      }
      threads.push({ rem, core: t.core, tid: t.pstree.pid });
      pids!.finish(threads.map((x) => x.rem), t, rems);
      tr.threads = threads;
      restoreStage('threads', tr);
      if (--table.left === 0) rem.call('close', NR.close, th.cryoPidfd);
      restoreStage('seccomp', tr);
      restoreStage('creds', tr);
      restoreStage('after-creds', tr);
      restoreStage('final', tr);
      // The leader last: it owns the scratch memory the other threads borrow.
      for (const x of threads) {
        const ti = x.core.threadInfo!;
        // CRIU keeps the leader's mask in tc, each thread's in thread_core (when set).
        const tcore = x.core.threadCore;
        const mask = tcore && isFieldSet(tcore, ThreadCoreEntrySchema.field.blkSigset) ? tcore.blkSigset : x.core.tc?.blkSigset ?? 0n;
        let xstate: Buffer;
        try {
          xstate = entryToXstate(ti.fpregs!, readXstate(x.rem.pid), ctx.kdat.xsaveLayout());
        } catch (e) {
          throw new CryoError(`restore failed: thread ${x.tid} of task ${t.pstree.pid}: ${(e as Error).message}`);
        }
        finals.push({ rem: x.rem, regs: entryToGpregs(ti.gpregs!), mask, xstate, last: x.last });
      }
    }
    // Every mapping and fd is in place: seal the memfds, drop the ghost files and links,
    // mark again the segments that go with their last attachment.
    filesPlaced(sh, sh.opened);
    if (mntMade) readOnlyAtLast(mntMade);
    if (ipcImg) finishIpcNs(`/proc/${root0.rem.pid}/ns/ipc`, ipcImg);
    // The connections are there (half-closed ones with their peer's FINs): the firewall of the tree's namespaces.
    if (netImg && netns) {
      restoreNetnsFirewall(netns.fd, netImg, dir);
      for (const img of subNetImgs) restoreNetnsFirewall(subNetns.get(img.id)!.fd, img, dir);
    }
    const rootHost = root0.rem.pid; // the pid file and wait use cryo's view, as CRIU's
    cg?.writeProperties();
    injectFailure(FI.POST_RESTORE, 'before post-restore');
    runAction(ctx, 'post-restore', { rootPid: rootHost });
    // As CRIU: the network lock goes, then every connection (both ends there) leaves repair mode.
    tcpPlan!.unlock(log);
    if (ownNetns && netns) {
      const method = lockMethodOf(inv!.networkLockMethod) ?? 'skip';
      const locked = [...(netImg && madeEmpty(netImg) ? [] : [netns]), ...subNetns.values()];
      for (const ns of locked) netlink.inNetns(ns.fd, () => unlockNetnsRules(method, inv!.dumpCriuRunId, existsSync('/proc/sys/net/ipv6'), log));
    }
    kindsBeforeResume(sh);
    for (const f of finals) f.rem.finishAs(f.regs, f.mask, f.xstate, f.last);
    if (opts.pidfile) writeFileSync(opts.pidfile, String(rootHost));
    lateAction(ctx, 'pre-resume', rootHost);
    cg?.restoreFreezer();
    // --leave-stopped, as CRIU: a SIGSTOP queued while every task is still held
    // stops each before it runs a single instruction of its own. Else tasks that
    // were stopped by job control get their stop signal so, which is the first
    // thing they see once let go.
    if (opts.leaveStopped) for (const r of rems.values()) kill(r.pid, SIG.STOP);
    else for (const t of loaded.tasks) {
      const r = rems.get(t.pstree.pid);
      if (r && t.core.tc?.taskState === TASK_STOPPED) kill(r.pid, stopSignal(loaded.tasks, t, rootHost, log));
    }
    // Let everything go at once, children first so no parent runs ahead of them.
    for (const f of [...finals].reverse()) ptrace.detach(f.rem.pid, 0);
  } catch (e) {
    closeNetns();
    cl.unwind(log);
    tcpPlan!.failed(log);
    if (e instanceof RemoteError || e instanceof TaskGoneError) throw new CryoError(`restore failed: ${e.message}`);
    throw e;
  }
  closeNetns();
  cl.release(log);
  for (const [key, v] of inherited) if (!v.used) log.warn(`--inherit-fd fd[${v.fd}]:${key}: nothing in the images is named ${key}`);
  const rootHost = rems.get(root)!.pid;
  log.info(`restored tree of ${loaded.tasks.length} task(s) rooted at ${root}${newPidns ? ` (pid ${rootHost} here)` : ''} in ${(performance.now() - t0).toFixed(1)} ms`);
  const restoreUs = Math.round((performance.now() - t0) * 1000);
  try {
    writeStats(opts.workDir ?? opts.imagesDir, create(StatsEntrySchema, {
      restore: create(RestoreStatsEntrySchema, { pagesCompared: 0n, pagesSkippedCow: 0n, forkingTime: forkingUs, restoreTime: restoreUs, pagesRestored: BigInt(pagesRestored) }),
    }), 'restore');
  } catch (e) {
    // As CRIU: the tree is restored; only the statistics are lost.
    log.warn(`cannot write stats-restore: ${(e as Error).message}`);
  }
  if (opts.displayStats) {
    // CRIU's display_stats(RESTORE_STATS); cryo compares no pages and skips none for COW.
    const n = (v: number) => `${v} (0x${v.toString(16)})`;
    log.msg('Displaying restore stats:');
    log.msg(`Pages compared: ${n(0)}`);
    log.msg(`Pages skipped COW: ${n(0)}`);
    log.msg(`Pages restored: ${n(pagesRestored)}`);
    log.msg(`Restore time: ${restoreUs} us`);
    log.msg(`Forking time: ${forkingUs} us`);
  }
  lateAction(ctx, 'post-resume', rootHost);
  return { rootPid: rootHost };
}
