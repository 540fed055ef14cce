// Resource limits (prlimit64), read and set by the task itself: another uid's
// limits cannot be read or raised from outside without CAP_SYS_RESOURCE.
import { NR } from '../sys/index.js';
import { create, RlimitEntrySchema, TaskRlimitsEntrySchema, type RlimitEntry } from '../images/index.js';
import type { Logger } from '../context.js';
import type { Remote } from '../tracer/remote.js';
import { rlimit64 } from '../abi/index.js';
import type { TaskStateModule } from './task-state.js';

/** The limits the kernel has (RLIMIT_NLIMITS); CRIU dumps as many. */
export const RLIM_NLIMITS = 16;

export function dumpRlimits(rem: Remote, scratch: bigint): RlimitEntry[] {
  const out: RlimitEntry[] = [];
  for (let r = 0; r < RLIM_NLIMITS; r++) {
    rem.call('prlimit64', NR.prlimit64, 0, r, 0, scratch);
    const l = rlimit64.decode(rem.mem.read(scratch, rlimit64.size));
    out.push(create(RlimitEntrySchema, { cur: l.rlim_cur, max: l.rlim_max }));
  }
  return out;
}

/** As CRIU: a limit that cannot be set again (a hard limit above the restorer's) is a warning. */
export function restoreRlimits(rem: Remote, pid: number, rl: RlimitEntry[], log: Logger): void {
  rl.forEach((r, i) => {
    const ret = rem.callRaw(NR.prlimit64, 0, i, rem.put(rlimit64.encode({ rlim_cur: r.cur, rlim_max: r.max })), 0);
    if (ret < 0n) log.warn(`task ${pid}: cannot restore rlimit ${i} (errno ${-ret})`);
  });
}

export const rlimitsModule: TaskStateModule = {
  name: 'rlimits',
  dumpTask(d) {
    d.tc.rlimits = create(TaskRlimitsEntrySchema, { rlimits: dumpRlimits(d.rem, d.scratch) });
  },
  restore: {
    task: (t) => restoreRlimits(t.rem, t.img.pstree.pid, t.img.core.tc!.rlimits?.rlimits ?? [], t.sh.log),
  },
};
