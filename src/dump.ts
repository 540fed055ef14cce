// The dump pipeline: freeze the tree, write every image, then kill or resume it.
// Any failure before the end puts every task back exactly as it was.
import { accessSync, closeSync, constants as fsc, existsSync, openSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import type { Context } from './context.js';
import { CryoError } from './context.js';
import {
  ImageDir, create, PstreeEntrySchema, InventoryEntrySchema, StatsEntrySchema, DumpStatsEntrySchema,
  Lsmtype, SeccompEntrySchema, type TaskKobjIdsEntry, type DumpStatsEntry,
} from './images/index.js';
import { FileTable } from './objects/files/table.js';
import { dumpKindCleanup, finishKinds, writeKindImages } from './objects/files/fds.js';
import type { DumpRunEnv } from './objects/files/kind.js';
import { runAction } from './actions.js';
import { peersFirst } from './objects/files/unix.js';
import { releaseTcp } from './objects/files/inet.js';
import { lockTreeConnections } from './objects/files/tcp-lock.js';
import { treeTunFile } from './objects/files/tunfile.js';
import { mqueueDev } from './objects/mqueue.js';
import { NetLock, LOCK_METHOD_CODE, unlockNetnsRules } from './objects/netlock.js';
import { Irmap, loadIrmapCache, saveIrmapCache } from './objects/files/irmap.js';
import { shmemUsedAsFiles } from './objects/mm.js';
import { SeccompTable } from './objects/seccomp.js';
import { checkDumpNamespaces, treeMntNamespaces } from './objects/namespaces.js';
import { CgroupDump } from './objects/cgroup.js';
import { CgroupFreezer } from './objects/cgroup-freezer.js';
import { freezeTree, thawTree, killTree, type FrozenTask } from './dump/freeze.js';
import { dumpTask, taskIds, nsIdOf, type DumpState } from './dump/task.js';
import { writeStats } from './stats.js';
import { DumpTracking } from './objects/track.js';
import { dumpZombie } from './objects/zombie.js';
import { dumpUtsNs } from './objects/utsns.js';
import { dumpUserNs, IdView, ownersToNs, type Owned } from './objects/userns.js';
import { dumpTimeNs } from './objects/timens.js';
import { dumpIpcNs } from './objects/ipcns.js';
import { dumpNetNs, netnsExtKey, TreeNetns } from './objects/netns.js';
import { cloneMountOf, dumpMntNs } from './objects/mntns/dump.js';
import { refuseNsTerminals, ttyOwnersToNs } from './objects/files/ptyns.js';
import { TaskGoneError } from './tracer/remote.js';
import { CLONE, kill, netlink, SIG, SysError } from './sys/index.js';
import { FI, faultInjected } from './fault.js';

const CRTOOLS_IMAGES_V1_1 = 2;

export function checkImagesDir(dir: string): void {
  if (!existsSync(dir)) throw new CryoError(`images directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new CryoError(`images directory ${dir} is not a directory`);
  try {
    accessSync(dir, fsc.W_OK);
  } catch {
    throw new CryoError(`images directory ${dir} is not writable`);
  }
}

/** Files of the dump that cryo makes again itself with their owners (see ownersToNs). */
function ownedFiles(st: DumpState): Owned[] {
  const f = st.files;
  return [
    ...f.entries.flatMap((e) => (e.usk?.filePerms ? [{ what: `the name of unix socket ${e.usk.ino} (file id ${e.id})`, ids: e.usk.filePerms }] : [])),
    ...[...f.ghostFiles.values()].map((g) => ({ what: `a deleted file (ghost ${g.remapId})`, ids: g.head })),
    ...[...f.memfdInodes.values()].map((m) => ({ what: `memfd ${m.entry.name}`, ids: m.entry })),
  ];
}

/** `cryo dump`: returns the process exit code. */
export async function runDump(ctx: Context): Promise<number> {
  const { opts, log } = ctx;
  const root = opts.tree;
  if (!root) throw new CryoError('dump needs the pid of the tree root: -t PID');
  if (!existsSync(`/proc/${root}`)) throw new CryoError(`process ${root} does not exist`);
  checkImagesDir(opts.imagesDir);
  // Without it fds sharing one open file (one offset, one set of flags) would come back as two.
  const kcmpOk = ctx.kdat.kcmpFile();
  if (!kcmpOk.ok) throw new CryoError(`this kernel cannot compare open files (kcmp: ${kcmpOk.why ?? 'no'}); cryo cannot dump without it`);
  runAction(ctx, 'pre-dump');
  const dir = ImageDir.open(opts.imagesDir, { write: true });
  const cl = ctx.cleanup;
  cl.always('the images directory', () => dir.close());

  const workDir = opts.workDir ?? opts.imagesDir;
  const irmap = new Irmap(log, opts.irmapScanPath, loadIrmapCache(workDir, opts.imagesDir, log));

  const tStart = performance.now();
  // Before any task is touched: bad --cgroup-props or --freeze-cgroup fail here.
  let cgroups: CgroupDump | undefined;
  let freezer: CgroupFreezer | undefined;
  let tasks: FrozenTask[];
  try {
    const cg = new CgroupDump(opts, log);
    cgroups = cg;
    cl.always('the cgroups read', () => cg.close());
    const fz = opts.freezeCgroup ? new CgroupFreezer(opts.freezeCgroup, opts.timeout, log) : undefined;
    freezer = fz;
    if (fz) cl.always('the freezer cgroup', () => fz.release());
    tasks = freezeTree(root, log, freezer, opts.timeout);
  } catch (e) {
    cl.unwind(log);
    throw e;
  }
  if (freezer) cgroups.setFreezer(freezer.v2, freezer.origin === 'FROZEN');
  const tFrozen = performance.now();
  let dumpStats: DumpStatsEntry | undefined;
  let netns: TreeNetns | undefined;
  const subNets: TreeNetns[] = [];
  const st: DumpState = {
    dir, files: new FileTable(), irmap, nextPagesId: 1, nextObjId: 1, nsIds: new Map(), fdTables: new Map(), shmemDone: new Set(), seccomp: new SeccompTable(),
    shmemAsMemfd: new Set(),
    cgroups, stats: { pagesScanned: 0n, pagesWritten: 0n, shpagesScanned: 0n, shpagesWritten: 0n, memdumpUs: 0, memwriteUs: 0 },
  };
  // Each connection is locked as it is dumped (a tree in the host's network namespace).
  st.files.netlock = new NetLock(opts.networkLock, log);
  // Seized and frozen: on a failure every task runs on as it was; done, it goes as asked.
  // The connections' lock rules are in the tree's network namespace: they are taken out there.
  cl.push('the frozen tree', { undo: () => thawTree(tasks, log), done: () => TreeNetns.within(netns, () => endTree(ctx, tasks, st.files)) });
  // What the dump of the fds holds in cryo (copies of memfds, pty sides, unix
  // sockets, ghost files) and makes (link_remap.N links, TCP repair mode): each kind's own.
  const kindEnv: DumpRunEnv = {
    opts, tasks, inTreeNetns: (fn) => TreeNetns.within(netns, fn), newPagesId: () => st.nextPagesId++,
    shmemDone: st.shmemDone, isSysvShm: (id) => st.sysvShm?.has(id) ?? false, stats: st.stats,
  };
  dumpKindCleanup(st.files, cl, kindEnv);
  try {
    // Tracking lasts past this dump only for a tree that runs on.
    if (opts.trackMem || opts.prevImagesDir) st.track = DumpTracking.open(ctx, dir, opts.trackMem && opts.leaveRunning);
    for (const ino of shmemUsedAsFiles(tasks.filter((t) => t.stat.state !== 'Z').map((t) => t.pid))) st.shmemAsMemfd.add(ino);
    injectFault(tasks);
    // Frozen, no task can change namespace any more: one that cryo does not carry stops the dump.
    const nsTasks = tasks.map((t) => ({ pid: t.pid, comm: t.stat.comm, threads: t.threads.length ? t.threads : [t.pid], parent: t.parent, levels: t.ns.levels }));
    const own = checkDumpNamespaces(nsTasks[0]!, nsTasks);
    // The tree's own uts and ipc namespaces, before the tasks: their attachments of segments are checked against them.
    const rootWho = `task ${root} (${tasks[0]!.stat.comm})`;
    for (const ns of own) {
      const nsId = nsIdOf(ns.link, st);
      try {
        if (ns.kind === 'user') {
          // Its maps translate the ids every later image holds (creds, ipc, files).
          const others = own.filter((o) => o.kind !== 'user').map((o) => o.kind as string);
          if (readlinkSync(`/proc/${root}/ns/pid`) !== readlinkSync('/proc/self/ns/pid')) others.push('pid');
          st.userns = dumpUserNs(root, rootWho, nsId, others, dir);
        } else if (ns.kind === 'net') {
          netns = new TreeNetns(ns.path);
          // The tree's other network namespaces (its tasks made them), each locked and dumped as the root's.
          const others = treeMntNamespaces(nsTasks, 'net').slice(1).map((n) => {
            const sub = new TreeNetns(`/proc/${n.pid}/ns/net`);
            subNets.push(sub);
            return { n, sub, nsId: nsIdOf(n.link, st) };
          });
          const all = [{ fd: netns.fd, nsId }, ...others.map((o) => ({ fd: o.sub.fd, nsId: o.nsId }))];
          const live = tasks.filter((t) => t.stat.state !== 'Z').map((t) => t.pid);
          lockTreeNetns(ctx, ns.path, st.files.netlock, rootWho);
          dumpNetNs(netns.fd, nsId, ns.link, {
            dir, log, who: rootWho, empty: (opts.emptyNs & CLONE.NEWNET) !== 0, ...netnsExtKey(opts.external, ns.link), tunFile: (name) => treeTunFile(live, name),
            others: all.slice(1),
          });
          for (const { n, sub, nsId: subId } of others) {
            const who = `task ${n.pid} (${n.comm})`;
            lockTreeNetns(ctx, `/proc/${n.pid}/ns/net`, st.files.netlock, who);
            dumpNetNs(sub.fd, subId, n.link, {
              dir, log, who, empty: false, ...netnsExtKey(opts.external, n.link), tunFile: (name) => treeTunFile(live, name), others: all.filter((a) => a.nsId !== subId),
            });
            st.files.subNetns.set(sub.ino, { fd: sub.fd, nsId: subId });
          }
        } else if (ns.kind === 'mnt') {
          // A tmpfs with mounts on it is read through a clone of it alone, made in its mount namespace.
          // Every mount namespace of the tree (the root's first), each with its own id.
          const nss = treeMntNamespaces(nsTasks).map((n) => ({ ...n, nsId: nsIdOf(n.link, st) }));
          // The pid namespaces nested in the root's: a proc of one is mounted again by a task of it.
          const rootPidns = readlinkSync(`/proc/${root}/ns/pid`);
          const nestedPidns = new Set(tasks.filter((t) => t.ns.levels.length && t.stat.state !== 'Z').map((t) => readlinkSync(`/proc/${t.pid}/ns/pid`)));
          nestedPidns.delete(rootPidns);
          st.mntns = dumpMntNs(nss, dir, { external: opts.external, auto: opts.autoExtMnt, enableFs: opts.enableFs, externalMasters: opts.enableExternalMasters }, log, (pid, p, sdev) => cloneMountOf(pid, p, sdev), st.userns?.view ?? IdView.SAME,
            (link) => (nestedPidns.has(link) ? nsIdOf(link, st) : undefined));
        } else if (ns.kind === 'uts') {
          dumpUtsNs(ns.path, nsId, dir);
        } else if (ns.kind === 'time') {
          dumpTimeNs(root, nsId, dir);
        } else if (ns.kind === 'cgroup') {
          // Nothing of its own to write: its roots go with each thread's groups into cgroup.img.
          cgroups.setTreeCgns(ns.path);
        } else {
          const r = dumpIpcNs(ns.path, nsId, { dir, newPagesId: () => st.nextPagesId++, log, who: rootWho, ids: st.userns?.view ?? IdView.SAME });
          st.sysvShm = r.segments;
          st.mqueue = { dev: mqueueDev(ns.path), nsId };
          st.stats.shpagesWritten += BigInt(r.pages);
          st.stats.shpagesScanned += BigInt(r.scanned);
        }
      } catch (e) {
        if (SysError.is(e)) throw new CryoError(`${rootWho}: cannot dump its ${ns.kind} namespace (${ns.link}): ${e.message}`);
        throw e;
      }
      log.info(`dumped the tree's ${ns.kind} namespace ${ns.link} as ${nsId}`);
    }
    runAction(ctx, 'query-ext-files');
    // Sockets are looked up (sock_diag) in the tree's network namespace, and must all be of it.
    st.files.sockNetns = netns?.ino ?? TreeNetns.mine();
    st.files.ownNetns = netns !== undefined;
    // In the host's network namespace each connection has rules of its own: all put in at once.
    // Should the batch fail, each is locked as it is dumped, and a failure there names its socket.
    if (!netns && opts.tcpEstablished) {
      try {
        lockTreeConnections(tasks.filter((t) => t.stat.state !== 'Z').map((t) => t.pid), st.files.netlock);
      } catch (e) {
        log.warn(`cannot lock the tree's TCP connections in one batch (--network-lock ${st.files.netlock.method}): ${(e as Error).message}; locking them one by one`);
      }
    }
    for (const t of tasks) {
      if (t.rem === null && t.stat.state === 'Z') {
        dumpZombie(t.pid, t.ns.pid, t.stat, st.dir, log);
        continue;
      }
      TreeNetns.within(netns, () => dumpTask(t, ctx, st, taskIds(t.pid, st)));
    }
    if (st.mntns) {
      // Terminals are made again in the namespace (ptys on its own devpts) or given back (--inherit-fd).
      refuseNsTerminals(st.files, st.mntns, { orphanPtsMaster: !!opts.orphanPtsMaster, shellJob: opts.shellJob });
      st.mntns.dumpContents();
    }
    // As CRIU: the inventory's root_ids are the dumper's own (its namespaces tell
    // the tree's apart); the tree's root has files, vm etc. of its own.
    writeTreeImages(tasks, st, taskIds(process.pid, st), opts.tcpClose);
    cgroups.write(dir);
    finishKinds(st.files, kindEnv);
    // Owners of files cryo makes itself, as the tree's user namespace sees them.
    if (st.userns) {
      ttyOwnersToNs(st.files, st.userns.view, rootWho);
      ownersToNs(st.userns.view, ownedFiles(st), rootWho);
    }
    dir.write('files', peersFirst(st.files.entries));
    writeKindImages(dir, st.files, kindEnv);
    // CRIU writes it on pre-dump; cryo, which has none, for the next dump.
    saveIrmapCache(workDir, irmap);
    if (st.seccomp.filters.length) dir.write('seccomp', [create(SeccompEntrySchema, { seccompFilters: st.seccomp.filters })]);
    const tDone = performance.now();
    dumpStats = create(DumpStatsEntrySchema, {
        freezingTime: Math.round((tFrozen - tStart) * 1000),
        frozenTime: Math.round((tDone - tFrozen) * 1000),
        memdumpTime: st.stats.memdumpUs, memwriteTime: st.stats.memwriteUs,
        pagesScanned: st.stats.pagesScanned, pagesSkippedParent: st.track?.skipped ?? 0n, pagesWritten: st.stats.pagesWritten,
        pagesLazy: 0n,
        shpagesScanned: st.stats.shpagesScanned, shpagesSkippedParent: 0n, shpagesWritten: st.stats.shpagesWritten,
    });
    writeStats(workDir, create(StatsEntrySchema, { dump: dumpStats }), 'dump');
    if (opts.pidfile) writeFileSync(opts.pidfile, String(root));
    // The last word before the tasks go: a migration may still call it off.
    runAction(ctx, 'post-dump');
    st.track?.finish(root);
  } catch (e) {
    st.track?.abandon();
    const gone = tasks.find((t) => t.stat.state !== 'Z' && !alive(t.pid));
    cl.unwind(log);
    netns?.close();
    for (const n of subNets) n.close();
    if (gone) throw new CryoError(`dump failed: task ${gone.pid} (${gone.stat.comm}) died during the dump; the other tasks were resumed`);
    if (e instanceof TaskGoneError) throw new CryoError(`dump failed: ${e.message}`);
    throw e;
  }
  cl.release(log);
  netns?.close();
  for (const n of subNets) n.close();
  if (opts.displayStats) displayDumpStats(log, dumpStats!);
  log.info(`dumped tree of ${tasks.length} task(s) rooted at ${root} in ${(performance.now() - tStart).toFixed(1)} ms`);
  return 0;
}

