// Credentials: ids, groups, capabilities, securebits (dump from /proc, restore remotely).
import { NR } from '../sys/index.js';
import { create, CredsEntrySchema, type CredsEntry } from '../images/index.js';
import { parseIds } from '../proc/stat.js';
import type { Remote } from '../tracer/remote.js';

const PR_GET_SECUREBITS = 27;
const PR_SET_SECUREBITS = 28;
const PR_SET_KEEPCAPS = 8;

function capWords(hex: string | undefined): number[] {
  const v = BigInt('0x' + (hex ?? '0'));
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

export function dumpCreds(status: Map<string, string>, rem: Remote): CredsEntry {
  const uid = parseIds(status.get('Uid'));
  const gid = parseIds(status.get('Gid'));
  const secbits = Number(rem.call('prctl(PR_GET_SECUREBITS)', NR.prctl, PR_GET_SECUREBITS));
  return create(CredsEntrySchema, {
    uid: uid[0] ?? 0, euid: uid[1] ?? 0, suid: uid[2] ?? 0, fsuid: uid[3] ?? 0,
    gid: gid[0] ?? 0, egid: gid[1] ?? 0, sgid: gid[2] ?? 0, fsgid: gid[3] ?? 0,
    capInh: capWords(status.get('CapInh')), capPrm: capWords(status.get('CapPrm')),
    capEff: capWords(status.get('CapEff')), capBnd: capWords(status.get('CapBnd')),
    capAmb: capWords(status.get('CapAmb')),
    secbits,
    groups: (status.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number),
    noNewPrivs: Number(status.get('NoNewPrivs') ?? 0),
  });
}

/**
 * Switch the task to its dumped ids. Done last: the task needs root to be rebuilt.
 * Capabilities beyond what the ids imply are issue #3's business.
 */
export function restoreCreds(rem: Remote, c: CredsEntry, current: CredsEntry): void {
  const same =
    c.uid === current.uid && c.euid === current.euid && c.suid === current.suid &&
    c.gid === current.gid && c.egid === current.egid && c.sgid === current.sgid &&
    c.groups.join(',') === current.groups.join(',');
  if (!same) {
    const g = Buffer.alloc(4 * Math.max(1, c.groups.length));
    c.groups.forEach((v, i) => g.writeUInt32LE(v, 4 * i));
    rem.call('setgroups', NR.setgroups, c.groups.length, rem.put(g));
    rem.call('setresgid', NR.setresgid, c.gid, c.egid, c.sgid);
    rem.call('prctl(PR_SET_KEEPCAPS)', NR.prctl, PR_SET_KEEPCAPS, 1);
    rem.call('setresuid', NR.setresuid, c.uid, c.euid, c.suid);
  }
  if (c.secbits !== current.secbits) rem.call('prctl(PR_SET_SECUREBITS)', NR.prctl, PR_SET_SECUREBITS, c.secbits);
}
