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
  const sigs = Array.from({ length: SIGMAX }, (_, i) => i + 1).filter((sig) => sig !== SIG.KILL && sig !== SIG.STOP);
  const size = kSigaction.size;
  // Each into a slot of its own, all in one batch, read back at once.
  const addr = rem.scratch(size * sigs.length);
  rem.batch(sigs.map((sig, k) => ({ name: 'rt_sigaction', nr: NR.rt_sigaction, args: [sig, 0, addr + BigInt(k * size), 8] })));
  const all = rem.mem.read(addr, size * sigs.length);
  return sigs.map((_, k) => {
    const a = kSigaction.decode(all.subarray(k * size, (k + 1) * size));
    return create(SaEntrySchema, { sigaction: a.sa_handler, flags: a.sa_flags, restorer: a.sa_restorer, mask: a.sa_mask });
  });
}

export function restoreSigactions(rem: Remote, sas: SaEntry[]): void {
  const ign = execDispositions(rem.pid);
  const todo: Array<{ sig: number; sa: SaEntry }> = [];
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
    todo.push({ sig, sa });
  }
  // One batch, SIGTRAP's last and alone: made ignored, it would spoil the batch's int3.
  const trap = todo.find((t) => t.sig === SIG.TRAP);
  const rest = todo.filter((t) => t !== trap);
  const size = kSigaction.size;
  const base = rem.put(Buffer.concat(rest.map(({ sa }) => kSigaction.encode({ sa_handler: sa.sigaction, sa_flags: sa.flags, sa_restorer: sa.restorer, sa_mask: sa.mask }))));
  rem.batch(rest.map(({ sig }, k) => ({ name: `rt_sigaction(${sig})`, nr: NR.rt_sigaction, args: [sig, base + BigInt(k * size), 0, 8] })));
  if (trap) {
    const b = kSigaction.encode({ sa_handler: trap.sa.sigaction, sa_flags: trap.sa.flags, sa_restorer: trap.sa.restorer, sa_mask: trap.sa.mask });
    // This very call must not end in an int3 when it makes SIGTRAP ignored.
    rem.noteTrapIgnored(true);
    rem.call(`rt_sigaction(${SIG.TRAP})`, NR.rt_sigaction, SIG.TRAP, rem.put(b), 0, 8);
    rem.noteTrapIgnored(trap.sa.sigaction === SIG_IGN);
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