/**
 * As CRIU: the network namespace of a tree that has one is locked whole before
 * it is dumped (the firewall images hold the lock, taken out by the restore);
 * a dump that fails or whose tree runs on takes it out again.
 */
function lockTreeNetns(ctx: Context, path: string, lock: NetLock, who: string): void {
  if (lock.method === 'skip') return;
  const fd = openSync(path, 'r');
  ctx.cleanup.always("the tree's network namespace, for its lock", () => closeSync(fd));
  const v6 = existsSync('/proc/sys/net/ipv6');
  try {
    netlink.inNetns(fd, () => lock.lockNetns(v6));
  } catch (e) {
    throw new CryoError(`${who}: cannot lock its network namespace (--network-lock ${lock.method}): ${(e as Error).message}`);
  }
  const unlock = () => netlink.inNetns(fd, () => unlockNetnsRules(lock.method, lock.runId, v6, ctx.log));
  const end = () => {
    if (ctx.opts.leaveRunning || ctx.opts.leaveStopped) unlock();
    else netlink.inNetns(fd, () => linksDown(ctx, who));
  };
  ctx.cleanup.push("the tree's network namespace lock", { undo: unlock, done: end });
}

/**
 * The links of a tree's namespace whose tasks are about to go, down: a dying
 * namespace drops its nftables hooks (those of iptables-nft too) before its
 * links, and a packet of a peer outside that comes in between is answered
 * with a reset by the namespace's TCP, which ends that peer's connection the
 * restore is to carry on. A down link takes nothing in.
 */
