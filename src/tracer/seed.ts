// Making tasks and ending them. The seed: a 130-byte static ELF that loops on
// pause(). cryo starts it as the tree's root, with the root's pid (clone3 set_tid;
// as cryo's sibling with --restore-sibling); every restored task starts as a copy
// of this tiny address space, which it then replaces. Each task then clones its
// own children (clone3 with set_tid, made to run in it); killAndReap ends one.
import { closeSync, existsSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { NR, CLONE, SIG, F, MFD, O, PR, SOCK, AT_FDCWD, sock, PTRACE_O, CAP, hasCap, ptrace, waitpid, kill, syscall, pidfdOpen, memfdCreate, spawnAs, spawnGated, SysError, EEXIST, __WALL, WNOHANG } from '../sys/index.js';
import { cloneArgs } from '../abi/index.js';
import { CryoError } from '../context.js';
import { Remote, RemoteError, TaskGoneError } from './remote.js';
import { findSyscallInsn, waitForStop } from './seize.js';

const BASE = 0x200000n;
const CODE = Buffer.from([
  0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
  0x0f, 0x05, //                   syscall
  0xeb, 0xf7, //                   jmp back to mov
]);

/** Build the seed executable image. */
export function seedElf(): Buffer {
  const ehdr = 64;
  const phdr = 56;
  const size = ehdr + phdr + CODE.length;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELF64, little endian, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // x86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BASE + BigInt(ehdr + phdr), 24); // entry
  b.writeBigUInt64LE(BigInt(ehdr), 32); // phoff
  b.writeUInt16LE(ehdr, 52);
  b.writeUInt16LE(phdr, 54);
  b.writeUInt16LE(1, 56); // phnum
  const p = ehdr;
  b.writeUInt32LE(1, p); // PT_LOAD
  b.writeUInt32LE(5, p + 4); // R+X
  b.writeBigUInt64LE(0n, p + 8);
  b.writeBigUInt64LE(BASE, p + 16);
  b.writeBigUInt64LE(BASE, p + 24);
  b.writeBigUInt64LE(BigInt(size), p + 32);
  b.writeBigUInt64LE(BigInt(size), p + 40);
  b.writeBigUInt64LE(0x1000n, p + 48);
  CODE.copy(b, ehdr + phdr);
  return b;
}


/** Start a seed with pid `pid` (0: any), as cryo's child or sibling, in new namespaces `ns`; with `gate`, as spawnGated. */
export function spawnSeed(pid: number, sibling: boolean, ns = 0, gate?: (pid: number) => void): number {
  const fd = memfdCreate('cryo-seed', MFD.CLOEXEC);
  try {
    const elf = seedElf();
    writeSync(fd, elf, 0, elf.length, 0);
    return gate ? spawnGated(fd, 'cryo-seed', { pid, sibling, ns }, gate) : spawnAs(fd, 'cryo-seed', { pid, sibling, ns });
  } finally {
    closeSync(fd);
  }
}

/**
 * Seed and tasks are traced with these (inherited through clone). Suspending
 * seccomp needs CAP_SYS_ADMIN, which a worker acting for an unprivileged client
 * lacks; it then restores no task with filters (see restoreTree).
 */
export function restorePtraceOpts(): number {
  const base = PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACECLONE | PTRACE_O.TRACEFORK | PTRACE_O.EXITKILL;
  return hasCap(CAP.SYS_ADMIN) ? base | PTRACE_O.SUSPEND_SECCOMP : base;
}

/**
 * clone3() with set_tid inside `parent`; returns the new task, stopped and seized.
 * `pid` is its pid, or its pids at each level from the tree's root namespace
 * down (a task in a nested pid namespace); the parent sees it at level `seenAt`
 * (the last by default).
 */
export function cloneTask(parent: Remote, pid: number | readonly number[], flags: number, seenAt = -1): Remote {
  const levels = typeof pid === 'number' ? [pid] : pid;
  if (parent.pidsByLastPid) return cloneByLastPid(parent, levels, flags);
  // set_tid names the innermost namespace's pid first.
  const tid = Buffer.alloc(4 * levels.length);
  [...levels].reverse().forEach((v, i) => tid.writeInt32LE(v, 4 * i));
  const args = cloneArgs.encode({
    flags: BigInt(flags),
    // With CLONE_PARENT or CLONE_THREAD the kernel wants exit_signal 0.
    exit_signal: flags & (CLONE.PARENT | CLONE.THREAD) ? 0n : BigInt(SIG.CHLD),
    set_tid: parent.put(tid, 256), set_tid_size: BigInt(levels.length),
  });
  const want = levels.at(seenAt)!;
  let got: bigint;
  try {
    got = parent.call('clone3', NR.clone3, parent.put(args, 0), cloneArgs.size);
  } catch (e) {
    if (e instanceof RemoteError && e.code === 'EEXIST') throw new CryoError(`pid ${levels.join('/')} is already in use`, 1, EEXIST);
    throw e;
  }
  if (Number(got) !== want) throw new CryoError(`clone3 created pid ${got} instead of ${want}`);
  // `got` is the pid in the parent's pid namespace; ptrace wants ours.
  const host = parent.lastChild || want;
  waitForStop(host); // auto-attached by PTRACE_O_TRACECLONE, starts in an event stop
  return childRemote(parent, host);
}

/** The Remote of a task or thread `parent` made: it inherits how calls reach cryo and how its clones get their pids. */
function childRemote(parent: Remote, host: number): Remote {
  return new Remote(host, { syscallIp: parent.syscallIp, ...(parent.reachCryo ? { reachCryo: parent.reachCryo } : {}), pidsByLastPid: parent.pidsByLastPid });
}

/** Who holds pid `pid` (its name and state), for the error that says it is in use. */
function holder(pid: number): string {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return ` (by ${st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'))}, state ${st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3)})`;
  } catch {
    return '';
  }
}

