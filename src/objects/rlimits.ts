// Resource limits: read from /proc/PID/limits (readable by anyone, no call into
// the task), set again by the task itself (prlimit64): another uid's limits
// cannot be raised from outside without CAP_SYS_RESOURCE.
import { readFileSync } from 'node:fs';
import { NR } from '../sys/index.js';
import { CryoError } from '../context.js';
import { create, RlimitEntrySchema, TaskRlimitsEntrySchema, type RlimitEntry } from '../images/index.js';
import type { Logger } from '../context.js';
import type { Remote } from '../tracer/remote.js';
import { rlimit64 } from '../abi/index.js';
import type { TaskStateModule } from './task-state.js';

/** The limits the kernel has (RLIMIT_NLIMITS); CRIU dumps as many. */
export const RLIM_NLIMITS = 16;

const RLIM_INFINITY = 0xffffffffffffffffn;

/**
 * /proc/PID/limits: a header, then one line per limit in RLIMIT_* order, its name
 * in 25 columns, then the soft and hard values ("unlimited": RLIM_INFINITY).
 */
export function parseLimits(text: string, what: string): RlimitEntry[] {
  const lines = text.split('\n').slice(1).filter((l) => l.length);
  if (lines.length < RLIM_NLIMITS) throw new CryoError(`${what}: /proc limits has ${lines.length} limits, not ${RLIM_NLIMITS}`);
  return lines.slice(0, RLIM_NLIMITS).map((l) => {
    const [cur, max] = l.slice(26).trim().split(/\s+/);
    const value = (v: string | undefined): bigint => {
      if (v === 'unlimited') return RLIM_INFINITY;
      if (v === undefined || !/^\d+$/.test(v)) throw new CryoError(`${what}: cannot read the limit line "${l.trim()}"`);
      return BigInt(v);
    };
    return create(RlimitEntrySchema, { cur: value(cur), max: value(max) });
  });
}

export function dumpRlimits(pid: number): RlimitEntry[] {
  return parseLimits(readFileSync(`/proc/${pid}/limits`, 'utf8'), `task ${pid}`);
}

/** As CRIU: a limit that cannot be set again (a hard limit above the restorer's) is a warning. */
export function restoreRlimits(rem: Remote, pid: number, rl: RlimitEntry[], log: Logger): void {
  // Those the task has already (from cryo, through the seed) need no call into it.
  const now = dumpRlimits(rem.pid);
  rl.forEach((r, i) => {
    if (now[i] && now[i].cur === r.cur && now[i].max === r.max) return;
    const ret = rem.callRaw(NR.prlimit64, 0, i, rem.put(rlimit64.encode({ rlim_cur: r.cur, rlim_max: r.max })), 0);
    if (ret < 0n) log.warn(`task ${pid}: cannot restore rlimit ${i} (errno ${-ret})`);
  });
}

export const rlimitsModule: TaskStateModule = {
  name: 'rlimits',
  dumpTask(d) {
    d.tc.rlimits = create(TaskRlimitsEntrySchema, { rlimits: dumpRlimits(d.rem.pid) });
  },
  restore: {
    task: (t) => restoreRlimits(t.rem, t.img.pstree.pid, t.img.core.tc!.rlimits?.rlimits ?? [], t.sh.log),
  },
};