function linksDown(ctx: Context, who: string): void {
  let n = 0;
  for (const l of netlink.listLinks()) {
    if (l.type === netlink.ARPHRD_LOOPBACK || !(l.flags & netlink.IFF_UP)) continue;
    try {
      netlink.setLinkDown(l.index);
      n++;
    } catch (e) {
      ctx.log.warn(`${who}: cannot take ${l.name} of its network namespace down before its tasks go: ${(e as Error).message}`);
    }
  }
  if (n) ctx.log.info(`took ${n} link(s) of the tree's network namespace down, its tasks going`);
}

/** A dump done: the tree runs on (--leave-running), stops (--leave-stopped) or is killed, its TCP connections with it. */
function endTree(ctx: Context, tasks: FrozenTask[], files: FileTable): void {
  if (ctx.opts.leaveRunning) {
    releaseTcp(files, true);
    thawTree(tasks, ctx.log);
  } else if (ctx.opts.leaveStopped) {
    releaseTcp(files, true);
    stopTree(tasks, ctx.log);
  } else {
    killTree(tasks);
    releaseTcp(files, false);
  }
}

/**
 * --leave-stopped, as CRIU: every task gets its own registers back, then a
 * SIGSTOP while still held, then is let go; it stops at once (state T), traced
 * by nobody, and a SIGCONT lets it run on.
 */
