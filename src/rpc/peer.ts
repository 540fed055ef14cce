// Who the client of a service connection is, and the worker becoming it. A
// client that is not root with all of cryo's capabilities gets exactly its own
// power: the worker takes the client's uid, gid, groups and capabilities, plus
// CAP_CHECKPOINT_RESTORE (what CRIU's --unprivileged mode runs with), before it
// reads a single byte of the request. Every file it opens and every object it
// makes is then checked by the kernel against the client's credentials.
import { readFileSync, statSync } from 'node:fs';
import {
  CAP, NR, PR, SysError, ambientRaise, capBit, capGet, capSet, prctl, setKeepCaps, setProcessIds, sock, syscall,
} from '../sys/index.js';
import { parseStatus } from '../proc/stat.js';
import { CryoError } from '../context.js';
import { ImageDir, type CredsEntry, type PstreeEntry } from '../images/index.js';

export interface ClientCreds {
  pid: number;
  /** Effective ids when it connected (SO_PEERCRED). */
  uid: number;
  gid: number;
  /** Supplementary groups when it connected (SO_PEERGROUPS). */
  groups: number[];
  caps: { eff: bigint; prm: bigint; inh: bigint; bnd: bigint };
  /** Hard limits by resource number (/proc/PID/limits); undefined = unlimited. */
  hardLimits: Array<bigint | undefined>;
}

const hex = (v: string | undefined) => BigInt('0x' + (v ?? '0'));

/** Hard limits in the order of /proc/PID/limits, which is the resource number's. */
function hardLimits(text: string): Array<bigint | undefined> {
  return text.split('\n').slice(1).filter((l) => l.trim()).map((l) => {
    const f = l.slice(26).trim().split(/\s+/);
    return f[1] === 'unlimited' ? undefined : BigInt(f[1] ?? '0');
  });
}

function sameUserns(pid: number): boolean {
  const a = statSync(`/proc/${pid}/ns/user`);
  const b = statSync('/proc/self/ns/user');
  return a.ino === b.ino && a.dev === b.dev;
}

/** The client at the other end of `sk`, read so that a reused pid cannot stand in for it. */
export function readClient(sk: number): ClientCreds {
  const cred = sock.peerCred(sk);
  if (cred.pid <= 0) throw new CryoError('the client is in a pid namespace cryo cannot see');
  const pidfd = sock.peerPidfd(sk);
  try {
    const status = parseStatus(readFileSync(`/proc/${cred.pid}/status`, 'utf8'));
    const limits = readFileSync(`/proc/${cred.pid}/limits`, 'utf8');
    // Still the process that connected (its pidfd reaches it), so /proc spoke of it.
    syscall('pidfd_send_signal', NR.pidfd_send_signal, pidfd, 0, 0, 0);
    const euid = Number((status.get('Uid') ?? '').split(/\s+/)[1]);
    if (euid !== cred.uid) throw new CryoError(`the client (pid ${cred.pid}) changed its uid since it connected`);
    // Capabilities count only in cryo's own user namespace: a container's root has
    // all of them in its namespace and none here.
    const own = sameUserns(cred.pid);
    const cap = (k: string) => (own ? hex(status.get(k)) : 0n);
    return {
      pid: cred.pid, uid: cred.uid, gid: cred.gid, groups: sock.peerGroups(sk),
      caps: { eff: cap('CapEff'), prm: cap('CapPrm'), inh: cap('CapInh'), bnd: own ? hex(status.get('CapBnd')) : 0n },
      hardLimits: hardLimits(limits),
    };
  } catch (e) {
    if (e instanceof CryoError) throw e;
    throw new CryoError(`cannot tell who the client (pid ${cred.pid}) is: ${(e as Error).message}`);
  } finally {
    syscall('close', NR.close, pidfd);
  }
}

/** Root with every capability cryo has: the client may do all that cryo may. */
export function isPrivileged(c: ClientCreds): boolean {
  const mine = capGet().eff;
  return c.uid === 0 && (c.caps.eff & mine) === mine;
}

