// Signal dispositions: remote rt_sigaction in the task, both ways.
import { NR, SIG, SIGMAX } from '../sys/index.js';
import { create, SaEntrySchema, type SaEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';

const KSIGACTION_SIZE = 32; // handler, flags, restorer, mask (8-byte sigset)
const SIG_IGN = 1n;

/** Every signal but SIGKILL and SIGSTOP: 62 entries, the count CRIU insists on. */
export function dumpSigactions(rem: Remote): SaEntry[] {
  const out: SaEntry[] = [];
  const addr = rem.scratch(KSIGACTION_SIZE);
  for (let sig = 1; sig <= SIGMAX; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    rem.call('rt_sigaction', NR.rt_sigaction, sig, 0, addr, 8);
    const b = rem.mem.read(addr, KSIGACTION_SIZE);
    out.push(create(SaEntrySchema, {
      sigaction: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8),
      restorer: b.readBigUInt64LE(16), mask: b.readBigUInt64LE(24),
    }));
  }
  return out;
}

export function restoreSigactions(rem: Remote, sas: SaEntry[]): void {
  let i = 0;
  const b = Buffer.alloc(KSIGACTION_SIZE);
  for (let sig = 1; sig <= SIGMAX; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const sa = sas[i++];
    if (!sa) break;
    // Every one, defaults too: the seed inherits cryo's ignored signals (SIGPIPE...).
    b.writeBigUInt64LE(sa.sigaction, 0);
    b.writeBigUInt64LE(sa.flags, 8);
    b.writeBigUInt64LE(sa.restorer, 16);
    b.writeBigUInt64LE(sa.mask, 24);
    // This very call must not end in an int3 when it makes SIGTRAP ignored.
    if (sig === SIG.TRAP) rem.noteTrapIgnored(true);
    rem.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, rem.put(b), 0, 8);
    if (sig === SIG.TRAP) rem.noteTrapIgnored(sa.sigaction === SIG_IGN);
  }
}