function stopTree(tasks: FrozenTask[], log: Context['log']): void {
  for (const t of [...tasks].reverse()) {
    if (t.stat.state === 'Z') continue;
    // Other threads first: the leader owns the scratch memory they borrow.
    for (const tid of [...t.threads].reverse()) {
      try {
        (tid === t.pid ? t.rem : t.threadRems.get(tid))?.finish();
      } catch (e) {
        log.warn(`thread ${tid}: could not put back registers: ${(e as Error).message}`);
      }
    }
    t.rem = null;
    t.threadRems.clear();
    try {
      kill(t.pid, SIG.STOP);
    } catch (e) {
      log.warn(`task ${t.pid}: cannot stop it: ${(e as Error).message}`);
    }
  }
  thawTree(tasks, log); // only detaches now: nothing is left to put back
}

/** --display-stats: CRIU's display_stats(DUMP_STATS), on stdout. */
export function displayDumpStats(log: Context['log'], s: DumpStatsEntry): void {
  const n = (v: bigint) => `${v} (0x${v.toString(16)})`;
  log.msg('Displaying dump stats:');
  log.msg(`Freezing time: ${s.freezingTime} us`);
  log.msg(`Frozen time: ${s.frozenTime} us`);
  log.msg(`Memory dump time: ${s.memdumpTime} us`);
  log.msg(`Memory write time: ${s.memwriteTime} us`);
  log.msg(`Memory pages scanned: ${n(s.pagesScanned)}`);
  log.msg(`Memory pages skipped from parent: ${n(s.pagesSkippedParent)}`);
  log.msg(`Memory pages written: ${n(s.pagesWritten)}`);
  log.msg(`Lazy memory pages: ${n(s.pagesLazy ?? 0n)}`);
}

