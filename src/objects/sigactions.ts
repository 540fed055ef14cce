// Signal dispositions: remote rt_sigaction in the task, both ways.
import { readFileSync } from 'node:fs';
import { NR, SIG, SIGMAX } from '../sys/index.js';
import { create, SaEntrySchema, type SaEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import { kSigaction } from '../abi/index.js';
import type { TaskStateModule } from './task-state.js';

const SIG_IGN = 1n;

/** Every signal but SIGKILL and SIGSTOP: 62 entries, the count CRIU insists on. */
export function dumpSigactions(rem: Remote): SaEntry[] {
  const out: SaEntry[] = [];
  const addr = rem.scratch(kSigaction.size);
  for (let sig = 1; sig <= SIGMAX; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    rem.call('rt_sigaction', NR.rt_sigaction, sig, 0, addr, 8);
    const k = kSigaction.decode(rem.mem.read(addr, kSigaction.size));
    out.push(create(SaEntrySchema, { sigaction: k.sa_handler, flags: k.sa_flags, restorer: k.sa_restorer, mask: k.sa_mask }));
  }
  return out;
}

export function restoreSigactions(rem: Remote, sas: SaEntry[]): void {
  const ign = execDispositions(rem.pid);
  let i = 0;
  for (let sig = 1; sig <= SIGMAX; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const sa = sas[i++];
    if (!sa) break;
    // The seed's own (cryo's ignored signals, SIGPIPE..., else defaults) where they are the image's: no call.
    const has = ign !== undefined && ((ign >> BigInt(sig - 1)) & 1n ? SIG_IGN : 0n);
    if (has === sa.sigaction && sa.flags === 0n && sa.mask === 0n && sa.restorer === 0n && !sa.maskExtended) {
      if (sig === SIG.TRAP) rem.noteTrapIgnored(has === SIG_IGN);
      continue;
    }
    const b = kSigaction.encode({ sa_handler: sa.sigaction, sa_flags: sa.flags, sa_restorer: sa.restorer, sa_mask: sa.mask });
    // This very call must not end in an int3 when it makes SIGTRAP ignored.
    if (sig === SIG.TRAP) rem.noteTrapIgnored(true);
    rem.call(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, rem.put(b), 0, 8);
    if (sig === SIG.TRAP) rem.noteTrapIgnored(sa.sigaction === SIG_IGN);
  }
}

/**
 * The ignored signals of a task that has set no handler since its exec (none
 * caught, /proc's SigCgt): exec left every disposition SIG_IGN or SIG_DFL, with
 * no flags, mask or restorer. Undefined where a handler is set: then nothing is known.
 */
function execDispositions(pid: number): bigint | undefined {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mask = (k: string) => {
    const m = new RegExp(`^${k}:\\s*([0-9a-f]+)$`, 'm').exec(st);
    return m ? BigInt(`0x${m[1]}`) : undefined;
  };
  return mask('SigCgt') === 0n ? mask('SigIgn') : undefined;
}

export const sigactionsModule: TaskStateModule = {
  name: 'sigactions',
  dumpTask(d) {
    d.tc.sigactions = dumpSigactions(d.rem);
  },
  restore: {
    task: (t) => restoreSigactions(t.rem, t.img.core.tc!.sigactions),
  },
};