/** Tries of cloneByLastPid before it gives up: another task of cryo's pid namespace may take the pid first. */
const LAST_PID_TRIES = 20;

/**
 * clone3 without set_tid, the pid given by cryo's write of its pid namespace's
 * ns_last_pid just before (as CRIU did before clone3): a task of a user
 * namespace of the tree's own that is in cryo's pid namespace may not name its
 * child's pid, cryo may. Another process of the namespace can fork in between:
 * a child with another pid is killed, reaped and made again.
 */
function cloneByLastPid(parent: Remote, levels: readonly number[], flags: number): Remote {
  if (levels.length !== 1) throw new CryoError(`pid ${levels.join('/')}: a task of nested pid namespaces cannot get its pids by ns_last_pid`);
  const want = levels[0]!;
  const args = cloneArgs.encode({ flags: BigInt(flags), exit_signal: flags & (CLONE.PARENT | CLONE.THREAD) ? 0n : BigInt(SIG.CHLD), set_tid: 0n, set_tid_size: 0n });
  for (let i = 0; i < LAST_PID_TRIES; i++) {
    if (existsSync(`/proc/${want}`)) throw new CryoError(`pid ${want} is already in use${holder(want)}`, 1, EEXIST);
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(want - 1));
    const got = Number(parent.call('clone3', NR.clone3, parent.put(args, 0), cloneArgs.size));
    waitForStop(got); // auto-attached by PTRACE_O_TRACECLONE, as in cloneTask
    if (got === want) return childRemote(parent, got);
    // Not ours to keep: gone before it runs of its own. A thread exits by itself (a
    // signal would end its whole group), collected by us; a task by its parent.
    if (flags & CLONE.THREAD) {
      const stray = childRemote(parent, got);
      try {
        stray.callRaw(NR.exit, 0);
      } catch (e) {
        if (!(e instanceof TaskGoneError)) throw e;
      } finally {
        stray.mem.close();
      }
      continue;
    }
    kill(got, SIG.KILL);
    waitpid(got, __WALL);
    parent.call('wait4', NR.wait4, got, 0, __WALL, 0);
  }
  throw new CryoError(`pid ${want}: other tasks of cryo's pid namespace took it ${LAST_PID_TRIES} times before the restore's clone did`);
}

export interface Root {
  rem: Remote;
  /** pidfd of cryo (or of its fd donor), open in the root (and so in every task cloned from it). */
  cryoPidfd: bigint;
  /** What cryo holds for the root's making, to let go once the tree is built. */
  close?: () => void;
}

/**
 * Create the root task with its pid, as a seed process: cryo's child, or with
 * `sibling` a child of cryo's parent (--restore-sibling).
 */