/** Is `pid` still a live task (not gone, not a zombie)? */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Fault injection for tests, like CRIU's CRIU_FAULT: CRYO_FAULT=kill-task-after-freeze
 * SIGKILLs the last frozen task, as if it died in the middle of the dump.
 */
function injectFault(tasks: FrozenTask[]): void {
  if (process.env['CRYO_FAULT'] === 'kill-task-after-freeze' && tasks.length > 0) {
    kill(tasks[tasks.length - 1]!.pid, SIG.KILL);
  }
  // As CRIU's: the dumper killed with every task seized, which the kernel lets go.
  if (faultInjected(FI.DUMP_EARLY)) kill(process.pid, SIG.KILL);
}

function writeTreeImages(tasks: FrozenTask[], st: DumpState, rootIds: TaskKobjIdsEntry, tcpClose: boolean): void {
  st.dir.write('pstree', tasks.map((t) => create(PstreeEntrySchema, {
    pid: t.ns.pid, ppid: tasks.find((p) => p.pid === t.parent)?.ns.pid ?? 0, pgid: t.ns.pgid, sid: t.ns.sid,
    threads: t.threads.map((x) => t.ns.tids.get(x) ?? x),
    cryoNsPids: t.ns.levels, cryoNsTids: t.threads.flatMap((x) => t.ns.tidLevels.get(x) ?? []),
    cryoNsSids: t.ns.sidLevels, cryoNsPgids: t.ns.pgidLevels,
  })));
  st.dir.write('inventory', [create(InventoryEntrySchema, {
    imgVersion: CRTOOLS_IMAGES_V1_1, fdinfoPerId: true, rootIds, nsPerId: true, lsmtype: Lsmtype.NO_LSM,
    ...(st.cgroups.criuSetId !== undefined ? { rootCgSet: st.cgroups.criuSetId } : {}),
    dumpUptime: BigInt(Math.round(performance.timeOrigin + performance.now())) * 1000n,
    // As CRIU: the restore takes the lock out by these (and must use --tcp-close too).
    networkLockMethod: LOCK_METHOD_CODE[st.files.netlock!.recorded], dumpCriuRunId: st.files.netlock!.runId,
    ...(tcpClose ? { tcpClose: true } : {}),
  })]);
}
