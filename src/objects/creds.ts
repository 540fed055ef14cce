// Credentials: ids, groups, capabilities, securebits (dump from /proc, restore remotely).
import { readFileSync } from 'node:fs';
import { AT_FDCWD, NR, O, PR, PR_CAP_AMBIENT_OP, errnoName } from '../sys/index.js';
import { CryoError } from '../context.js';
import { create, CredsEntrySchema, isFieldSet, TaskCoreEntrySchema, type CoreEntry, type CredsEntry } from '../images/index.js';
import { parseIds, parseStatus } from '../proc/stat.js';
import type { Remote } from '../tracer/remote.js';
import { capUserHeader, encodeCapData, LINUX_CAPABILITY_VERSION_3 } from '../abi/index.js';
import type { TaskStateModule } from './task-state.js';
import { refuseConfined } from './lsm.js';
import type { IdView } from './userns.js';


function capWords(hex: string | undefined): number[] {
  const v = BigInt('0x' + (hex ?? '0'));
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

/**
 * The thread's credentials as it sees them itself (as CRIU's parasite reads
 * them): /proc shows cryo's view, which its user namespace's maps turn into the
 * tree's. Capabilities are the thread's own in its namespace either way.
 */
export function dumpCreds(status: Map<string, string>, rem: Remote, ids: IdView, who: string): CredsEntry {
  const what = `${who}: its credentials`;
  const uid = parseIds(status.get('Uid')).map((v) => ids.nsUid(v, what));
  const gid = parseIds(status.get('Gid')).map((v) => ids.nsGid(v, what));
  const secbits = Number(rem.call('prctl(PR_GET_SECUREBITS)', NR.prctl, PR.GET_SECUREBITS));
  return create(CredsEntrySchema, {
    uid: uid[0] ?? 0, euid: uid[1] ?? 0, suid: uid[2] ?? 0, fsuid: uid[3] ?? 0,
    gid: gid[0] ?? 0, egid: gid[1] ?? 0, sgid: gid[2] ?? 0, fsgid: gid[3] ?? 0,
    capInh: capWords(status.get('CapInh')), capPrm: capWords(status.get('CapPrm')),
    capEff: capWords(status.get('CapEff')), capBnd: capWords(status.get('CapBnd')),
    capAmb: capWords(status.get('CapAmb')),
    secbits,
    groups: (status.get('Groups') ?? '').split(/\s+/).filter(Boolean).map((v) => ids.nsGid(Number(v), `${what} (supplementary groups)`)),
    noNewPrivs: Number(status.get('NoNewPrivs') ?? 0),
  });
}

const SECURE_NO_SETUID_FIXUP = 1 << 2;
const CAP_LAST = 63;

const bit = (words: number[], cap: number) => ((words[cap >> 5] ?? 0) >>> (cap & 31)) & 1;

/** Whether the thread's ids, and its groups, are already the dumped ones (/proc's, cryo's view, against the images' in it). */
function sameIds(tid: number, c: CredsEntry, ids: IdView): { ids: boolean; groups: boolean } {
  const st = parseStatus(readFileSync(`/proc/${tid}/status`, 'utf8'));
  const eq = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  const what = `thread ${tid}: its credentials`;
  const u = (v: number) => ids.hostUid(v, what);
  const g = (v: number) => ids.hostGid(v, what);
  const groups = (st.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
  return {
    ids: eq(parseIds(st.get('Uid')), [c.uid, c.euid, c.suid, c.fsuid].map(u)) && eq(parseIds(st.get('Gid')), [c.gid, c.egid, c.sgid, c.fsgid].map(g)),
    groups: eq(groups, c.groups.map(g).sort((a, b) => a - b)),
  };
}

/**
 * Give the thread its dumped credentials, as CRIU's restorer does: ids first with
 * SECURE_NO_SETUID_FIXUP so that no capability is lost on the way, then the
 * bounding set, securebits, the three capability sets and the ambient set.
 * Done last: until then the thread needs root's powers to be rebuilt. What is
 * already as dumped is left alone: a worker that runs as an unprivileged
 * client could not set it even to the same value (setgroups, securebits).
 */
export function restoreCreds(rem: Remote, c: CredsEntry, ids: IdView): void {
  const secbits = () => Number(rem.call('prctl(PR_GET_SECUREBITS)', NR.prctl, PR.GET_SECUREBITS));
  // The ids go in as the images have them: the thread's calls take its own namespace's.
  const same = sameIds(rem.pid, c, ids);
  if (!same.ids || !same.groups) {
    if (!(secbits() & SECURE_NO_SETUID_FIXUP)) {
      rem.call('prctl(PR_SET_SECUREBITS)', NR.prctl, PR.SET_SECUREBITS, secbits() | SECURE_NO_SETUID_FIXUP);
    }
    // Not when they are already right: in a user namespace with setgroups denied it fails even so.
    if (!same.groups) {
      const g = Buffer.alloc(4 * Math.max(1, c.groups.length));
      c.groups.forEach((v, i) => g.writeUInt32LE(v, 4 * i));
      rem.call('setgroups', NR.setgroups, c.groups.length, rem.put(g));
    }
    rem.call('setresgid', NR.setresgid, c.gid, c.egid, c.sgid);
    rem.call('setresuid', NR.setresuid, c.uid, c.euid, c.suid);
    rem.callRaw(NR.setfsgid, c.fsgid);
    rem.callRaw(NR.setfsuid, c.fsuid);
  }
  if (c.capBnd.length) {
    // Up to the last capability this kernel has: reading any above it only fails.
    const last = Math.min(CAP_LAST, Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')));
    for (let cap = 0; cap <= last; cap++) {
      if (bit(c.capBnd, cap)) continue;
      // Only capabilities this kernel knows can be read (and dropped).
      if (rem.callRaw(NR.prctl, PR.CAPBSET_READ, cap) !== 1n) continue;
      rem.call(`prctl(PR_CAPBSET_DROP, ${cap})`, NR.prctl, PR.CAPBSET_DROP, cap);
    }
  }
  if (secbits() !== c.secbits) rem.call('prctl(PR_SET_SECUREBITS)', NR.prctl, PR.SET_SECUREBITS, c.secbits);
  // The sets as the thread has them now (after the ids): what is already so needs no call.
  const st = parseStatus(readFileSync(`/proc/${rem.pid}/status`, 'utf8'));
  const now = (k: string) => BigInt(`0x${st.get(k) ?? '0'}`);
  const words = (w: number[]) => BigInt(w[0] ?? 0) | (BigInt(w[1] ?? 0) << 32n);
  const setsSame = now('CapEff') === words(c.capEff) && now('CapPrm') === words(c.capPrm) && now('CapInh') === words(c.capInh);
  if ((c.capEff.length || c.capPrm.length || c.capInh.length) && !setsSame) {
    const hdr = capUserHeader.encode({ version: LINUX_CAPABILITY_VERSION_3 });
    const data = encodeCapData({ eff: words(c.capEff), prm: words(c.capPrm), inh: words(c.capInh) });
    rem.call('capset', NR.capset, rem.put(hdr, 0), rem.put(data, 64));
  }
  if (now('CapAmb') === 0n && words(c.capAmb) === 0n) return;
  rem.callRaw(NR.prctl, PR.CAP_AMBIENT, PR_CAP_AMBIENT_OP.CLEAR_ALL, 0, 0, 0);
  for (let cap = 0; cap <= CAP_LAST; cap++) {
    if (bit(c.capAmb, cap)) rem.call(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, NR.prctl, PR.CAP_AMBIENT, PR_CAP_AMBIENT_OP.RAISE, cap, 0, 0);
  }
}

/** The audit login uid (/proc/PID/loginuid); undefined where the kernel has no audit. */
export function dumpLoginuid(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/loginuid`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Give the task its dumped login uid. Only a task itself may write its
 * /proc/self/loginuid (setting one that is set needs CAP_AUDIT_CONTROL): it
 * inherited cryo's, which is written over only when it differs.
 */
export function restoreLoginuid(rem: Remote, pid: number, want: number | undefined, ids: IdView): void {
  if (want === undefined) return;
  const have = dumpLoginuid(rem.pid);
  if (have === undefined) throw new CryoError(`task ${pid}: its loginuid ${want} cannot be restored: this kernel has no /proc/PID/loginuid`);
  // /proc shows it in cryo's view; the task writes it in its own.
  if (have >>> 0 === ids.hostUid(want, `task ${pid}: its loginuid`) >>> 0) return;
  const path = '/proc/self/loginuid';
  const fd = rem.call(`open(${path})`, NR.openat, AT_FDCWD, rem.put(Buffer.from(path + '\0')), O.WRONLY | O.CLOEXEC, 0);
  try {
    const text = Buffer.from(String(want >>> 0));
    const r = rem.callRaw(NR.write, fd, rem.put(text, 64), text.length);
    if (r < 0n) throw new CryoError(`task ${pid}: cannot set its loginuid to ${want >>> 0} (it has ${have >>> 0}): ${errnoName(Number(-r))}`);
  } finally {
    rem.call('close', NR.close, fd);
  }
}

/** Credentials last: after them the thread may no longer be allowed to rebuild anything. */
export function restoreThreadCreds(rem: Remote, core: CoreEntry, ids: IdView): void {
  const c = core.threadCore?.creds;
  if (!c) return;
  restoreCreds(rem, c, ids);
  if (c.noNewPrivs) rem.call('prctl(PR_SET_NO_NEW_PRIVS)', NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  // Per thread, and after the credentials: changing them clears it (thread-state.ts dumps it).
  const pdeath = core.threadCore?.pdeathSig;
  if (pdeath) rem.call('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, pdeath);
}

export const credsModule: TaskStateModule = {
  name: 'creds',
  dumpTask(d) {
    const loginuid = dumpLoginuid(d.pid);
    if (loginuid !== undefined) d.tc.loginuid = d.ids.nsUid(loginuid, `${d.who}: its loginuid`);
  },
  dumpThread(d, t) {
    // A confinement cryo could not give back fails the dump (lsm.ts).
    refuseConfined(t.pid, t.tid, t.status.get('Name') ?? '?');
    t.tcore.creds = dumpCreds(t.status, t.rem, d.ids, t.tid === d.pid ? d.who : `thread ${t.tid} of ${d.who}`);
  },
  restore: {
    // Before the threads are made (they inherit it) and while the task is still root.
    task: (t) => {
      const tc = t.img.core.tc!;
      restoreLoginuid(t.rem, t.img.pstree.pid, isFieldSet(tc, TaskCoreEntrySchema.field.loginuid) ? tc.loginuid : undefined, t.sh.ids);
    },
    creds: (t) => {
      for (const x of t.threads) restoreThreadCreds(x.rem, x.core, t.sh.ids);
    },
  },
};