/** The root, made in new namespaces `nsFlags` (CLONE_NEW*): in a new pid namespace it is pid 1. */
export function startRoot(pid: number, sibling: boolean, nsFlags: number): Root {
  const newPidns = (nsFlags & CLONE.NEWPID) !== 0;
  // The root gets a pidfd of cryo by inheritance (a copy without FD_CLOEXEC):
  // from inside a new pid namespace it could not open one itself.
  const own = pidfdOpen(process.pid);
  let inherit = -1;
  let got: number;
  try {
    inherit = syscall('fcntl(F_DUPFD)', NR.fcntl, own, F.DUPFD, 64);
    got = spawnSeed(newPidns ? 0 : pid, sibling, nsFlags);
  } catch (e) {
    if (SysError.is(e, 'EEXIST')) throw new CryoError(`pid ${pid} is already in use`, 1, EEXIST);
    throw e;
  } finally {
    closeSync(own);
    if (inherit >= 0) closeSync(inherit);
  }
  try {
    return { rem: seizeSeed(got), cryoPidfd: BigInt(inherit) };
  } catch (e) {
    killAndReap(got);
    throw e;
  }
}

/** A root made in a user namespace of its own, and the donor its tasks take cryo's fds from. */
export interface UsernsRoot extends Root {
  /** The donor's pid: killed and reaped once the tree is built. */
  donor: number;
}

const MSG_CMSG_CLOEXEC = 0x40000000;

/**
 * The root, made in a new user namespace and, from inside it, in new namespaces
 * `nsFlags`: one clone3 with CLONE_NEWUSER among them, so that the kernel makes
 * the user namespace first and every other one owned by it (as CRIU's root).
 * A seed of cryo's own (its namespaces and powers), the maker, clones it with
 * CLONE_PARENT so that the root is cryo's child: an exec would leave the root no
 * capability in its namespace (its uid is unmapped until the maps are written),
 * a clone keeps them. Before the clone the maker takes `groups` (host gids):
 * with setgroups denied in the namespace nothing inside could set them.
 * `setup` then writes the maps (the root has run nothing yet); then the root
 * becomes uid and gid 0 inside, as CRIU's prepare_userns_creds.
 *
 * With `sibling` (--restore-sibling, as runc and LXC ask) cryo makes the root
 * itself, a child of its parent: a maker's child would be cryo's, and a maker of
 * cryo's parent's would be left a zombie there, which LXC takes for the
 * container's init (the first child it has). That root waits at a gate while
 * `setup` writes its maps, then becomes ids 0 and execs the seed (spawnGated),
 * a root with every capability of its namespace.
 *
 * A task inside may not pidfd_getfd from cryo (ptrace access across user
 * namespaces needs CAP_SYS_PTRACE over cryo's). So the maker then joins the
 * namespace as its root too, and is the tasks' "cryo": the root inherits a
 * pidfd of it, and each fd a task is to take is first sent to the maker
 * (SCM_RIGHTS) and put at the number it has in cryo, then closed there again.
 */