/**
 * This process becomes the client: its ids and groups on every thread, and on
 * this one (where cryo runs) the client's capabilities plus
 * CAP_CHECKPOINT_RESTORE, also in the ambient set so that the restored tasks,
 * born from an exec'd seed, can choose their pids. The other threads keep no
 * capability at all. Dumpable again (a change of uid clears it), because the
 * restored tasks take fds from the worker with pidfd_getfd; the client still
 * cannot trace or read it, as the worker holds a capability the client lacks
 * (ptrace's rule: the tracer's permitted set must cover the tracee's).
 */
export function becomeClient(c: ClientCreds): void {
  const cr = capBit(CAP.CHECKPOINT_RESTORE);
  const mine = capGet();
  const keep = (c.caps.eff | cr) & mine.prm;
  try {
    setKeepCaps(true);
    setProcessIds(c.uid, c.gid, c.groups);
    setKeepCaps(false);
    capSet({ eff: keep, prm: keep, inh: keep & cr });
    if (keep & cr) ambientRaise(CAP.CHECKPOINT_RESTORE);
    prctl(PR.SET_DUMPABLE, 1);
  } catch (e) {
    if (e instanceof SysError) throw new CryoError(`cannot take the credentials of the client (uid ${c.uid}): ${e.message}`);
    throw e;
  }
}

const capList = (mask: bigint) => {
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if (mask & capBit(i)) out.push(i);
  return out.join(',');
};

/** Why `cr` (a task's credentials in the images) is more than the client has, or undefined. */
function beyondClient(cr: CredsEntry, c: ClientCreds): string | undefined {
  const uids = [cr.uid, cr.euid, cr.suid, cr.fsuid];
  if (uids.some((u) => u !== c.uid)) return `uids ${uids.join('/')} are not the client's ${c.uid}`;
  const gids = [cr.gid, cr.egid, cr.sgid, cr.fsgid];
  if (gids.some((g) => g !== c.gid)) return `gids ${gids.join('/')} are not the client's ${c.gid}`;
  const mine = new Set(c.groups);
  if (cr.groups.length !== mine.size || cr.groups.some((g) => !mine.has(g))) {
    return `groups [${cr.groups.join(',')}] are not the client's [${c.groups.join(',')}]`;
  }
  const mask = (w: number[]) => BigInt(w[0] ?? 0) | (BigInt(w[1] ?? 0) << 32n);
  const over = (have: bigint, want: bigint, name: string) => {
    const extra = want & ~have;
    return extra ? `${name} capabilities ${capList(extra)} are beyond the client's` : undefined;
  };
  return over(c.caps.prm, mask(cr.capPrm), 'permitted') ?? over(c.caps.prm, mask(cr.capEff), 'effective')
    ?? over(c.caps.prm | c.caps.inh, mask(cr.capInh), 'inheritable') ?? over(c.caps.prm, mask(cr.capAmb), 'ambient')
    ?? over(c.caps.bnd, mask(cr.capBnd), 'bounding');
}

/**
 * A restore for a client that is not privileged: every task and thread of the
 * images must run with credentials the client has, and rlimits it may have.
 * The kernel would refuse most of this later; saying so first names the task.
 */
export function checkImagesForClient(dir: string, c: ClientCreds): void {
  const d = ImageDir.open(dir, { write: false });
  try {
    for (const p of d.read('pstree') as PstreeEntry[]) {
      for (const tid of new Set([p.pid, ...p.threads])) {
        if (tid === 0 || !d.exists('core', tid)) continue;
        const core = d.readOne('core', tid);
        const cr = core.threadCore?.creds;
        const why = cr ? beyondClient(cr, c) : 'its core image holds no credentials';
        if (why) throw new CryoError(`permission denied: task ${tid} of the images: ${why}`);
        (core.tc?.rlimits?.rlimits ?? []).forEach((r, i) => {
          const hard = c.hardLimits[i];
          if (hard !== undefined && r.max > hard) {
            throw new CryoError(`permission denied: task ${tid} of the images: rlimit ${i} hard limit ${r.max} is above the client's ${hard}`);
          }
        });
      }
    }
  } finally {
    d.close();
  }
}