export function startRootInUserns(pid: number, nsFlags: number, groups: number[], setup: (hostPid: number) => void, sibling = false): UsernsRoot {
  const newPidns = (nsFlags & CLONE.NEWPID) !== 0;
  const maker = spawnSeed(0, false);
  let root = 0;
  let pair: [number, number] | undefined;
  let mmem: { close(): void } | undefined;
  let rmem: { close(): void } | undefined;
  try {
    const m = seizeSeed(maker);
    mmem = m.mem;
    const made = sibling ? siblingRoot(maker, newPidns ? 1 : pid, nsFlags, groups, setup) : madeByMaker(m, newPidns ? 1 : pid, nsFlags, groups, setup);
    root = made.pid;
    const self = made.self;
    // The maker takes one end of a socket pair of cryo's, then joins the namespace as its root.
    pair = sock.socketpair(SOCK.DGRAM);
    const cryoEnd = pair[0];
    const cp = m.call('pidfd_open', NR.pidfd_open, process.pid, 0);
    let msock = m.call('pidfd_getfd', NR.pidfd_getfd, cp, pair[1], 0);
    m.call('close', NR.close, cp);
    closeSync(pair[1]);
    pair[1] = -1;
    const userPath = m.put(Buffer.from(`/proc/${root}/ns/user\0`), 1024);
    const uf = m.call('open(ns/user)', NR.openat, AT_FDCWD, userPath, O.RDONLY | O.CLOEXEC, 0);
    m.call('setns(CLONE_NEWUSER)', NR.setns, uf, CLONE.NEWUSER);
    m.call('close', NR.close, uf);
    const rem = new Remote(root, {
      syscallIp: made.syscallIp,
      pidsByLastPid: !newPidns,
      reachCryo: (cfd, fn) => {
        if (cfd === Number(msock)) {
          const moved = m.call('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, msock, F.DUPFD_CLOEXEC, msock + 1n);
          m.call('close', NR.close, msock);
          msock = moved;
        }
        sock.sendMsg(cryoEnd, Buffer.from([0]), [cfd]);
        const fd = recvFd(m, msock);
        if (fd !== cfd) {
          m.call('dup3', NR.dup3, fd, cfd, O.CLOEXEC);
          m.call('close', NR.close, fd);
        }
        try {
          return fn();
        } finally {
          m.call('close', NR.close, cfd);
        }
      },
    });
    rmem = rem.mem;
    for (const r of [rem, m]) {
      r.call('setresgid', NR.setresgid, 0, 0, 0);
      r.call('setresuid', NR.setresuid, 0, 0, 0);
      // A change of ids made it undumpable: its own /proc files (and, the maker, its fds) would be closed to the tree.
      r.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, 1, 0, 0, 0);
    }
    rem.scratch(4096);
    pair = undefined;
    return { rem, cryoPidfd: self, donor: maker, close: () => {
      closeSync(cryoEnd);
      m.mem.close();
    } };
  } catch (e) {
    if (root) killAndReap(root);
    killAndReap(maker);
    mmem?.close();
    rmem?.close();
    throw e;
  } finally {
    if (pair) for (const fd of pair) if (fd >= 0) closeSync(fd);
  }
}

/** The root made in its user namespace: its pid, the number of the maker's pidfd in its fd table, where a syscall instruction of its is. */
interface MadeRoot {
  pid: number;
  self: bigint;
  syscallIp: bigint;
}

/** The maker's clone of the root (CLONE_PARENT: cryo's child), its maps written. */
function madeByMaker(m: Remote, tid: number, nsFlags: number, groups: number[], setup: (hostPid: number) => void): MadeRoot {
  const g = Buffer.alloc(4 * Math.max(1, groups.length));
  groups.forEach((v, i) => g.writeUInt32LE(v, 4 * i));
  m.call('setgroups', NR.setgroups, groups.length, m.put(g, 512));
  const self = m.call('pidfd_open', NR.pidfd_open, m.pid, 0);
  const t = Buffer.alloc(4);
  t.writeInt32LE(tid, 0);
  const args = cloneArgs.encode({
    flags: BigInt(CLONE.NEWUSER | nsFlags | CLONE.PARENT),
    exit_signal: 0n, // CLONE_PARENT: the root gets the maker's (SIGCHLD to cryo)
    set_tid: m.put(t, 256), set_tid_size: 1n,
  });
  try {
    m.call('clone3', NR.clone3, m.put(args, 0), cloneArgs.size);
  } catch (e) {
    if (e instanceof RemoteError && e.code === 'EEXIST') throw new CryoError(`pid ${tid} is already in use`, 1, EEXIST);
    throw e;
  }
  const root = m.lastChild;
  if (!root) throw new CryoError('clone3 of the root in its new user namespace reported no child');
  waitForStop(root);
  m.call('close', NR.close, self); // the root has its copy
  setup(root);
  return { pid: root, self, syscallIp: m.syscallIp };
}

/**
 * cryo's gated spawn of the root as its sibling (see startRootInUserns), born
 * with `groups` (taken for the clone by cryo's calling thread alone: the raw
 * call, not glibc's, which would change every thread's) and a pidfd of the
 * maker (a copy without close-on-exec); seized once it runs the seed.
 */
function siblingRoot(maker: number, tid: number, nsFlags: number, groups: number[], setup: (hostPid: number) => void): MadeRoot {
  const own = pidfdOpen(maker);
  let inherit = -1;
  let root = 0;
  const was = Buffer.alloc(4 * 65536);
  const n = syscall('getgroups', NR.getgroups, 65536, was);
  const g = Buffer.alloc(4 * Math.max(1, groups.length));
  groups.forEach((v, i) => g.writeUInt32LE(v, 4 * i));
  try {
    inherit = syscall('fcntl(F_DUPFD)', NR.fcntl, own, F.DUPFD, 64);
    syscall('setgroups', NR.setgroups, groups.length, g);
    try {
      root = spawnSeed(tid, true, CLONE.NEWUSER | nsFlags, setup);
    } catch (e) {
      if (SysError.is(e, 'EEXIST')) throw new CryoError(`pid ${tid} is already in use`, 1, EEXIST);
      throw e;
    } finally {
      syscall('setgroups', NR.setgroups, n, was);
    }
    const r = seizeSeed(root);
    r.mem.close();
    // Its own syscall instruction: its vDSO is not where the maker's is.
    return { pid: root, self: BigInt(inherit), syscallIp: r.syscallIp };
  } catch (e) {
    if (root) killAndReap(root);
    throw e;
  } finally {
    closeSync(own);
    if (inherit >= 0) closeSync(inherit);
  }
}

/** recvmsg of one fd (SCM_RIGHTS) on socket `fd` of task `m`; returns the fd's number there. */
function recvFd(m: Remote, fd: bigint): number {
  const base = m.scratch(4096) + 2048n;
  const iov = base + 64n;
  const data = base + 96n;
  const control = base + 128n;
  const hdr = Buffer.alloc(56);
  hdr.writeBigUInt64LE(iov, 16); // msg_iov
  hdr.writeBigUInt64LE(1n, 24); // msg_iovlen
  hdr.writeBigUInt64LE(control, 32); // msg_control
  hdr.writeBigUInt64LE(24n, 40); // msg_controllen: CMSG_SPACE(sizeof(int))
  const v = Buffer.alloc(16);
  v.writeBigUInt64LE(data, 0);
  v.writeBigUInt64LE(8n, 8);
  m.mem.write(base, hdr);
  m.mem.write(iov, v);
  m.mem.write(control, Buffer.alloc(24));
  m.call('recvmsg', NR.recvmsg, fd, base, MSG_CMSG_CLOEXEC);
  const c = m.mem.read(control, 24);
  // struct cmsghdr: len (8), level (4), type (4), then the fd.
  if (c.readInt32LE(8) !== 1 /* SOL_SOCKET */ || c.readInt32LE(12) !== 1 /* SCM_RIGHTS */) throw new CryoError('the fd donor received no fd');
  return c.readInt32LE(16);
}

/** A seed just started, seized and stopped, ready for remote calls. */
function seizeSeed(pid: number): Remote {
  ptrace.seize(pid, restorePtraceOpts());
  ptrace.interrupt(pid);
  waitForStop(pid);
  const rem = new Remote(pid, { syscallIp: findSyscallInsn(pid) });
  rem.scratch(4096);
  return rem;
}

/**
 * Kills what a failed restore made, children first, and reaps all of it. A task
 * whose parent is killed becomes an orphan that init would reap only some
 * seconds later, holding its pid meanwhile (a second restore would find it
 * taken): cryo adopts them as subreaper while it kills, and reaps them itself.
 * (Not with --restore-sibling: the root is not below cryo then.)
 */
export function killAll(created: number[]): void {
  const was = Buffer.alloc(4);
  syscall('prctl(PR_GET_CHILD_SUBREAPER)', NR.prctl, PR.GET_CHILD_SUBREAPER, was);
  syscall('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  try {
    for (const pid of [...created].reverse()) killAndReap(pid);
    for (const pid of created) {
      try {
        waitpid(pid, __WALL | WNOHANG);
      } catch {
        /* reaped already, or not ours */
      }
    }
  } finally {
    syscall('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, was.readInt32LE(0));
  }
}

/**
 * Run `fn` in a helper: a seed of cryo's own (its credentials, its namespaces),
 * seized, and killed and reaped afterwards. A fresh single-threaded process may
 * enter namespaces that cryo's threads cannot (setns of a mount namespace).
 */
export function withHelper<T>(fn: (rem: Remote) => T): T {
  const got = spawnSeed(0, false);
  let rem: Remote | undefined;
  try {
    rem = seizeSeed(got);
    return fn(rem);
  } finally {
    rem?.mem.close();
    killAndReap(got);
  }
}

/** SIGKILL a task of ours and collect it. Never throws. */
export function killAndReap(pid: number): void {
  try {
    kill(pid, SIG.KILL);
  } catch {
    return;
  }
  try {
    waitpid(pid, __WALL);
  } catch {
    /* not ours */
  }
}
